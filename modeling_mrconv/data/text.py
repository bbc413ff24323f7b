"""Byte-level text tasks: text (IMDB), retrieval (AAN), synthetic_text, synthetic_retrieval (ByT5 ids, vocab 259).

Texts are encoded by one batched `map` (`_encode_text`, `_encode_pairs`): UTF-8 bytes + 3, then EOS, as
`build_byte_tokenizer` does; `load_task` cuts them to the model's `max_sequence_length` (per document for pairs).
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeling_mrconv import build_byte_tokenizer
from modeling_mrconv.data.base import SPLITS, TaskConfig, byte_ids, check_labels, register_task, token_features
from modeling_mrconv.data.caching import generated_dataset, map_batches, split_by_counts
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

    SOURCES = ("hub", "local")

    dataset_name: str | None = "imdb"
    text_column: str = "text"


@dataclass
class RetrievalConfig(HFSourceConfig):
    """retrieval: two ByT5 documents per example; labels "different"/"same".

    local: .tsv files (null = new_aan_pairs.{train,eval,test}.tsv under root) are LRA's layout (label, id1, id2,
    text1, text2; tab separated, no header); other local files go through `datasets` like hub.
    """

    SOURCES = ("local", "hub")

    dataset_name: str | None = None  # required for hub
    text1_column: str = "text1"
    text2_column: str = "text2"


@dataclass
class SyntheticTextConfig(TaskConfig):
    """synthetic_text: SYNTHETIC bytes; labels "negative"/"positive".

    Filler words of 2-8 letters from a-w; the markers "xyz" and "zyx" occur n_pos != n_neg times (each in
    [1, max_marker_count], shuffled in); label 1 iff n_pos > n_neg. Documents have min_length to max_length ids, EOS
    included.
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
    document of the same length (min_length to max_length ids, EOS included).
    """

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


def _encode_text(batch: dict, indices: list[int], names, split, where, label_column, column: str) -> dict:
    labels = encode_class_ids(batch[label_column], names, split, where, indices[0])
    return {"input_ids": [byte_ids(text) for text in batch[column]], "labels": labels}


def _encode_pairs(batch: dict, indices: list[int], names, split, where, label_column, columns: tuple) -> dict:
    labels = encode_class_ids(batch[label_column], names, split, where, indices[0])
    rows = []
    for first, second in zip(batch[columns[0]], batch[columns[1]], strict=True):
        a, b = byte_ids(first), byte_ids(second)
        ids = np.zeros((2, max(len(a), len(b))), dtype=np.int16)  # (2 L_i): pad 0 after the shorter
        ids[0, : len(a)], ids[1, : len(b)] = a, b
        rows.append(ids)
    return {"input_ids": rows, "labels": labels}


def _encoded(splits: Any, config: TaskConfig, names: list[str], pair: bool, columns: tuple[str, ...]) -> Any:
    """Generated text splits (`columns` and ClassLabel `labels`) -> byte ids."""
    function = _encode_pairs if pair else _encode_text
    for split in SPLITS:
        kwargs = {"names": names, "split": split, "where": f"{split} split", "label_column": "labels"}
        kwargs.update({"columns": columns} if pair else {"column": columns[0]})
        splits[split] = map_batches(splits[split], function, token_features(names, pair), config, kwargs, True)
    return splits


@register_task("text", TextConfig)
def _build_text(config: TextConfig, seed: int) -> TaskData:
    def rename(names: list[str], integers: bool) -> list[str]:  # IMDB's ClassLabel names, or 0/1
        return SENTIMENT_NAMES if (integers or names == ["neg", "pos"]) and len(names) <= 2 else names

    column = config.text_column
    splits, where = labelled_splits(
        config, seed, _encode_text, token_features, (column,), {"column": column}, rename=rename
    )
    description = f"text (bytes) from {describe_source(config)}"
    return TaskData(splits, build_byte_tokenizer(4096), description, where)


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


def _aan_rows(path: str, split: str) -> Iterator[dict]:
    for a, b, label in zip(*read_aan_tsv(path, split), strict=True):
        yield {"text1": a, "text2": b, "labels": label}


@register_task("retrieval", RetrievalConfig)
def _build_retrieval(config: RetrievalConfig, seed: int) -> TaskData:
    from datasets import ClassLabel, DatasetDict, Features, Value

    files = {s: getattr(config, f"{s}_file") for s in SPLITS}
    # local .tsv files (or the default names) are LRA's AAN layout; other local files go through `datasets`
    if config.source == "local" and all(str(f or ".tsv").lower().endswith(".tsv") for f in files.values()):
        refuse_streaming(config, "LRA's AAN TSVs")
        defaults = {"train": "train", "validation": "eval", "test": "test"}
        paths = {s: str(resolve_path(config, f"{s}_file", f"new_aan_pairs.{defaults[s]}.tsv")) for s in SPLITS}
        for split, path in paths.items():
            if not Path(path).is_file():
                raise FileNotFoundError(f"{split}_file {path} does not exist")
        raw = Features({"text1": Value("string"), "text2": Value("string"), "labels": ClassLabel(names=PAIR_NAMES)})
        splits = DatasetDict(
            {
                s: generated_dataset("aan-tsv", _aan_rows, {"path": p, "split": s}, raw, config, files=[p])
                for s, p in paths.items()
            }
        )
        splits, where = _encoded(splits, config, PAIR_NAMES, True, ("text1", "text2")), paths
        origin = f"AAN TSVs {list(paths.values())}"
    else:
        columns = (config.text1_column, config.text2_column)
        splits, where = labelled_splits(
            config,
            seed,
            _encode_pairs,
            lambda names: token_features(names, pair=True),
            columns,
            {"columns": columns},
            rename=lambda names, integers: PAIR_NAMES if integers and len(names) <= 2 else names,
        )
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


def synthetic_text_examples(
    n: int, seed: int | Sequence[int], min_length: int = 256, max_length: int = 1024, max_marker_count: int = 8
) -> tuple[list[str], list[int]]:
    """`n` seeded documents; label 1 iff "xyz" occurs more often than "zyx" (counts differ, both >= 1)."""
    if max_marker_count < 2 or 8 * max_marker_count >= min_length:
        raise ValueError(f"need 2 <= max_marker_count < min_length / 8, got {max_marker_count} and {min_length}")
    rng = np.random.default_rng(seed)
    docs = [_synthetic_text(rng, min_length, max_length, max_marker_count) for _ in range(n)]
    return [d for d, _ in docs], [y for _, y in docs]


def _synthetic_text_rows(counts: tuple, seed: int, params: tuple) -> Iterator[dict]:
    for i, n in enumerate(counts):
        for text, label in zip(*synthetic_text_examples(n, (seed, i), *params), strict=True):
            yield {"text": text, "labels": label}


def _synthetic(name: str, rows: Any, config: Any, seed: int, params: tuple, columns: tuple[str, ...]) -> Any:
    """Generated text splits of `rows(counts, seed, params)`, one seeded generator per split, byte-encoded."""
    from datasets import ClassLabel, Features, Value

    counts = (config.num_train, config.num_validation, config.num_test)
    names = PAIR_NAMES if len(columns) == 2 else SENTIMENT_NAMES
    raw = Features({**{c: Value("string") for c in columns}, "labels": ClassLabel(names=names)})
    pool = generated_dataset(name, rows, {"counts": counts, "seed": seed, "params": params}, raw, config)
    return _encoded(split_by_counts(pool, counts), config, names, len(columns) == 2, columns)


@register_task("synthetic_text", SyntheticTextConfig)
def _build_synthetic_text(config: SyntheticTextConfig, seed: int) -> TaskData:
    params = (config.min_length, config.max_length, config.max_marker_count)
    splits = _synthetic("synthetic_text", _synthetic_text_rows, config, seed, params, ("text",))
    sources = {s: f"synthetic_text generated {s} split" for s in SPLITS}
    description = f"SYNTHETIC marker-count text (seed {seed})"
    return TaskData(splits, build_byte_tokenizer(config.max_length), description, sources)


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


def _synthetic_retrieval_rows(counts: tuple, seed: int, params: tuple) -> Iterator[dict]:
    for i, n in enumerate(counts):
        for a, b, label in zip(*synthetic_retrieval_examples(n, (seed, i), *params), strict=True):
            yield {"text1": a, "text2": b, "labels": label}


@register_task("synthetic_retrieval", SyntheticRetrievalConfig)
def _build_synthetic_retrieval(config: SyntheticRetrievalConfig, seed: int) -> TaskData:
    params = (config.min_length, config.max_length, config.noise, config.chunk_size, config.alpha)
    columns = ("text1", "text2")
    splits = _synthetic("synthetic_retrieval", _synthetic_retrieval_rows, config, seed, params, columns)
    sources = {s: f"synthetic_retrieval generated {s} split" for s in SPLITS}
    description = f"SYNTHETIC noisy-copy retrieval (seed {seed})"
    return TaskData(splits, build_byte_tokenizer(config.max_length), description, sources, pair=True)
