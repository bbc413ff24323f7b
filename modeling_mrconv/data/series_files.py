"""Readers of series files that `datasets` does not read (UCR/UEA `.ts`, the UCR 2018 archive's `.tsv`, `.npz`), the parser of series cells (arrays,
JSON lists or number strings) and the filling of missing values. Readers return float (L_i, C) series with NaN where
missing; errors name the file and the line (`.ts`) or row."""

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from modeling_mrconv.feature_extraction_mrconv import fill_missing as interpolate_missing


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


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Read a UCR/UEA `.ts` classification file (sktime's format, without `@timeStamps true`).

    Header lines (`_TS_HEADER`, `@classLabel true a b ...`) precede `@data`; each data line is `dim1:dim2:...:label`
    with comma-separated values per dimension (`?` or NaN = missing; lengths may differ). `#` lines are comments.
    Returns (series float64 (L_i, C) with NaN where missing, their labels, the @classLabel labels); a malformed
    header or data line is a ValueError naming the file and line (1-based).
    """
    path = Path(path)
    header: dict[str, str] = {}
    class_labels: list[str] = []
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
        if label not in class_labels:
            raise ValueError(f"{path} line {number}: label {label!r} is not among @classLabel {class_labels}")
        series.append(np.stack(channels, 1))  # (L C)
        labels.append(label)
    if not in_data:
        raise ValueError(f"{path}: no @data line")
    if not series:
        raise ValueError(f"{path}: no series after @data")
    return series, labels, class_labels


def read_npz(path: Path) -> tuple[list[np.ndarray], list]:
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
    return series, [v.item() if hasattr(v, "item") else v for v in y]


def is_ucr_tsv(path: Path) -> bool:
    """A `.tsv` file in the UCR 2018 archive's layout: no header, each line's first field a number (the label)."""
    with open(path) as handle:
        first = handle.readline().split("\t", 1)[0].strip()
    try:
        float(first)
    except ValueError:
        return False
    return True


def read_ucr_tsv(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Read a UCR 2018 archive `.tsv` file (`<Name>_TRAIN.tsv`, `<Name>_TEST.tsv`): one series per line, its numeric
    label first, tab-separated. The archive pads variable-length series with trailing NaN: that padding is cut, so
    each series keeps its own length; a NaN inside a series stays missing (filled by `fill_missing` later).

    Returns:
        (series float64 (L_i, 1), labels as numbers: integral ones name their class as integers do).
    """
    series, labels = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            label, *values = [np.nan if f.strip().lower() in ("", "nan") else float(f) for f in line.split("\t")]
        except ValueError as error:
            raise ValueError(f"{path} line {number}: expected a numeric label and values ({error})") from None
        observed = np.flatnonzero(~np.isnan(values))
        if observed.size == 0:
            raise ValueError(f"{path} line {number}: the series has no value")
        series.append(np.asarray(values[: observed[-1] + 1])[:, None])  # (L_i 1): the trailing NaN padding cut
        labels.append(label)
    if not series:
        raise ValueError(f"{path}: no series")
    return series, labels


def cell_array(value: Any, where: str) -> np.ndarray:
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


def fill_missing(x: np.ndarray, where: str) -> np.ndarray:
    """`feature_extraction_mrconv.fill_missing` (the export's own preprocessing), errors naming `where`."""
    if x.shape[0] == 0:
        raise ValueError(f"{where}: empty series")
    try:
        return interpolate_missing(x)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
