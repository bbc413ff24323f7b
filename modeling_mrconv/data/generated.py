"""Generated (and LRA-release) tasks: listops, pathfinder, pathx (`generators/`, cached by
`caching.generated_dataset`; `source: local` reads the LRA release files) and digits (shipped with scikit-learn)."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modeling_mrconv.data import image
from modeling_mrconv.data.base import SPLITS, TaskConfig, check_labels, register_task, token_features, value_features
from modeling_mrconv.data.caching import file_splits, generated_dataset, split_by_counts
from modeling_mrconv.data.generators import listops, pathfinder
from modeling_mrconv.data.sources import resolve_path
from modeling_mrconv.data.task import TaskData
from modeling_mrconv.data.values import scale_values


DIGIT_NAMES = [str(i) for i in range(10)]
PATHFINDER_NAMES = ["disconnected", "connected"]


@dataclass
class ListOpsConfig(TaskConfig):
    """listops: tokens over `listops.LISTOPS_VOCAB`, pad 0, EOS appended; labels "0".."9"."""

    SOURCES = ("generate", "local")
    SOURCE_KEYS = {
        "generate": ("num_train", "num_validation", "num_test", "max_depth", "max_args", "min_length", "max_length"),
        "local": ("root", "train_file", "validation_file", "test_file"),
    }

    # generate: one pool of unique trees split in generation order (train, validation, test)
    num_train: int = 96000
    num_validation: int = 2000
    num_test: int = 2000
    max_depth: int = 10
    max_args: int = 10
    min_length: int = 500  # exclusive token-count window, without EOS
    max_length: int = 2000
    # local: LRA TSVs, relative to root when root is set
    root: str | None = None
    train_file: str = "basic_train.tsv"
    validation_file: str = "basic_val.tsv"
    test_file: str = "basic_test.tsv"


@dataclass
class PathfinderConfig(TaskConfig):
    """pathfinder: C=1, length resolution**2, values in [0, 1]; labels "disconnected"/"connected"."""

    SOURCES = ("generate", "local")
    SOURCE_KEYS = {
        "generate": ("resolution", "num_train", "num_validation", "num_test", "num_workers"),
        "local": ("root", "split_seed"),
    }

    resolution: int = 32  # generate; local reads it off the images
    contour_length: int = 14
    # generate (modeling_mrconv/data/generators/pathfinder.py)
    num_train: int = 8000
    num_validation: int = 1000
    num_test: int = 1000
    num_workers: int = 1  # generation processes; the images do not depend on it
    # local (LRA release): root holds `curv_contour_length_<contour_length>/`, or is that folder
    root: str | None = None
    split_seed: int = 42  # S4's 80/10/10 `random_split`


@dataclass
class PathXConfig(PathfinderConfig):
    """pathx: Pathfinder at 128 x 128."""

    resolution: int = 128


@dataclass
class DigitsConfig(TaskConfig):
    """digits: scikit-learn's 1797 8x8 digits; length 64, C=1, values / 16; labels "0".."9"."""

    SOURCES = ("sklearn", "generate")  # generate: an alias

    validation_fraction: float = 0.15  # stratified, seeded
    test_fraction: float = 0.15


def build_listops_tokenizer() -> Any:
    """A fast tokenizer over `LISTOPS_VOCAB` that reads raw LRA `Source` strings and appends `<eos>`: its ids equal
    `listops.encode_tokens(listops.lra_source_to_tokens(source))` (parentheses become spaces, then whitespace split)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(vocab=listops.TOKEN_TO_ID, unk_token=listops.UNK_TOKEN))
    backend.normalizer = normalizers.Sequence([normalizers.Replace("(", " "), normalizers.Replace(")", " ")])
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    eos = listops.EOS_TOKEN
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B:1 {eos}:1", special_tokens=[(eos, listops.EOS_ID)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=listops.PAD_TOKEN, eos_token=eos, unk_token=listops.UNK_TOKEN
    )


def _listops_rows(total: int, seed: int, params: tuple) -> Iterator[dict]:
    for example in listops.generate_listops(total, seed, *params):
        yield {"input_ids": example["input_ids"], "labels": example["label"]}


def _listops_tsv_rows(path: str, split: str) -> Iterator[dict]:
    """An LRA ListOps TSV's rows (`listops.read_lra_tsv`: ids with EOS), labels checked, errors naming file and line."""
    rows = listops.read_lra_tsv(path)
    if not rows:
        raise ValueError(f"{path}: empty {split} file (no rows after the header)")
    check_labels(split, [r["label"] for r in rows], 10, path, [r["line"] for r in rows])
    for row in rows:
        yield {"input_ids": row["input_ids"], "labels": row["label"]}


@register_task("listops", ListOpsConfig)
def _build_listops(config: ListOpsConfig, seed: int) -> TaskData:
    features = token_features(DIGIT_NAMES)
    if config.source == "generate":
        params = {k: getattr(config, k) for k in ("max_depth", "max_args", "min_length", "max_length")}
        counts = (config.num_train, config.num_validation, config.num_test)
        kwargs = {"total": sum(counts), "seed": seed, "params": tuple(params.values())}
        pool = generated_dataset("listops", _listops_rows, kwargs, features, config, [listops])
        splits, where = split_by_counts(pool, counts), f"generated (seed {seed}, {params})"
        sources = {s: f"listops generated {s} split" for s in SPLITS}
    else:
        sources = {s: str(resolve_path(config, f"{s}_file")) for s in SPLITS}
        splits = file_splits("listops-tsv", _listops_tsv_rows, sources, features, config, [listops])
        where = f"LRA TSVs {list(sources.values())}"
    return TaskData(splits, build_listops_tokenizer(), f"listops {where}", sources)


def _pathfinder_rows(chunks: list[tuple[int, int]], seed: int, params: tuple) -> Iterator[dict]:
    for start, stop in chunks:
        images, labels = pathfinder.generate_pathfinder(stop - start, seed, *params, start=start)
        for pixels, label in zip(images, labels, strict=True):
            yield {"pixels": pixels.reshape(-1, 1), "labels": int(label)}  # (H*W 1) uint8


def _pathfinder_files(base: Path) -> tuple[list[Path], list[tuple[str, int]]]:
    """The metadata files under `base` and their (image file, label) rows, checked row by row."""
    files = sorted((base / "metadata").glob("*.npy"), key=lambda p: (len(p.stem), p.stem))  # 0, 1, ..., 10, ...
    if not files:
        raise FileNotFoundError(f"no metadata/*.npy under {base} (LRA layout: curv_contour_length_14/metadata)")
    rows = []
    for f in files:  # whitespace-separated text despite the .npy name (or a real .npy array); a row per non-blank line
        if f.read_bytes()[:6] == b"\x93NUMPY":
            table = [[str(v) for v in row] for row in np.load(f, allow_pickle=False)]
        else:
            table = [line.split() for line in f.read_text().splitlines() if line.strip()]
        for number, r in enumerate(table, 1):
            if len(r) < 4 or r[3] not in ("0", "1"):
                raise ValueError(
                    f"{f} row {number}: expected 'folder file_name index label(0|1) ...', got {' '.join(r)[:80]!r}"
                )
            rows.append((str(base / r[0] / r[1]), int(r[3])))
    return files, rows


def _pathfinder_folder_rows(rows: tuple[tuple[str, int], ...]) -> Iterator[dict]:
    shape = None
    for path, label in rows:
        pixels = image.image_to_sequence(path, 1)  # (H*W 1) uint8
        if shape is not None and pixels.shape != shape:
            raise ValueError(f"{path}: image of {len(pixels)} pixels, the first had {shape[0]}")
        shape = pixels.shape
        yield {"pixels": pixels, "labels": label}


@register_task("pathx", PathXConfig)
@register_task("pathfinder", PathfinderConfig)
def _build_pathfinder(config: PathfinderConfig, seed: int) -> TaskData:
    features = value_features(1, PATHFINDER_NAMES, "uint8", "pixels")
    if config.source == "generate":
        counts = (config.num_train, config.num_validation, config.num_test)
        chunks = [(a, min(a + 1024, sum(counts))) for a in range(0, sum(counts), 1024)]  # shards of the workers
        kwargs = {"chunks": chunks, "seed": seed, "params": (config.resolution, config.contour_length)}
        workers = config.num_workers if config.num_workers > 1 else None
        pool = generated_dataset("pathfinder", _pathfinder_rows, kwargs, features, config, [pathfinder], workers)
        splits = split_by_counts(pool, counts)
        where = f"generated (seed {seed}, resolution {config.resolution}, contour_length {config.contour_length})"
        sources = {s: f"{config.task} generated {s} split" for s in SPLITS}
    else:
        root = Path(config.root).expanduser()
        base = root if (root / "metadata").is_dir() else root / f"curv_contour_length_{config.contour_length}"
        files, rows = _pathfinder_files(base)
        found = tuple((path, label) for path, label in rows if Path(path).exists())
        pool = generated_dataset(
            "pathfinder-lra", _pathfinder_folder_rows, {"rows": found}, features, config, [image], files=files
        )
        # as S4: torch.utils.data.random_split(dataset, (80%, 10%, 10%), generator=torch.Generator().manual_seed(42))
        n, tenth = len(found), int(0.1 * len(found))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(config.split_seed)).numpy()
        splits = split_by_counts(pool.select(order), (n - 2 * tenth, tenth, tenth))
        where = f"local LRA folder {base} ({len(rows) - n} missing files skipped)"
        sources = {s: f"{base} {s} split" for s in SPLITS}
    splits, _, _ = scale_values(splits, config, "pixels", 1 / 255)
    return TaskData(splits, None, f"{config.task} {where}", sources, input_scale=1 / 255)


def _digits_split(seed: int, validation_fraction: float, test_fraction: float) -> list[np.ndarray]:
    """Stratified, seeded train/validation/test indices of scikit-learn's digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    labels = load_digits().target
    train, rest = train_test_split(
        np.arange(len(labels)), test_size=validation_fraction + test_fraction, stratify=labels, random_state=seed
    )
    share = test_fraction / (validation_fraction + test_fraction)
    validation, test = train_test_split(rest, test_size=share, stratify=labels[rest], random_state=seed)
    return [np.sort(i) for i in (train, validation, test)]


def _digits_rows(seed: int, validation_fraction: float, test_fraction: float) -> Iterator[dict]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = digits.images.astype(np.uint8).reshape(len(digits.images), 64, 1)  # (N 64 1), values 0..16
    for indices in _digits_split(seed, validation_fraction, test_fraction):
        for i in indices:
            yield {"pixels": pixels[i], "labels": int(digits.target[i])}


@register_task("digits", DigitsConfig)
def _build_digits(config: DigitsConfig, seed: int) -> TaskData:
    fractions = {"validation_fraction": config.validation_fraction, "test_fraction": config.test_fraction}
    counts = [len(i) for i in _digits_split(seed, **fractions)]
    features = value_features(1, DIGIT_NAMES, "uint8", "pixels")
    pool = generated_dataset("digits", _digits_rows, {"seed": seed, **fractions}, features, config)
    splits, _, _ = scale_values(split_by_counts(pool, counts), config, "pixels", 1 / 16)
    sources = {s: f"digits {s} split" for s in SPLITS}
    return TaskData(splits, None, f"digits (sklearn load_digits, split seed {seed})", sources, input_scale=1 / 16)
