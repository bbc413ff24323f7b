"""The `sequence` task: continuous series (L, C) with one label each, generated or read from the user's files.

Sources:
* `generate`: the multi-scale set of `generators/timeseries.py` (keys num_train/num_validation/num_test, length,
  num_channels, num_classes, burst_length, noise_std).
* `local`: `train_file`, `test_file` and optionally `validation_file` (else `validation_fraction` of train is
  carved, seeded by data_seed), each csv/tsv/json/jsonl/parquet/arrow or a `save_to_disk` folder (read through
  `datasets`), or `.npz` (arrays `x`: (N, L, C), (N, L), or an object array of (L_i[, C]) series; and `y`), or the
  UCR/UEA `.ts` format (`read_ts`); or `root` alone, a `save_to_disk` DatasetDict.
* `hub`: `dataset_name` (and `dataset_config`) through `datasets.load_dataset`.

Columns (datasets files): `input_column` holds 1-D arrays (C = 1) or 2-D (L, C) arrays (`channels_first: true` for
(C, L)); a list of columns holds one 1-D array per channel. Csv cells may be strings: JSON lists ("[0.1, 0.2]",
nested for (L, C)) or "0.1 0.2". `label_column` holds the labels.

Rules, applied to every split when it is read (errors name the file and the row, 0-based, or the `.ts` line):
* Missing values (NaN, None, `?` in `.ts`) are filled by linear interpolation along time within each channel; the
  edges take the nearest observed value. A channel with no observed value is an error.
* Lengths may differ (items stay ragged; `PadCollator` pads with an attention mask). `max_length`: a series longer
  than it is refused (naming the file, row and length), never cropped, since a crop can drop the part that holds the
  class; null = the longest series of all splits.
* `normalize`: `per_series` (each series and channel to zero mean, unit std, as the UCR archive does), `global`
  (per-channel mean and std over all steps of the train split only), or `none`. A zero std is replaced by 1.
* Labels: `label_names` when given, else ClassLabel names, else the sorted string labels of train, else the sorted
  integer labels of train as names ("-1", "1"). With given names, integer labels are looked up by name when every
  name is an integer ("-1", "1"), else taken as class indices. A label outside these is an error.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from modeling_mrconv.data.base import SPLITS, TaskData, _continuous_task, _get, register_task
from modeling_mrconv.data.generators.timeseries import generate_timeseries
from modeling_mrconv.data.sources import HFSourceConfig, _carve, _load_local_file, _resolve, load_hf_splits


NORMALIZE = ("per_series", "global", "none")
_FILE_AND_HUB_KEYS = ("input_column", "channels_first", "label_column", "label_names", "hf_cache_dir")
_FILE_AND_HUB_KEYS += ("train_split", "validation_split", "test_split", "validation_fraction")


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
    max_length: int | None = None  # longer series are refused; null = the longest series
    normalize: str = "per_series"  # per_series | global | none


class SeriesDataset(Dataset):
    """Series of different lengths (L_i, C) stored flat (float32) with offsets; items `{"input_values", "labels"}`."""

    def __init__(self, series: list[np.ndarray], labels: np.ndarray):
        if len(series) != len(labels):
            raise ValueError(f"{len(series)} series but {len(labels)} labels")
        lengths = np.array([len(s) for s in series], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        channels = series[0].shape[1] if series else 1
        self.values = np.concatenate(series).astype(np.float32) if series else np.zeros((0, channels), np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.labels)

    def series(self, index: int) -> np.ndarray:
        """Series `index`, float32 (L_i, C)."""
        return self.values[self.offsets[index] : self.offsets[index + 1]]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"input_values": torch.from_numpy(self.series(index).copy()), "labels": int(self.labels[index])}


# ---------------------------------------------------------------------------------------------------------------------
# Reading: every reader returns (series list of float arrays (L_i, C) with NaN for missing, raw labels, row names)


_TS_HEADER = (
    "@problemname",
    "@timestamps",
    "@missing",
    "@univariate",
    "@dimensions",
    "@equallength",
    "@serieslength",
    "@classlabel",
    "@targetlabel",
)


def _ts_float(token: str, path: Path, line: int) -> float:
    token = token.strip()
    if token in ("?", "", "NaN", "nan"):
        return np.nan
    try:
        return float(token)
    except ValueError:
        raise ValueError(f"{path} line {line}: expected a number or '?', got {token!r}") from None


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str], list[str] | None]:
    """Read a UCR/UEA `.ts` file (sktime's format, without `@timeStamps true`).

    Header lines (`@problemName`, `@timeStamps`, `@missing`, `@univariate`, `@dimensions`, `@equalLength`,
    `@seriesLength`, `@classLabel true a b ...`) precede `@data`; each data line is `dim1:dim2:...:label` with
    comma-separated values per dimension (`?` or NaN = missing; lengths may differ between series). `#` lines are
    comments.

    Returns:
        (series float64 (L_i, C) with NaN where missing, string labels, declared class labels or None).

    Raises:
        ValueError: A malformed header or data line; the message names the file and line (1-based).
    """
    path = Path(path)
    header: dict[str, str] = {}
    class_labels: list[str] | None = None
    series, labels, in_data = [], [], False
    dimensions: int | None = None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            key, _, value = line.partition(" ")
            key = key.lower()
            if key == "@data":
                in_data = True
                if "@classlabel" not in header:
                    raise ValueError(f"{path} line {number}: @data before @classLabel (a classification file)")
                if header.get("@timestamps", "false").lower() == "true":
                    raise ValueError(f"{path} line {number}: @timeStamps true is not supported")
                if "@dimensions" in header:
                    dimensions = int(header["@dimensions"])
                elif header.get("@univariate", "true").lower() == "true":
                    dimensions = 1
                continue
            if key not in _TS_HEADER:
                raise ValueError(f"{path} line {number}: unknown header {key!r}; expected one of {list(_TS_HEADER)}")
            header[key] = value.strip()
            if key == "@classlabel":
                words = value.split()
                if not words or words[0].lower() not in ("true", "false"):
                    raise ValueError(f"{path} line {number}: expected '@classLabel true <labels...>', got {line!r}")
                if words[0].lower() == "false":
                    raise ValueError(f"{path} line {number}: @classLabel false (no labels) cannot be trained")
                class_labels = words[1:]
                if not class_labels:
                    raise ValueError(f"{path} line {number}: @classLabel true lists no labels")
            if key == "@dimensions" and not value.strip().isdigit():
                raise ValueError(f"{path} line {number}: @dimensions expects an integer, got {value.strip()!r}")
            continue
        parts = line.split(":")
        if len(parts) < 2:
            raise ValueError(f"{path} line {number}: expected 'values:...:label', got {line[:60]!r}")
        *dims, label = parts
        if dimensions is not None and len(dims) != dimensions:
            raise ValueError(f"{path} line {number}: expected {dimensions} dimension(s), got {len(dims)}")
        channels = [np.array([_ts_float(v, path, number) for v in d.split(",")]) for d in dims]
        lengths = {len(c) for c in channels}
        if len(lengths) > 1:
            raise ValueError(f"{path} line {number}: dimensions have different lengths {sorted(lengths)}")
        label = label.strip()
        if class_labels is not None and label not in class_labels:
            raise ValueError(f"{path} line {number}: label {label!r} is not among @classLabel {class_labels}")
        series.append(np.stack(channels, 1))  # (L C)
        labels.append(label)
    if not in_data:
        raise ValueError(f"{path}: no @data line")
    if not series:
        raise ValueError(f"{path}: no series after @data")
    return series, labels, class_labels


def _npz_split(path: Path) -> tuple[list[np.ndarray], list, list[str]]:
    with np.load(path, allow_pickle=True) as stored:
        missing = [k for k in ("x", "y") if k not in stored.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {missing}; arrays: {stored.files}")
        x, y = stored["x"], stored["y"]
    if x.dtype == object:
        series = [np.asarray(s, dtype=np.float64) for s in x]
    elif x.ndim in (2, 3):
        series = list(x.astype(np.float64))
    else:
        raise ValueError(f"{path}: x must be (N, L, C), (N, L) or an object array of series, got shape {x.shape}")
    series = [s[:, None] if s.ndim == 1 else s for s in series]
    for i, s in enumerate(series):
        if s.ndim != 2:
            raise ValueError(f"{path} row {i}: a series must be (L,) or (L, C), got shape {s.shape}")
    if len(y) != len(series):
        raise ValueError(f"{path}: {len(series)} series in x but {len(y)} labels in y")
    return series, [v.item() if hasattr(v, "item") else v for v in y], []


def _cell_array(value: Any, where: str) -> np.ndarray:
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value.replace("NaN", "null"))  # nested lists: (L, C)
        except json.JSONDecodeError:
            raise ValueError(f"{where}: expected numbers, got {value[:60]!r}") from None
    if isinstance(value, str):
        tokens = [t for t in re.split(r"[\s,;\[\]]+", value) if t]
        try:
            return np.array([np.nan if t.lower() in ("nan", "?", "none", "null") else float(t) for t in tokens])
        except ValueError:
            raise ValueError(f"{where}: expected numbers, got {value[:60]!r}") from None
    if value is None:
        raise ValueError(f"{where}: the series is empty (null)")
    try:
        return np.array(value, dtype=np.float64)  # None entries -> NaN
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected an array of numbers, got {str(value)[:60]!r}") from None


def _datasets_split(ds: Any, cfg: dict, where: str, split: str) -> tuple[list[np.ndarray], list]:
    columns = _get(cfg, "input_column", "series")
    columns = [columns] if isinstance(columns, str) else list(columns)
    label_column = _get(cfg, "label_column", "label")
    missing = [c for c in [*columns, label_column] if c not in ds.column_names]
    if missing:
        raise ValueError(f"{where}: the {split} split has no column(s) {missing}; columns: {ds.column_names}")
    channels_first = bool(_get(cfg, "channels_first", False))
    cells = {c: ds[c] for c in columns}
    series = []
    for i in range(len(ds)):
        arrays = [_cell_array(cells[c][i], f"{where} row {i} column {c!r}") for c in columns]
        if len(columns) > 1:
            bad = [(c, a.shape) for c, a in zip(columns, arrays, strict=True) if a.ndim != 1]
            if bad:
                raise ValueError(f"{where} row {i}: each input column must hold a 1-D array, got {bad}")
            lengths = {len(a) for a in arrays}
            if len(lengths) > 1:
                raise ValueError(f"{where} row {i}: input columns {columns} have different lengths {sorted(lengths)}")
            series.append(np.stack(arrays, 1))  # (L C)
            continue
        (a,) = arrays
        if a.ndim == 1:
            a = a[:, None]
        elif a.ndim == 2 and channels_first:
            a = a.T
        elif a.ndim != 2:
            raise ValueError(f"{where} row {i}: expected a 1-D or 2-D (L, C) array, got shape {a.shape}")
        series.append(a)
    return series, list(ds[label_column])


# ---------------------------------------------------------------------------------------------------------------------
# Checks and conversion


def _fill_missing(x: np.ndarray, where: str) -> np.ndarray:
    """Linear interpolation of NaNs along time per channel; edges take the nearest observed value."""
    if x.shape[0] == 0:
        raise ValueError(f"{where}: empty series")
    if not np.isnan(x).any():
        return x
    x, t = x.copy(), np.arange(x.shape[0])
    for c in range(x.shape[1]):
        seen = ~np.isnan(x[:, c])
        if not seen.any():
            raise ValueError(f"{where}: channel {c} has no observed value")
        x[:, c] = np.interp(t, t[seen], x[seen, c])
    return x


def _label_names(cfg: dict, train_labels: list, declared: list[str] | None) -> tuple[list[str], dict]:
    """Names and a lookup {raw label: index} from label_names, declared (ClassLabel / @classLabel) names, or the
    train labels (sorted strings, or sorted integers as their names)."""
    given = cfg.get("label_names") or declared
    if given:
        names = [str(n) for n in given]
        if all(re.fullmatch(r"-?\d+", n) for n in names):  # integer names ("-1", "1"): integer labels by name
            return names, {**{n: i for i, n in enumerate(names)}, **{int(n): i for i, n in enumerate(names)}}
        return names, {**{n: i for i, n in enumerate(names)}, **{i: i for i in range(len(names))}}
    if any(isinstance(v, str) for v in train_labels):
        names = sorted({str(v) for v in train_labels})
        return names, {n: i for i, n in enumerate(names)}
    values = sorted({_as_int(v) for v in train_labels})
    return [str(v) for v in values], {v: i for i, v in enumerate(values)}


def _as_int(value: Any) -> Any:
    """Integral numbers (1, 1.0, np.int64(1)) as int; anything else unchanged (bool stays unknown)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return value


def _encode(labels: list, lookup: dict, names: list[str], where: str, split: str) -> np.ndarray:
    out = np.empty(len(labels), dtype=np.int64)
    for i, v in enumerate(labels):
        key = v if isinstance(v, str) else _as_int(v)
        if key not in lookup:
            raise ValueError(
                f"{where}: {split} split row {i}: label {v!r} is not among the labels {names} "
                f"(indices 0..{len(names) - 1})"
            )
        out[i] = lookup[key]
    return out


def _normalize(split: list[np.ndarray], mode: str, stats: tuple | None) -> list[np.ndarray]:
    if mode == "none":
        return split
    if mode == "per_series":
        out = []
        for x in split:
            std = x.std(0)
            out.append((x - x.mean(0)) / np.where(std > 0, std, 1.0))
        return out
    mean, std = stats
    return [(x - mean) / std for x in split]


# ---------------------------------------------------------------------------------------------------------------------
# The task


def _read_splits(cfg: dict) -> tuple[dict, dict, list[str] | None, str]:
    """{split: (series, raw labels) or None}, {split: name for errors}, declared label names, description."""
    out, where, declared = {}, {}, None
    if cfg["source"] == "hub" or (cfg.get("root") is not None and not any(cfg.get(f"{s}_file") for s in SPLITS)):
        raw = load_hf_splits(cfg)
        feature = raw["train"].features.get(_get(cfg, "label_column", "label"))
        declared = list(feature.names) if hasattr(feature, "names") else None
        origin = cfg.get("dataset_name") if cfg["source"] == "hub" else cfg.get("root")
        for split, ds in raw.items():
            where[split] = f"{cfg['source']} {origin} split {split}"
            out[split] = None if ds is None else _datasets_split(ds, cfg, where[split], split)
            if out[split] is not None and not out[split][0]:
                raise ValueError(f"{where[split]}: empty split (no rows)")
        return out, where, declared, f"{cfg['source']} {origin}"
    for split in SPLITS:
        path = _resolve(cfg, f"{split}_file")
        if path is None:
            if split != "validation":
                raise ValueError(f"task 'sequence' with source: local needs `{split}_file` (or `root`)")
            out[split] = None
            continue
        where[split] = str(path)
        if not path.exists():
            raise FileNotFoundError(f"{split}_file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".ts":
            series, labels, names = read_ts(path)
            declared = declared or names
        elif suffix == ".npz":
            series, labels, _ = _npz_split(path)
        else:
            if path.is_file() and path.stat().st_size == 0:
                raise ValueError(f"{path}: empty {split} file (no rows)")
            ds = _load_local_file(path, cfg)
            series, labels = _datasets_split(ds, cfg, where[split], split)
            feature = ds.features.get(_get(cfg, "label_column", "label"))
            declared = declared or (list(feature.names) if hasattr(feature, "names") else None)
        if not series:
            raise ValueError(f"{path}: empty {split} file (no rows)")
        out[split] = (series, labels)
    return out, where, declared, f"local {[cfg.get(f'{s}_file') for s in SPLITS]}"


@register_task("sequence", SequenceTaskConfig)
def _build_sequence(cfg: dict, seed: int) -> TaskData:
    mode = _get(cfg, "normalize", "per_series")
    if mode not in NORMALIZE:
        raise ValueError(f"normalize: expected one of {' | '.join(NORMALIZE)}, got {mode!r}")
    if cfg["source"] == "generate":
        keys = ("length", "num_channels", "num_classes", "burst_length", "noise_std")
        kwargs = {k: cfg[k] for k in keys if cfg.get(k) is not None}
        counts = [int(_get(cfg, f"num_{s}", 0)) for s in SPLITS]
        raw = {
            s: generate_timeseries(n, seed=[seed, i], **kwargs)
            for i, (s, n) in enumerate(zip(SPLITS, counts, strict=True))
        }
        series = {s: list(v.astype(np.float64)) for s, (v, _) in raw.items()}
        labels = {s: y for s, (_, y) in raw.items()}
        num_classes = int(_get(cfg, "num_classes", 4))
        names = [f"class_{k}" for k in range(num_classes)]
        description = f"sequence SYNTHETIC multi-scale series (generators/timeseries.py, seed {seed})"
        where = {s: f"generated {s} split" for s in SPLITS}
    else:
        out, where, declared, description = _read_splits(cfg)
        names, lookup = _label_names(cfg, out["train"][1], declared)
        series, labels = {}, {}
        for split, value in out.items():
            if value is None:
                continue
            series[split] = [_fill_missing(x, f"{where[split]} row {i}") for i, x in enumerate(value[0])]
            labels[split] = _encode(value[1], lookup, names, where[split], split)
            where_channels = {x.shape[1] for x in series[split]}
            if len(where_channels) > 1:
                raise ValueError(f"{where[split]}: series have different channel counts {sorted(where_channels)}")
        if series.get("validation") is None:
            keep, carved = _carve(len(labels["train"]), float(_get(cfg, "validation_fraction", 0.1)), seed)
            series["validation"] = [series["train"][i] for i in carved]
            labels["validation"] = labels["train"][carved]
            series["train"], labels["train"] = [series["train"][i] for i in keep], labels["train"][keep]
            where["validation"] = f"validation carved from {where['train']}"
        channels = {s: series[s][0].shape[1] for s in SPLITS}
        if len(set(channels.values())) > 1:
            raise ValueError(f"splits have different channel counts {channels}")
    limit = cfg.get("max_length")
    if limit is not None:
        for split in SPLITS:
            for i, x in enumerate(series[split]):
                if len(x) > int(limit):
                    raise ValueError(
                        f"{where[split]} row {i}: series of length {len(x)} exceeds max_length={limit}; "
                        "raise data.max_length (and model.max_sequence_length) or shorten the series"
                    )
    stats = None
    if mode == "global":
        train = np.concatenate(series["train"])  # (sum L C)
        std = train.std(0)
        stats = (train.mean(0), np.where(std > 0, std, 1.0))  # (C) each
    splits = {s: SeriesDataset(_normalize(series[s], mode, stats), labels[s]) for s in SPLITS}
    longest = max(int(ds.lengths.max()) for ds in splits.values())
    max_length = int(cfg.get("max_length") or longest)
    return _continuous_task(
        splits,
        dict(enumerate(names)),
        f"{description}, normalize {mode}",
        input_dim=int(splits["train"].values.shape[1]),
        max_length=max_length,
    )
