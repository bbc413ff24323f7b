"""The `sequence` task: continuous series (L, C) with one label each, generated or read from the user's files.

Sources (keys in `SequenceTaskConfig.SOURCE_KEYS`):
* `generate`: the multi-scale set of `generators/timeseries.py`.
* `local`: `train_file`, `test_file` and optionally `validation_file` (else `validation_fraction` of train is
  carved, seeded by data_seed): csv/tsv/json/jsonl/parquet/arrow or a `save_to_disk` folder (read through `datasets`,
  streamable), `.npz` (arrays `x`: (N, L, C), (N, L) or an object array of (L_i[, C]) series; and `y`), UCR/UEA
  `.ts` (`series_files.read_ts`) or the UCR 2018 archive's headerless `.tsv` (label first; `read_ucr_tsv`); or `root`
  alone, a `save_to_disk` DatasetDict.
* `hub`: `dataset_name` (and `dataset_config`) through `datasets.load_dataset`.

Columns: `input_column` holds 1-D arrays (C = 1) or 2-D (L, C) arrays (`channels_first: true` for (C, L)); a list of
columns holds one 1-D array per channel. Csv cells may be JSON lists ("[0.1, 0.2]", nested for (L, C)) or "0.1 0.2".

Rules, applied to every split as it is read (errors name the file and the row, 0-based, or the `.ts` line):
* Missing values (NaN, None, `?`) are filled by linear interpolation along time per channel, the edges by the
  nearest observed value; a channel with no observed value is an error.
* Lengths may differ (the collator pads). A series longer than the model's `max_sequence_length` is refused by
  `load_task`, never cropped, since a crop can drop the part that holds the class.
* `normalize`: `per_series` (each series and channel to zero mean, unit std, as the UCR archive does), `global`
  (per-channel mean and std over all steps of the train split only), or `none`. A zero std is replaced by 1.
* Labels: `label_names` when given, else ClassLabel names, else the sorted string labels of train, else the sorted
  integer labels of train as names ("-1", "1"). With given names, integer labels are looked up by name when every
  name is an integer ("-1", "1"), else taken as class indices. A label outside these is an error.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeling_mrconv import feature_extraction_mrconv
from modeling_mrconv.data import series_files
from modeling_mrconv.data.base import SPLITS, register_task, value_features
from modeling_mrconv.data.caching import generated_dataset, map_batches, split_by_counts
from modeling_mrconv.data.generators import timeseries
from modeling_mrconv.data.series_files import cell_array, fill_missing, is_ucr_tsv, read_npz, read_ts, read_ucr_tsv
from modeling_mrconv.data.sources import (
    STREAM_CLASSES,
    HFSourceConfig,
    carve_validation,
    check_columns,
    dataset_dict,
    declared_names,
    describe_source,
    load_hf_splits,
    load_local_file,
    refuse_streaming,
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


def _as_int(value: Any) -> Any:
    """Integral numbers (1, 1.0, np.int64(1)) as int; anything else unchanged (bool stays unknown)."""
    number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    return int(value) if number and float(value).is_integer() else value


def _label_names(config: SequenceTaskConfig, train: Any, declared: list[str] | None) -> tuple[list[str], str]:
    """The class names (module docstring) and how raw labels map to them: "by_name" (strings, and integers when every
    name is one), "index" (strings, and integers as class indices), "strings" or "integers" (by name)."""
    given = config.label_names or declared
    if given:
        names = [str(n) for n in given]
        return names, "by_name" if all(re.fullmatch(r"-?\d+", n) for n in names) else "index"
    if config.streaming:
        raise ValueError(STREAM_CLASSES)
    values = train.unique(config.label_column)
    if any(isinstance(v, str) for v in values):
        return sorted({str(v) for v in values}), "strings"
    return [str(v) for v in sorted({_as_int(v) for v in values})], "integers"


def _encode(labels: list, names: list[str], mode: str, where: str, split: str, first_row: int) -> np.ndarray:
    """Class indices of raw labels, mapped as `mode` says (`_label_names`)."""
    lookup = {} if mode == "integers" else {n: i for i, n in enumerate(names)}
    if mode in ("by_name", "integers"):
        lookup.update({int(n): i for i, n in enumerate(names)})
    elif mode == "index":
        lookup.update({i: i for i in range(len(names))})
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


def _series(row: dict, columns: list[str], channels_first: bool, where: str) -> np.ndarray:
    """One row's series (L, C), float64 with missing values filled (`fill_missing`), from its input column(s)."""
    arrays = [cell_array(row[c], f"{where} column {c!r}") for c in columns]
    if len(columns) > 1:
        bad = [(c, a.shape) for c, a in zip(columns, arrays, strict=True) if a.ndim != 1]
        if bad:
            raise ValueError(f"{where}: each input column must hold a 1-D array, got {bad}")
        lengths = {len(a) for a in arrays}
        if len(lengths) > 1:
            raise ValueError(f"{where}: input columns {columns} have different lengths {sorted(lengths)}")
        return fill_missing(np.stack(arrays, 1), where)  # (L C)
    (a,) = arrays
    if a.ndim not in (1, 2):
        raise ValueError(f"{where}: expected a 1-D or 2-D (L, C) array, got shape {a.shape}")
    return fill_missing(a[:, None] if a.ndim == 1 else a.T if channels_first else a, where)


def _to_series(batch: dict, indices: list[int], columns, channels_first, channels, label_column, names, mode, split,
               where) -> dict:  # fmt: skip
    series = []
    for n, i in enumerate(indices):
        x = _series({c: batch[c][n] for c in columns}, columns, channels_first, f"{where} row {i}")
        if x.shape[1] != channels:
            raise ValueError(
                f"{where}: series have different channel counts {sorted({channels, x.shape[1]})} (row {i})"
            )
        series.append(x)
    labels = _encode(batch[label_column], names, mode, where, split, indices[0])
    return {"series": series, "labels": labels}


def _read_splits(config: SequenceTaskConfig) -> tuple[dict[str, Any], list[str] | None]:
    """{split: a Dataset / IterableDataset with the raw columns, or None} and the declared label names (ClassLabel,
    `.ts` @classLabel)."""
    from datasets import Dataset

    declared = []

    def read(path: Path, config: SequenceTaskConfig, split: str) -> Any:
        suffix = path.suffix.lower()
        ucr = suffix == ".tsv" and path.is_file() and path.stat().st_size > 0 and is_ucr_tsv(path)
        if suffix not in (".ts", ".npz") and not ucr:
            return load_local_file(path, config, split)
        if not path.exists():
            raise FileNotFoundError(f"{split}_file {path} does not exist")
        refuse_streaming(config, ".ts, .npz and UCR .tsv files")  # read whole by our readers (UCR-sized files)
        reader = read_ucr_tsv if ucr else read_ts if suffix == ".ts" else read_npz
        series, labels, *names = reader(path)
        declared.extend(names)
        column = config.input_column if isinstance(config.input_column, str) else "series"
        return Dataset.from_dict({column: [s.tolist() for s in series], config.label_column: labels})

    raw = load_hf_splits(config, read)
    declared += [declared_names(ds, config.label_column) for ds in raw.values() if ds is not None]
    return raw, next((names for names in declared if names), None)


def _file_splits(config: SequenceTaskConfig, seed: int) -> tuple[Any, dict[str, str], str]:
    """The files' (or hub's) splits as float64 `series` (L, C) with missing values filled, and ClassLabel labels."""
    raw, declared = _read_splits(config)
    where = {s: split_origin(config, s) for s in SPLITS if raw[s] is not None}
    label_column = config.label_column
    columns = [config.input_column] if isinstance(config.input_column, str) else list(config.input_column)
    channels, code = {}, [series_files, feature_extraction_mrconv]
    for split in where:
        raw[split] = check_columns(raw[split], (*columns, label_column), split, where[split])
        first = next(iter(raw[split]))
        channels[split] = _series(first, columns, config.channels_first, f"{where[split]} row 0").shape[1]
    names, mode = _label_names(config, raw["train"], declared)
    out = dict.fromkeys(SPLITS)
    for split in where:
        kwargs = {"columns": columns, "channels_first": config.channels_first, "channels": channels[split]}
        kwargs.update(label_column=label_column, names=names, mode=mode, split=split, where=where[split])
        features = value_features(channels[split], names, "float64", "series")
        out[split] = map_batches(raw[split], _to_series, features, config, kwargs, with_indices=True, code=code)
    if len(set(channels.values())) > 1:  # after the rows' own errors, as each split is read whole first
        raise ValueError(f"splits have different channel counts {channels}")
    carve_validation(out, config, seed, where)
    return dataset_dict(out), where, describe_source(config)


def _generated_rows(counts: tuple, seed: int, params: dict) -> Iterator[dict]:
    for i, n in enumerate(counts):
        values, labels = timeseries.generate_timeseries(n, seed=[seed, i], **params)
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
        keys = ("length", "num_channels", "num_classes", "burst_length", "noise_std")
        kwargs = {"counts": counts, "seed": seed, "params": {k: getattr(config, k) for k in keys}}
        features = value_features(
            config.num_channels, [f"class_{k}" for k in range(config.num_classes)], "float64", "series"
        )
        pool = generated_dataset("timeseries", _generated_rows, kwargs, features, config, [timeseries])
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
    description += f", normalize {config.normalize}"
    return TaskData(splits, None, description, where, input_mean=mean, input_std=std)
