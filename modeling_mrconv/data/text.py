"""Byte-level text tasks: text (IMDB), retrieval (AAN), synthetic_text, synthetic_retrieval (ByT5 ids, vocab 259)."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modeling_mrconv.data.base import (
    SPLITS,
    PairTokenDataset,
    TaskConfig,
    TaskData,
    TokenDataset,
    _counts,
    _get,
    _token_task,
    byte_encode,
    check_labels,
    register_task,
)
from modeling_mrconv.data.sources import HFSourceConfig, _column, _hf_labelled_splits, _id2label, _resolve


@dataclass
class TextConfig(HFSourceConfig):
    """text: ByT5 byte ids, pad 0; labels "negative"/"positive" for IMDB."""

    SOURCES = ("hub", "local")

    dataset_name: str | None = "imdb"
    max_length: int = 4096
    text_column: str = "text"


@dataclass
class RetrievalConfig(HFSourceConfig):
    """retrieval: two ByT5 documents per example; labels "different"/"same".

    local: .tsv files (null = new_aan_pairs.{train,eval,test}.tsv under root) are LRA's layout (label, id1, id2,
    text1, text2; tab separated, no header); other local files go through `datasets` like hub.
    """

    SOURCES = ("local", "hub")

    dataset_name: str | None = None  # required for hub
    max_length: int = 4000  # per document
    text1_column: str = "text1"
    text2_column: str = "text2"


@dataclass
class SyntheticTextConfig(TaskConfig):
    """synthetic_text: SYNTHETIC bytes; labels "negative"/"positive".

    Filler words of 2-8 letters from a-w; the markers "xyz" and "zyx" occur n_pos != n_neg times (each in
    [1, max_marker_count], shuffled in); label 1 iff n_pos > n_neg.
    """

    num_train: int = 2000
    num_validation: int = 500
    num_test: int = 500
    min_length: int = 256
    max_length: int = 1024
    max_marker_count: int = 8


@dataclass
class SyntheticRetrievalConfig(TaskConfig):
    """synthetic_retrieval: SYNTHETIC byte pairs; labels "different"/"same".

    Each document draws its own letter distribution ~ Dirichlet(alpha) over a-z and space; label 1: doc2 is doc1 with
    its chunk_size-byte chunks shuffled and a `noise` fraction of bytes resampled uniformly; label 0: an independent
    document of the same length.
    """

    num_train: int = 2000
    num_validation: int = 500
    num_test: int = 500
    min_length: int = 128  # per document
    max_length: int = 512
    noise: float = 0.3
    chunk_size: int = 16
    alpha: float = 1.0


@register_task("text", TextConfig)
def _build_text(cfg: dict, seed: int) -> TaskData:
    max_length, column = int(_get(cfg, "max_length", 4096)), _get(cfg, "text_column", "text")
    out, names, where = _hf_labelled_splits(
        cfg,
        seed,
        lambda ds: [byte_encode(t, max_length) for t in _column(ds, column)],
        "imdb",
        input_columns=(column,),
    )
    if names in (None, ["neg", "pos"]) and int(out["train"][1].max()) < 2:  # IMDB's ClassLabel names
        names = ["negative", "positive"]
    splits = {s: TokenDataset(*out[s]) for s in SPLITS}
    return _token_task(splits, _id2label(names, out["train"][1]), max_length, f"text (bytes) from {where}")


def read_aan_tsv(path: str | Path, split: str = "train") -> tuple[list[str], list[str], list[int]]:
    """Read LRA's `new_aan_pairs.*.tsv` (label, id1, id2, text1, text2; tab separated, no header, no quoting).

    Raises ValueError naming the file and line for an empty file, a row without 5 fields or a label other than 0/1.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{split}_file {path} does not exist")
    first, second, labels, lines = [], [], [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("\t")
            if fields == [""]:
                continue
            if len(fields) != 5:
                raise ValueError(f"{path} line {number}: expected 5 tab-separated fields, got {len(fields)}")
            try:
                value = float(fields[0])
            except ValueError:
                raise ValueError(f"{path} line {number}: label must be 0 or 1, got {fields[0]!r}") from None
            if not value.is_integer():
                raise ValueError(f"{path} line {number}: label must be 0 or 1, got {fields[0]!r}")
            labels.append(int(value))
            first.append(fields[3])
            second.append(fields[4])
            lines.append(number)
    if not labels:
        raise ValueError(f"{path}: empty {split} file (no rows)")
    check_labels(split, labels, 2, str(path), lines)
    return first, second, labels


@register_task("retrieval", RetrievalConfig)
def _build_retrieval(cfg: dict, seed: int) -> TaskData:
    max_length = int(_get(cfg, "max_length", 4000))
    # local .tsv files (or the default names) are LRA's AAN layout; other local files go through `datasets`
    if cfg["source"] == "local" and all(str(_get(cfg, f"{s}_file", ".tsv")).lower().endswith(".tsv") for s in SPLITS):
        defaults = {"train": "train", "validation": "eval", "test": "test"}
        files = {s: _resolve(cfg, f"{s}_file", f"new_aan_pairs.{defaults[s]}.tsv") for s in SPLITS}
        raw = {s: read_aan_tsv(path, s) for s, path in files.items()}
        where = f"AAN TSVs {[str(p) for p in files.values()]}"
    else:
        columns = (_get(cfg, "text1_column", "text1"), _get(cfg, "text2_column", "text2"))
        out, _, where = _hf_labelled_splits(
            cfg, seed, lambda ds: list(zip(*(_column(ds, c) for c in columns))), input_columns=columns
        )
        raw = {s: ([p[0] for p in out[s][0]], [p[1] for p in out[s][0]], out[s][1]) for s in SPLITS}
    splits = {
        s: PairTokenDataset([byte_encode(t, max_length) for t in a], [byte_encode(t, max_length) for t in b], y)
        for s, (a, b, y) in raw.items()
    }
    return _token_task(splits, {0: "different", 1: "same"}, max_length, f"retrieval (bytes) from {where}")


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


@register_task("synthetic_text", SyntheticTextConfig)
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


@register_task("synthetic_retrieval", SyntheticRetrievalConfig)
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
