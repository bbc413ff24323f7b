"""Shared task plumbing: item containers, the padding collator, `TaskData`, byte encoding and the task registry.

`build_task_data(data_cfg, seed)` turns the `data:` section of a preset into a `TaskData` through `TASKS`, the
registry each family module (`generated`, `text`, `image`, `audio`) fills with `register_task(name, config_cls)`.
Inputs follow the paper (Section 3.2): token tasks give `input_ids` for an `nn.Embedding`; pixel and audio tasks give
continuous `input_values` of shape (L, C).

Items: token tasks `{"input_ids": LongTensor (L_i,), "labels": int}`; retrieval `{"input_ids": LongTensor (2, L_i),
"labels": int}` (the shorter document right-padded); continuous tasks `{"input_values": FloatTensor (L_i, C),
"labels": int}`. `TaskData.collate_fn` right-pads a batch to its longest item and adds `attention_mask`. Token lengths
count the EOS.
"""

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from modeling_mrconv import build_byte_tokenizer


SPLITS = ("train", "validation", "test")
BYTE_OFFSET = 3  # ByT5: pad=0, eos=1, unk=2, byte b -> b + 3
BYTE_EOS_ID = 1
BYTE_VOCAB_SIZE = 259


# ---------------------------------------------------------------------------------------------------------------------
# Datasets and collation


class TokenDataset(Dataset):
    """Variable-length token sequences stored flat (int16 when the ids fit) with offsets."""

    def __init__(self, sequences: Sequence[Sequence[int]], labels: Sequence[int]):
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(lengths) else np.zeros(0)
        self.ids = flat.astype(np.int16 if flat.size == 0 or flat.max() < 2**15 else np.int32)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.labels) != len(lengths):
            raise ValueError(f"{len(lengths)} sequences but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def sequence(self, index: int) -> torch.Tensor:
        """Token ids of example `index`, a LongTensor (L_i,)."""
        return torch.from_numpy(self.ids[self.offsets[index] : self.offsets[index + 1]].astype(np.int64))

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"input_ids": self.sequence(index), "labels": int(self.labels[index])}


class PairTokenDataset(Dataset):
    """Document pairs; an item stacks both documents, the shorter right-padded with `pad_token_id`."""

    def __init__(self, first: Sequence, second: Sequence, labels: Sequence[int], pad_token_id: int = 0):
        self.first, self.second = TokenDataset(first, labels), TokenDataset(second, labels)
        self.labels, self.pad_token_id = self.first.labels, pad_token_id

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        a, b = self.first.sequence(index), self.second.sequence(index)
        ids = torch.full((2, max(len(a), len(b))), self.pad_token_id, dtype=torch.long)  # (2 L_i)
        ids[0, : len(a)], ids[1, : len(b)] = a, b
        return {"input_ids": ids, "labels": int(self.labels[index])}


class ArrayDataset(Dataset):
    """Fixed-length continuous sequences (N, L, C) stored compactly (uint8/int16/...), scaled lazily per item."""

    def __init__(
        self, values: np.ndarray, labels: Sequence[int], scale: float = 1.0, mean: Any = None, std: Any = None
    ):
        if values.ndim != 3:
            raise ValueError(f"values must have shape (N, L, C), got {values.shape}")
        self.values, self.labels, self.scale = values, np.asarray(labels, dtype=np.int64), float(scale)
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32)  # (C)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32)  # (C)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        x = torch.from_numpy(self.values[index].astype(np.float32)) * self.scale  # (L C)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return {"input_values": x, "labels": int(self.labels[index])}


class PadCollator:
    """Right-pad a batch to its longest item (cut to `max_length`) and build `attention_mask` (1 = real step).

    Token items are padded with `pad_token_id`, continuous items with 0.0. Pair items (2, L_i) get one mask per
    document, ending at its last non-pad id. A class rather than a closure so DataLoader workers can pickle it.
    """

    def __init__(self, input_name: str, max_length: int, pad_token_id: int | None = None, pair: bool = False):
        self.input_name, self.max_length, self.pad_token_id, self.pair = input_name, max_length, pad_token_id, pair

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        labels = torch.tensor([int(item["labels"]) for item in batch], dtype=torch.long)  # (B)
        if self.pair:
            docs = [item["input_ids"][:, : self.max_length] for item in batch]  # (2 L_i) each
            L = max(d.shape[-1] for d in docs)
            ids = torch.full((len(docs), 2, L), self.pad_token_id, dtype=torch.long)  # (B 2 L)
            for i, d in enumerate(docs):
                ids[i, :, : d.shape[-1]] = d
            positions = torch.arange(1, L + 1)  # (L)
            lengths = ((ids != self.pad_token_id) * positions).amax(-1)  # (B 2): last non-pad position
            return {"input_ids": ids, "attention_mask": (positions <= lengths[..., None]).long(), "labels": labels}
        seqs = [item[self.input_name][: self.max_length] for item in batch]  # (L_i) or (L_i C) each
        L = max(s.shape[0] for s in seqs)
        if self.input_name == "input_ids":
            padded = torch.full((len(seqs), L), self.pad_token_id, dtype=torch.long)  # (B L)
        else:
            padded = torch.zeros(len(seqs), L, seqs[0].shape[-1], dtype=torch.float32)  # (B L C)
        mask = torch.zeros(len(seqs), L, dtype=torch.long)  # (B L)
        for i, s in enumerate(seqs):
            padded[i, : s.shape[0]], mask[i, : s.shape[0]] = s, 1
        return {self.input_name: padded, "attention_mask": mask, "labels": labels}


@dataclass
class TaskData:
    """Everything the training script needs for one task (item layout in the module docstring)."""

    train: Dataset
    validation: Dataset
    test: Dataset
    num_labels: int
    id2label: dict[int, str]
    input_dim: int | None  # None for token tasks, else channels C of input_values
    vocab_size: int | None  # token tasks: size of the id space (embedding rows)
    pad_token_id: int | None
    max_length: int  # longest sequence a batch may have (model max_sequence_length)
    pair: bool  # True for retrieval (two documents per example)
    tokenizer: Any | None  # a transformers tokenizer to save next to the export (None for continuous tasks)
    collate_fn: Callable[[list[dict]], dict[str, torch.Tensor]]
    description: str  # one line: where the data came from, sizes


def _sizes(splits: dict[str, Dataset]) -> str:
    return "/".join(str(len(splits[s])) for s in SPLITS) + " train/validation/test"


def _token_task(
    splits: dict[str, Dataset],
    id2label: dict[int, str],
    max_length: int,
    description: str,
    tokenizer: Any = None,
    vocab_size: int = BYTE_VOCAB_SIZE,
    pad_token_id: int = 0,
) -> TaskData:
    """TaskData for token ids; the defaults are ByT5 bytes."""
    pair = isinstance(splits["train"], PairTokenDataset)
    return TaskData(
        **splits,
        num_labels=len(id2label),
        id2label=id2label,
        input_dim=None,
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        max_length=max_length,
        pair=pair,
        tokenizer=build_byte_tokenizer(max_length) if tokenizer is None else tokenizer,
        collate_fn=PadCollator("input_ids", max_length, pad_token_id, pair),
        description=f"{description}: {_sizes(splits)}",
    )


def _continuous_task(
    splits: dict[str, Dataset],
    id2label: dict[int, str],
    description: str,
    input_dim: int | None = None,
    max_length: int | None = None,
) -> TaskData:
    """TaskData for continuous (L, C) items; input_dim and max_length default to those of `ArrayDataset` arrays."""
    if max_length is None:
        max_length = max(ds.values.shape[1] for ds in splits.values())
    return TaskData(
        **splits,
        num_labels=len(id2label),
        id2label=id2label,
        input_dim=input_dim if input_dim is not None else splits["train"].values.shape[2],
        vocab_size=None,
        pad_token_id=None,
        max_length=max_length,
        pair=False,
        tokenizer=None,
        collate_fn=PadCollator("input_values", max_length),
        description=f"{description}: {_sizes(splits)}",
    )


# ---------------------------------------------------------------------------------------------------------------------
# Helpers


def _get(cfg: dict, key: str, default: Any) -> Any:
    """`cfg[key]`, or `default` when the key is missing or null."""
    value = cfg.get(key)
    return default if value is None else value


def _counts(cfg: dict, defaults: tuple[int, int, int]) -> list[int]:
    return [int(_get(cfg, f"num_{s}", d)) for s, d in zip(SPLITS, defaults, strict=True)]


def truncate_ids(ids: Sequence[int], max_length: int, eos_id: int) -> list[int]:
    """Keep the first `max_length - 1` ids and the final EOS, as a tokenizer with `truncation=True` does."""
    ids = list(ids)
    return ids if len(ids) <= max_length else ids[: max_length - 1] + [eos_id]


def byte_encode(text: str, max_length: int) -> np.ndarray:
    """ByT5 ids (int16) of `text` plus EOS, truncated to `max_length`.

    Equals `build_byte_tokenizer(max_length)(text, truncation=True)["input_ids"]`, except that literal special-token
    strings such as "</s>" stay bytes here (the tokenizer maps them to their special ids).
    """
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)[: max_length - 1]
    return np.append(raw.astype(np.int16) + BYTE_OFFSET, np.int16(BYTE_EOS_ID))


# ---------------------------------------------------------------------------------------------------------------------
# Task configs and the registry


@dataclass
class TaskConfig:
    """Keys every task takes. Subclasses add the task's keys with their defaults; `SOURCES[0]` is the default source."""

    SOURCES: ClassVar[tuple[str, ...]] = ("generate",)
    # keys that apply under one source only ({source: keys}); given with another source they are an error
    SOURCE_KEYS: ClassVar[dict[str, tuple[str, ...]]] = {}

    task: str  # the registry name
    source: str | None = None  # one of SOURCES; null = SOURCES[0]
    data_seed: int | None = None  # seeds generation and every random split; null = the `seed` argument


@dataclass(frozen=True)
class TaskSpec:
    """One registered task: its config dataclass and its builder `(cfg dict, seed) -> TaskData`."""

    name: str
    config_cls: type[TaskConfig]
    builder: Callable[[dict, int], TaskData]


TASKS: dict[str, TaskSpec] = {}


def register_task(name: str, config_cls: type[TaskConfig]) -> Callable:
    """Decorator registering `builder(cfg: dict, seed: int) -> TaskData` as task `name` with keys `config_cls`."""

    def decorate(builder: Callable[[dict, int], TaskData]) -> Callable[[dict, int], TaskData]:
        if name in TASKS:
            raise ValueError(f"task {name!r} is already registered")
        TASKS[name] = TaskSpec(name, config_cls, builder)
        return builder

    return decorate


def did_you_mean(key: str, valid: Sequence[str]) -> str:
    """ "did you mean 'x'? " for the closest valid key, else ""."""
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def unknown_key_message(section: str, key: str, valid: Sequence[str], context: str = "") -> str:
    """The error of a key outside `valid`: the key, a did-you-mean and the valid keys."""
    return f"{section}.{key}: unknown {section} key{context}; {did_you_mean(key, valid)}valid keys: {sorted(valid)}"


def keys_for_other_sources(config_cls: type[TaskConfig], source: str) -> set[str]:
    """Keys of `config_cls` that apply only under sources other than `source`."""
    own = set(config_cls.SOURCE_KEYS.get(source, ()))
    return {k for s, keys in config_cls.SOURCE_KEYS.items() if s != source for k in keys} - own


def check_task_keys(data_cfg: dict) -> TaskSpec:
    """The task's spec, after checking `data_cfg`'s task, keys and source (ValueError naming the keys).

    Every key must be a field of the task's config dataclass; a key that applies only under another source (the
    generator's keys with `source: local`, file keys with `source: generate`) is an error (a null one is ignored).
    """
    task = data_cfg.get("task")
    if task not in TASKS:
        raise ValueError(
            f"data.task: unknown data task {task!r}; {did_you_mean(str(task), list(TASKS))}choose from {sorted(TASKS)}"
        )
    spec = TASKS[task]
    fields = [f.name for f in dataclasses.fields(spec.config_cls)]
    for key in data_cfg:
        if key not in fields:
            raise ValueError(unknown_key_message("data", key, fields, f" (not a key of task {task!r})"))
    sources = spec.config_cls.SOURCES
    source = _get(data_cfg, "source", sources[0])
    if source not in sources:
        raise ValueError(f"data.source: task {task!r} takes source {' | '.join(sources)}, got {source!r}")
    others = keys_for_other_sources(spec.config_cls, source)
    misplaced = [k for k in data_cfg if k in others and data_cfg[k] is not None]
    if misplaced:
        owners = {k: [s for s, keys in spec.config_cls.SOURCE_KEYS.items() if k in keys] for k in misplaced}
        raise ValueError(
            f"data: key(s) {misplaced} do not apply to task {task!r} with source: {source} (they belong to source "
            f"{' | '.join(sorted({s for v in owners.values() for s in v}))}); remove them"
        )
    return spec


def check_labels(split: str, labels: Any, num_labels: int, where: str, lines: Sequence[int] | None = None) -> None:
    """Raise ValueError unless `split` has rows and every label is an integer class id in [0, num_labels).

    Args:
        split: "train", "validation" or "test".
        labels: One label per row.
        num_labels: Number of classes.
        where: The file (or data set) the split came from, for the message.
        lines: Line numbers of the rows in `where` (1-based); null = rows numbered from 0.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError(f"{where}: the {split} split is empty (no rows)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: {split} labels must be integer class ids, got dtype {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_labels))
    if bad.size:
        i = int(bad[0])
        row = f"line {lines[i]}" if lines is not None else f"row {i}"
        raise ValueError(
            f"{where}: {split} split {row}: label {int(labels[i])} is outside the {num_labels} classes "
            f"0..{num_labels - 1} ({bad.size} such row(s))"
        )


def build_task_data(data_cfg: dict, seed: int = 0) -> TaskData:
    """Build the datasets, collator and tokenizer of `data_cfg["task"]`.

    Args:
        data_cfg: The `data:` section of a preset (keys: the fields of the task's config dataclass in `TASKS`;
            an unknown key, or one for another source, is a ValueError).
        seed: Default of `data_cfg["data_seed"]`, which seeds generation and random splits.

    Returns:
        The task's `TaskData`; the same config and seed give the same data. Every split has rows and labels in
        [0, num_labels), checked here before any training.
    """
    spec = check_task_keys(data_cfg)
    config = spec.config_cls(**data_cfg)
    config.source = _get(dataclasses.asdict(config), "source", spec.config_cls.SOURCES[0])
    cfg = dataclasses.asdict(config)
    data = spec.builder(cfg, int(_get(cfg, "data_seed", seed)))
    for split in SPLITS:  # the builders check their files row by row; this is the net under every task
        labels = getattr(getattr(data, split), "labels", None)
        if labels is not None:
            check_labels(split, labels, data.num_labels, f"task {spec.name!r} ({data.description})")
    return data
