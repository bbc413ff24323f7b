"""Task presets of the accuracy study: data (`tasks.build_task_data` sections), model size, step budget, learning rates.

Sized for 2 CPU processes of 1 thread each (the whole grid in about an hour on 2 shared cores; the long tasks at
width 16, depth 2): every model of a task gets the same optimizer steps, batch size and seeds. Tasks are listed
cheapest first, the order in which the grid runs them. MRConv runs use the presets' learning rate (the value of
`configuration/*_cpu.yaml`); the peers pick theirs from `peer_learning_rates` on seed 0 by validation accuracy.
"""

from dataclasses import dataclass, field, replace
from typing import Any

from modeling_mrconv.study.models import Architecture


@dataclass(frozen=True)
class TaskPreset:
    """One task of the study."""

    name: str
    data: dict[str, Any]
    arch: Architecture
    steps: int
    batch_size: int
    learning_rate: float  # MRConv variants and ablations (kernels at min(lr, 1e-3))
    peer_learning_rates: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    eval_batch_size: int = 64
    notes: str = ""
    excluded: dict[str, str] = field(default_factory=dict)  # model -> why it is not run on this task


# transformers' Mamba without mamba_ssm (no CPU build) runs its reference selective scan, a Python loop over positions
MAMBA_TOO_SLOW = (
    "transformers' reference selective scan (mamba_ssm has no CPU kernels): 4.0 s/step at L=256 and over 30 s/step "
    "at L=1024 measured here (0.67 s/step at L=64), i.e. 20 minutes to hours per run"
)

PRESETS: dict[str, TaskPreset] = {
    "sequence": TaskPreset(
        name="sequence",
        data={
            "task": "sequence",
            "source": "generate",
            "num_train": 160,
            "num_validation": 96,
            "num_test": 400,
            "length": 256,
            "num_classes": 4,
            "burst_length": 32,
            "noise_std": 0.3,
            "normalize": "per_series",
        },
        arch=Architecture(hidden_size=32, num_layers=3, l0_small=4, l0_large=64, base_kernel="fourier", dropout=0.1),
        steps=300,
        batch_size=16,
        learning_rate=5e-3,
        notes="generated multi-scale time series (L=256), 4 classes, 40 training series per class",
        excluded={"mamba": MAMBA_TOO_SLOW},
    ),
    "digits": TaskPreset(
        name="digits",
        data={"task": "digits", "source": "sklearn"},
        arch=Architecture(hidden_size=32, num_layers=3, l0_small=2, l0_large=16, base_kernel="fourier"),
        steps=300,
        batch_size=32,
        learning_rate=5e-3,
        notes="scikit-learn 8x8 digits as pixel sequences (L=64), 10 classes",
    ),
    "listops": TaskPreset(
        name="listops",
        # generated ListOps with LRA's tree shape (depth 10, 10 arguments) and half its length window
        data={
            "task": "listops",
            "source": "generate",
            "num_train": 4000,
            "num_validation": 250,
            "num_test": 500,
            "max_depth": 10,
            "max_args": 10,
            "min_length": 200,
            "max_length": 1000,
        },
        arch=Architecture(hidden_size=16, num_layers=2, l0_small=4, l0_large=64, base_kernel="dilated"),
        steps=200,
        batch_size=16,
        learning_rate=5e-3,
        notes="discrete tokens, lengths 200-1000 (mean about 560; max_sequence_length 1024); 10 classes",
        excluded={"mamba": MAMBA_TOO_SLOW},
    ),
    "pathfinder": TaskPreset(
        name="pathfinder",
        data={
            "task": "pathfinder",
            "source": "generate",
            "resolution": 32,
            "num_train": 2000,
            "num_validation": 250,
            "num_test": 500,
        },
        arch=Architecture(hidden_size=16, num_layers=2, l0_small=8, l0_large=128, base_kernel="fourier"),
        steps=200,
        batch_size=16,
        learning_rate=4e-3,
        notes="32x32 pixels flattened (L=1024), 2 classes",
        excluded={"mamba": MAMBA_TOO_SLOW},
    ),
}


def quick_preset(name: str) -> TaskPreset:
    """`name` shrunk to seconds for CI (`compare.py --quick`)."""
    preset = PRESETS[name]
    data = dict(preset.data)
    for key, value in {"num_train": 64, "num_validation": 32, "num_test": 32}.items():
        if key in data:
            data[key] = value
    arch = replace(preset.arch, hidden_size=8, num_layers=1)
    return replace(preset, data=data, arch=arch, steps=4, batch_size=8, peer_learning_rates=(1e-3, 1e-2))


def task_preset(task: str, quick: bool = False) -> TaskPreset:
    """The study preset of `task` (its `--quick` form with `quick`)."""
    if task not in PRESETS:
        raise ValueError(f"task: unknown study task {task!r}; expected one of {tuple(PRESETS)}")
    return quick_preset(task) if quick else PRESETS[task]
