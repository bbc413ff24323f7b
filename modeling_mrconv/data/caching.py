"""Generated splits and preprocessing through `datasets`' cache, keyed by every parameter and the code that runs.

`datasets` fingerprints a function of an importable module by its name, not its code, so every fingerprint here is
explicit: the step's name, its parameters and the sha256 of the source files of the modules that compute it
(`code_hash`), so no cached entry is served for other parameters, seed or code; `cache: false` builds in memory."""

import functools
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from modeling_mrconv.data.base import SPLITS, TaskConfig


@functools.cache
def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_hash(*modules: ModuleType | str) -> str:
    """sha256 over the source files of `modules` (module objects or names), in order."""
    files = [sys.modules[m].__file__ if isinstance(m, str) else m.__file__ for m in modules]
    return hashlib.sha256("".join(_file_hash(f) for f in files).encode()).hexdigest()


def fingerprint(*parts: Any) -> str:
    """A 32-hex-digit key of JSON-serializable `parts` (tuples as lists, other objects by `str`)."""
    text = json.dumps(parts, sort_keys=True, default=lambda v: v.tolist() if isinstance(v, np.ndarray) else str(v))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def generated_dataset(
    name: str,
    generator: Callable[..., Iterator[dict]],
    gen_kwargs: dict[str, Any],
    features: Any,
    config: TaskConfig,
    code: Sequence[ModuleType | str] = (),
    num_proc: int | None = None,
    files: Sequence[str | Path] = (),
) -> Any:
    """`Dataset.from_generator(generator, gen_kwargs)` with explicit `features`, cached under a fingerprint of `name`,
    `gen_kwargs`, `features`, the code of the generator's module and of `code` (the modules it calls) and the path,
    size and mtime of the `files` read. Lists in `gen_kwargs` are shards (split over `num_proc` processes, in order);
    pass tuples for anything else. The generator's ValueError/FileNotFoundError reach the caller."""
    from datasets import Dataset
    from datasets.exceptions import DatasetGenerationError

    paths = [Path(f).expanduser().resolve() for f in files]
    stamps = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]
    key = fingerprint(name, gen_kwargs, features.to_dict(), code_hash(generator.__module__, *code), stamps)
    kwargs = {"features": features, "gen_kwargs": gen_kwargs, "fingerprint": key, "num_proc": num_proc}
    try:
        if config.cache:
            return Dataset.from_generator(generator, cache_dir=config.cache_dir, **kwargs)
        with tempfile.TemporaryDirectory() as tmp:  # read into memory, then the files go
            return Dataset.from_generator(generator, cache_dir=tmp, keep_in_memory=True, **kwargs)
    except DatasetGenerationError as err:  # the reader's own error (naming the file and row), not datasets' wrapper
        cause = err.__cause__
        raise (cause if isinstance(cause, ValueError | FileNotFoundError | ImportError) else err) from err


def file_splits(
    name: str,
    rows: Callable[..., Iterator[dict]],
    paths: dict[str, str],
    features: Any,
    config: TaskConfig,
    code: Sequence[ModuleType | str] = (),
) -> Any:
    """A DatasetDict of one `generated_dataset` per local file: split `s` holds `rows(path=paths[s], split=s)`."""
    from datasets import DatasetDict

    splits = {}
    for split, path in paths.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{split}_file {path} does not exist")
        gen_kwargs = {"path": path, "split": split}
        splits[split] = generated_dataset(name, rows, gen_kwargs, features, config, code, files=[path])
    return DatasetDict(splits)


def split_by_counts(dataset: Any, counts: Sequence[int]) -> Any:
    """A DatasetDict of consecutive rows: the first counts[0] are train, the next counts[1] validation, then test."""
    from datasets import DatasetDict

    if len(dataset) != sum(counts):
        raise ValueError(f"expected {sum(counts)} generated rows, got {len(dataset)}")
    bounds = np.cumsum([0, *counts])
    return DatasetDict({s: dataset.select(range(bounds[i], bounds[i + 1])) for i, s in enumerate(SPLITS)})


def map_batches(
    dataset: Any,
    function: Callable[..., dict],
    features: Any,
    config: TaskConfig,
    fn_kwargs: dict[str, Any] | None = None,
    with_indices: bool = False,
    numpy: bool = False,
    code: Sequence[ModuleType | str] = (),
) -> Any:
    """`dataset.map(function, batched=True)` to exactly `features` (other columns dropped), cached under a fingerprint
    of the input's, the function, `fn_kwargs` and the code of its module and of `code` (the modules it calls), or lazy
    on an `IterableDataset`. `function(batch, [indices,] **fn_kwargs)` gets rows numbered in `dataset`, as Python
    lists, or numpy arrays with `numpy`."""
    from datasets import IterableDataset

    dataset = dataset.with_format("numpy" if numpy else None)
    fn_kwargs = fn_kwargs or {}
    remove = list(dataset.column_names or [])  # removed before the outputs are written: same names are replaced
    common = {"batched": True, "with_indices": with_indices, "features": features, "fn_kwargs": fn_kwargs}
    if isinstance(dataset, IterableDataset):  # small batches: a stream holds a few rows per step, whatever their size
        return dataset.map(function, batch_size=16, remove_columns=remove or None, **common)
    name = getattr(function, "__qualname__", repr(function))
    key = fingerprint(dataset._fingerprint, name, fn_kwargs, features.to_dict(), code_hash(function.__module__, *code))
    desc = name.lstrip("_").replace("_", " ")
    return dataset.map(
        function,
        batch_size=256,
        remove_columns=remove,
        new_fingerprint=key,
        keep_in_memory=not config.cache,
        desc=desc,
        **common,
    )
