"""MRConv task data on `datasets`: one module per task family, each registering its tasks in `TASKS`.

`load_task(data_cfg, seed=0, max_sequence_length=None) -> TaskData` (`task.py`; README, "Every task is `datasets`
splits"): `data_cfg` is a preset's `data:` section, the fields of a task's config dataclass (`TASKS[name].config_cls`,
defaults stated there). Generated splits are cached by `caching.py`, Hub and local data read by `sources.py`.
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
