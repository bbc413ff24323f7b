"""Presets (`configuration/*.yaml`: `model:`, `data:`, `train:`) and `TrainConfig`, the `train:` keys and defaults."""

import dataclasses
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modeling_mrconv.training.schema import validate_preset


DEFAULT_PRESET = Path(__file__).resolve().parents[2] / "configuration" / "listops_cpu.yaml"
SECTIONS = ("model", "data", "train")
# train.report_to: Accelerate's trackers (accelerate.tracking) and the package each needs
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}
REPORT_TO = ("none", *TRACKER_PACKAGES, "all")


@dataclass
class TrainConfig:
    """The `train:` section of a preset; a new key is a new field here (with its default) read by scripts/train.py."""

    batch_size: int = 32
    eval_batch_size: int | None = None  # null = 2 x batch_size
    epochs: int = 10
    max_steps: int | None = None  # overrides epochs when set
    learning_rate: float = 0.01
    kernel_learning_rate: float = 0.001  # S4 lineage: kernels train slower and without weight decay
    weight_decay: float = 0.05
    warmup_ratio: float = 0.1
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0  # 0 disables clipping
    mixed_precision: str = "no"  # no | bf16 | fp16 (FFTs always run in float32)
    eval_every: int | None = None  # optimizer steps between evaluations; null = once per epoch
    save_every: int | None = None  # optimizer steps between save_state checkpoints; null = once per epoch
    save_total_limit: int = 2  # newest checkpoints kept (older step_<N> folders are deleted)
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    num_threads: int | None = None  # torch CPU threads (torch.set_num_threads); null = torch's default
    sync_batch_norm: bool = False  # reduce BatchNorm statistics over all processes
    report_to: str = "none"  # none | tensorboard | trackio | wandb | all (the installed ones): Accelerate trackers

    def __post_init__(self):
        check_report_to(self.report_to)


def check_report_to(report_to: str) -> None:
    if report_to not in REPORT_TO:
        raise ValueError(f"train.report_to: expected one of {' | '.join(REPORT_TO)}, got {report_to!r}")


TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def load_preset(path: Path, overrides: list[str]) -> dict[str, Any]:
    """A YAML preset with `model:`, `data:` and `train:` sections, plus `section.key=value` overrides (YAML values).

    Returns:
        `{"model": dict, "data": dict, "train": dict}`; `train` holds every `TrainConfig` field (defaults filled in).
    """
    preset = yaml.safe_load(Path(path).read_text())
    unknown = set(preset) - {*SECTIONS, "description"}
    if unknown:
        raise ValueError(f"{path}: unknown preset sections {sorted(unknown)}")
    for override in overrides:
        key, sep, value = override.partition("=")
        section, _, field = key.partition(".")
        if not sep or section not in SECTIONS or not field:
            raise ValueError(f"--set expects section.key=value with section model|data|train, got {override!r}")
        preset.setdefault(section, {})[field] = yaml.safe_load(value)
    if "data" not in preset:
        raise ValueError(f"{path}: the preset has no data: section")
    sections = {"model": preset.get("model") or {}, "data": preset["data"], "train": preset.get("train") or {}}
    validate_preset(sections, TrainConfig)
    return {**sections, "train": dataclasses.asdict(TrainConfig(**sections["train"]))}


def _installed(package: str) -> bool:
    try:
        importlib.import_module(package)
    except ImportError:
        return False
    return True


def resolve_trackers(report_to: str) -> list[str]:
    """The Accelerate tracker names of `train.report_to` ("all": those whose package is installed).

    Raises:
        ValueError: A requested tracker's package is not installed (the message gives the pip command).
    """
    check_report_to(report_to)
    if report_to == "none":
        return []
    if report_to == "all":
        found = [name for name, package in TRACKER_PACKAGES.items() if _installed(package)]
        if not found:
            raise ValueError(
                "train.report_to=all: no tracker package is installed; pip install "
                + " or ".join(TRACKER_PACKAGES.values())
            )
        return found
    package = TRACKER_PACKAGES[report_to]
    if not _installed(package):
        raise ValueError(
            f"train.report_to={report_to}: the {package!r} package is not installed; pip install {package}"
        )
    return [report_to]


def flat_preset(preset: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """`{"section.key": value}` of a preset with tracker-friendly scalars (null as "null", lists as JSON)."""
    flat = {}
    for section in SECTIONS:
        for key, value in (preset.get(section) or {}).items():
            if value is None:
                value = "null"
            elif not isinstance(value, bool | int | float | str):
                value = json.dumps(value, default=str)
            flat[f"{section}.{key}"] = value
    return flat
