"""Hub and local data read through `datasets` (memory-mapped or streamed): the shared keys, class names and label
encoding, the preprocessing map of each split and the seeded validation carve.

Labels: `label_names` when given, else the label column's `ClassLabel` names, else the train split's sorted string
labels, else the integers 0..max(train) as names. String labels are looked up by name, integer labels are class ids;
every row's label is checked as the split is preprocessed, errors naming the file (or data set and split) and row."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modeling_mrconv.data.base import SPLITS, TaskConfig, check_labels
from modeling_mrconv.data.caching import map_batches


@dataclass
class HFSourceConfig(TaskConfig):
    """Keys of the tasks read through `datasets` (`source: hub` or `source: local`)."""

    SOURCES = ("hub", "local")

    # hub
    dataset_name: str | None = None
    dataset_config: str | None = None
    load_kwargs: dict = field(default_factory=dict)  # extra `load_dataset` arguments
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
    # read the splits as `IterableDataset`s, never whole (train.max_steps and model.max_sequence_length required;
    # hub data, data files and save_to_disk folders; labels from label_names or a ClassLabel column)
    streaming: bool = False
    shuffle_buffer: int = 1000  # streaming: preprocessed train examples held to shuffle the stream


_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_FILE_BUILDERS[".arrow"] = "arrow"
STREAM_CLASSES = (
    "data.label_names: a stream cannot be scanned for its classes; give data.label_names or a label column with a "
    "ClassLabel feature"
)


def resolve_path(config: Any, key: str, default_name: str | None = None) -> Path | None:
    """Path of `config.<key>` (or `default_name`), relative to `config.root` when that is set."""
    value = getattr(config, key) or default_name
    if value is None:
        return None
    return (Path(config.root) / value if config.root is not None else Path(value)).expanduser()


def _has_split_files(config: HFSourceConfig) -> bool:
    return any(getattr(config, f"{s}_file") for s in SPLITS)


def is_plain_folder(config: HFSourceConfig) -> bool:
    """`source: local` with a `root` that is neither a `save_to_disk` DatasetDict nor used with <split>_file keys."""
    return (
        config.source == "local"
        and config.root is not None
        and not (Path(config.root).expanduser() / "dataset_dict.json").exists()
        and not _has_split_files(config)
    )


def _parquet_stream_options() -> dict[str, Any]:
    """Parquet streamed without pre-buffering: pyarrow's read cache would otherwise keep every byte of a file read so
    far until the file ends (measured: the RSS grows by the file's size), i.e. hold a whole one-file split."""
    import pyarrow.dataset

    return {"fragment_scan_options": pyarrow.dataset.ParquetFragmentScanOptions(pre_buffer=False)}


def _from_disk(path: Path, streaming: bool) -> Any:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if not streaming:
        return loaded
    if isinstance(loaded, datasets.DatasetDict):
        return datasets.IterableDatasetDict({k: v.to_iterable_dataset() for k, v in loaded.items()})
    return loaded.to_iterable_dataset()


def load_local_file(path: Path, config: HFSourceConfig, split: str) -> Any:
    """One split from a data file or a `save_to_disk` folder (a `Dataset`, or an `IterableDataset` when streaming)."""
    import datasets

    if not path.exists():
        raise FileNotFoundError(f"{split}_file {path} does not exist")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path}: empty {split} file (no rows)")
    if path.is_dir():
        loaded = _from_disk(path, config.streaming)
        if isinstance(loaded, datasets.DatasetDict | datasets.IterableDatasetDict):
            raise ValueError(f"{path} is a DatasetDict; pass it as `root` instead of a split file")
        return loaded
    builder = _FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of {sorted(_FILE_BUILDERS)}")
    kwargs = {"cache_dir": config.cache_dir, "streaming": config.streaming}
    if path.suffix.lower() == ".tsv":
        kwargs["delimiter"] = "\t"
    if builder == "parquet" and config.streaming:
        kwargs.update(_parquet_stream_options())
    return datasets.load_dataset(builder, data_files={"data": str(path)}, split="data", **kwargs)


def load_hf_splits(config: HFSourceConfig, read_file: Callable[..., Any] = load_local_file) -> dict[str, Any]:
    """Train/validation/test splits from the Hub, a `save_to_disk` DatasetDict or local files (each read by
    `read_file(path, config, split)`); validation is None when absent. A Hub dataset that cannot be loaded (e.g.
    offline and not cached) is a RuntimeError naming it."""
    import datasets

    if config.source == "local" and (config.root is None or _has_split_files(config)):
        files = {s: resolve_path(config, f"{s}_file") for s in SPLITS}
        for split in ("train", "test"):
            if files[split] is None:
                raise ValueError(f"task {config.task!r} with source: local needs `{split}_file` (or `root`)")
        return {s: None if path is None else read_file(path, config, s) for s, path in files.items()}
    if config.source == "hub":
        if config.dataset_name is None:
            raise ValueError(f"task {config.task!r} with source: hub needs `dataset_name`")
        name, subset, extra = config.dataset_name, config.dataset_config, config.load_kwargs
        kwargs = {"cache_dir": config.cache_dir, "streaming": config.streaming, **extra}
        try:
            if config.streaming and datasets.load_dataset_builder(name, subset, **extra).name == "parquet":
                kwargs = {**_parquet_stream_options(), **kwargs}
            loaded = datasets.load_dataset(name, subset, **kwargs)
        except Exception as err:  # offline, missing, gated, script-based, ...: re-raise naming the dataset
            raise RuntimeError(
                f"Could not load Hub dataset {name!r} (config {subset!r}): {err}. Without network access, download "
                "it elsewhere and use `source: local` (a save_to_disk folder or data files)."
            ) from err
    else:
        loaded = _from_disk(Path(config.root).expanduser(), config.streaming)
        if not isinstance(loaded, datasets.DatasetDict | datasets.IterableDatasetDict):
            raise ValueError(f"{config.root} holds a single Dataset; save a DatasetDict or use <split>_file keys")
    names = {s: getattr(config, f"{s}_split") for s in SPLITS}
    missing = [names[s] for s in ("train", "test") if names[s] not in loaded]
    if missing:
        raise ValueError(f"missing split(s) {missing} (set train_split/test_split); found {sorted(loaded)}")
    return {s: loaded.get(names[s]) for s in SPLITS}


def refuse_streaming(config: HFSourceConfig, what: str) -> None:
    """`data.streaming` reads data files and Hub sets through `datasets`; `what` is read whole."""
    if config.streaming:
        raise ValueError(
            f"data.streaming: {what} are read whole; streaming takes the Hub or data files read by datasets "
            "(csv, json, parquet, arrow, save_to_disk folders)"
        )


def split_origin(config: HFSourceConfig, split: str) -> str:
    """Where `split` of a hub/local source comes from, for error messages: its file, or data set and split."""
    path = resolve_path(config, f"{split}_file") if config.source == "local" else None
    if path is not None:
        return str(path)
    origin = config.dataset_name if config.source == "hub" else config.root
    return f"{config.source} {origin} split {getattr(config, f'{split}_split')!r}"


def describe_source(config: HFSourceConfig) -> str:
    if config.source == "hub":
        return f"hub {config.dataset_name}"
    return f"local {config.root or [getattr(config, f'{s}_file') for s in SPLITS]}"


def check_columns(dataset: Any, columns: tuple[str, ...], split: str, where: str, hint: str = "") -> Any:
    """The split, after checking it has rows (unless streamed) and `columns` (ValueError naming file and columns)."""
    from datasets import IterableDataset

    if isinstance(dataset, IterableDataset):
        dataset = dataset._resolve_features() if dataset.features is None else dataset
    elif len(dataset) == 0:
        raise ValueError(f"{where}: the {split} split is empty (no rows)")
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{where}: the {split} split has no column(s) {missing}{hint}; columns: {dataset.column_names}"
        )
    return dataset


def declared_names(dataset: Any, column: str) -> list[str] | None:
    """The names of `column`'s ClassLabel feature in `dataset`, or None."""
    feature = dataset.features.get(column) if dataset.features else None
    return list(feature.names) if hasattr(feature, "names") else None


def class_names(config: HFSourceConfig, train: Any) -> tuple[list[str], bool]:
    """The class names (module docstring) and whether they are integers named by themselves (no names in the data)."""
    from datasets import IterableDataset

    names = config.label_names or declared_names(train, config.label_column)
    if names:
        return [str(n) for n in names], False
    if isinstance(train, IterableDataset):
        raise ValueError(STREAM_CLASSES)
    values = [v for v in train.unique(config.label_column) if v is not None]
    if any(isinstance(v, str) for v in values):
        return sorted({str(v) for v in values}), False
    integral = [int(v) for v in values if not isinstance(v, bool) and float(v).is_integer()]
    return [str(i) for i in range(max(integral, default=0) + 1)], True


def encode_class_ids(values: list, names: list[str], split: str, where: str, first_row: int = 0) -> np.ndarray:
    """String labels looked up in `names`, integer labels kept; every one checked against the classes."""
    index = {n: i for i, n in enumerate(names)}
    codes = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if isinstance(v, str):
            if v not in index:
                raise ValueError(
                    f"{where}: {split} split row {first_row + i}: label {v!r} is not among the label names {names}"
                )
            codes[i] = index[v]
            continue
        try:
            integral = not isinstance(v, bool) and float(v).is_integer()
        except (TypeError, ValueError):  # None, lists, ...
            integral = False
        if not integral:
            raise ValueError(
                f"{where}: {split} split row {first_row + i}: label {v!r} is not an integer class id or a name"
            )
        codes[i] = int(v)
    check_labels(split, codes, len(names), where, first_row=first_row)
    return codes


def carve_validation(splits: dict[str, Any], config: HFSourceConfig, seed: int, where: dict[str, str]) -> None:
    """Carve a seeded `validation_fraction` of train (rows in file order) into validation when there is none."""
    if splits["validation"] is not None:
        return
    if config.streaming:
        raise ValueError(
            "data.streaming: a stream has no length to carve validation_fraction from; give a validation split "
            "(validation_file, or a Hub split named by validation_split)"
        )
    n, fraction = len(splits["train"]), config.validation_fraction
    order = np.random.default_rng(seed).permutation(n)
    n_carved = round(n * fraction)
    if not 0 < n_carved < n:
        raise ValueError(f"validation_fraction={fraction} leaves an empty split of {n} examples")
    splits["validation"] = splits["train"].select(np.sort(order[:n_carved]))
    splits["train"] = splits["train"].select(np.sort(order[n_carved:]))
    where["validation"] = f"validation carved from {where['train']}"


def dataset_dict(splits: dict[str, Any]) -> Any:
    """`splits` as a DatasetDict, or an IterableDatasetDict when streamed."""
    from datasets import DatasetDict, IterableDataset, IterableDatasetDict

    return (IterableDatasetDict if isinstance(splits["train"], IterableDataset) else DatasetDict)(splits)


def labelled_splits(
    config: HFSourceConfig,
    seed: int,
    convert: Callable[..., dict],
    features: Callable[[list[str]], Any],
    input_columns: tuple[str, ...],
    fn_kwargs: dict[str, Any] | None = None,
    rename: Callable[[list[str], bool], list[str]] | None = None,
) -> tuple[Any, dict[str, str]]:
    """(splits, {split: where it came from}): the splits loaded, their `input_columns` and label column checked, each
    mapped by `convert(batch, indices, names, split, where, label_column, **fn_kwargs)` to `features(names)` (it
    encodes the labels with `encode_class_ids` and the inputs) and validation carved when there is none. `rename`
    maps (class names, whether they are integers) to the names to use (e.g. IMDB's "neg"/"pos")."""
    from datasets import Audio, Image

    raw = load_hf_splits(config)
    where = {s: split_origin(config, s) for s, ds in raw.items() if ds is not None}
    hint = " (data.label_column and the task's input column keys)"
    for s in where:
        raw[s] = check_columns(raw[s], (*input_columns, config.label_column), s, where[s], hint)
        for column in input_columns:  # images and audio are decoded by `convert` (PIL, `wave`), one row at a time
            feature = raw[s].features[column]
            if isinstance(feature, Image | Audio):
                raw[s] = raw[s].cast_column(column, type(feature)(decode=False))
    names, integers = class_names(config, raw["train"])
    names = rename(names, integers) if rename is not None else names
    out = dict.fromkeys(SPLITS)
    for s in where:
        kwargs = dict(fn_kwargs or {}, names=names, split=s, where=where[s], label_column=config.label_column)
        out[s] = map_batches(raw[s], convert, features(names), config, kwargs, with_indices=True)
    carve_validation(out, config, seed, where)
    return dataset_dict(out), where
