"""Presets (`configuration/*.yaml`: `model:`, `data:`, `train:`) and `TrainConfig`, the `train:` keys and defaults.

Standard library and PyYAML only: `scripts/train.py` loads this file by path, before the torch imports, so that
`read_preset` answers user errors at once; `load_preset` adds the schemas of `schema.py` (which imports the package).
"""

import dataclasses
import difflib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


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
    num_threads: int | str | None = None  # torch CPU threads: a number, auto (resolve_num_threads) or null (torch's)
    sync_batch_norm: bool = False  # reduce BatchNorm statistics over all processes
    report_to: str = "none"  # none | tensorboard | trackio | wandb | all (the installed ones): Accelerate trackers

    def __post_init__(self):
        if self.report_to not in REPORT_TO:
            raise ValueError(f"train.report_to: expected one of {' | '.join(REPORT_TO)}, got {self.report_to!r}")
        threads = self.num_threads
        if not (threads is None or threads == "auto" or (isinstance(threads, int) and threads >= 1)):
            raise ValueError(
                f"train.num_threads: expected a positive number of threads, auto or null, got {threads!r}"
            )


TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def resolve_num_threads(num_threads: int | str | None, default: int) -> int | None:
    """torch's CPU threads for `train.num_threads` (None: leave torch's `default`).

    `auto` leaves one core to the other jobs of a shared machine: an OpenMP step waits for its slowest thread, so using
    every core slows down several-fold as soon as another job takes one (README.md, "Main job"). It is the user's
    `OMP_NUM_THREADS` when set, else the usable cores (at most torch's `default`) less one, shared among the
    `LOCAL_WORLD_SIZE` processes of this machine; at least 1.
    """
    if num_threads != "auto":
        return num_threads
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, (min(cores, default) - 1) // processes)


def _did_you_mean(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _read_yaml(path: Path) -> dict[str, Any]:
    """The preset file as a mapping (errors: no such file, with a did-you-mean among the presets; bad YAML)."""
    if not path.is_file():
        presets = {p.stem: p for p in DEFAULT_PRESET.parent.glob("*.yaml")}
        close = difflib.get_close_matches(path.stem, list(presets), n=1)
        hint = f"did you mean {str(presets[close[0]])!r}? " if close else ""
        raise FileNotFoundError(
            f"{path}: no such preset file; {hint}the presets are the .yaml files of {DEFAULT_PRESET.parent}"
        )
    try:
        preset = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(preset, dict):
        raise ValueError(
            f"{path}: expected a mapping with sections model:, data:, train:, got {type(preset).__name__}"
        )
    return preset


def apply_overrides(preset: dict[str, Any], overrides: list[str]) -> None:
    """Set `section.key=value` overrides (YAML values) in `preset` (ValueError naming a malformed one)."""
    for override in overrides:
        key, sep, value = override.partition("=")
        section, _, field = key.partition(".")
        if not sep or not field:
            raise ValueError(f"--set expects section.key=value with section model|data|train, got {override!r}")
        if section not in SECTIONS:
            raise ValueError(
                f"--set {override}: unknown section {section!r}; {_did_you_mean(section, list(SECTIONS))}"
                f"sections: {' | '.join(SECTIONS)}"
            )
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ValueError(
                f"--set {override}: the value is not valid YAML: {' '.join(str(error).split())}"
            ) from None
        if preset.get(section) is None:
            preset[section] = {}
        preset[section][field] = parsed


def read_preset(path: Path, overrides: list[str]) -> dict[str, Any]:
    """`{"model": dict, "data": dict, "train": dict}` with `section.key=value` overrides, as written (no defaults,
    values not type-checked), checked as far as PyYAML alone allows: the file, the sections, the overrides' syntax
    and the `train:` keys (FileNotFoundError, ValueError)."""
    path = Path(path)
    preset = _read_yaml(path)
    for section in preset:
        if section not in (*SECTIONS, "description"):
            raise ValueError(
                f"{path}: unknown preset section {section!r}; {_did_you_mean(str(section), list(SECTIONS))}"
                f"sections: {' | '.join(SECTIONS)} (and description)"
            )
    apply_overrides(preset, overrides)
    if "data" not in preset:
        raise ValueError(f"{path}: the preset has no data: section")
    sections = {"model": preset.get("model") or {}, "data": preset["data"], "train": preset.get("train") or {}}
    for section, values in sections.items():
        if not isinstance(values, dict):
            raise ValueError(f"{path}: the {section}: section must be a mapping of keys, got {values!r}")
    for key in sections["train"]:
        if key not in TRAIN_KEYS:  # the message of schema.check_section
            raise ValueError(
                f"train.{key}: unknown train key; {_did_you_mean(str(key), list(TRAIN_KEYS))}"
                f"valid keys: {sorted(TRAIN_KEYS)}"
            )
    return sections


def load_preset(path: Path, overrides: list[str]) -> dict[str, Any]:
    """`read_preset`, then `validated`: `{"model": dict, "data": dict, "train": every `TrainConfig` field}`."""
    return validated(read_preset(path, overrides))


def validated(preset: dict[str, Any]) -> dict[str, Any]:
    """`preset` checked against the schema of every section (`schema.validate_preset`), `train:` defaults filled in."""
    from modeling_mrconv.training.schema import validate_preset  # imports the package (torch, transformers)

    validate_preset(preset)
    return {**preset, "train": dataclasses.asdict(TrainConfig(**preset["train"]))}


def resolve_trackers(report_to: str) -> list[str]:
    """The Accelerate tracker names of `train.report_to` ("all": those installed); ValueError with the pip command
    when a requested tracker's package is missing."""
    if report_to == "none":
        return []
    if report_to == "all":
        found = [name for name, package in TRACKER_PACKAGES.items() if importlib.util.find_spec(package)]
        if not found:
            raise ValueError(
                "train.report_to=all: no tracker package is installed; pip install "
                + " or ".join(TRACKER_PACKAGES.values())
            )
        return found
    package = TRACKER_PACKAGES[report_to]
    if importlib.util.find_spec(package) is None:
        raise ValueError(
            f"train.report_to={report_to}: the {package!r} package is not installed; pip install {package}"
        )
    return [report_to]


def flat_preset(preset: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """`{"section.key": value}` of a preset with tracker-friendly scalars (null as "null", lists as JSON)."""
    return {
        f"{section}.{key}": value if isinstance(value, bool | int | float | str) else json.dumps(value, default=str)
        for section in SECTIONS
        for key, value in (preset.get(section) or {}).items()
    }
