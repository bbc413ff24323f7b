"""`TaskData` and `load_task`: a preset's `data:` section -> `datasets` splits, their collator and tokenizer.

`max_sequence_length` (the model's) is the one source of the sequence length: `load_task` cuts token sequences to it
(keeping the EOS) and refuses a longer continuous sequence, naming the file and row. Without it, nothing is cut and
`TaskData.max_length` is the longest sequence of the splits."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from transformers import DataCollatorWithPadding

from modeling_mrconv.data.base import SPLITS, check_labels, check_task_keys
from modeling_mrconv.data.caching import map_batches
from modeling_mrconv.data.collate import ContinuousCollator, PairCollator


@dataclass
class TaskData:
    """A task's splits and what a model and a DataLoader need from them (`load_task` fills every field).

    The splits are `datasets.Dataset`s (memory-mapped Arrow) or, with `data.streaming: true`, `IterableDataset`s (the
    train stream shuffled with a buffer). Items are `{"input_ids": LongTensor (L,) or (2, L) for document pairs, the
    shorter one right-padded, "labels": int}` or `{"input_values": FloatTensor (L, C), "labels": int}`;
    `collate_fn` pads a list of them into a batch with `attention_mask`.
    """

    splits: Any  # DatasetDict | IterableDatasetDict with the three SPLITS
    tokenizer: Any | None  # token tasks: the tokenizer that pads batches and ships with the export; else None
    description: str  # one line: where the data came from and the split sizes
    sources: dict[str, str]  # where each split came from (file, or data set and split), for messages
    pair: bool = False  # two documents per example (retrieval)
    # continuous tasks: a raw value x (pixel, sample) became (x * input_scale - input_mean) / input_std
    input_scale: float | None = None
    input_mean: list[float] | None = None  # (C), null = 0
    input_std: list[float] | None = None  # (C), null = 1
    # from the data: the ClassLabel names of the labels, the channels C of input_values (None for tokens), the
    # tokenizer's id space and pad id (None for continuous inputs), the longest sequence a batch may hold
    id2label: dict[int, str] | None = None
    input_dim: int | None = None
    vocab_size: int | None = None
    pad_token_id: int | None = None
    max_length: int | None = None
    collate_fn: Callable[[list[dict]], dict] | None = None

    @property
    def train(self) -> Any:
        return self.splits["train"]

    @property
    def validation(self) -> Any:
        return self.splits["validation"]

    @property
    def test(self) -> Any:
        return self.splits["test"]

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def streaming(self) -> bool:
        from datasets import IterableDataset

        return isinstance(self.train, IterableDataset)

    @property
    def input_name(self) -> str:
        return "input_ids" if self.tokenizer is not None else "input_values"


def load_task(data_cfg: dict, seed: int = 0, max_sequence_length: int | None = None) -> TaskData:
    """A task's `TaskData` from its `data:` section (the fields of its config dataclass in `TASKS`; an unknown key,
    or one of another source, is a ValueError); the same config and `seed` (the default `data_seed`) give the same
    data. `max_sequence_length`: the module docstring (required with `data.streaming: true`). Every split has rows and
    labels in [0, num_labels), checked before any training (while streaming: as the rows are read)."""
    spec = check_task_keys(data_cfg)
    config = spec.config_cls(**data_cfg)
    seed = seed if config.data_seed is None else int(config.data_seed)
    task = spec.builder(config, seed)
    features = task.train.features
    task.id2label = dict(enumerate(features["labels"].names))
    if task.tokenizer is None:
        task.input_dim = int(features["input_values"].shape[1])
        task.collate_fn = ContinuousCollator()
    else:
        task.vocab_size, task.pad_token_id = len(task.tokenizer), task.tokenizer.pad_token_id
        task.collate_fn = PairCollator(task.pad_token_id) if task.pair else DataCollatorWithPadding(task.tokenizer)
    task.max_length = _fit_length(task, config, max_sequence_length)
    if task.tokenizer is not None:
        task.tokenizer.model_max_length = task.max_length
    if task.streaming:
        buffer = int(config.shuffle_buffer)
        if buffer < 1:
            raise ValueError(f"data.shuffle_buffer: expected a positive number of examples, got {buffer}")
        # the sources' order shuffled (files, parquet row groups), then a buffer; one source read at a time: datasets
        # reads several in threads otherwise, and the process's memory grew with the data read (measured)
        task.splits["train"] = task.train.shuffle(seed=seed, buffer_size=buffer, max_buffer_input_shards=1)
        task.splits = task.splits.with_format(None)  # the collators make the tensors (faster than formatting rows)
        sizes = "streamed"
    else:
        for split in SPLITS:  # the builders check their files row by row; this is the net under every task
            labels = np.asarray(task.splits[split].with_format("arrow")["labels"])
            check_labels(split, labels, task.num_labels, f"task {spec.name!r} ({task.description})")
        task.splits = task.splits.with_format("torch", columns=[task.input_name], output_all_columns=True)
        sizes = "/".join(str(len(task.splits[s])) for s in SPLITS)
    task.description = f"{task.description}: {sizes} train/validation/test"
    return task


def sequence_lengths(dataset: Any, name: str, pair: bool = False) -> np.ndarray:
    """Sequence length of every row of a `Dataset` (the longer document of a pair), read from the Arrow offsets."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = []
    for batch in dataset.with_format("arrow").iter(batch_size=10_000):
        for chunk in batch[name].chunks:
            chunk = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk  # Array2D: list<list> storage
            if pair:  # (2, L) rows
                inner = pc.list_value_length(pc.list_flatten(chunk)).to_numpy(zero_copy_only=False)
                lengths.append(inner.reshape(-1, 2).max(1))
            else:
                lengths.append(pc.list_value_length(chunk).to_numpy(zero_copy_only=False))
    return np.concatenate(lengths) if lengths else np.zeros(0, np.int64)


def _fit_length(task: TaskData, config: Any, limit: int | None) -> int:
    """Cut token sequences to `limit` or refuse longer continuous ones (the one length check); returns the length."""
    name, token = task.input_name, task.tokenizer is not None
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 2):
        raise ValueError(f"max_sequence_length: expected an integer >= 2 or null, got {limit!r}")
    cut = {"limit": limit, "pair": task.pair}
    if token:
        cut.update(eos=task.tokenizer.eos_token_id, pad=task.tokenizer.pad_token_id)
    if task.streaming:
        if limit is None:
            raise ValueError(
                "data.streaming: a stream's longest sequence is unknown; set model.max_sequence_length (the "
                "max_sequence_length argument of load_task)"
            )
        for split in SPLITS:  # lazy: applied to each batch as it is read
            ds = task.splits[split]
            if token:
                task.splits[split] = map_batches(ds, _truncate, ds.features, config, cut)
            else:
                check = {"limit": limit, "where": task.sources[split], "name": name}
                task.splits[split] = map_batches(ds, _refuse_longer, ds.features, config, check, with_indices=True)
        return limit
    lengths = {split: sequence_lengths(task.splits[split], name, task.pair) for split in SPLITS}
    longest = max(int(v.max(initial=0)) for v in lengths.values())
    if limit is None:
        return longest
    for split in SPLITS:
        too_long = np.flatnonzero(lengths[split] > limit)
        if too_long.size and not token:
            row = int(too_long[0])
            raise ValueError(_too_long(task.sources[split], row, int(lengths[split][row]), limit))
        if too_long.size:
            ds = task.splits[split]
            task.splits[split] = map_batches(ds, _truncate, ds.features, config, cut)
    return limit


def _too_long(where: str, row: int, length: int, limit: int) -> str:
    return (
        f"{where} row {row}: sequence of length {length} exceeds max_sequence_length={limit} "
        "(model.max_sequence_length); raise it or shorten the sequence (continuous inputs are never cropped)"
    )


def _cut(ids: Any, limit: int, eos: int) -> Any:
    """The first `limit - 1` ids and the final EOS, as a tokenizer with `truncation=True` keeps them."""
    return ids if len(ids) <= limit else [*np.asarray(ids[: limit - 1]).tolist(), eos]


def _truncate(batch: dict, limit: int, pair: bool, eos: int, pad: int) -> dict:
    if not pair:
        return {**batch, "input_ids": [_cut(ids, limit, eos) for ids in batch["input_ids"]]}
    rows = []
    for docs in batch["input_ids"]:
        cut = []
        for doc in docs:  # the document ends at its last non-pad id (its EOS)
            doc = np.asarray(doc)
            real = np.flatnonzero(doc != pad)
            cut.append(list(_cut(doc[: real[-1] + 1 if real.size else 0], limit, eos)))
        width = max(len(d) for d in cut)
        rows.append([d + [pad] * (width - len(d)) for d in cut])  # (2 L_i)
    return {**batch, "input_ids": rows}


def _refuse_longer(batch: dict, indices: list[int], limit: int, where: str, name: str) -> dict:
    for i, values in zip(indices, batch[name], strict=True):
        if len(values) > limit:
            raise ValueError(_too_long(where, i, len(values), limit))
    return dict(batch)  # a new dict: datasets removes the input columns from the batch it passed
