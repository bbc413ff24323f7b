"""MRConv task data: one module per task family, each registering its tasks in `TASKS` (see `tasks.base`).

`build_task_data(data_cfg, seed)` builds the `TaskData` of a preset's `data:` section.
"""

from modeling_mrconv.data import audio, generated, image, sequence, text  # noqa: F401  (fill the registry)
from modeling_mrconv.data.base import TASKS, PadCollator, TaskConfig, TaskData, build_task_data, register_task


# the `sequence` task (continuous series from files) registers itself in tasks/sequence.py


__all__ = ["TASKS", "PadCollator", "TaskConfig", "TaskData", "build_task_data", "register_task"]
