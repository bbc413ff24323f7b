"""The study's outputs from its cell records: results.json (runs + summary), results.md (tables), accuracy.png."""

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from modeling_mrconv.study.config import Study
from modeling_mrconv.study.grid import chosen_rates, sweep_specs
from modeling_mrconv.study.runner import RUNNER


ROOT = Path(__file__).resolve().parents[2]
FAMILY_COLORS = {"mrconv": "tab:blue", "ablation": "tab:orange", "peer": "tab:green"}
RUN_FIELDS = (
    "parameters",
    "hidden_size",
    "num_layers",
    "config",
    "steps",
    "batch_size",
)  # a row's, from its first run


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarize(
    study: Study, records: list[dict[str, Any]], tasks: list[str], models: list[str], seeds: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(summary rows: one per task and model with its main runs aggregated, sweep rows: the peers' trials)."""
    by_key = {r["key"]: r for r in records}
    chosen = chosen_rates(study, records, tasks, models)
    summary, sweep = [], []
    for task in tasks:
        for model in models:
            peer = study.families[model] == "peer"
            lr = chosen.get((task, model)) if peer else study.learning_rate(task, model)
            if peer:
                sweep += [
                    {
                        "task": task,
                        "model": model,
                        "learning_rate": t["learning_rate"],
                        "validation_accuracy": t["validation"]["accuracy"],
                        "validation_loss": t["validation"]["loss"],
                        "chosen": t["learning_rate"] == lr,
                    }
                    for t in (by_key[s.key] for s in sweep_specs(study, task, model) if s.key in by_key)
                ]
            runs = [
                r
                for r in records
                if r["task"] == task and r["model"] == model and r["learning_rate"] == lr and r["seed"] < seeds
            ]
            if not runs:
                continue
            test_mean, test_std = mean_std([r["test"]["accuracy"] for r in runs])
            summary.append(
                {
                    "task": task,
                    "model": model,
                    "family": study.families[model],
                    "learning_rate": lr,
                    "seeds": sorted(r["seed"] for r in runs),
                    **{key: runs[0][key] for key in RUN_FIELDS},
                    "test_accuracy_mean": test_mean,
                    "test_accuracy_std": test_std,
                    "test_accuracies": [r["test"]["accuracy"] for r in sorted(runs, key=lambda r: r["seed"])],
                    "validation_accuracy_mean": mean_std([r["validation"]["accuracy"] for r in runs])[0],
                    "train_accuracy_mean": mean_std([r["train"]["accuracy"] for r in runs])[0],
                    "seconds_per_step": float(np.mean([r["seconds_per_step"] for r in runs])),
                    "wall_seconds": float(np.mean([r["wall_seconds"] for r in runs])),
                    "diverged_runs": sum(bool(r["diverged"]) for r in runs),
                }
            )
    return summary, sweep


def study_meta(
    command: str,
    study: Study,
    tasks: list[str],
    models: list[str],
    seeds: int,
    workers: int,
    baselines: dict[str, float] | None = None,
) -> dict:
    """The report's description of the study: command, selection, environment, the tasks' presets, `baselines` (the
    previous report's majority-class accuracies; `write_report` adds the cells')."""
    published = study.published.get("datasets", {})
    return {
        "title": study.title,
        "command": command,
        "study": _shown(study.path),
        "tasks": tasks,
        "models": models,
        "seeds": seeds,
        "workers": workers,
        "threads_per_worker": 1,
        "quick": study.quick,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "presets": {
            task: {
                "preset": _shown(study.tasks[task].preset),
                "description": yaml.safe_load(study.tasks[task].preset.read_text()).get("description", task),
                **study.base_preset(task),
                "values": study.tasks[task].values,
                "excluded": study.tasks[task].excluded,
            }
            for task in tasks
        },
        "majority_baseline": {t: v for t, v in (baselines or {}).items() if t in tasks},
        "published": {t: published[t]["published"] for t in tasks if t in published},
        "published_sources": study.published.get("sources", {}),
    }


def _shown(path: Path) -> str:
    """`path` relative to the repository root when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _verdict(ref: dict, other: dict) -> str:
    diff = 100 * (ref["test_accuracy_mean"] - other["test_accuracy_mean"])
    margin = 100 * (ref["test_accuracy_std"] + other["test_accuracy_std"])
    verdict = "MRConv wins" if diff > margin else "MRConv loses" if -diff > margin else "within noise"
    return f"`{other['model']}` {diff:+.1f} ({verdict})"


def _best(rows: list[dict], family: str) -> dict | None:
    """The row of `family` with the best mean validation accuracy (chosen without looking at test)."""
    rows = [r for r in rows if r["family"] == family]
    return max(rows, key=lambda r: r["validation_accuracy_mean"]) if rows else None


def comparison_lines(rows: list[dict], baseline: float, base_model: str) -> list[str]:
    """Differences of mean test accuracy in points, called a win or a loss only when larger than the sum of the two
    standard deviations: the ablations against the variant they modify, the peers against the MRConv variant with
    the best validation accuracy (chosen without looking at test)."""
    by_name = {r["model"]: r for r in rows}
    lines = []
    ablations = [r for r in rows if r["family"] == "ablation"]
    if base_model in by_name and ablations:
        verdicts = "; ".join(_verdict(by_name[base_model], r) for r in ablations)
        lines.append(f"- Base variant `{base_model}` vs its ablations: {verdicts}.")
    peers = [r for r in rows if r["family"] == "peer"]
    best = _best(rows, "mrconv")
    if best and peers:
        verdicts = "; ".join(_verdict(best, r) for r in peers)
        lines.append(f"- Best-validation variant `{best['model']}` vs the peers: {verdicts}.")
    if rows and max(r["test_accuracy_mean"] for r in rows) - baseline < 0.05:
        lines.append("- Every model is within 5 points of the majority class: this budget does not separate them.")
    return lines


def _acc(row: dict | None) -> str:
    if row is None:
        return "-"
    return f"{100 * row['test_accuracy_mean']:.1f} ± {100 * row['test_accuracy_std']:.1f} (`{row['model']}`)"


def published_lines(summary: list[dict], meta: dict[str, Any]) -> list[str]:
    """The tasks against published results: MRConv's best-validation variant, the dense-kernel ablation, the best
    peer and the best published accuracy, with the sources."""
    lines = [
        "## Against published results",
        "",
        "Test accuracy %, mean ± std over seeds; the MRConv variant and the peer are the ones with the best mean "
        "validation accuracy. Published: the best number of the sources below (their own budgets and tuning).",
        "",
        "| task | MRConv | dense kernel | best peer | best published | 1-NN DTW |",
        "|---|---|---|---|---|---:|",
    ]
    for task, published in meta["published"].items():
        rows = [r for r in summary if r["task"] == task]
        if not rows:
            continue
        name, best = max(published.items(), key=lambda item: item[1])
        dense = next((r for r in rows if r["model"] == "dense_kernel"), None)
        lines.append(
            f"| {task} | {_acc(_best(rows, 'mrconv'))} | {_acc(dense)} | {_acc(_best(rows, 'peer'))} | "
            f"{100 * best:.1f} ({name}) | {100 * published.get('1-NN DTW', math.nan):.1f} |"
        )
    lines += ["", "Sources:", ""]
    lines += [f"- {name}: {source}" for name, source in meta["published_sources"].items()]
    return [*lines, ""]


def markdown(
    summary: list[dict], sweep: list[dict], meta: dict[str, Any], expected_runs: int, records: list[dict]
) -> str:
    """results.md: the command, one table per task, the sweep table, the cost of the grid."""
    lines = [
        f"# {meta.get('title', 'Accuracy study: MRConv vs its ablations and peers at equal step budget')}",
        "",
        f"Written by `scripts/compare.py` from `{meta['study']}`; every number below is read from `results.json` of "
        "the same run.",
        "",
        "Command (from the repository root):",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"Runs finished: {len(records)} of {expected_runs} planned. Seeds per model: {meta['seeds']} (mean ± sample "
        f"std of test accuracy, in %); {meta['workers']} worker process(es), 1 thread each; torch {meta['torch']}.",
        "Every model of a task: the same optimizer steps, batch size, seeds, data and masked-mean-pooling head. "
        "Peers have the widths the study file gives (matched to the base MRConv's parameter count unless it says "
        "otherwise; see the params column); MRConv uses the preset's learning rate (or its own, in the lr column), "
        "peers the best of their sweep (seed 0, validation accuracy).",
        "",
    ]
    if meta.get("published"):
        lines += published_lines(summary, meta)
    old = sum(r.get("runner") != RUNNER for r in records)  # runs made before the cells went through the loop
    if old:
        lines += [
            f"**Runner.** {old} of the {len(records)} runs below were made by the previous runner, the study's own "
            "training loop and model zoo (removed in issue 18). The study now runs every cell through "
            "`modeling_mrconv.training.train`, the loop of `scripts/train.py`, which rebuilds the same models on the "
            "same data, steps and rates; what a rerun would change (evaluation on the merged export, train accuracy "
            "over the last 10% of the steps, batch order, the peers' optimizer groups and init) is listed in "
            "`model_card.md` (Accuracy study).",
            "",
        ]
    for task in meta["tasks"]:
        rows = [r for r in summary if r["task"] == task]
        if not rows:
            continue
        preset = meta["presets"][task]
        model, values = preset["model"], preset["values"]
        lines += [
            f"## {task}",
            "",
            f"{preset['description']}. {rows[0]['steps']} steps of batch {rows[0]['batch_size']}; MRConv width "
            f"{model['hidden_size']}, {model['num_hidden_layers']} layers, l0 small/large {model['kernel_size']}/"
            f"{values.get('l0_large', '-')}, ablations on `{model['kernel_type']}` at the small l0. "
            f"Majority-class baseline: {100 * meta['majority_baseline'].get(task, math.nan):.1f}% test accuracy. "
            f"Preset: `{preset['preset']}`.",
            "",
            "| model | family | params | width | lr | test acc % | val acc % | train acc % | s/step | wall s/run |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        best = max(r["test_accuracy_mean"] for r in rows)
        for r in rows:
            acc = f"{100 * r['test_accuracy_mean']:.1f} ± {100 * r['test_accuracy_std']:.1f}"
            acc = f"**{acc}**" if r["test_accuracy_mean"] == best else acc
            acc += f" (n={len(r['seeds'])})"
            if r["diverged_runs"]:
                acc += f" ({r['diverged_runs']} diverged)"
            lines.append(
                f"| {r['model']} | {r['family']} | {r['parameters']:,} | {r['hidden_size']} | {r['learning_rate']:g} | "
                f"{acc} | {100 * r['validation_accuracy_mean']:.1f} | {100 * r['train_accuracy_mean']:.1f} | "
                f"{r['seconds_per_step']:.3f} | {r['wall_seconds']:.0f} |"
            )
        base = f"mrconv_{model['kernel_type']}_l0small"
        lines += ["", *comparison_lines(rows, meta["majority_baseline"].get(task, math.nan), base), ""]
        if task in meta.get("published", {}):
            shown = ", ".join(f"{name} {100 * v:.1f}" for name, v in meta["published"][task].items())
            lines += [f"Published on the archive's split (sources above): {shown}.", ""]
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
            loss = f"{s['validation_loss']:.3f}" if math.isfinite(s["validation_loss"]) else "nan"
            lines.append(
                f"| {s['task']} | {s['model']} | {s['learning_rate']:g} | {100 * s['validation_accuracy']:.1f} | "
                f"{loss} | {'yes' if s['chosen'] else ''} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(
    summary: list[dict],
    tasks: list[str],
    models: list[str],
    path: Path,
    baselines: dict[str, float],
    published: dict[str, dict[str, float]] | None = None,
) -> None:
    """accuracy.png: per task, test accuracy (mean ± std over seeds) of every model (`models`' order), colored by
    family, the majority-class `baselines` and, where given, the best `published` accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in tasks if any(r["task"] == t for r in summary)]
    names = [m for m in models if any(r["model"] == m for r in summary)]
    families = {r["model"]: r["family"] for r in summary}
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(3.2 * max(1, len(tasks)) + 1.5, 0.32 * len(names) + 1.6))
    axes = np.atleast_1d(axes)
    for ax, task in zip(axes, tasks, strict=False):
        rows = {r["model"]: r for r in summary if r["task"] == task}
        y = np.arange(len(names))
        means = [100 * rows[n]["test_accuracy_mean"] if n in rows else np.nan for n in names]
        stds = [100 * rows[n]["test_accuracy_std"] if n in rows else 0.0 for n in names]
        colors = [FAMILY_COLORS[families[n]] for n in names]
        ax.barh(y, means, xerr=stds, color=colors, capsize=2)
        if task in baselines:
            ax.axvline(100 * baselines[task], color="black", linestyle="--", linewidth=1)
        if task in (published or {}):
            ax.axvline(100 * max(published[task].values()), color="tab:red", linestyle=":", linewidth=1.5)
        ax.set(title=task, xlabel="test accuracy %", xlim=(0, 100))
        ax.set_yticks(y, names if ax is axes[0] else [""] * len(names))
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in FAMILY_COLORS.values()]
    handles.append(plt.Line2D([0], [0], color="black", linestyle="--", linewidth=1))
    labels = [*FAMILY_COLORS, "majority class"]
    if published:
        handles.append(plt.Line2D([0], [0], color="tab:red", linestyle=":", linewidth=1.5))
        labels.append("best published")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    output_dir: Path,
    study: Study,
    records: list[dict],
    meta: dict[str, Any],
    expected_runs: int,
    with_plot: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Write results.json, results.md and (optionally) accuracy.png; returns (summary, sweep)."""
    tasks, models, seeds = meta["tasks"], meta["models"], meta["seeds"]
    records = [
        r for r in records if r["task"] in tasks and r["model"] in models and r.get("quick", False) == study.quick
    ]
    summary, sweep = summarize(study, records, tasks, models, seeds)
    # majority-class test accuracy per task: the cells' (all_results.json), else the previous report's (older runs)
    baselines = {r["task"]: r["majority_baseline"] for r in records if "majority_baseline" in r}
    meta = {**meta, "majority_baseline": {**meta["majority_baseline"], **baselines}}
    payload = {"meta": meta, "summary": summary, "sweep": sweep, "runs": records}
    (output_dir / "results.json").write_text(json.dumps(payload, indent=1) + "\n")
    (output_dir / "results.md").write_text(markdown(summary, sweep, meta, expected_runs, records))
    if with_plot and summary:
        plot(summary, tasks, models, output_dir / "accuracy.png", meta["majority_baseline"], meta.get("published"))
    return summary, sweep


__all__ = ["comparison_lines", "markdown", "plot", "published_lines", "study_meta", "summarize", "write_report"]
