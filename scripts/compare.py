"""Accuracy study: MRConv variants, their ablations and peer models trained on the same tasks at equal budget.

The study is a file under `configuration/study/` (default `accuracy.yaml`): tasks (presets of that folder) and models
(lists of overrides). Every cell (task, model, seed, learning rate) is one run of the training loop of
`scripts/train.py` into `<runs_dir>/<key>/`; peers first sweep their learning rate on seed 0. Records are appended
to `<output_dir>/runs.jsonl` (a rerun skips finished cells) and summarized in `results.json`, `results.md` and
`accuracy.png`.

Commands (from the repository root):
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/compare.py --tasks all --seeds 3 --workers 2
    python scripts/compare.py --tasks digits --models mrconv_fourier_l0small,dense_kernel,bert
    python scripts/compare.py --quick                                        # seconds (runs/compare_quick): CI smoke test
    python scripts/compare.py --report_only                                 # rewrite the report from runs.jsonl
"""

import argparse
import functools
import json
import os
import shlex
import sys
import time
from pathlib import Path

from modeling_mrconv.study.config import DEFAULT_STUDY, load_study
from modeling_mrconv.study.grid import load_records, planned_runs, run_grid
from modeling_mrconv.study.report import study_meta, write_report
from modeling_mrconv.study.runner import run_cell


def parse_list(value: str, allowed: list[str], default: list[str], what: str) -> list[str]:
    """A comma-separated selection of `allowed` ("all" = `default`), in the order given."""
    if value == "all":
        return list(default)
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        raise SystemExit(f"--{what}: unknown {unknown or value!r}; expected 'all' or a comma list of {allowed}")
    return chosen


def report_command(
    args: argparse.Namespace, argv: list[str] | None, shown_tasks, shown_models, tasks, models, previous_meta: dict
) -> str:
    """The command the report gives: this one when it trained the whole table; else the previous report's when that
    covered the table (`--report_only`, one rerun cell), else this one with the table's tasks and models."""
    argv = list(argv or sys.argv[1:])
    if (shown_tasks, shown_models) != (tasks, models) or args.report_only:
        previous = (set(previous_meta.get("tasks", [])), set(previous_meta.get("models", [])))
        if previous_meta and previous[0] >= set(shown_tasks) and previous[1] >= set(shown_models):
            return previous_meta["command"]
        kept = [
            a for i, a in enumerate(argv) if not _selection(a) and not (i and argv[i - 1] in ("--tasks", "--models"))
        ]
        argv = [*kept, "--tasks", ",".join(shown_tasks), "--models", ",".join(shown_models)]
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "HF_HUB_OFFLINE") if k in os.environ)
    return " ".join(filter(None, [env, "python", shlex.join(["scripts/compare.py", *argv])]))


def _selection(arg: str) -> bool:
    return arg == "--report_only" or arg.split("=")[0] in ("--tasks", "--models")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="a study file of configuration/study/")
    parser.add_argument("--tasks", default="all", help="'all' or a comma list of the study's tasks")
    parser.add_argument("--models", default="all", help="'all' or a comma list of the study's models")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per model (default: the study's)")
    parser.add_argument("--workers", type=int, default=None, help="cells side by side (default: the study's)")
    parser.add_argument(
        "--output_dir", default=None, help="default: benchmarks/accuracy, or runs/compare_quick with --quick"
    )
    parser.add_argument("--runs_dir", default=None, help="the cells' run folders (default: runs/<study name>)")
    parser.add_argument("--quick", action="store_true", help="the study's quick form: seconds, for CI")
    parser.add_argument("--report_only", action="store_true", help="no training: rewrite the report from runs.jsonl")
    args = parser.parse_args(argv)
    for name in ("seeds", "workers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    study = load_study(args.study, args.quick)
    tasks = parse_list(args.tasks, list(study.tasks), list(study.default_tasks), "tasks")
    models = parse_list(args.models, list(study.families), list(study.default_models), "models")
    seeds, workers = args.seeds or study.seeds, args.workers or study.workers
    output_dir = Path(args.output_dir or ("runs/compare_quick" if args.quick else "benchmarks/accuracy"))
    output_dir.mkdir(parents=True, exist_ok=True)
    results_path = output_dir / "runs.jsonl"
    recorded = load_records(results_path)
    mixed = [r["key"] for r in recorded if bool(r.get("quick")) != args.quick]
    if mixed:  # the report would average smoke runs with study runs, and overwrite the study's results
        kind = "full-study" if args.quick else "--quick"
        raise SystemExit(
            f"{results_path} holds {len(mixed)} {kind} run(s) (e.g. {mixed[0]}); use another --output_dir for "
            f"{'--quick' if args.quick else 'the full study'}"
        )
    previous = output_dir / "results.json"
    previous_meta = json.loads(previous.read_text())["meta"] if previous.exists() else {}
    # the report covers the selection and every task and model with runs in output_dir (one rerun cell keeps the table)
    shown_tasks = [t for t in study.tasks if t in tasks or any(r["task"] == t for r in recorded)]
    shown_models = [m for m in study.families if m in models or any(r["model"] == m for r in recorded)]
    meta = study_meta(
        report_command(args, argv, shown_tasks, shown_models, tasks, models, previous_meta),
        study,
        shown_tasks,
        shown_models,
        seeds,
        workers,
        previous_meta.get("majority_baseline"),
    )
    expected = planned_runs(study, shown_tasks, shown_models, seeds)
    started = time.perf_counter()

    def progress(record: dict) -> None:
        records = load_records(results_path)
        print(
            f"[{time.perf_counter() - started:7.0f} s] {record['key']}: test {record['test']['accuracy']:.3f} "
            f"val {record['validation']['accuracy']:.3f} ({record['wall_seconds']:.0f} s, "
            f"{record['seconds_per_step']:.3f} s/step); {len(records)} records",
            flush=True,
        )
        write_report(output_dir, study, records, meta, expected, with_plot=False)

    if not args.report_only:
        runs_dir = Path(args.runs_dir or Path("runs") / study.path.stem)
        planned = planned_runs(study, tasks, models, seeds)
        print(f"study: tasks {tasks}, models {models}, {seeds} seed(s), {planned} runs planned", flush=True)
        run_fn = functools.partial(run_cell, study=study, runs_dir=runs_dir)
        run_grid(study, tasks, models, seeds, results_path, run_fn, workers, on_record=progress)
    summary, _ = write_report(output_dir, study, load_records(results_path), meta, expected)
    for row in summary:
        print(
            f"{row['task']:>10} {row['model']:>28}: test {100 * row['test_accuracy_mean']:5.1f} ± "
            f"{100 * row['test_accuracy_std']:4.1f} %  params {row['parameters']:>8,}  {row['seconds_per_step']:.3f} s/step"
        )
    print(f"wrote {output_dir / 'results.json'}, results.md, accuracy.png")


if __name__ == "__main__":
    main()
