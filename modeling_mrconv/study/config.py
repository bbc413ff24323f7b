"""A study as described under `configuration/study/` (`accuracy.yaml`): its tasks (presets of that folder), its
models (override lists by family), seeds, the peers' learning-rate grid and its quick form; `Study.cell_preset` gives
the preset that `modeling_mrconv.training.train` runs for one cell."""

import dataclasses
import functools
import importlib.util
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modeling_mrconv.training.config import apply_overrides, load_preset, validated


DEFAULT_STUDY = Path(__file__).resolve().parents[2] / "configuration" / "study" / "accuracy.yaml"
FAMILIES = ("mrconv", "ablation", "peer")


@dataclass(frozen=True)
class RunSpec:
    """One cell. `phase` is `sweep` (a peer's learning-rate trial on seed 0) or `main`."""

    task: str
    model: str
    seed: int
    learning_rate: float
    phase: str = "main"
    quick: bool = False

    @property
    def key(self) -> str:
        """Identity of the cell's result: a sweep run at the chosen rate is also the main run of seed 0."""
        return f"{'quick/' if self.quick else ''}{self.task}/{self.model}/seed{self.seed}/lr{self.learning_rate:g}"


@dataclass(frozen=True)
class StudyTask:
    """A task: its preset (the base variant), the values `{name}` in the models' overrides, the models not run, and
    the task's own overrides of the preset (`set`, before every model's; `{name}` there: a `package_data` folder)."""

    preset: Path
    values: dict[str, Any]
    excluded: dict[str, str]
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Study:
    """A study file read for the full grid or its quick form (`quick:`: tasks, models, seeds, rates, `set`)."""

    path: Path
    tasks: dict[str, StudyTask]  # every task, in run order
    families: dict[str, str]  # every model -> mrconv | ablation | peer, in report order
    overrides: dict[str, list[str]]  # every model -> its overrides of the task preset
    seeds: int
    workers: int
    peer_learning_rates: tuple[float, ...]
    quick: bool = False
    final_overrides: tuple[str, ...] = ()  # after every cell's own (quick: sizes and steps)
    default_tasks: tuple[str, ...] = ()
    default_models: tuple[str, ...] = ()
    title: str = "Accuracy study: MRConv vs its ablations and peers at equal step budget"
    package_data: dict[str, str] = field(default_factory=dict)  # {name: "package/folder"} for the tasks' `set`
    published: dict[str, Any] = field(default_factory=dict)  # the `published:` file: sources and accuracies per task

    def base_preset(self, task: str) -> dict[str, Any]:
        """The task's preset with its `set` overrides, as `load_preset` gives it (validated, defaults filled in)."""
        spec = self.tasks[task]
        folders = self.package_folders() if spec.overrides else {}
        return _load_preset(spec.preset, tuple(o.format(**folders) for o in spec.overrides))

    def package_folders(self) -> dict[str, str]:
        """`package_data` as paths of the installed packages' folders (ValueError with the pip command if missing)."""
        folders = {}
        for name, location in self.package_data.items():
            package, _, folder = location.partition("/")
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise ValueError(
                    f"{self.path}: the tasks read files of the {package!r} package, which is not installed; "
                    f'pip install {package.replace("_", "-")} (or the project\'s extra: pip install -e ".[ucr]")'
                )
            folders[name] = str(Path(spec.submodule_search_locations[0]) / folder)
        return folders

    def learning_rate(self, task: str, model: str) -> float:
        """The rate of an MRConv variant or ablation: the task preset's, or the model's `train.learning_rate`."""
        return self.cell_preset(RunSpec(task, model, 0, math.nan))["train"]["learning_rate"]

    def cell_preset(self, spec: RunSpec) -> dict[str, Any]:
        """The task preset (its model section dropped for peers: the preset's is MRConv's), then the model's
        overrides, the seed, a peer's learning rate and `final_overrides`, validated as `load_preset` does."""
        base = self.base_preset(spec.task)
        peer = self.families[spec.model] == "peer"
        values = {**base["model"], **self.tasks[spec.task].values}
        overrides = [o.format(**values) for o in self.overrides[spec.model]]
        overrides += [f"train.seed={spec.seed}", *([f"train.learning_rate={spec.learning_rate}"] if peer else [])]
        preset = {section: dict(values) for section, values in base.items()}
        if peer:
            preset["model"] = {}
        apply_overrides(preset, [*overrides, *self.final_overrides])
        return validated(preset)


@functools.cache
def _load_preset(path: Path, overrides: tuple[str, ...]) -> dict[str, Any]:
    return load_preset(path, list(overrides))


def load_study(path: Path = DEFAULT_STUDY, quick: bool = False) -> Study:
    """Read a study file (ValueError naming a model of an unknown family, or a quick selection not in the study)."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    unknown = set(raw["models"]) - set(FAMILIES)
    if unknown:
        raise ValueError(f"{path}: models: unknown families {sorted(unknown)}; expected {FAMILIES}")
    tasks = {
        name: StudyTask(
            (path.parent / t["preset"]).resolve(),
            t.get("values") or {},
            t.get("excluded") or {},
            tuple(t.get("set") or ()),
        )
        for name, t in raw["tasks"].items()
    }
    families = {model: family for family in FAMILIES for model in raw["models"].get(family) or {}}
    overrides = {model: list(o) for family in FAMILIES for model, o in (raw["models"].get(family) or {}).items()}
    study = Study(path, tasks, families, overrides, raw["seeds"], raw["workers"], tuple(raw["peer_learning_rates"]))
    published = json.loads((path.parent / raw["published"]).read_text()) if raw.get("published") else {}
    extra = {"package_data": raw.get("package_data") or {}, "published": published}
    study = dataclasses.replace(study, **extra, **({"title": raw["title"]} if "title" in raw else {}))
    if not quick:
        return dataclasses.replace(study, default_tasks=tuple(tasks), default_models=tuple(families))
    q = raw["quick"]
    for name in [*q["tasks"], *q["models"]]:
        if name not in tasks and name not in families:
            raise ValueError(f"{path}: quick: {name!r} is not a task or model of the study")
    return dataclasses.replace(
        study,
        seeds=q.get("seeds", study.seeds),
        peer_learning_rates=tuple(q.get("peer_learning_rates", study.peer_learning_rates)),
        quick=True,
        final_overrides=tuple(q.get("set") or ()),
        default_tasks=tuple(q["tasks"]),
        default_models=tuple(q["models"]),
    )


__all__ = ["DEFAULT_STUDY", "FAMILIES", "RunSpec", "Study", "StudyTask", "load_study"]
