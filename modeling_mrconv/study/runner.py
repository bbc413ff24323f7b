"""One run of the accuracy study: build the task's data and model, train a fixed number of AdamW steps, evaluate."""

import functools
import math
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from transformers import get_cosine_schedule_with_warmup

from modeling_mrconv.data import TaskData, build_task_data
from modeling_mrconv.study.models import build_model, optimizer_groups
from modeling_mrconv.study.presets import task_preset


TRAIN_EVAL_EXAMPLES = 256  # training examples scored after training (how well each model fits)
DATA_SEED = 0  # every run of a task sees the same data; the run seed sets the init and the batch order


@dataclass(frozen=True)
class RunSpec:
    """One training run. `phase` is `sweep` (a peer's learning-rate trial on seed 0) or `main`."""

    task: str
    model: str
    seed: int
    learning_rate: float
    phase: str = "main"
    quick: bool = False

    @property
    def key(self) -> str:
        """Identity of the run's result: a sweep run at the chosen rate is also the main run of seed 0."""
        return f"{'quick/' if self.quick else ''}{self.task}/{self.model}/seed{self.seed}/lr{self.learning_rate:g}"


@functools.cache
def task_data(task: str, quick: bool) -> TaskData:
    """The task's data, built once per process."""
    return build_task_data(task_preset(task, quick).data, DATA_SEED)


def batches(loader: DataLoader, steps: int):
    """`steps` batches, cycling over epochs (each epoch reshuffled by the loader's generator)."""
    done = 0
    while done < steps:
        for batch in loader:
            if done == steps:
                return
            yield batch
            done += 1


@torch.no_grad()
def score(model: torch.nn.Module, dataset: torch.utils.data.Dataset, task: TaskData, batch_size: int) -> dict:
    """Accuracy and mean cross-entropy over `dataset` in eval mode."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=task.collate_fn)
    correct, loss, count = 0, 0.0, 0
    for batch in loader:
        logits = model(batch).float()
        loss += F.cross_entropy(logits, batch["labels"], reduction="sum").item()
        correct += int((logits.argmax(-1) == batch["labels"]).sum())
        count += len(batch["labels"])
    model.train()
    return {"accuracy": correct / count, "loss": loss / count}


def run(spec: RunSpec) -> dict[str, Any]:
    """Train and evaluate one model; returns the result record (JSON-serializable)."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    preset = task_preset(spec.task, spec.quick)
    task = task_data(spec.task, spec.quick)
    torch.manual_seed(spec.seed)
    model, info = build_model(spec.model, task, preset.arch)
    model.train()
    optimizer = torch.optim.AdamW(optimizer_groups(model, spec.learning_rate, preset.weight_decay))
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(preset.warmup_ratio * preset.steps), preset.steps)
    generator = torch.Generator().manual_seed(spec.seed)
    loader = DataLoader(
        task.train,
        batch_size=preset.batch_size,
        shuffle=True,
        drop_last=len(task.train) >= preset.batch_size,
        generator=generator,
        collate_fn=task.collate_fn,
    )
    losses = []
    train_started = time.perf_counter()
    for batch in batches(loader, preset.steps):
        loss = F.cross_entropy(model(batch), batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    train_seconds = time.perf_counter() - train_started
    rng = np.random.default_rng(0)
    train_subset = Subset(task.train, sorted(rng.permutation(len(task.train))[:TRAIN_EVAL_EXAMPLES].tolist()))
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        **asdict(spec),
        "key": spec.key,
        **info,
        "steps": preset.steps,
        "batch_size": preset.batch_size,
        "final_train_loss": float(np.mean(tail)),
        "diverged": not all(math.isfinite(v) for v in losses),
        "train": score(model, train_subset, task, preset.eval_batch_size),
        "validation": score(model, task.validation, task, preset.eval_batch_size),
        "test": score(model, task.test, task, preset.eval_batch_size),
        "train_seconds": train_seconds,
        "seconds_per_step": train_seconds / preset.steps,
        "wall_seconds": time.perf_counter() - started,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "host": platform.node(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
