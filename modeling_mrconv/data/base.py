"""Task configs and their registry (`register_task`), key and label checks, and the features all tasks' splits share.

Inputs follow the paper (Section 3.2): token tasks give `input_ids` for an `nn.Embedding`; pixel, audio and series
tasks give continuous `input_values` of shape (L, C).
"""

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np


if TYPE_CHECKING:
    from modeling_mrconv.data.task import TaskData


SPLITS = ("train", "validation", "test")
BYTE_OFFSET = 3  # ByT5: pad=0, eos=1, unk=2, byte b -> b + 3
BYTE_EOS_ID = 1


@dataclass
class TaskConfig:
    """Keys every task takes. Subclasses add the task's keys with their defaults; `SOURCES[0]` is the default source.
    A null value in a preset means the field's default (fields whose default is null document what null means)."""

    SOURCES: ClassVar[tuple[str, ...]] = ("generate",)
    # keys that apply under one source only ({source: keys}); given with another source they are an error
    SOURCE_KEYS: ClassVar[dict[str, tuple[str, ...]]] = {}

    task: str  # the registry name
    source: str | None = None  # one of SOURCES; null = SOURCES[0]
    data_seed: int | None = None  # seeds generation and every random split; null = the `seed` argument
    # the `datasets` cache of generated splits, downloads and preprocessing; null = datasets' default
    # (HF_DATASETS_CACHE). Entries are keyed by every parameter and the hash of the code that makes them.
    cache_dir: str | None = None
    cache: bool = True  # false: build the splits in memory, nothing written to cache_dir

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is None and f.default is not dataclasses.MISSING and f.default is not None:
                setattr(self, f.name, f.default)
            if getattr(self, f.name) is None and f.default_factory is not dataclasses.MISSING:
                setattr(self, f.name, f.default_factory())
        self.source = self.source or self.SOURCES[0]


@dataclass(frozen=True)
class TaskSpec:
    """One registered task: its config dataclass and its builder `(config, seed) -> TaskData`."""

    name: str
    config_cls: type[TaskConfig]
    builder: Callable[[Any, int], "TaskData"]


TASKS: dict[str, TaskSpec] = {}


def register_task(name: str, config_cls: type[TaskConfig]) -> Callable:
    """Decorator registering `builder(config: config_cls, seed: int) -> TaskData` as task `name`."""

    def decorate(builder: Callable[[Any, int], "TaskData"]) -> Callable[[Any, int], "TaskData"]:
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
    """The task's spec, after checking `data_cfg`'s task, keys and source (ValueError naming the keys): every key must
    be a field of the task's config dataclass, and one that applies only under another source (the generator's keys
    with `source: local`, file keys with `source: generate`) is an error unless null."""
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
    source = data_cfg.get("source") or sources[0]
    if source not in sources:
        raise ValueError(f"data.source: task {task!r} takes source {' | '.join(sources)}, got {source!r}")
    others = keys_for_other_sources(spec.config_cls, source)
    misplaced = [k for k in data_cfg if k in others and data_cfg[k] is not None]
    if misplaced:
        owners = {s for s, keys in spec.config_cls.SOURCE_KEYS.items() for k in misplaced if k in keys}
        raise ValueError(
            f"data: key(s) {misplaced} do not apply to task {task!r} with source: {source} (they belong to source "
            f"{' | '.join(sorted(owners))}); remove them"
        )
    return spec


def check_labels(
    split: str,
    labels: Any,
    num_labels: int,
    where: str,
    lines: Sequence[int] | None = None,
    first_row: int = 0,
) -> None:
    """Raise ValueError unless `split` has rows and every label is an integer class id in [0, num_labels), naming
    `where` (file or data set) and the row: `lines[i]` (1-based lines of `where`) when given, else `first_row + i`."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError(f"{where}: the {split} split is empty (no rows)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: {split} labels must be integer class ids, got dtype {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_labels))
    if bad.size:
        i = int(bad[0])
        row = f"line {lines[i]}" if lines is not None else f"row {first_row + i}"
        raise ValueError(
            f"{where}: {split} split {row}: label {int(labels[i])} is outside the {num_labels} classes "
            f"0..{num_labels - 1} ({bad.size} such row(s))"
        )


def byte_ids(text: str) -> np.ndarray:
    """ByT5 ids (int16) of `text` plus EOS, as `build_byte_tokenizer(L)(text)["input_ids"]` gives them, except that
    literal special-token strings such as "</s>" stay bytes here (the tokenizer maps them to their special ids)."""
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return np.append(raw.astype(np.int16) + BYTE_OFFSET, np.int16(BYTE_EOS_ID))


def token_features(names: Sequence[str], pair: bool = False) -> Any:
    """Features of token splits: `input_ids` int16 (L,) or, for document pairs, (2, L) rows; ClassLabel `labels`."""
    from datasets import ClassLabel, Features, List, Value

    ids = List(List(Value("int16"))) if pair else List(Value("int16"))
    return Features({"input_ids": ids, "labels": ClassLabel(names=list(names))})


def value_features(channels: int, names: Sequence[str], dtype: str = "float32", column: str = "input_values") -> Any:
    """Features of continuous splits: `column` (L, C) arrays of `dtype` (L may differ by row); ClassLabel `labels`."""
    from datasets import Array2D, ClassLabel, Features

    return Features({column: Array2D((None, channels), dtype), "labels": ClassLabel(names=list(names))})
