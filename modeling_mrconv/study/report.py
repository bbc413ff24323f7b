"""The study's outputs from its run records: results.json (runs + summary), results.md (tables), accuracy.png."""

import json
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modeling_mrconv.study.grid import best_learning_rate, chosen_rates, sweep_specs
from modeling_mrconv.study.models import family, model_names
from modeling_mrconv.study.presets import TaskPreset, task_preset
from modeling_mrconv.study.runner import task_data


FAMILY_COLORS = {"mrconv": "tab:blue", "ablation": "tab:orange", "peer": "tab:green"}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarize(
    records: list[dict[str, Any]], tasks: list[str], models: list[str], seeds: int, quick: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(summary rows: one per task and model with its main runs aggregated, sweep rows: the peers' trials)."""
    by_key = {r["key"]: r for r in records}
    chosen = chosen_rates(records, tasks, models, quick)
    summary, sweep = [], []
    for task in tasks:
        for model in models:
            if family(model) == "peer":
                trials = [by_key[s.key] for s in sweep_specs(task, model, quick) if s.key in by_key]
                best = chosen.get((task, model))
                sweep += [
                    {
                        "task": task,
                        "model": model,
                        "learning_rate": t["learning_rate"],
                        "validation_accuracy": t["validation"]["accuracy"],
                        "validation_loss": t["validation"]["loss"],
                        "chosen": t["learning_rate"] == best,
                    }
                    for t in trials
                ]
                if best is None:
                    continue
                lr = best
            else:
                lr = task_preset(task, quick).learning_rate
            runs = [
                r
                for r in records
                if r["task"] == task and r["model"] == model and r["learning_rate"] == lr and r["seed"] < seeds
            ]
            runs = [r for r in runs if r.get("quick", False) == quick]
            if not runs:
                continue
            test_mean, test_std = mean_std([r["test"]["accuracy"] for r in runs])
            val_mean, _ = mean_std([r["validation"]["accuracy"] for r in runs])
            train_mean, _ = mean_std([r["train"]["accuracy"] for r in runs])
            summary.append(
                {
                    "task": task,
                    "model": model,
                    "family": family(model),
                    "learning_rate": lr,
                    "seeds": sorted(r["seed"] for r in runs),
                    "parameters": runs[0]["parameters"],
                    "hidden_size": runs[0]["hidden_size"],
                    "num_layers": runs[0]["num_layers"],
                    "config": runs[0]["config"],
                    "steps": runs[0]["steps"],
                    "batch_size": runs[0]["batch_size"],
                    "test_accuracy_mean": test_mean,
                    "test_accuracy_std": test_std,
                    "test_accuracies": [r["test"]["accuracy"] for r in sorted(runs, key=lambda r: r["seed"])],
                    "validation_accuracy_mean": val_mean,
                    "train_accuracy_mean": train_mean,
                    "seconds_per_step": float(np.mean([r["seconds_per_step"] for r in runs])),
                    "wall_seconds": float(np.mean([r["wall_seconds"] for r in runs])),
                    "diverged_runs": sum(bool(r["diverged"]) for r in runs),
                }
            )
    return summary, sweep


def write_json(path: Path, records: list[dict], summary: list[dict], sweep: list[dict], meta: dict[str, Any]) -> None:
    payload = {"meta": meta, "summary": summary, "sweep": sweep, "runs": records}
    path.write_text(json.dumps(payload, indent=1) + "\n")


def majority_baseline(task: str, quick: bool) -> float:
    """Test accuracy of always predicting the most frequent training label."""
    data = task_data(task, quick)
    train, test = data.train.labels, np.asarray(data.test.labels)
    return float((test == np.bincount(np.asarray(train)).argmax()).mean())


def study_meta(command: str, tasks: list[str], models: list[str], seeds: int, workers: int, quick: bool) -> dict:
    return {
        "command": command,
        "tasks": tasks,
        "models": models,
        "seeds": seeds,
        "workers": workers,
        "threads_per_worker": 1,
        "quick": quick,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "presets": {task: _preset_dict(task_preset(task, quick)) for task in tasks},
        "majority_baseline": {task: majority_baseline(task, quick) for task in tasks},
    }


def _preset_dict(preset: TaskPreset) -> dict[str, Any]:
    return asdict(preset)


def _fmt_acc(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def _verdict(ref: dict, other: dict) -> str:
    diff = 100 * (ref["test_accuracy_mean"] - other["test_accuracy_mean"])
    margin = 100 * (ref["test_accuracy_std"] + other["test_accuracy_std"])
    verdict = "MRConv wins" if diff > margin else "MRConv loses" if -diff > margin else "within noise"
    return f"`{other['model']}` {diff:+.1f} ({verdict})"


def comparison_lines(rows: list[dict], baseline: float, base_model: str) -> list[str]:
    """Differences of mean test accuracy in points, called a win or a loss only when larger than the sum of the two
    standard deviations: the ablations against the variant they modify, the peers against the MRConv variant with
    the best validation accuracy (chosen without looking at test)."""
    by_name = {r["model"]: r for r in rows}
    variants = [r for r in rows if r["family"] == "mrconv"]
    lines = []
    ablations = [r for r in rows if r["family"] == "ablation"]
    if base_model in by_name and ablations:
        verdicts = "; ".join(_verdict(by_name[base_model], r) for r in ablations)
        lines.append(f"- Base variant `{base_model}` vs its ablations: {verdicts}.")
    peers = [r for r in rows if r["family"] == "peer"]
    if variants and peers:
        best = max(variants, key=lambda r: r["validation_accuracy_mean"])
        verdicts = "; ".join(_verdict(best, r) for r in peers)
        lines.append(f"- Best-validation variant `{best['model']}` vs the peers: {verdicts}.")
    if rows and max(r["test_accuracy_mean"] for r in rows) - baseline < 0.05:
        lines.append("- Every model is within 5 points of the majority class: this budget does not separate them.")
    return lines


def markdown(summary: list[dict], sweep: list[dict], meta: dict[str, Any], expected_runs: int, done_runs: int) -> str:
    """results.md: the command, one table per task, the sweep table, the cost of the grid."""
    lines = [
        "# Accuracy study: MRConv vs its ablations and peers at equal step budget",
        "",
        "Written by `scripts/compare.py`; every number below is read from `results.json` of the same run.",
        "",
        "Command (from the repository root):",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"Runs finished: {done_runs} of {expected_runs} planned. Seeds per model: {meta['seeds']} (mean ± sample std "
        f"of test accuracy, in %); {meta['workers']} worker process(es), 1 thread each; torch {meta['torch']}.",
        "Every model of a task: the same optimizer steps, batch size, seeds, data and masked-mean-pooling head. "
        "Peers are width-matched to the base MRConv's parameter count; MRConv uses the preset's learning rate, "
        "peers the best of their sweep (seed 0, validation accuracy).",
        "",
    ]
    for task in meta["tasks"]:
        rows = [r for r in summary if r["task"] == task]
        if not rows:
            continue
        preset = meta["presets"][task]
        lines += [
            f"## {task}",
            "",
            f"{preset['notes']}. {rows[0]['steps']} steps of batch {rows[0]['batch_size']}; MRConv width "
            f"{preset['arch']['hidden_size']}, {preset['arch']['num_layers']} layers, l0 small/large "
            f"{preset['arch']['l0_small']}/{preset['arch']['l0_large']}, ablations on `{preset['arch']['base_kernel']}` "
            f"at the small l0. Majority-class baseline: {100 * meta['majority_baseline'][task]:.1f}% test accuracy.",
            "",
            "| model | family | params | width | lr | test acc % | val acc % | train acc % | s/step | wall s/run |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        best = max(r["test_accuracy_mean"] for r in rows)
        for r in rows:
            acc = _fmt_acc(r["test_accuracy_mean"], r["test_accuracy_std"])
            if r["test_accuracy_mean"] == best:
                acc = f"**{acc}**"
            acc += f" (n={len(r['seeds'])})"
            if r["diverged_runs"]:
                acc += f" ({r['diverged_runs']} diverged)"
            lines.append(
                f"| {r['model']} | {r['family']} | {r['parameters']:,} | {r['hidden_size']} | {r['learning_rate']:g} | "
                f"{acc} | {100 * r['validation_accuracy_mean']:.1f} | {100 * r['train_accuracy_mean']:.1f} | "
                f"{r['seconds_per_step']:.3f} | {r['wall_seconds']:.0f} |"
            )
        base = f"mrconv_{preset['arch']['base_kernel']}_l0small"
        lines += ["", *comparison_lines(rows, meta["majority_baseline"][task], base), ""]
        for model, reason in preset["excluded"].items():
            if model in meta["models"]:
                lines += [f"Not run: `{model}`: {reason}.", ""]
    if sweep:
        lines += [
            "## Peer learning-rate sweep (seed 0, validation accuracy %)",
            "",
            "| task | model | lr | val acc % | val loss | chosen |",
            "|---|---|---:|---:|---:|---|",
        ]
        for s in sweep:
            loss = s["validation_loss"]
            loss_text = f"{loss:.3f}" if math.isfinite(loss) else "nan"
            lines.append(
                f"| {s['task']} | {s['model']} | {s['learning_rate']:g} | {100 * s['validation_accuracy']:.1f} | "
                f"{loss_text} | {'yes' if s['chosen'] else ''} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(summary: list[dict], tasks: list[str], path: Path, baselines: dict[str, float] | None = None) -> None:
    """accuracy.png: per task, test accuracy (mean ± std over seeds) of every model, colored by family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in tasks if any(r["task"] == t for r in summary)]
    names = [m for m in model_names() if any(r["model"] == m for r in summary)]
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(3.2 * max(1, len(tasks)) + 1.5, 0.32 * len(names) + 1.6))
    axes = np.atleast_1d(axes)
    for ax, task in zip(axes, tasks, strict=False):
        rows = {r["model"]: r for r in summary if r["task"] == task}
        y = np.arange(len(names))
        means = [100 * rows[n]["test_accuracy_mean"] if n in rows else np.nan for n in names]
        stds = [100 * rows[n]["test_accuracy_std"] if n in rows else 0.0 for n in names]
        colors = [FAMILY_COLORS[family(n)] for n in names]
        ax.barh(y, means, xerr=stds, color=colors, capsize=2)
        if baselines and task in baselines:
            ax.axvline(100 * baselines[task], color="black", linestyle="--", linewidth=1)
        ax.set_title(task)
        ax.set_xlabel("test accuracy %")
        ax.set_xlim(0, 100)
        ax.set_yticks(y, names if ax is axes[0] else [""] * len(names))
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in FAMILY_COLORS.values()]
    handles.append(plt.Line2D([0], [0], color="black", linestyle="--", linewidth=1))
    labels = [*FAMILY_COLORS, "majority class"]
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    output_dir: Path,
    records: list[dict],
    meta: dict[str, Any],
    expected_runs: int,
    with_plot: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Write results.json, results.md and (optionally) accuracy.png; returns (summary, sweep)."""
    tasks, models, seeds, quick = meta["tasks"], meta["models"], meta["seeds"], meta["quick"]
    records = [r for r in records if r["task"] in tasks and r["model"] in models and r.get("quick", False) == quick]
    summary, sweep = summarize(records, tasks, models, seeds, quick)
    write_json(output_dir / "results.json", records, summary, sweep, meta)
    (output_dir / "results.md").write_text(markdown(summary, sweep, meta, expected_runs, len(records)))
    if with_plot and summary:
        plot(summary, tasks, output_dir / "accuracy.png", meta.get("majority_baseline"))
    return summary, sweep


__all__ = ["best_learning_rate", "markdown", "plot", "summarize", "write_report"]
