"""Byte-level text tasks: text (IMDB), retrieval (AAN), synthetic_text, synthetic_retrieval (ByT5 ids, vocab 259).

Texts become `byte_ids` (as `build_byte_tokenizer` gives them) as they are read or generated (`_encode` maps Hub and
local data); `load_task` cuts them to the model's `max_sequence_length` (per document for pairs)."""

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modeling_mrconv import build_byte_tokenizer
from modeling_mrconv.data.base import SPLITS, TaskConfig, byte_ids, check_labels, register_task, token_features
from modeling_mrconv.data.caching import file_splits, generated_dataset, split_by_counts
from modeling_mrconv.data.sources import (
    HFSourceConfig,
    describe_source,
    encode_class_ids,
    labelled_splits,
    refuse_streaming,
    resolve_path,
)
from modeling_mrconv.data.task import TaskData


@dataclass
class TextConfig(HFSourceConfig):
    """text: ByT5 byte ids, pad 0; labels "negative"/"positive" for IMDB."""

    dataset_name: str | None = "imdb"
    text_column: str = "text"


@dataclass
class RetrievalConfig(HFSourceConfig):
    """retrieval: two ByT5 documents per example; labels "different"/"same". local: .tsv files (null =
    new_aan_pairs.{train,eval,test}.tsv under root) are LRA's AAN layout (`_aan_rows`); other files go through
    `datasets` like hub."""

    SOURCES = ("local", "hub")

    dataset_name: str | None = None  # required for hub
    text1_column: str = "text1"
    text2_column: str = "text2"


@dataclass
class SyntheticTextConfig(TaskConfig):
    """synthetic_text: SYNTHETIC bytes; labels "negative"/"positive". Filler words of 2-8 letters from a-w; the
    markers "xyz" and "zyx" occur n_pos != n_neg times (each in [1, max_marker_count], shuffled in); label 1 iff
    n_pos > n_neg. Documents have min_length to max_length ids, EOS included."""

    num_train: int = 2000
    num_validation: int = 500
    num_test: int = 500
    min_length: int = 256
    max_length: int = 1024
    max_marker_count: int = 8


@dataclass
class SyntheticRetrievalConfig(TaskConfig):
    """synthetic_retrieval: SYNTHETIC byte pairs; labels "different"/"same". Each document draws its own letter
    distribution ~ Dirichlet(alpha) over a-z and space; label 1: doc2 is doc1 with its chunk_size-byte chunks shuffled
    and a `noise` fraction of bytes resampled uniformly; label 0: an independent document of the same length
    (min_length to max_length ids, EOS included)."""

    num_train: int = 2000
    num_validation: int = 500
    num_test: int = 500
    min_length: int = 128  # per document
    max_length: int = 512
    noise: float = 0.3
    chunk_size: int = 16
    alpha: float = 1.0


SENTIMENT_NAMES = ["negative", "positive"]
PAIR_NAMES = ["different", "same"]


def _pair_ids(first: str, second: str) -> np.ndarray:
    """(2, L) byte ids of two documents, the shorter one right-padded with 0."""
    a, b = byte_ids(first), byte_ids(second)
    ids = np.zeros((2, max(len(a), len(b))), dtype=np.int16)  # (2 L)
    ids[0, : len(a)], ids[1, : len(b)] = a, b
    return ids


def _encode(batch: dict, indices: list[int], names, split, where, label_column, columns: tuple) -> dict:
    """Byte ids of one text column, or `_pair_ids` of two."""
    labels = encode_class_ids(batch[label_column], names, split, where, indices[0])
    if len(columns) == 1:
        return {"input_ids": [byte_ids(text) for text in batch[columns[0]]], "labels": labels}
    pairs = zip(batch[columns[0]], batch[columns[1]], strict=True)
    return {"input_ids": [_pair_ids(first, second) for first, second in pairs], "labels": labels}


@register_task("text", TextConfig)
def _build_text(config: TextConfig, seed: int) -> TaskData:
    def rename(names: list[str], integers: bool) -> list[str]:  # IMDB's ClassLabel names, or 0/1
        return SENTIMENT_NAMES if (integers or names == ["neg", "pos"]) and len(names) <= 2 else names

    columns = (config.text_column,)
    splits, where = labelled_splits(
        config, seed, _encode, token_features, columns, {"columns": columns}, rename=rename
    )
    description = f"text (bytes) from {describe_source(config)}"
    return TaskData(splits, build_byte_tokenizer(4096), description, where)


def _aan_rows(path: str, split: str) -> Iterator[dict]:
    """Rows of LRA's `new_aan_pairs.*.tsv` (label, id1, id2, text1, text2; tab separated, no header, no quoting); an
    empty file, a row without 5 fields or a label other than 0/1 is a ValueError naming the file and line."""
    rows, lines = [], []
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
                value = math.nan  # not an integer either
            if not value.is_integer():
                raise ValueError(f"{path} line {number}: label must be 0 or 1, got {fields[0]!r}")
            rows.append({"input_ids": _pair_ids(fields[3], fields[4]), "labels": int(value)})
            lines.append(number)
    if not rows:
        raise ValueError(f"{path}: empty {split} file (no rows)")
    check_labels(split, [r["labels"] for r in rows], 2, str(path), lines)
    yield from rows


@register_task("retrieval", RetrievalConfig)
def _build_retrieval(config: RetrievalConfig, seed: int) -> TaskData:
    files = {s: getattr(config, f"{s}_file") for s in SPLITS}
    # local .tsv files (or the default names) are LRA's AAN layout; other local files go through `datasets`
    if config.source == "local" and all(str(f or ".tsv").lower().endswith(".tsv") for f in files.values()):
        refuse_streaming(config, "LRA's AAN TSVs")
        defaults = {"train": "train", "validation": "eval", "test": "test"}
        paths = {s: str(resolve_path(config, f"{s}_file", f"new_aan_pairs.{defaults[s]}.tsv")) for s in SPLITS}
        splits, where = file_splits("aan-tsv", _aan_rows, paths, token_features(PAIR_NAMES, pair=True), config), paths
        origin = f"AAN TSVs {list(paths.values())}"
    else:
        columns = (config.text1_column, config.text2_column)

        def rename(names: list[str], integers: bool) -> list[str]:  # 0/1 labels
            return PAIR_NAMES if integers and len(names) <= 2 else names

        features = functools.partial(token_features, pair=True)
        splits, where = labelled_splits(config, seed, _encode, features, columns, {"columns": columns}, rename=rename)
        origin = describe_source(config)
    return TaskData(splits, build_byte_tokenizer(4096), f"retrieval (bytes) from {origin}", where, pair=True)


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


def _synthetic_text_rows(counts: tuple, seed: int, params: tuple) -> Iterator[dict]:
    """Seeded documents (one generator per split); label 1 iff "xyz" occurs more often than "zyx"."""
    min_length, _, max_marker_count = params
    if max_marker_count < 2 or 8 * max_marker_count >= min_length:
        raise ValueError(f"need 2 <= max_marker_count < min_length / 8, got {max_marker_count} and {min_length}")
    for i, n in enumerate(counts):
        rng = np.random.default_rng((seed, i))
        for _ in range(n):
            text, label = _synthetic_text(rng, *params)
            yield {"input_ids": byte_ids(text), "labels": label}


def _synthetic(config: Any, seed: int, rows: Any, params: tuple, pair: bool, what: str) -> TaskData:
    """The task of `rows(counts, seed, params)` (one seeded generator per split of byte ids)."""
    counts = (config.num_train, config.num_validation, config.num_test)
    features = token_features(PAIR_NAMES if pair else SENTIMENT_NAMES, pair=pair)
    pool = generated_dataset(config.task, rows, {"counts": counts, "seed": seed, "params": params}, features, config)
    splits = split_by_counts(pool, counts)
    sources = {s: f"{config.task} generated {s} split" for s in SPLITS}
    tokenizer = build_byte_tokenizer(config.max_length)
    return TaskData(splits, tokenizer, f"SYNTHETIC {what} (seed {seed})", sources, pair=pair)


@register_task("synthetic_text", SyntheticTextConfig)
def _build_synthetic_text(config: SyntheticTextConfig, seed: int) -> TaskData:
    params = (config.min_length, config.max_length, config.max_marker_count)
    return _synthetic(config, seed, _synthetic_text_rows, params, False, "marker-count text")


def _random_doc(rng: np.random.Generator, length: int, alpha: float) -> np.ndarray:
    probs = rng.dirichlet(np.full(len(_ALPHABET), alpha))
    return _ALPHABET[rng.choice(len(_ALPHABET), length, p=probs)]


def synthetic_retrieval_examples(
    n: int, seed: int | Sequence[int], min_length: int, max_length: int, noise: float, chunk_size: int, alpha: float
) -> list[dict]:
    """`n` seeded pairs of equally long documents (`text1`, `text2`); `labels` 1 iff text2 is a noisy, chunk-shuffled
    copy of text1."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        length, label = int(rng.integers(min_length, max_length + 1)) - 1, int(rng.integers(0, 2))  # bytes, no EOS
        doc = _random_doc(rng, length, alpha)
        if label:  # doc's chunks shuffled, a `noise` fraction of bytes resampled uniformly
            chunks = [doc[i : i + chunk_size] for i in range(0, length, chunk_size)]
            other = np.concatenate([chunks[i] for i in rng.permutation(len(chunks))])
            resample = rng.random(length) < noise
            other[resample] = _ALPHABET[rng.integers(0, len(_ALPHABET), int(resample.sum()))]
        else:
            other = _random_doc(rng, length, alpha)
        rows.append({"text1": doc.tobytes().decode(), "text2": other.tobytes().decode(), "labels": label})
    return rows


def _synthetic_retrieval_rows(counts: tuple, seed: int, params: tuple) -> Iterator[dict]:
    for i, n in enumerate(counts):
        for row in synthetic_retrieval_examples(n, (seed, i), *params):
            yield {"input_ids": _pair_ids(row["text1"], row["text2"]), "labels": row["labels"]}


@register_task("synthetic_retrieval", SyntheticRetrievalConfig)
def _build_synthetic_retrieval(config: SyntheticRetrievalConfig, seed: int) -> TaskData:
    params = (config.min_length, config.max_length, config.noise, config.chunk_size, config.alpha)
    return _synthetic(config, seed, _synthetic_retrieval_rows, params, True, "noisy-copy retrieval")
