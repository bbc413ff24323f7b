"""Shared helpers of the task tests: tiny offline configs, and item / batch / task checks against the items."""

from pathlib import Path

import numpy as np
import torch

from modeling_mrconv.data import TaskData


LISTOPS = {"max_depth": 4, "max_args": 5, "min_length": 10, "max_length": 60}
SMALL = {"num_train": 12, "num_validation": 4, "num_test": 4}
TINY = {
    "listops": {"task": "listops", **SMALL, **LISTOPS},
    "pathfinder": {"task": "pathfinder", "num_train": 4, "num_validation": 2, "num_test": 2},
    "pathx": {"task": "pathx", "num_train": 1, "num_validation": 1, "num_test": 1},
    "digits": {"task": "digits"},
    "synthetic_text": {"task": "synthetic_text", **SMALL, "min_length": 60, "max_length": 150, "max_marker_count": 4},
    "synthetic_retrieval": {"task": "synthetic_retrieval", **SMALL, "min_length": 10, "max_length": 50},
    "synthetic_audio": {"task": "synthetic_audio", **SMALL, "num_classes": 4, "length": 400},
}
EXPECTED = {  # task: (input name, input_dim, max_length (None: the longest item), num_labels, pair)
    "listops": ("input_ids", None, None, 10, False),
    "pathfinder": ("input_values", 1, 1024, 2, False),
    "pathx": ("input_values", 1, 16384, 2, False),
    "digits": ("input_values", 1, 64, 10, False),
    "synthetic_text": ("input_ids", None, None, 2, False),
    "synthetic_retrieval": ("input_ids", None, None, 2, True),
    "synthetic_audio": ("input_values", 1, 400, 4, False),
}


def tiny(task: str, tmp_path: Path, **overrides) -> dict:
    """TINY[task] with `overrides`, its datasets cache under tmp_path."""
    return {**TINY[task], "cache_dir": str(tmp_path / "cache"), **overrides}


def labels_of(dataset) -> list[int]:
    """The labels of a split, read from its Arrow column."""
    return [int(v) for v in dataset.with_format(None)["labels"]]


def check_item(task_data: TaskData, item: dict) -> None:
    assert set(item) == {"input_ids" if task_data.input_dim is None else "input_values", "labels"}
    assert isinstance(item["labels"], int) and 0 <= item["labels"] < task_data.num_labels
    if task_data.input_dim is None:
        ids = item["input_ids"]
        assert ids.dtype == torch.long and ids.dim() == (2 if task_data.pair else 1)
        assert ids.shape[-1] <= task_data.max_length
        assert int(ids.min()) >= 0 and int(ids.max()) < task_data.vocab_size
    else:
        values = item["input_values"]
        assert values.dtype == torch.float32 and values.dim() == 2 and values.shape[1] == task_data.input_dim
        assert values.shape[0] <= task_data.max_length


def check_batch(task_data: TaskData, items: list[dict]) -> dict[str, torch.Tensor]:
    """Collate `items` and check shapes, dtypes, padding values and the attention mask against the items."""
    batch = task_data.collate_fn(items)
    name = "input_ids" if task_data.input_dim is None else "input_values"
    assert set(batch) == {name, "attention_mask", "labels"}
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [it["labels"] for it in items]
    inputs, mask = batch[name], batch["attention_mask"]
    assert mask.dtype == torch.long
    L = max(it[name].shape[-1 if task_data.pair else 0] for it in items)
    if task_data.pair:
        assert inputs.shape == mask.shape == (len(items), 2, L)
        for i, item in enumerate(items):
            for doc in range(2):
                real = item["input_ids"][doc]
                length = int((real != task_data.pad_token_id).nonzero().max()) + 1
                assert mask[i, doc].tolist() == [1] * length + [0] * (L - length)
                assert torch.equal(inputs[i, doc, :length], real[:length])
                assert (inputs[i, doc, length:] == task_data.pad_token_id).all()
        return batch
    assert mask.shape == (len(items), L)
    for i, item in enumerate(items):
        length = item[name].shape[0]
        assert mask[i].tolist() == [1] * length + [0] * (L - length)
        assert torch.equal(inputs[i, :length], item[name])
        pad = task_data.pad_token_id if task_data.input_dim is None else 0.0
        assert (inputs[i, length:] == pad).all()
    if task_data.input_dim is None:
        assert inputs.shape == (len(items), L) and inputs.dtype == torch.long
    else:
        assert inputs.shape == (len(items), L, task_data.input_dim) and inputs.dtype == torch.float32
    return batch


def check_task(task_data: TaskData, sizes: tuple[int, int, int] | None = None) -> None:
    splits = (task_data.train, task_data.validation, task_data.test)
    if sizes is not None:
        assert tuple(len(s) for s in splits) == sizes
    assert task_data.num_labels == len(task_data.id2label)
    assert sorted(task_data.id2label) == list(range(task_data.num_labels))
    assert task_data.description and "\n" not in task_data.description
    assert (task_data.tokenizer is None) == (task_data.input_dim is not None)
    for split in splits:
        for i in range(len(split)):
            check_item(task_data, split[i])
    check_batch(task_data, [task_data.train[i] for i in range(min(4, len(task_data.train)))])


def items_of(dataset: torch.utils.data.Dataset) -> list[tuple]:
    return [
        (next(v for k, v in dataset[i].items() if k != "labels"), dataset[i]["labels"]) for i in range(len(dataset))
    ]


def same_items(a: torch.utils.data.Dataset, b: torch.utils.data.Dataset) -> bool:
    return len(a) == len(b) and all(
        x[1] == y[1] and x[0].shape == y[0].shape and torch.equal(x[0], y[0])
        for x, y in zip(items_of(a), items_of(b), strict=True)
    )


def write_lra_tsv(examples: list[dict], path: Path) -> None:
    """`generate_listops` examples in LRA's released ListOps layout: a `Source<TAB>Target` header, a row each."""
    path.write_text("Source\tTarget\n" + "".join(f"{e['source']}\t{e['label']}\n" for e in examples))


def write_png(path: Path, pixels: np.ndarray) -> None:
    import matplotlib.image

    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, pixels)  # (H, W, 3) uint8: stored as is (plus an opaque alpha channel)
