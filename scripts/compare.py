"""Accuracy study: MRConv variants, their ablations and peer models trained on the same tasks at equal budget.

Every model of a task gets the same optimizer steps, batch size, seeds and data (`study/presets.py`); peers are
width-matched to MRConv's parameter count and pick their learning rate from a small sweep on seed 0. Results are
appended to `<output_dir>/runs.jsonl` as each run finishes (a rerun skips finished runs), then summarized in
`results.json`, `results.md` and `accuracy.png` (`study/report.py`).

Commands (from the repository root):
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/compare.py --tasks all --seeds 3 --workers 2
    python scripts/compare.py --tasks digits --models mrconv_fourier_l0small,dense_kernel,bert
    python scripts/compare.py --quick                                        # seconds (runs/compare_quick): CI smoke test
    python scripts/compare.py --report_only                                 # rewrite the report from runs.jsonl
"""

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from modeling_mrconv.study.grid import load_records, planned_runs, run_grid
from modeling_mrconv.study.models import model_names
from modeling_mrconv.study.presets import PRESETS
from modeling_mrconv.study.report import study_meta, write_report


QUICK_TASK = "digits"
QUICK_MODELS = ["mrconv_fourier_l0small", "no_branch_bn", "s4d"]


def parse_list(value: str, allowed: list[str], what: str) -> list[str]:
    """A comma-separated selection of `allowed` ("all" = every one), in the order given."""
    if value == "all":
        return list(allowed)
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        raise SystemExit(f"--{what}: unknown {unknown or value!r}; expected 'all' or a comma list of {allowed}")
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="all", help=f"'all' or a comma list of {list(PRESETS)}")
    parser.add_argument("--models", default="all", help=f"'all' or a comma list of {model_names()}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per model (>= 3 for mean ± std)")
    parser.add_argument("--workers", type=int, default=2, help="training processes, 1 thread each")
    parser.add_argument(
        "--output_dir", default=None, help="default: benchmarks/accuracy, or runs/compare_quick with --quick"
    )
    parser.add_argument("--quick", action="store_true", help=f"seconds: {QUICK_TASK}, {QUICK_MODELS}, 1 seed, 4 steps")
    parser.add_argument("--report_only", action="store_true", help="no training: rewrite the report from runs.jsonl")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.quick:
        tasks = [QUICK_TASK] if args.tasks == "all" else parse_list(args.tasks, list(PRESETS), "tasks")
        models = QUICK_MODELS if args.models == "all" else parse_list(args.models, model_names(), "models")
        seeds = 1 if "--seeds" not in (argv if argv is not None else sys.argv) else args.seeds
    else:
        tasks = parse_list(args.tasks, list(PRESETS), "tasks")
        models = parse_list(args.models, model_names(), "models")
        seeds = args.seeds
    output_dir = Path(args.output_dir or ("runs/compare_quick" if args.quick else "benchmarks/accuracy"))
    output_dir.mkdir(parents=True, exist_ok=True)
    results_path = output_dir / "runs.jsonl"
    mixed = [r["key"] for r in load_records(results_path) if bool(r.get("quick")) != args.quick]
    if mixed:  # the report would average smoke runs with study runs, and overwrite the study's results
        kind = "full-study" if args.quick else "--quick"
        raise SystemExit(
            f"{results_path} holds {len(mixed)} {kind} run(s) (e.g. {mixed[0]}); use another --output_dir for "
            f"{'--quick' if args.quick else 'the full study'}"
        )
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "HF_HUB_OFFLINE") if k in os.environ)
    command = " ".join(filter(None, [env, "python", shlex.join(["scripts/compare.py", *(argv or sys.argv[1:])])]))
    previous = output_dir / "results.json"
    if args.report_only and previous.exists():
        # the report describes the runs: keep the command that trained them
        command = json.loads(previous.read_text())["meta"]["command"]
    meta = study_meta(command, tasks, models, seeds, args.workers, args.quick)
    expected = planned_runs(tasks, models, seeds, args.quick)
    started = time.perf_counter()

    def progress(record: dict) -> None:
        records = load_records(results_path)
        print(
            f"[{time.perf_counter() - started:7.0f} s] {record['key']}: test {record['test']['accuracy']:.3f} "
            f"val {record['validation']['accuracy']:.3f} ({record['wall_seconds']:.0f} s, "
            f"{record['seconds_per_step']:.3f} s/step); {len(records)} records",
            flush=True,
        )
        write_report(output_dir, records, meta, expected, with_plot=False)

    if not args.report_only:
        print(f"study: tasks {tasks}, models {models}, {seeds} seed(s), {expected} runs planned", flush=True)
        run_grid(tasks, models, seeds, results_path, args.workers, args.quick, on_record=progress)
    summary, _ = write_report(output_dir, load_records(results_path), meta, expected)
    for row in summary:
        print(
            f"{row['task']:>10} {row['model']:>28}: test {100 * row['test_accuracy_mean']:5.1f} ± "
            f"{100 * row['test_accuracy_std']:4.1f} %  params {row['parameters']:>8,}  {row['seconds_per_step']:.3f} s/step"
        )
    print(f"wrote {output_dir / 'results.json'}, results.md, accuracy.png")


if __name__ == "__main__":
    main()
