"""Data sources shared by the task families: seeded splits, the .npz cache, paths, Hub/local `datasets` loading and
label encoding (`datasets` is imported only when a hub/local branch runs)."""

import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modeling_mrconv.data.base import SPLITS, TaskConfig, _get, check_labels


@dataclass
class HFSourceConfig(TaskConfig):
    """Keys of the tasks read through `datasets` (`source: hub` or `source: local`)."""

    SOURCES = ("hub", "local")

    # hub
    dataset_name: str | None = None
    dataset_config: str | None = None
    load_kwargs: dict = field(default_factory=dict)  # extra `load_dataset` arguments
    hf_cache_dir: str | None = None
    # local: <split>_file (csv, tsv, json, jsonl, parquet, arrow or a `save_to_disk` folder), relative to root when
    # set; or root alone (a `save_to_disk` DatasetDict folder, or the task's own folder layout)
    root: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    # both
    label_column: str = "label"
    label_names: list[str] | None = None  # null = ClassLabel names, else sorted string labels
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    validation_fraction: float = 0.1  # carved from train, seeded by data_seed, when there is no validation split


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


def _load_local_file(path: Path, cfg: dict, split: str | None = None) -> Any:
    import datasets

    name = f"{split}_file {path}" if split else str(path)
    if not path.exists():
        raise FileNotFoundError(f"{name} does not exist")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path}: empty {split or 'data'} file (no rows)")
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
        loaded = {s: _load_local_file(p, cfg, s) for s in SPLITS if (p := _resolve(cfg, f"{s}_file")) is not None}
    names = {s: _get(cfg, f"{s}_split", s) for s in SPLITS}
    missing = [names[s] for s in ("train", "test") if names[s] not in loaded]
    if missing:
        raise ValueError(f"missing split(s) {missing} (set train_file/test_file or root); found {sorted(loaded)}")
    return {s: loaded.get(names[s]) for s in SPLITS}


def _column(dataset: Any, name: str, where: str = "data") -> list:
    if name not in dataset.column_names:
        raise ValueError(f"{where}: column {name!r} not found; columns: {dataset.column_names}")
    return list(dataset[name])


def _encode_labels(values: list, names: list[str] | None, split: str = "train", where: str = "data") -> np.ndarray:
    """Integer labels as they are; string labels looked up in `names` (ValueError naming the first unknown row)."""
    if any(isinstance(v, str) for v in values):
        index = {n: i for i, n in enumerate(names or [])}
        for i, v in enumerate(values):
            if v not in index:
                raise ValueError(f"{where}: {split} split row {i}: label {v!r} is not among the label names {names}")
        return np.array([index[v] for v in values], dtype=np.int64)
    for i, v in enumerate(values):
        try:
            integral = not isinstance(v, bool) and float(v).is_integer()
        except (TypeError, ValueError):  # None, lists, ...
            integral = False
        if not integral:
            raise ValueError(f"{where}: {split} split row {i}: label {v!r} is not an integer class id or a name")
    return np.asarray(values, dtype=np.int64)


def split_origin(cfg: dict, split: str, default_name: str | None = None) -> str:
    """Where `split` of a hub/local `datasets` source comes from, for error messages: its file, or data set and split."""
    path = _resolve(cfg, f"{split}_file") if cfg["source"] == "local" else None
    if path is not None:
        return str(path)
    origin = _get(cfg, "dataset_name", default_name) if cfg["source"] == "hub" else cfg.get("root")
    return f"{cfg['source']} {origin} split {_get(cfg, f'{split}_split', split)!r}"


def _hf_labelled_splits(
    cfg: dict,
    seed: int,
    convert: Callable[[Any], list],
    default_name: str | None = None,
    default_config: str | None = None,
    input_columns: tuple[str, ...] = (),
) -> tuple[dict, list[str] | None, str]:
    """Load splits, `convert(dataset) -> inputs` each, encode and check labels, and carve validation when missing.

    Every split must have rows, the `input_columns` and the label column; labels must be names of `label_names` / the ClassLabel / the
    train split's strings, or integers in [0, number of classes) (the names, else the largest train label + 1).

    Returns:
        ({split: (inputs, int64 labels)}, label names or None, where the data came from).
    """
    raw = load_hf_splits(cfg, default_name, default_config)
    label_column = _get(cfg, "label_column", "label")
    where = {s: split_origin(cfg, s, default_name) for s, ds in raw.items() if ds is not None}
    for s in where:
        if len(raw[s]) == 0:
            raise ValueError(f"{where[s]}: the {s} split is empty (no rows)")
        missing = [c for c in (*input_columns, label_column) if c not in raw[s].column_names]
        if missing:
            raise ValueError(
                f"{where[s]}: the {s} split has no column(s) {missing} (data.label_column and the task's input "
                f"column keys); columns: {raw[s].column_names}"
            )
    feature = raw["train"].features.get(label_column)
    names = cfg.get("label_names") or (list(feature.names) if hasattr(feature, "names") else None)
    train_labels = _column(raw["train"], label_column, where["train"])
    if not names and any(isinstance(v, str) for v in train_labels):
        names = sorted({str(v) for v in train_labels})
    labels = {s: _encode_labels(_column(raw[s], label_column, where[s]), names, s, where[s]) for s in where}
    num_labels = len(names) if names else int(labels["train"].max()) + 1
    for s in where:
        check_labels(s, labels[s], num_labels, where[s])
    out = {s: (convert(raw[s]), labels[s]) for s in where}
    _fill_validation(out, _get(cfg, "validation_fraction", 0.1), seed)
    if cfg["source"] == "hub":
        origin = f"hub {_get(cfg, 'dataset_name', default_name)}"
    else:
        origin = f"local {cfg.get('root') or [cfg.get(f'{s}_file') for s in SPLITS]}"
    return out, names, origin


def _id2label(names: list[str] | None, labels: np.ndarray) -> dict[int, str]:
    """Label names from the data (ClassLabel or string labels), else the integer labels themselves, never a
    hard-coded list of another data set's classes."""
    num = max(len(names) if names else 0, int(labels.max()) + 1 if labels.size else 0)
    return dict(enumerate(names or [str(i) for i in range(num)]))
