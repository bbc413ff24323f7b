"""The `sequence` task: continuous series (L, C) with one label each, generated or read from the user's files.

Sources:
* `generate`: the multi-scale set of `generators/timeseries.py` (keys num_train/num_validation/num_test, length,
  num_channels, num_classes, burst_length, noise_std).
* `local`: `train_file`, `test_file` and optionally `validation_file` (else `validation_fraction` of train is
  carved, seeded by data_seed), each csv/tsv/json/jsonl/parquet/arrow or a `save_to_disk` folder (read through
  `datasets`, streamed with `streaming: true`), or `.npz` (arrays `x`: (N, L, C), (N, L), or an object array of
  (L_i[, C]) series; and `y`), or the UCR/UEA `.ts` format (`series_files.read_ts`); or `root` alone, a
  `save_to_disk` DatasetDict.
* `hub`: `dataset_name` (and `dataset_config`) through `datasets.load_dataset`.

Columns (datasets files): `input_column` holds 1-D arrays (C = 1) or 2-D (L, C) arrays (`channels_first: true` for
(C, L)); a list of columns holds one 1-D array per channel. Csv cells may be strings: JSON lists ("[0.1, 0.2]",
nested for (L, C)) or "0.1 0.2". `label_column` holds the labels.

Rules, applied to every split as it is read (errors name the file and the row, 0-based, or the `.ts` line):
* Missing values (NaN, None, `?` in `.ts`) are filled by linear interpolation along time within each channel; the
  edges take the nearest observed value. A channel with no observed value is an error.
* Lengths may differ (items stay ragged; the collator pads with an attention mask). A series longer than the model's
  `max_sequence_length` is refused by `load_task` (naming the file, row and length), never cropped, since a crop can
  drop the part that holds the class.
* `normalize`: `per_series` (each series and channel to zero mean, unit std, as the UCR archive does), `global`
  (per-channel mean and std over all steps of the train split only), or `none`. A zero std is replaced by 1.
* Labels: `label_names` when given, else ClassLabel names, else the sorted string labels of train, else the sorted
  integer labels of train as names ("-1", "1"). With given names, integer labels are looked up by name when every
  name is an integer ("-1", "1"), else taken as class indices. A label outside these is an error.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from modeling_mrconv import feature_extraction_mrconv
from modeling_mrconv.data import series_files
from modeling_mrconv.data.base import SPLITS, register_task, value_features
from modeling_mrconv.data.caching import generated_dataset, map_batches, split_by_counts
from modeling_mrconv.data.generators.timeseries import generate_timeseries
from modeling_mrconv.data.series_files import cell_array, fill_missing, read_npz, read_ts
from modeling_mrconv.data.sources import (
    HFSourceConfig,
    carve_validation,
    check_columns,
    load_hf_splits,
    load_local_file,
    refuse_streaming,
    resolve_path,
    split_origin,
)
from modeling_mrconv.data.task import TaskData
from modeling_mrconv.data.values import channel_stats
from modeling_mrconv.feature_extraction_mrconv import NORMALIZE, normalize_series


_FILE_AND_HUB_KEYS = ("input_column", "channels_first", "label_column", "label_names", "train_split")
_FILE_AND_HUB_KEYS += ("validation_split", "test_split", "validation_fraction", "streaming", "shuffle_buffer")


@dataclass
class SequenceTaskConfig(HFSourceConfig):
    """sequence: continuous series; keys and rules in the module docstring."""

    SOURCES = ("generate", "local", "hub")
    SOURCE_KEYS = {
        "generate": ("num_train", "num_validation", "num_test", "length", "num_channels", "num_classes")
        + ("burst_length", "noise_std"),
        "local": ("root", "train_file", "validation_file", "test_file", *_FILE_AND_HUB_KEYS),
        "hub": ("dataset_name", "dataset_config", "load_kwargs", *_FILE_AND_HUB_KEYS),
    }

    # generate (generators/timeseries.py); the defaults are configuration/sequence_cpu.yaml's set, so that preset
    # switches to `source: local` with file keys alone
    num_train: int = 128
    num_validation: int = 64
    num_test: int = 256
    length: int = 128
    num_channels: int = 1
    num_classes: int = 2
    burst_length: int | None = None  # null = length // 8
    noise_std: float = 0.3
    # files and hub
    input_column: str | list[str] = "series"
    channels_first: bool = False  # 2-D cells are (C, L)
    normalize: str = "per_series"  # per_series | global | none


# ---------------------------------------------------------------------------------------------------------------------
# Labels


def _as_int(value: Any) -> Any:
    """Integral numbers (1, 1.0, np.int64(1)) as int; anything else unchanged (bool stays unknown)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return value


def _label_names(config: SequenceTaskConfig, train: Any, declared: list[str] | None) -> tuple[list[str], str]:
    """Names and how raw labels map to them: "by_name" (strings, and integers when every name is one), "index"
    (strings, and integers as class indices) or "integers" (integers by name); from label_names, declared
    (ClassLabel / @classLabel) names, or the train labels (sorted strings, or sorted integers as their names)."""
    given = config.label_names or declared
    if given:
        names = [str(n) for n in given]
        return names, "by_name" if all(re.fullmatch(r"-?\d+", n) for n in names) else "index"
    if config.streaming:
        raise ValueError(
            "data.label_names: a stream cannot be scanned for its classes; give data.label_names or a label column "
            "with a ClassLabel feature"
        )
    values = train.unique(config.label_column)
    if any(isinstance(v, str) for v in values):
        return sorted({str(v) for v in values}), "strings"
    return [str(v) for v in sorted({_as_int(v) for v in values})], "integers"


def _lookup(names: list[str], mode: str) -> dict:
    by_name = {n: i for i, n in enumerate(names)}
    if mode == "by_name":
        return {**by_name, **{int(n): i for i, n in enumerate(names)}}
    if mode == "index":
        return {**by_name, **{i: i for i in range(len(names))}}
    return by_name if mode == "strings" else {int(n): i for i, n in enumerate(names)}


def _encode(labels: list, lookup: dict, names: list[str], where: str, split: str, first_row: int) -> np.ndarray:
    out = np.empty(len(labels), dtype=np.int64)
    for i, v in enumerate(labels):
        key = v if isinstance(v, str) else _as_int(v)
        if key not in lookup:
            raise ValueError(
                f"{where}: {split} split row {first_row + i}: label {v!r} is not among the labels {names} "
                f"(indices 0..{len(names) - 1})"
            )
        out[i] = lookup[key]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Reading


def _series(row: dict, columns: list[str], channels_first: bool, where: str) -> np.ndarray:
    """One row's series (L, C), float64 with NaN where missing, from its input column(s)."""
    arrays = [cell_array(row[c], f"{where} column {c!r}") for c in columns]
    if len(columns) > 1:
        bad = [(c, a.shape) for c, a in zip(columns, arrays, strict=True) if a.ndim != 1]
        if bad:
            raise ValueError(f"{where}: each input column must hold a 1-D array, got {bad}")
        lengths = {len(a) for a in arrays}
        if len(lengths) > 1:
            raise ValueError(f"{where}: input columns {columns} have different lengths {sorted(lengths)}")
        return np.stack(arrays, 1)  # (L C)
    (a,) = arrays
    if a.ndim == 1:
        return a[:, None]
    if a.ndim == 2:
        return a.T if channels_first else a
    raise ValueError(f"{where}: expected a 1-D or 2-D (L, C) array, got shape {a.shape}")


def _to_series(batch: dict, indices: list[int], columns, channels_first, channels, label_column, names, mode, split,
               where) -> dict:  # fmt: skip
    series = []
    for n, i in enumerate(indices):
        x = fill_missing(
            _series({c: batch[c][n] for c in columns}, columns, channels_first, f"{where} row {i}"), f"{where} row {i}"
        )
        if x.shape[1] != channels:
            raise ValueError(
                f"{where}: series have different channel counts {sorted({channels, x.shape[1]})} (row {i})"
            )
        series.append(x)
    labels = _encode(batch[label_column], _lookup(names, mode), names, where, split, indices[0])
    return {"series": series, "labels": labels}


def _read_splits(config: SequenceTaskConfig) -> tuple[dict[str, Any], dict[str, str], list[str] | None]:
    """{split: a Dataset / IterableDataset with the raw columns, or None}, {split: where}, declared label names."""
    from datasets import Dataset

    if config.source == "hub" or (config.root is not None and not any(getattr(config, f"{s}_file") for s in SPLITS)):
        raw = load_hf_splits(config)
        feature = raw["train"].features.get(config.label_column) if raw["train"].features else None
        declared = list(feature.names) if hasattr(feature, "names") else None
        return raw, {s: split_origin(config, s) for s in SPLITS if raw[s] is not None}, declared
    raw, where, declared = {}, {}, None
    for split in SPLITS:
        path = resolve_path(config, f"{split}_file")
        if path is None:
            if split != "validation":
                raise ValueError(f"task 'sequence' with source: local needs `{split}_file` (or `root`)")
            raw[split] = None
            continue
        where[split] = str(path)
        if not path.exists():
            raise FileNotFoundError(f"{split}_file {path} does not exist")
        if path.suffix.lower() in (".ts", ".npz"):  # read whole by our readers (UCR-sized files)
            refuse_streaming(config, ".ts and .npz files")
            series, labels, *names = read_ts(path) if path.suffix.lower() == ".ts" else read_npz(path)
            declared = declared or (names[0] if names else None)
            column = config.input_column if isinstance(config.input_column, str) else "series"
            raw[split] = Dataset.from_dict({column: [s.tolist() for s in series], config.label_column: labels})
        else:
            raw[split] = load_local_file(path, config, split)
            feature = raw[split].features.get(config.label_column) if raw[split].features else None
            declared = declared or (list(feature.names) if hasattr(feature, "names") else None)
    return raw, where, declared


def _file_splits(config: SequenceTaskConfig, seed: int) -> tuple[Any, dict[str, str], str]:
    """The files' (or hub's) splits as float64 `series` (L, C) with missing values filled, and ClassLabel labels."""
    from datasets import DatasetDict, IterableDataset, IterableDatasetDict

    raw, where, declared = _read_splits(config)
    label_column = config.label_column
    columns = [config.input_column] if isinstance(config.input_column, str) else list(config.input_column)
    channels = {}
    for split in where:
        raw[split] = check_columns(raw[split], (*columns, label_column), split, where[split], hint="")
        first = next(iter(raw[split].take(1))) if isinstance(raw[split], IterableDataset) else raw[split][0]
        channels[split] = _series(first, columns, config.channels_first, f"{where[split]} row 0").shape[1]
    names, mode = _label_names(config, raw["train"], declared)
    out = dict.fromkeys(SPLITS)
    for split in where:
        kwargs = {"columns": columns, "channels_first": config.channels_first, "channels": channels[split]}
        kwargs.update(label_column=label_column, names=names, mode=mode, split=split, where=where[split])
        features = value_features(channels[split], names, "float64", "series")
        out[split] = map_batches(
            raw[split],
            _to_series,
            features,
            config,
            kwargs,
            with_indices=True,
            code=[series_files, feature_extraction_mrconv],
        )
    if len(set(channels.values())) > 1:  # after the rows' own errors, as each split is read whole first
        raise ValueError(f"splits have different channel counts {channels}")
    carve_validation(out, config, seed, where)
    streamed = isinstance(out["train"], IterableDataset)
    origin = f"{config.source} {config.dataset_name or config.root or [getattr(config, f'{s}_file') for s in SPLITS]}"
    return (IterableDatasetDict if streamed else DatasetDict)(out), where, origin


def _generated_rows(counts: tuple, seed: int, params: dict) -> Iterator[dict]:
    for i, n in enumerate(counts):
        values, labels = generate_timeseries(n, seed=[seed, i], **params)
        for x, label in zip(values, labels, strict=True):
            yield {"series": x.astype(np.float64), "labels": int(label)}


def _normalize(batch: dict, mode: str, mean: list | None, std: list | None) -> dict:
    """The export's own preprocessing (`feature_extraction_mrconv.normalize_series`), so both give the same inputs."""
    mean, std = (None, None) if mode != "global" else (np.asarray(mean), np.asarray(std))
    values = [
        normalize_series(np.asarray(x, dtype=np.float64), mode, mean, std).astype(np.float32) for x in batch["series"]
    ]
    return {"input_values": values, "labels": batch["labels"]}


@register_task("sequence", SequenceTaskConfig)
def _build_sequence(config: SequenceTaskConfig, seed: int) -> TaskData:
    if config.normalize not in NORMALIZE:
        raise ValueError(f"normalize: expected one of {' | '.join(NORMALIZE)}, got {config.normalize!r}")
    if config.source == "generate":
        counts = (config.num_train, config.num_validation, config.num_test)
        params = {
            k: getattr(config, k) for k in ("length", "num_channels", "num_classes", "burst_length", "noise_std")
        }
        names = [f"class_{k}" for k in range(config.num_classes)]
        features = value_features(config.num_channels, names, "float64", "series")
        kwargs = {"counts": counts, "seed": seed, "params": params}
        pool = generated_dataset(
            "timeseries", _generated_rows, kwargs, features, config, ["modeling_mrconv.data.generators.timeseries"]
        )
        splits = split_by_counts(pool, counts)
        where = {s: f"generated {s} split" for s in SPLITS}
        description = f"sequence SYNTHETIC multi-scale series (generators/timeseries.py, seed {seed})"
    else:
        splits, where, description = _file_splits(config, seed)
    mean = std = None
    if config.normalize == "global":
        if config.streaming:
            raise ValueError(
                "data.normalize: global needs a pass over the train split first; use per_series or none with streaming"
            )
        mean, std = channel_stats(splits["train"], "series", 1.0)
        std = [s if s > 0 else 1.0 for s in std]
    features = value_features(splits["train"].features["series"].shape[1], splits["train"].features["labels"].names)
    kwargs = {"mode": config.normalize, "mean": mean, "std": std}
    for split in SPLITS:
        splits[split] = map_batches(
            splits[split], _normalize, features, config, kwargs, numpy=True, code=[feature_extraction_mrconv]
        )
    return TaskData(
        splits, None, f"{description}, normalize {config.normalize}", where, input_mean=mean, input_std=std
    )
