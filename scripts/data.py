"""Task data for MRConv: datasets, padding collator and tokenizer for every task of the paper, plus CPU smoke tasks.

`build_task_data(data_cfg, seed)` turns the `data:` section of a preset into a `TaskData`. Inputs follow
the paper (Section 3.2): token tasks (listops, text, retrieval, synthetic_text, synthetic_retrieval) give `input_ids`
for an `nn.Embedding`; pixel and audio tasks give continuous `input_values` of shape (L, C). What works offline is in
`shared/design/data.md`: ListOps and Pathfinder are generated, digits ships with scikit-learn and the `synthetic_*`
tasks are made up here; IMDB, AAN, CIFAR and Speech Commands need `source: hub` (network) or `source: local` (files
you downloaded). `datasets` is imported only by the hub/local branches.

Items: token tasks `{"input_ids": LongTensor (L_i,), "labels": int}`; retrieval `{"input_ids": LongTensor (2, L_i),
"labels": int}` (the shorter document right-padded); continuous tasks `{"input_values": FloatTensor (L_i, C),
"labels": int}`. `TaskData.collate_fn` right-pads a batch to its longest item and adds `attention_mask`. Token lengths
count the EOS.

`data_cfg` keys (defaults after `=`). Every task: `task` (required); `source` (= the first one listed);
`data_seed` (= the `seed` argument; seeds generation and every random split).

- listops (tokens over `listops.LISTOPS_VOCAB`, pad 0; labels "0".."9"). Both sources: `max_sequence_length`
  (truncation and model length, EOS kept; = smallest power of two >= `max_length` for generate, i.e. 2048 for LRA,
  2048 for local).
  generate: num_train=96000, num_validation=2000, num_test=2000, max_depth=10, max_args=10, min_length=500,
  max_length=2000 (exclusive token-count window, without EOS), cache=true, cache_dir="~/.cache/mrconv". One pool of
  unique trees is split in generation order (train, validation, test).
  local: root=null, train_file="basic_train.tsv", validation_file="basic_val.tsv", test_file="basic_test.tsv"
  (relative to root when root is set).
- text (ByT5 byte ids, vocab 259, pad 0; labels "negative"/"positive" for IMDB): max_length=4096.
  hub: dataset_name="imdb", dataset_config=null, load_kwargs={} (extra `load_dataset` arguments), hf_cache_dir=null.
  local: train_file / validation_file / test_file (csv, tsv, json, jsonl, parquet, arrow or a `save_to_disk` folder)
  or root (a `save_to_disk` DatasetDict folder); hf_cache_dir=null.
  Both: text_column="text", label_column="label", label_names=null (= ClassLabel names, else sorted string labels),
  train_split="train", validation_split="validation", test_split="test", validation_fraction=0.1 (carved from train,
  seeded by data_seed, when there is no validation split).
- retrieval (two ByT5 documents per example; labels "different"/"same"): max_length=4000 per document.
  local: root=null, train_file="new_aan_pairs.train.tsv", validation_file="new_aan_pairs.eval.tsv",
  test_file="new_aan_pairs.test.tsv" (LRA layout: label, id1, id2, text1, text2; tab separated, no header); local
  files that are not .tsv go through `datasets` like hub.
  hub: dataset_name (required), text1_column="text1", text2_column="text2", and the other keys of text.
- image (grayscale CIFAR-10, C=1) / scifar (RGB CIFAR-10, C=3); raster scan (H*W, C), values in [0, 1]:
  normalize=false (per-channel mean/std of the train split). hub: dataset_name="uoft-cs/cifar10", image_column="img",
  label_column="label", and the other keys of text. local: root = an image folder `root/<split>/<class>/*.png` (splits
  train, validation|val|valid (else carved), test) or a `save_to_disk` DatasetDict; or train_file / ... (parquet, ...).
- pathfinder / pathx (C=1, length resolution**2, values in [0, 1]; labels "disconnected"/"connected"):
  resolution=32 / 128 (generate; local reads it off the images), contour_length=14.
  generate (scripts/generators/pathfinder.py): num_train=8000, num_validation=1000, num_test=1000, num_workers=1, cache=true,
  cache_dir="~/.cache/mrconv" (an .npz keyed by every generation parameter and the generator's source hash).
  local (LRA release): root (holds `curv_contour_length_<contour_length>/`, or is that folder), split_seed=42
  (S4's 80/10/10 `random_split`).
- speech_commands (SC35: the 35 words, sorted; C=1): length=16000 (crop or zero-pad), sample_rate=16000,
  resample_to=null (e.g. 8000: the test split is decimated by averaging groups of sample_rate // resample_to samples).
  hub: dataset_name="google/speech_commands", dataset_config="v0.02", audio_column="audio", label_column="label", and
  the other keys of text; rows whose label is not one of the 35 words (`_silence_`) are dropped. local: root = the
  release folder (`root/<word>/*.wav`, `validation_list.txt`, `testing_list.txt`; 8/16/32-bit PCM via `wave`), or a
  `save_to_disk` DatasetDict / split files read like hub.
- digits (scikit-learn's 1797 8x8 digits; length 64, C=1, values / 16; labels "0".."9"): source=sklearn (alias
  generate), validation_fraction=0.15, test_fraction=0.15 (stratified, seeded).
- synthetic_text (SYNTHETIC bytes; labels "negative"/"positive"): num_train=2000, num_validation=500, num_test=500,
  min_length=256, max_length=1024, max_marker_count=8. Filler words of 2-8 letters from a-w; the markers "xyz" and
  "zyx" occur n_pos != n_neg times (each in [1, max_marker_count], shuffled in); label 1 iff n_pos > n_neg.
- synthetic_retrieval (SYNTHETIC byte pairs; labels "different"/"same"): num_train=2000, num_validation=500,
  num_test=500, min_length=128, max_length=512 (per document), noise=0.3, chunk_size=16, alpha=1.0. Each document
  draws its own letter distribution ~ Dirichlet(alpha) over a-z and space; label 1: doc2 is doc1 with its
  chunk_size-byte chunks shuffled and a `noise` fraction of bytes resampled uniformly; label 0: an independent
  document of the same length.
- synthetic_audio (SYNTHETIC chirps, not Speech Commands; labels "chirp_<k>"): num_train=1000, num_validation=200,
  num_test=200, num_classes=10, length=16000, sample_rate=16000, noise_std=0.05, pitch_jitter=0.1, resample_to=null.
  Class k is a Hann-windowed exponential chirp from F[k] to F[num_classes - 1 - k] Hz (F log-spaced 250-4000, so
  classes k and num_classes - 1 - k are time-reversed), with random onset, duration (25-75% of the clip), amplitude
  (0.3-0.9), start phase, +-pitch_jitter frequency jitter and Gaussian noise.
"""

import hashlib
import io
import json
import os
import wave
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from generators import listops, pathfinder
from torch.utils.data import Dataset

from modeling_mrconv import build_byte_tokenizer


SPLITS = ("train", "validation", "test")
BYTE_OFFSET = 3  # ByT5: pad=0, eos=1, unk=2, byte b -> b + 3
BYTE_EOS_ID = 1
BYTE_VOCAB_SIZE = 259
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Speech Commands v0.02's 35 words, sorted: label k is SC35_WORDS[k].
SC35_WORDS = sorted(
    ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one", "two", "three", "four"]
    + ["five", "six", "seven", "eight", "nine", "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila"]
    + ["tree", "wow", "backward", "forward", "follow", "learn", "visual"]
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


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


def _continuous_task(splits: dict[str, ArrayDataset], id2label: dict[int, str], description: str) -> TaskData:
    """TaskData for `ArrayDataset`s; input_dim and max_length come from the arrays."""
    max_length = max(ds.values.shape[1] for ds in splits.values())
    return TaskData(
        **splits,
        num_labels=len(id2label),
        id2label=id2label,
        input_dim=splits["train"].values.shape[2],
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


def _carve(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of range(n) into sorted (kept, carved) indices with round(n * fraction) carved."""
    order = np.random.default_rng(seed).permutation(n)
    n_carved = round(n * fraction)
    if not 0 < n_carved < n:
        raise ValueError(f"validation_fraction={fraction} leaves an empty split of {n} examples")
    return np.sort(order[n_carved:]), np.sort(order[:n_carved])


def _fill_validation(out: dict, fraction: float, seed: int) -> dict:
    """Carve a seeded `fraction` of train into validation when `out["validation"]` is missing."""
    if out.get("validation") is None:
        keep, carved = _carve(len(out["train"][1]), fraction, seed)
        inputs, labels = out["train"]
        out["train"] = ([inputs[i] for i in keep], labels[keep])
        out["validation"] = ([inputs[i] for i in carved], labels[carved])
    return out


def _cached_arrays(name: str, key: dict, cfg: dict, make: Callable[[], dict[str, np.ndarray]]) -> tuple[dict, str]:
    """`make()`'s arrays, cached as `<cache_dir>/<name>-<hash>.npz` holding `key`; regenerated on key mismatch."""
    if not _get(cfg, "cache", True):
        return make(), "generated, not cached"
    key_json = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha256(key_json.encode()).hexdigest()[:16]
    path = Path(_get(cfg, "cache_dir", "~/.cache/mrconv")).expanduser() / f"{name}-{digest}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["key"]) == key_json:
                    return {k: stored[k] for k in stored.files if k != "key"}, f"loaded from cache {path}"
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # unreadable or foreign file: regenerate and overwrite
    arrays = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # write then rename: several ranks may race
    np.savez(tmp, key=np.array(key_json), **arrays)
    os.replace(tmp, path)
    return arrays, f"generated, cached at {path}"


def _source_hash(module: Any) -> str:
    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:16]


def _resolve(cfg: dict, key: str, default_name: str | None = None) -> Path | None:
    """Path of `cfg[key]` (or `default_name`), relative to `cfg["root"]` when that is set."""
    value = _get(cfg, key, default_name)
    if value is None:
        return None
    root = cfg.get("root")
    return (Path(root) / value if root is not None else Path(value)).expanduser()


def _is_plain_folder(cfg: dict) -> bool:
    """`source: local` with a `root` that is neither a `save_to_disk` DatasetDict nor used with <split>_file keys."""
    root = cfg.get("root")
    return (
        cfg["source"] == "local"
        and root is not None
        and not (Path(root).expanduser() / "dataset_dict.json").exists()
        and not any(cfg.get(f"{s}_file") for s in SPLITS)
    )


# ---------------------------------------------------------------------------------------------------------------------
# Hugging Face datasets (hub or local files), imported lazily


_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_FILE_BUILDERS[".arrow"] = "arrow"


def _load_local_file(path: Path, cfg: dict) -> Any:
    import datasets

    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            raise ValueError(f"{path} is a DatasetDict; pass it as `root` instead of a split file")
        return loaded
    builder = _FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of {sorted(_FILE_BUILDERS)}")
    kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    files = {"data": str(path)}
    return datasets.load_dataset(builder, data_files=files, split="data", cache_dir=cfg.get("hf_cache_dir"), **kwargs)


def load_hf_splits(cfg: dict, default_name: str | None = None, default_config: str | None = None) -> dict[str, Any]:
    """Train/validation/test `datasets.Dataset`s from the Hub or local files; validation is None when absent.

    Raises:
        RuntimeError: A Hub dataset could not be loaded (e.g. offline and not cached); the message names it.
    """
    import datasets

    if cfg["source"] == "hub":
        name = _get(cfg, "dataset_name", default_name)
        if name is None:
            raise ValueError(f"task {cfg['task']!r} with source: hub needs `dataset_name`")
        config = _get(cfg, "dataset_config", default_config)
        kwargs = _get(cfg, "load_kwargs", {})
        try:
            loaded = datasets.load_dataset(name, config, cache_dir=cfg.get("hf_cache_dir"), **kwargs)
        except Exception as err:  # offline, missing, gated, script-based, ...: re-raise naming the dataset
            raise RuntimeError(
                f"Could not load Hub dataset {name!r} (config {config!r}): {err}. Without network access, download "
                "it elsewhere and use `source: local` (a save_to_disk folder or data files)."
            ) from err
    elif cfg.get("root") is not None and not any(cfg.get(f"{s}_file") for s in SPLITS):
        loaded = datasets.load_from_disk(str(Path(cfg["root"]).expanduser()))
        if not isinstance(loaded, datasets.DatasetDict):
            raise ValueError(f"{cfg['root']} holds a single Dataset; save a DatasetDict or use <split>_file keys")
    else:
        loaded = {s: _load_local_file(p, cfg) for s in SPLITS if (p := _resolve(cfg, f"{s}_file")) is not None}
    names = {s: _get(cfg, f"{s}_split", s) for s in SPLITS}
    missing = [names[s] for s in ("train", "test") if names[s] not in loaded]
    if missing:
        raise ValueError(f"missing split(s) {missing} (set train_file/test_file or root); found {sorted(loaded)}")
    return {s: loaded.get(names[s]) for s in SPLITS}


def _column(dataset: Any, name: str) -> list:
    if name not in dataset.column_names:
        raise ValueError(f"column {name!r} not found; columns: {dataset.column_names}")
    return list(dataset[name])


def _encode_labels(values: list, names: list[str] | None) -> np.ndarray:
    """Integer labels as they are; string labels looked up in `names`."""
    if values and isinstance(values[0], str):
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted(set(values) - set(index))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not among the label names {names}")
        return np.array([index[v] for v in values], dtype=np.int64)
    return np.asarray(values, dtype=np.int64)


def _hf_labelled_splits(
    cfg: dict,
    seed: int,
    convert: Callable[[Any], list],
    default_name: str | None = None,
    default_config: str | None = None,
) -> tuple[dict, list[str] | None, str]:
    """Load splits, `convert(dataset) -> inputs` each, encode labels and carve validation when missing.

    Returns:
        ({split: (inputs, int64 labels)}, label names or None, where the data came from).
    """
    raw = load_hf_splits(cfg, default_name, default_config)
    label_column = _get(cfg, "label_column", "label")
    feature = raw["train"].features.get(label_column)
    names = cfg.get("label_names") or (list(feature.names) if hasattr(feature, "names") else None)
    train_labels = _column(raw["train"], label_column)
    if not names and train_labels and isinstance(train_labels[0], str):
        names = sorted(set(train_labels))
    out = {s: (convert(ds), _encode_labels(_column(ds, label_column), names)) for s, ds in raw.items() if ds}
    _fill_validation(out, _get(cfg, "validation_fraction", 0.1), seed)
    if cfg["source"] == "hub":
        where = f"hub {_get(cfg, 'dataset_name', default_name)}"
    else:
        where = f"local {cfg.get('root') or [cfg.get(f'{s}_file') for s in SPLITS]}"
    return out, names, where


def _id2label(names: list[str] | None, labels: np.ndarray, fallback: Sequence[str] | None = None) -> dict[int, str]:
    num = max(len(names) if names else 0, int(labels.max()) + 1 if labels.size else 0)
    if not names:
        names = list(fallback) if fallback is not None and len(fallback) == num else [str(i) for i in range(num)]
    return dict(enumerate(names))


# ---------------------------------------------------------------------------------------------------------------------
# ListOps


def build_listops_tokenizer(max_length: int = 2048) -> Any:
    """A fast tokenizer over `LISTOPS_VOCAB` that reads raw LRA `Source` strings and appends `<eos>`.

    Parentheses become spaces and the rest is split on whitespace, as `listops.lra_source_to_tokens` does, so its ids
    equal `listops.encode_tokens(listops.lra_source_to_tokens(source))`.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(listops.LISTOPS_VOCAB)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=listops.UNK_TOKEN))
    backend.normalizer = normalizers.Sequence([normalizers.Replace("(", " "), normalizers.Replace(")", " ")])
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    eos = listops.EOS_TOKEN
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B:1 {eos}:1", special_tokens=[(eos, listops.EOS_ID)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=listops.PAD_TOKEN,
        eos_token=eos,
        unk_token=listops.UNK_TOKEN,
        model_max_length=max_length,
    )


def _generate_listops(cfg: dict, seed: int) -> tuple[dict[str, list[list[int]]], dict[str, np.ndarray], str]:
    defaults = {"max_depth": 10, "max_args": 10, "min_length": 500, "max_length": 2000}
    params = {key: int(_get(cfg, key, value)) for key, value in defaults.items()}
    counts = _counts(cfg, (96000, 2000, 2000))

    def make() -> dict[str, np.ndarray]:
        examples = listops.generate_listops(sum(counts), seed, **params)
        ids = [e["input_ids"] for e in examples]
        labels = np.array([e["label"] for e in examples], dtype=np.int64)
        return {
            "ids": np.concatenate(ids).astype(np.int16),
            "lengths": np.array([len(i) for i in ids]),
            "labels": labels,
        }

    key = {"task": "listops", "seed": seed, "total": sum(counts), **params, "code": _source_hash(listops)}
    arrays, how = _cached_arrays("listops", key, cfg, make)
    offsets = np.concatenate([[0], np.cumsum(arrays["lengths"])])
    ids = [arrays["ids"][offsets[i] : offsets[i + 1]].tolist() for i in range(len(arrays["lengths"]))]
    bounds = np.cumsum([0, *counts])
    sequences = {s: ids[bounds[i] : bounds[i + 1]] for i, s in enumerate(SPLITS)}
    labels = {s: arrays["labels"][bounds[i] : bounds[i + 1]] for i, s in enumerate(SPLITS)}
    return sequences, labels, f"listops generated (seed {seed}, {params}; {how})"


def _build_listops(cfg: dict, seed: int) -> TaskData:
    if cfg["source"] == "generate":
        sequences, labels, where = _generate_listops(cfg, seed)
        default_length = 1 << (int(_get(cfg, "max_length", 2000)) - 1).bit_length()  # tokens < max_length: EOS fits
    else:
        defaults = {"train": "basic_train.tsv", "validation": "basic_val.tsv", "test": "basic_test.tsv"}
        examples = {s: listops.read_lra_tsv(_resolve(cfg, f"{s}_file", defaults[s])) for s in SPLITS}
        sequences = {s: [e["input_ids"] for e in ex] for s, ex in examples.items()}
        labels = {s: [e["label"] for e in ex] for s, ex in examples.items()}
        where, default_length = (
            f"listops LRA TSVs {[str(_resolve(cfg, f'{s}_file', defaults[s])) for s in SPLITS]}",
            2048,
        )
    max_length = int(_get(cfg, "max_sequence_length", default_length))
    splits = {
        s: TokenDataset([truncate_ids(ids, max_length, listops.EOS_ID) for ids in sequences[s]], labels[s])
        for s in SPLITS
    }
    return _token_task(
        splits,
        {i: str(i) for i in range(10)},
        max_length,
        where,
        tokenizer=build_listops_tokenizer(max_length),
        vocab_size=len(listops.LISTOPS_VOCAB),
        pad_token_id=listops.PAD_ID,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Text and retrieval (bytes)


def _build_text(cfg: dict, seed: int) -> TaskData:
    max_length, column = int(_get(cfg, "max_length", 4096)), _get(cfg, "text_column", "text")
    out, names, where = _hf_labelled_splits(
        cfg, seed, lambda ds: [byte_encode(t, max_length) for t in _column(ds, column)], "imdb"
    )
    if names in (None, ["neg", "pos"]) and int(out["train"][1].max()) < 2:  # IMDB's ClassLabel names
        names = ["negative", "positive"]
    splits = {s: TokenDataset(*out[s]) for s in SPLITS}
    return _token_task(splits, _id2label(names, out["train"][1]), max_length, f"text (bytes) from {where}")


def read_aan_tsv(path: str | Path) -> tuple[list[str], list[str], list[int]]:
    """Read LRA's `new_aan_pairs.*.tsv` (label, id1, id2, text1, text2; tab separated, no header, no quoting)."""
    first, second, labels = [], [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("\t")
            if fields == [""]:
                continue
            if len(fields) != 5:
                raise ValueError(f"{path}:{number}: expected 5 tab-separated fields, got {len(fields)}")
            labels.append(int(float(fields[0])))
            first.append(fields[3])
            second.append(fields[4])
    return first, second, labels


def _build_retrieval(cfg: dict, seed: int) -> TaskData:
    max_length = int(_get(cfg, "max_length", 4000))
    # local .tsv files (or the default names) are LRA's AAN layout; other local files go through `datasets`
    if cfg["source"] == "local" and all(str(_get(cfg, f"{s}_file", ".tsv")).lower().endswith(".tsv") for s in SPLITS):
        defaults = {"train": "train", "validation": "eval", "test": "test"}
        files = {s: _resolve(cfg, f"{s}_file", f"new_aan_pairs.{defaults[s]}.tsv") for s in SPLITS}
        raw = {s: read_aan_tsv(path) for s, path in files.items()}
        where = f"AAN TSVs {[str(p) for p in files.values()]}"
    else:
        columns = (_get(cfg, "text1_column", "text1"), _get(cfg, "text2_column", "text2"))
        out, _, where = _hf_labelled_splits(cfg, seed, lambda ds: list(zip(*(_column(ds, c) for c in columns))))
        raw = {s: ([p[0] for p in out[s][0]], [p[1] for p in out[s][0]], out[s][1]) for s in SPLITS}
    splits = {
        s: PairTokenDataset([byte_encode(t, max_length) for t in a], [byte_encode(t, max_length) for t in b], y)
        for s, (a, b, y) in raw.items()
    }
    return _token_task(splits, {0: "different", 1: "same"}, max_length, f"retrieval (bytes) from {where}")


# ---------------------------------------------------------------------------------------------------------------------
# Images: CIFAR (image, scifar), pathfinder / pathx, digits


def _open_image(value: Any) -> Any:
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("image files are read with Pillow: pip install pillow") from err
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):  # undecoded `datasets.Image`: {"bytes", "path"}
        return Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") else Image.open(value["path"])
    if isinstance(value, str | Path):
        return Image.open(value)
    return Image.fromarray(np.asarray(value, dtype=np.uint8))


def image_to_sequence(value: Any, channels: int) -> np.ndarray:
    """An image (PIL, file, undecoded dict or (H, W[, C]) uint8 array) as a raster-scan (H*W, C) uint8 array.

    `channels=1` uses PIL's `convert("L")`: ITU-R 601-2 luma, 0.299 R + 0.587 G + 0.114 B.
    """
    with _open_image(value) as image:
        pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)  # (H W) or (H W 3)
    return pixels.reshape(-1, channels)  # (H*W C)


def _stack(arrays: list[np.ndarray], what: str) -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{what}: all sequences must share one shape, got {sorted(shapes)[:4]}")
    return np.stack(arrays)


def _image_folder(root: Path, channels: int) -> tuple[dict, list[str]]:
    """`root/<split>/<class>/*.png` -> ({split: (arrays, labels) or None}, sorted class names of train)."""
    aliases = {"train": ["train"], "validation": ["validation", "val", "valid"], "test": ["test"]}
    folders = {s: next((root / a for a in aliases[s] if (root / a).is_dir()), None) for s in SPLITS}
    if folders["train"] is None or folders["test"] is None:
        raise ValueError(f"{root}: expected train/ and test/ sub-folders (root/<split>/<class>/*.png)")
    classes = sorted(p.name for p in folders["train"].iterdir() if p.is_dir())
    out = {}
    for split, folder in folders.items():
        if folder is None:
            out[split] = None
            continue
        files = [(f, c) for c, name in enumerate(classes) for f in sorted((folder / name).glob("*"))]
        files = [(f, c) for f, c in files if f.suffix.lower() in IMAGE_SUFFIXES]
        out[split] = ([image_to_sequence(f, channels) for f, _ in files], np.array([c for _, c in files]))
    return out, classes


def _build_cifar(cfg: dict, seed: int, channels: int) -> TaskData:
    task = cfg["task"]
    if _is_plain_folder(cfg):
        out, names = _image_folder(Path(cfg["root"]).expanduser(), channels)
        out, where = _fill_validation(out, _get(cfg, "validation_fraction", 0.1), seed), f"image folder {cfg['root']}"
    else:
        column = _get(cfg, "image_column", "img")

        def convert(ds: Any) -> list:
            if type(ds.features.get(column)).__name__ == "Image":
                from datasets import Image

                ds = ds.cast_column(column, Image(decode=False))  # decode with PIL here, one image at a time
            return [image_to_sequence(v, channels) for v in _column(ds, column)]

        out, names, where = _hf_labelled_splits(cfg, seed, convert, "uoft-cs/cifar10")
    values = {s: _stack(out[s][0], task) for s in SPLITS}  # (N H*W C) uint8
    mean = std = None
    if _get(cfg, "normalize", False):
        train = values["train"].astype(np.float64) / 255.0
        mean, std = train.mean(axis=(0, 1)), train.std(axis=(0, 1)) + 1e-8  # (C)
    splits = {s: ArrayDataset(values[s], out[s][1], 1 / 255, mean, std) for s in SPLITS}
    kind = "grayscale" if channels == 1 else "RGB"
    return _continuous_task(splits, _id2label(names, out["train"][1], CIFAR10_CLASSES), f"{task} ({kind}) {where}")


def _generate_pathfinder(cfg: dict, seed: int, resolution: int, contour_length: int) -> tuple[dict, str]:
    counts = _counts(cfg, (8000, 1000, 1000))
    workers = int(_get(cfg, "num_workers", 1))

    def make() -> dict[str, np.ndarray]:
        images, labels = pathfinder.generate_pathfinder(sum(counts), seed, resolution, contour_length, workers)
        return {"images": images, "labels": labels}

    params = pathfinder.pathfinder_params(resolution, contour_length)
    key = {
        "task": "pathfinder",
        "seed": seed,
        "total": sum(counts),
        "params": params,
        "code": _source_hash(pathfinder),
    }
    arrays, how = _cached_arrays(f"pathfinder{resolution}", key, cfg, make)
    images = arrays["images"].reshape(len(arrays["images"]), -1, 1)  # (N H*W 1) uint8
    bounds = np.cumsum([0, *counts])
    out = {
        s: (images[bounds[i] : bounds[i + 1]], arrays["labels"][bounds[i] : bounds[i + 1]])
        for i, s in enumerate(SPLITS)
    }
    return out, f"generated (seed {seed}, resolution {resolution}, contour_length {contour_length}; {how})"


def _read_lra_metadata(path: Path) -> list[list[str]]:
    """Rows of an LRA metadata file: whitespace-separated text despite the .npy name (or a real .npy array)."""
    if path.read_bytes()[:6] == b"\x93NUMPY":
        return [[str(v) for v in row] for row in np.load(path, allow_pickle=False)]
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def _read_pathfinder_folder(cfg: dict, contour_length: int) -> tuple[dict, str]:
    root = Path(cfg["root"]).expanduser()
    base = root if (root / "metadata").is_dir() else root / f"curv_contour_length_{contour_length}"
    files = sorted((base / "metadata").glob("*.npy"), key=lambda p: (len(p.stem), p.stem))  # 0, 1, ..., 10, ...
    if not files:
        raise FileNotFoundError(f"no metadata/*.npy under {base} (LRA layout: curv_contour_length_14/metadata)")
    rows = [row for f in files for row in _read_lra_metadata(f)]
    found = [(base / r[0] / r[1], int(r[3])) for r in rows if (base / r[0] / r[1]).exists()]
    images = _stack([image_to_sequence(path, 1) for path, _ in found], "pathfinder")  # (N H*W 1) uint8
    labels = np.array([label for _, label in found], dtype=np.int64)
    # as S4: torch.utils.data.random_split(dataset, (80%, 10%, 10%), generator=torch.Generator().manual_seed(42))
    n = len(labels)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(_get(cfg, "split_seed", 42)))).numpy()
    bounds = [0, n - 2 * int(0.1 * n), n - int(0.1 * n), n]
    out = {
        s: (images[order[bounds[i] : bounds[i + 1]]], labels[order[bounds[i] : bounds[i + 1]]])
        for i, s in enumerate(SPLITS)
    }
    return out, f"local LRA folder {base} ({len(rows) - n} missing files skipped)"


def _build_pathfinder(cfg: dict, seed: int, default_resolution: int) -> TaskData:
    contour_length = int(_get(cfg, "contour_length", 14))
    if cfg["source"] == "generate":
        resolution = int(_get(cfg, "resolution", default_resolution))
        out, where = _generate_pathfinder(cfg, seed, resolution, contour_length)
    else:
        out, where = _read_pathfinder_folder(cfg, contour_length)
    splits = {s: ArrayDataset(out[s][0], out[s][1], 1 / 255) for s in SPLITS}
    return _continuous_task(splits, {0: "disconnected", 1: "connected"}, f"{cfg['task']} {where}")


def _build_digits(cfg: dict, seed: int) -> TaskData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    values = digits.images.astype(np.uint8).reshape(len(digits.images), 64, 1)  # (N 64 1), values 0..16
    labels = digits.target.astype(np.int64)
    val_frac, test_frac = float(_get(cfg, "validation_fraction", 0.15)), float(_get(cfg, "test_fraction", 0.15))
    train, rest = train_test_split(
        np.arange(len(labels)), test_size=val_frac + test_frac, stratify=labels, random_state=seed
    )
    val, test = train_test_split(
        rest, test_size=test_frac / (val_frac + test_frac), stratify=labels[rest], random_state=seed
    )
    splits = {
        s: ArrayDataset(values[np.sort(i)], labels[np.sort(i)], 1 / 16)
        for s, i in zip(SPLITS, (train, val, test), strict=True)
    }
    return _continuous_task(splits, {i: str(i) for i in range(10)}, f"digits (sklearn load_digits, split seed {seed})")


# ---------------------------------------------------------------------------------------------------------------------
# Audio: Speech Commands, synthetic chirps


def read_wav(source: str | Path | bytes) -> tuple[np.ndarray, int]:
    """An integer-PCM WAV (path or bytes) as mono int16 samples and its sample rate, read with the stdlib `wave`."""
    with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb") as handle:
        rate, width, channels = handle.getframerate(), handle.getsampwidth(), handle.getnchannels()
        raw = handle.readframes(handle.getnframes())
    if width == 2:
        samples = np.frombuffer(raw, dtype="<i2")
    elif width == 1:  # unsigned 8-bit
        samples = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) * 256).astype(np.int16)
    elif width == 4:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise ValueError(f"unsupported WAV sample width: {width} bytes")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return samples, rate


def _fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Crop, or right-pad with zeros, to `length` samples."""
    out = np.zeros(length, dtype=np.int16)
    out[: min(length, len(samples))] = samples[:length]
    return out


def _audio_samples(value: Any, sample_rate: int) -> np.ndarray:
    """int16 samples from an undecoded `datasets.Audio` dict (bytes/path), a decoded one ("array") or an array."""
    if isinstance(value, dict):
        if value.get("array") is None:
            samples, rate = read_wav(value["bytes"] if value.get("bytes") else value["path"])
        else:
            samples, rate = np.asarray(value["array"]), value.get("sampling_rate", sample_rate)
        if rate != sample_rate:
            raise ValueError(f"expected {sample_rate} Hz audio, got {rate} Hz ({value.get('path')})")
        value = samples
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating):  # [-1, 1] floats
        return np.round(np.clip(array, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    return array.astype(np.int16)


def decimate(values: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping groups of `factor` steps along axis 1: a box low-pass, then downsampling."""
    N, L = values.shape[:2]
    L -= L % factor
    grouped = values[:, :L].reshape(N, L // factor, factor, *values.shape[2:]).astype(np.float64)
    return np.round(grouped.mean(axis=2)).astype(values.dtype)


def _audio_task(out: dict, cfg: dict, id2label: dict[int, str], where: str) -> TaskData:
    """int16 (N, L) arrays per split -> TaskData; the test split is decimated when `resample_to` is set."""
    rate, target = int(_get(cfg, "sample_rate", 16000)), cfg.get("resample_to")
    values = {s: np.asarray(out[s][0], dtype=np.int16).reshape(len(out[s][1]), -1, 1) for s in SPLITS}  # (N L 1)
    if target is not None:
        if rate % int(target):
            raise ValueError(f"resample_to={target} must divide sample_rate={rate}")
        values["test"] = decimate(values["test"], rate // int(target))
        where += f"; test split decimated to {target} Hz"
    splits = {s: ArrayDataset(values[s], out[s][1], 1 / 32768) for s in SPLITS}
    return _continuous_task(splits, id2label, f"{cfg['task']} {where}")


def _speech_commands_folder(cfg: dict, length: int, rate: int) -> tuple[dict, str]:
    root = Path(cfg["root"]).expanduser()
    lists = {}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        path = root / name
        lists[split] = set(path.read_text().split()) if path.exists() else set()
    out = {s: ([], []) for s in SPLITS}
    for label, word in enumerate(SC35_WORDS):
        for path in sorted((root / word).glob("*.wav")):
            split = next((s for s in ("validation", "test") if f"{word}/{path.name}" in lists[s]), "train")
            samples, found = read_wav(path)
            if found != rate:
                raise ValueError(f"{path}: expected {rate} Hz, got {found} Hz")
            out[split][0].append(_fit_length(samples, length))
            out[split][1].append(label)
    return {s: (a, np.array(y, dtype=np.int64)) for s, (a, y) in out.items()}, f"local folder {root}"


def _build_speech_commands(cfg: dict, seed: int) -> TaskData:
    length, rate = int(_get(cfg, "length", 16000)), int(_get(cfg, "sample_rate", 16000))
    if _is_plain_folder(cfg):
        out, where = _speech_commands_folder(cfg, length, rate)
    else:
        column = _get(cfg, "audio_column", "audio")

        def convert(ds: Any) -> list:
            if type(ds.features.get(column)).__name__ == "Audio":
                from datasets import Audio

                ds = ds.cast_column(column, Audio(decode=False))  # WAV bytes read with `wave`: no torchcodec needed
            return [_fit_length(_audio_samples(v, rate), length) for v in _column(ds, column)]

        raw, names, where = _hf_labelled_splits(cfg, seed, convert, "google/speech_commands", "v0.02")
        if names is None:
            raise ValueError("speech_commands needs label names (a ClassLabel column or string labels)")
        word_index = {w: i for i, w in enumerate(SC35_WORDS)}
        out = {}
        for split, (arrays, labels) in raw.items():
            keep = [i for i, y in enumerate(labels) if names[y] in word_index]  # drops `_silence_`
            out[split] = ([arrays[i] for i in keep], np.array([word_index[names[labels[i]]] for i in keep], np.int64))
    return _audio_task(out, cfg, dict(enumerate(SC35_WORDS)), where)


def _synthetic_audio_split(rng: np.random.Generator, n: int, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    num_classes, length = int(_get(cfg, "num_classes", 10)), int(_get(cfg, "length", 16000))
    rate, jitter = float(_get(cfg, "sample_rate", 16000)), float(_get(cfg, "pitch_jitter", 0.1))
    freqs = np.geomspace(250.0, 4000.0, num_classes)  # Hz
    labels = rng.integers(0, num_classes, n)
    waves = np.empty((n, length), dtype=np.int16)
    for i, k in enumerate(labels):
        duration = int(length * rng.uniform(0.25, 0.75))
        onset = int(rng.integers(0, length - duration + 1))
        start, end = np.array([freqs[k], freqs[num_classes - 1 - k]]) * rng.uniform(1 - jitter, 1 + jitter, 2)
        f = start * (end / start) ** (np.arange(duration) / duration)  # exponential chirp, Hz per step
        tone = np.sin(2 * np.pi * np.cumsum(f) / rate + rng.uniform(0, 2 * np.pi)) * np.hanning(duration)
        x = rng.normal(0.0, float(_get(cfg, "noise_std", 0.05)), length)
        x[onset : onset + duration] += rng.uniform(0.3, 0.9) * tone
        waves[i] = _audio_samples(x, int(rate))
    return waves, labels


def _build_synthetic_audio(cfg: dict, seed: int) -> TaskData:
    counts = _counts(cfg, (1000, 200, 200))
    out = {s: _synthetic_audio_split(np.random.default_rng([seed, i]), counts[i], cfg) for i, s in enumerate(SPLITS)}
    num_classes = int(_get(cfg, "num_classes", 10))
    where = f"SYNTHETIC chirps, not Speech Commands (seed {seed}, {num_classes} classes)"
    return _audio_task(out, cfg, {k: f"chirp_{k}" for k in range(num_classes)}, where)


# ---------------------------------------------------------------------------------------------------------------------
# Synthetic byte-level text and retrieval


_FILLER = np.frombuffer(b"abcdefghijklmnopqrstuvw", dtype=np.uint8)
POSITIVE_MARKER, NEGATIVE_MARKER = "xyz", "zyx"
_ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ", dtype=np.uint8)


def _synthetic_text(rng: np.random.Generator, min_length: int, max_length: int, max_count: int) -> tuple[str, int]:
    """One document of at most `length - 1` bytes, length ~ U[min_length, max_length], and its label."""
    label = int(rng.integers(0, 2))
    low, high = np.sort(rng.choice(np.arange(1, max_count + 1), 2, replace=False))
    n_pos, n_neg = (high, low) if label else (low, high)
    budget = int(rng.integers(min_length, max_length + 1)) - 1 - 4 * (n_pos + n_neg)  # bytes left for filler
    lengths = rng.integers(2, 9, budget // 3 + 1)
    count = int(np.searchsorted(np.cumsum(lengths + 1), budget, side="right"))  # words (+ a space each) that fit
    letters = _FILLER[rng.integers(0, len(_FILLER), int(lengths[:count].sum()))].tobytes().decode()
    bounds = np.concatenate([[0], np.cumsum(lengths[:count])])
    words = [letters[bounds[i] : bounds[i + 1]] for i in range(count)]
    words += [POSITIVE_MARKER] * n_pos + [NEGATIVE_MARKER] * n_neg
    return " ".join(words[i] for i in rng.permutation(len(words))), label


def synthetic_text_examples(
    n: int, seed: int | Sequence[int], min_length: int = 256, max_length: int = 1024, max_marker_count: int = 8
) -> tuple[list[str], list[int]]:
    """`n` seeded documents; label 1 iff "xyz" occurs more often than "zyx" (counts differ, both >= 1)."""
    if max_marker_count < 2 or 8 * max_marker_count >= min_length:
        raise ValueError(f"need 2 <= max_marker_count < min_length / 8, got {max_marker_count} and {min_length}")
    rng = np.random.default_rng(seed)
    docs = [_synthetic_text(rng, min_length, max_length, max_marker_count) for _ in range(n)]
    return [d for d, _ in docs], [y for _, y in docs]


def _build_synthetic_text(cfg: dict, seed: int) -> TaskData:
    max_length = int(_get(cfg, "max_length", 1024))
    args = (int(_get(cfg, "min_length", 256)), max_length, int(_get(cfg, "max_marker_count", 8)))
    splits = {}
    for i, (split, n) in enumerate(zip(SPLITS, _counts(cfg, (2000, 500, 500)), strict=True)):
        texts, labels = synthetic_text_examples(n, (seed, i), *args)
        splits[split] = TokenDataset([byte_encode(t, max_length) for t in texts], labels)
    return _token_task(
        splits, {0: "negative", 1: "positive"}, max_length, f"SYNTHETIC marker-count text (seed {seed})"
    )


def _random_doc(rng: np.random.Generator, length: int, alpha: float) -> np.ndarray:
    probs = rng.dirichlet(np.full(len(_ALPHABET), alpha))
    return _ALPHABET[rng.choice(len(_ALPHABET), length, p=probs)]


def _noisy_copy(rng: np.random.Generator, doc: np.ndarray, noise: float, chunk_size: int) -> np.ndarray:
    chunks = [doc[i : i + chunk_size] for i in range(0, len(doc), chunk_size)]
    copy = np.concatenate([chunks[i] for i in rng.permutation(len(chunks))])
    resample = rng.random(len(copy)) < noise
    copy[resample] = _ALPHABET[rng.integers(0, len(_ALPHABET), int(resample.sum()))]
    return copy


def synthetic_retrieval_examples(
    n: int,
    seed: int | Sequence[int],
    min_length: int = 128,
    max_length: int = 512,
    noise: float = 0.3,
    chunk_size: int = 16,
    alpha: float = 1.0,
) -> tuple[list[str], list[str], list[int]]:
    """`n` seeded pairs of equally long documents; label 1 iff doc2 is a noisy, chunk-shuffled copy of doc1."""
    rng = np.random.default_rng(seed)
    first, second, labels = [], [], []
    for _ in range(n):
        length, label = int(rng.integers(min_length, max_length + 1)) - 1, int(rng.integers(0, 2))  # bytes, no EOS
        doc = _random_doc(rng, length, alpha)
        other = _noisy_copy(rng, doc, noise, chunk_size) if label else _random_doc(rng, length, alpha)
        first.append(doc.tobytes().decode())
        second.append(other.tobytes().decode())
        labels.append(label)
    return first, second, labels


def _build_synthetic_retrieval(cfg: dict, seed: int) -> TaskData:
    max_length = int(_get(cfg, "max_length", 512))
    args = (
        int(_get(cfg, "min_length", 128)),
        max_length,
        float(_get(cfg, "noise", 0.3)),
        int(_get(cfg, "chunk_size", 16)),
        float(_get(cfg, "alpha", 1.0)),
    )
    splits = {}
    for i, (split, n) in enumerate(zip(SPLITS, _counts(cfg, (2000, 500, 500)), strict=True)):
        a, b, y = synthetic_retrieval_examples(n, (seed, i), *args)
        splits[split] = PairTokenDataset(
            [byte_encode(t, max_length) for t in a], [byte_encode(t, max_length) for t in b], y
        )
    return _token_task(
        splits, {0: "different", 1: "same"}, max_length, f"SYNTHETIC noisy-copy retrieval (seed {seed})"
    )


# ---------------------------------------------------------------------------------------------------------------------
# Entry point


_TASKS: dict[str, tuple[Callable[[dict, int], TaskData], tuple[str, ...]]] = {
    # task: (builder, accepted sources; the first is the default)
    "listops": (_build_listops, ("generate", "local")),
    "text": (_build_text, ("hub", "local")),
    "retrieval": (_build_retrieval, ("local", "hub")),
    "image": (lambda cfg, seed: _build_cifar(cfg, seed, channels=1), ("hub", "local")),
    "scifar": (lambda cfg, seed: _build_cifar(cfg, seed, channels=3), ("hub", "local")),
    "pathfinder": (lambda cfg, seed: _build_pathfinder(cfg, seed, default_resolution=32), ("generate", "local")),
    "pathx": (lambda cfg, seed: _build_pathfinder(cfg, seed, default_resolution=128), ("generate", "local")),
    "speech_commands": (_build_speech_commands, ("hub", "local")),
    "digits": (_build_digits, ("sklearn", "generate")),
    "synthetic_text": (_build_synthetic_text, ("generate",)),
    "synthetic_retrieval": (_build_synthetic_retrieval, ("generate",)),
    "synthetic_audio": (_build_synthetic_audio, ("generate",)),
}
TASKS = tuple(_TASKS)


def build_task_data(data_cfg: dict, seed: int = 0) -> TaskData:
    """Build the datasets, collator and tokenizer of `data_cfg["task"]`.

    Args:
        data_cfg: The `data:` section of a preset (keys per task in the module docstring).
        seed: Default of `data_cfg["data_seed"]`, which seeds generation and random splits.

    Returns:
        The task's `TaskData`; the same config and seed give the same data.
    """
    task = data_cfg.get("task")
    if task not in _TASKS:
        raise ValueError(f"unknown data task {task!r}; choose from {TASKS}")
    builder, sources = _TASKS[task]
    cfg = {**data_cfg, "source": _get(data_cfg, "source", sources[0])}
    if cfg["source"] not in sources:
        raise ValueError(f"task {task!r} takes source {' | '.join(sources)}, got {cfg['source']!r}")
    return builder(cfg, int(_get(cfg, "data_seed", seed)))


__all__ = [
    "SC35_WORDS",
    "TASKS",
    "ArrayDataset",
    "PadCollator",
    "PairTokenDataset",
    "TaskData",
    "TokenDataset",
    "build_listops_tokenizer",
    "build_task_data",
    "byte_encode",
    "read_aan_tsv",
    "read_wav",
]
