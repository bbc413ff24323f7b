"""One cell of a study: its preset (`Study.cell_preset`) trained by `modeling_mrconv.training.train`, the loop of
`scripts/train.py`, into `<runs_dir>/<key>/`, and the record the report reads from that folder."""

import contextlib
import json
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml

from modeling_mrconv.study.config import RunSpec, Study
from modeling_mrconv.training import mark_run_dir, prepare_output_dir, train


RUNNER = "modeling_mrconv.training.train"  # recorded in every record (the committed runs predate it)


def run_cell(spec: RunSpec, study: Study, runs_dir: str | Path) -> dict[str, Any]:
    """Train one cell (an unfinished earlier try of it starts over) and return its record; the loop's output goes
    to `<cell>/train.log`."""
    output_dir = Path(runs_dir) / spec.key
    prepare_output_dir(output_dir, None, overwrite=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    mark_run_dir(output_dir)
    started = time.perf_counter()
    with (
        (output_dir / "train.log").open("w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        train(study.cell_preset(spec), output_dir, cpu=True)  # CPU-sized cells: s/step is measured on 1 thread
    return cell_record(spec, output_dir, time.perf_counter() - started)


def cell_record(spec: RunSpec, output_dir: Path, wall_seconds: float) -> dict[str, Any]:
    """The record of a finished cell: test and validation accuracy of the merged export (`all_results.json`), the last
    validation loss (the sweep's tie-break) and the train accuracy and loss of the last `train.log_every` steps
    (`metrics.jsonl`)."""
    results = json.loads((output_dir / "all_results.json").read_text())
    events = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [e for e in events if "train_loss" in e]
    validation = [e for e in events if "validation_loss" in e][-1]
    preset = yaml.safe_load((output_dir / "training_preset.yaml").read_text())
    model = preset["model"]
    return {
        **asdict(spec),
        "key": spec.key,
        "runner": RUNNER,
        "output_dir": str(output_dir),
        "parameters": results["num_parameters"],
        "hidden_size": model.get("hidden_size"),
        "num_layers": model.get("num_hidden_layers"),
        "config": model,
        "steps": results["train_steps"],
        "batch_size": preset["train"]["batch_size"],
        "final_train_loss": logged[-1]["train_loss"],
        "diverged": not all(math.isfinite(e["train_loss"]) for e in logged),
        "train": {"accuracy": logged[-1]["train_accuracy"], "loss": logged[-1]["train_loss"]},
        "validation": {"accuracy": results["validation_accuracy"], "loss": validation["validation_loss"]},
        "test": {"accuracy": results["test_accuracy"], "loss": results["test_loss"]},
        "majority_baseline": results["majority_baseline_accuracy"],
        "train_seconds": results["train_runtime_seconds"],
        "seconds_per_step": results["train_runtime_seconds"] / max(1, results["train_steps"]),
        "wall_seconds": wall_seconds,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "host": platform.node(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


__all__ = ["RUNNER", "cell_record", "run_cell"]
