"""MRConv task data on `datasets`: one module per task family, each registering its tasks in `TASKS`.

One call gives a task's splits, its collator and what a model needs to know about it::

    from torch.utils.data import DataLoader
    from modeling_mrconv.data import load_task

    task = load_task({"task": "listops", "num_train": 2000, "max_depth": 5, "min_length": 20, "max_length": 200},
                     seed=0, max_sequence_length=256)
    task.splits                  # DatasetDict: train / validation / test, Arrow files memory-mapped from the cache
    task.splits["train"].features["labels"].names    # ClassLabel names; task.id2label is built from them
    loader = DataLoader(task.train, batch_size=32, shuffle=True, collate_fn=task.collate_fn)
    task.tokenizer, task.vocab_size, task.pad_token_id, task.input_dim, task.max_length, task.num_labels

`load_task(data_cfg, seed=0, max_sequence_length=None) -> TaskData` (`task.py`): `data_cfg` is a preset's `data:`
section, whose keys are the fields of the task's config dataclass (`TASKS[name].config_cls`, defaults stated there).
Generated tasks are written once by `Dataset.from_generator` into the `datasets` cache, keyed by every generation
parameter and the generator's code (`caching.py`). Hub and local data go through `datasets.load_dataset`; with
`streaming: true` the splits are `IterableDataset`s read batch by batch (`sources.py`). Token batches are padded by
transformers' `DataCollatorWithPadding(task.tokenizer)`, continuous (B, L, C) ones and document pairs by
`collate.py`. `max_sequence_length` is the model's: token sequences are cut to it, longer continuous ones refused.
"""

from modeling_mrconv.data import audio, generated, image, sequence, text  # noqa: F401  (fill the registry)
from modeling_mrconv.data.base import TASKS, TaskConfig, register_task
from modeling_mrconv.data.collate import ContinuousCollator, PairCollator
from modeling_mrconv.data.task import TaskData, load_task


__all__ = [
    "TASKS",
    "ContinuousCollator",
    "PairCollator",
    "TaskConfig",
    "TaskData",
    "load_task",
    "register_task",
]
