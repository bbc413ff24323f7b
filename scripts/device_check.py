"""One-call device check: tests, benchmark and a short bf16 training on one device, written up as one report.

    python scripts/device_check.py --output_dir runs/device_check                  # CUDA, about 8 minutes
    python scripts/device_check.py --device cpu --quick --output_dir /tmp/check     # CI preset (under a minute)

Stages, each a subprocess with its own timeout and log `<output_dir>/<stage>.log`: `tests` (pytest on
tests/test_devices.py, `cuda` cases where CUDA is available, and the fast model tests; --quick: the `cpu` cases of
tests/test_devices.py only), `bench_float32` and `bench_bfloat16` (scripts/benchmark.py in float32 and under bf16
autocast, lengths up to 64K; --quick: its --quick preset) and `train_bf16` (`accelerate launch scripts/train.py`, bf16
mixed precision, configuration/listops_cpu.yaml capped by --train_steps; --quick: configuration/tiny.yaml).

`report.json` and `report.md` hold the environment and, per stage, the command, exit code, wall time, pass/fail
counts, key numbers and the log tail; the exit code is 0 iff every stage passed. The stages run offline with this
tree's `modeling_mrconv` (PYTHONPATH). This script imports only the standard library and torch; the GPU image lacks
`datasets` (the training stage's data layer), so bring it as wheels:

    python scripts/device_check.py --download_wheels .whl   # here: pip download for the device (3.12, manylinux)
    python scripts/device_check.py --wheels .whl --output_dir runs/device_check   # there: into <output_dir>/site
"""

import argparse
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch


ROOT = Path(__file__).resolve().parents[1]
LOG_TAIL_CHARS = 3000
# the fast model tests run besides tests/test_devices.py on the full check
FAST_MODEL_TESTS = [
    f"tests/test_{name}.py" for name in ("devices", "fftconv", "kernels", "branch_conv", "reparam", "modeling_mrconv")
]
# packages of the `train` extra (and their dependencies) that the GPU image lacks, fetched at the versions installed here
DEVICE_WHEELS = ("datasets", "evaluate", "dill", "multiprocess")
DEVICE_PYTHON = "3.12"
MANYLINUX = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# per-stage timeouts in seconds, (full, quick): the full check sums to under 8 minutes; quick stages take 10-40 s on
# a loaded 2-core CI machine
TIMEOUTS = {"tests": (110, 120), "bench_float32": (80, 120), "bench_bfloat16": (80, 120), "train_bf16": (200, 120)}


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(device: str) -> dict[str, Any]:
    """Versions and the device, as the report's header."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__}
    info |= {name: package_version(name) for name in ("transformers", "accelerate", "datasets")}
    info |= {"device": device, "cuda_available": torch.cuda.is_available(), "cuda_version": torch.version.cuda}
    info["cpu_count"] = os.cpu_count()
    if device == "cuda":
        info["device_name"] = torch.cuda.get_device_name(0)
        info["device_count"] = torch.cuda.device_count()
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    else:
        info["device_name"] = platform.processor() or platform.machine()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        info["git_commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        info["git_commit"] = None
    return info


def parse_pytest(log: str) -> dict[str, int]:
    """Counts from pytest's final summary line (`3 passed, 1 failed, 2 skipped in 1.2s`)."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0, "xpassed": 0}
    summary = next((line for line in reversed(log.splitlines()) if re.search(r"\d+ (passed|failed|error)", line)), "")
    for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", summary):
        counts["errors" if word.startswith("error") else word] = int(number)
    return counts


def parse_benchmark(results_path: Path) -> dict[str, Any]:
    """Row counts by status, every ratio, and each model's time at the longest length it ran."""
    if not results_path.exists():
        return {"results_json": None}
    payload = json.loads(results_path.read_text())
    rows = payload.get("results", [])
    statuses = Counter(str(row.get("status", "unknown")).split(":")[0] for row in rows)
    longest: dict[str, dict[str, Any]] = {}
    for row in sorted((r for r in rows if r.get("status") == "ok"), key=lambda r: r["sequence_length"]):
        case = {"sequence_length": row["sequence_length"], "time_ms": round(row["time_ms"], 3)}
        longest[f"{row['model']} {row['mode']} B={row['batch_size']}"] = case  # the longest length comes last
    ratios = [
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in ratio.items()}
        for ratio in payload.get("ratios", [])
    ]
    result = {"rows": dict(statuses), "longest_length_time_ms": longest, "ratios": ratios}
    return result | {"results_json": str(results_path)}


def parse_training(output_dir: Path) -> dict[str, Any]:
    path = output_dir / "all_results.json"
    if not path.exists():
        return {"all_results": None}
    results = json.loads(path.read_text())
    keys = ("test_accuracy", "validation_accuracy", "majority_baseline_accuracy", "train_steps")
    keys += ("train_runtime_seconds", "num_processes")
    return {k: results.get(k) for k in keys}


def run_stage(name: str, command: list[str], timeout: float, output_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run one stage, its stdout and stderr captured to `<output_dir>/<name>.log`."""
    log_path = output_dir / f"{name}.log"
    print(f"[device_check] {name}: {' '.join(command)} (timeout {timeout:.0f} s)", flush=True)
    start = time.perf_counter()
    with log_path.open("w") as log:
        try:
            rc = subprocess.run(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:  # subprocess.run kills the child
            rc = None
    wall = time.perf_counter() - start
    stage = {
        "name": name,
        "command": command,
        "rc": rc,
        "timed_out": rc is None,
        "timeout_seconds": timeout,
        "wall_seconds": round(wall, 1),
        "log_file": log_path.name,
        "log_tail": log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:],
    }
    print(f"[device_check] {name}: rc={rc} timed_out={rc is None} in {wall:.1f} s", flush=True)
    return stage


def download_command(folder: Path) -> list[str]:
    """`pip download` of the DEVICE_WHEELS at the versions installed here, for the device's Python and platform."""
    missing = [name for name in DEVICE_WHEELS if package_version(name) is None]
    if missing:
        raise SystemExit(f"--download_wheels: {missing} not installed here; pip install -e '.[train]' first")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(folder)]
    command += ["--python-version", DEVICE_PYTHON, "--implementation", "cp"]
    command += [arg for platform_tag in MANYLINUX for arg in ("--platform", platform_tag)]
    return command + [f"{name}=={package_version(name)}" for name in DEVICE_WHEELS]


def install_wheels(folder: Path, site: Path) -> dict[str, Any]:
    """Install every wheel of `folder` into `site` (no index, no dependencies): the set-up of a `--wheels` run."""
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise SystemExit(f"--wheels {folder}: no .whl files there (make them with --download_wheels {folder})")
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    command += ["--upgrade", "--target", str(site), *map(str, wheels)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"--wheels {folder}: pip install failed:\n{result.stderr[-LOG_TAIL_CHARS:]}")
    return {"wheels": [w.name for w in wheels], "site": str(site)}


def stage_env(device: str, site: Path | None) -> dict[str, str]:
    """The stages' environment: offline, unbuffered, the repository (and the wheels' site) first on PYTHONPATH."""
    paths = [str(site)] if site is not None else []
    paths += [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(paths)}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the cpu check runs no cuda cases even where a GPU is present
    return env


def stage_commands(args: argparse.Namespace, output_dir: Path) -> dict[str, list[str]]:
    python = sys.executable
    tests = ["tests/test_devices.py", "-k", "cpu"] if args.quick else FAST_MODEL_TESTS
    commands = {"tests": [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *tests]}
    sweep = ["--lengths", "1024", "4096", "16384", "--inference_lengths", "65536", "--batch_sizes", "8"]
    sweep = ["--quick"] if args.quick else [*sweep, "--repeats", "5", "--max_seconds_per_case", "6"]
    for dtype in ("float32", "bfloat16"):
        bench = [python, "scripts/benchmark.py", "--device", args.device, "--dtype", dtype, *sweep]
        commands[f"bench_{dtype}"] = [*bench, "--output_dir", str(output_dir / f"bench_{dtype}")]
    preset = "tiny.yaml" if args.quick else "listops_cpu.yaml"
    steps = args.train_steps or (4 if args.quick else 1500)
    launch = [python, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1"]
    launch += ["--mixed_precision", "bf16", "--dynamo_backend", "no"] + (["--cpu"] if args.device == "cpu" else [])
    launch += ["scripts/train.py", "--config", f"configuration/{preset}", "--output_dir", str(output_dir / "train")]
    # train.py's own flag too: it passes the preset's mixed_precision to Accelerator, overriding the launcher's
    launch += ["--mixed_precision", "bf16", "--overwrite_output_dir", "--set", f"train.max_steps={steps}"]
    if not args.quick:
        launch += [f"train.eval_every={max(1, steps // 3)}", f"train.save_every={steps}"]
    commands["train_bf16"] = launch
    return commands


def judge(name: str, stage: dict[str, Any], output_dir: Path) -> None:
    """Parse a finished stage's key numbers and decide pass/fail."""
    if name == "tests":
        stage["counts"] = counts = parse_pytest((output_dir / stage["log_file"]).read_text(errors="replace"))
        stage["passed"] = stage["rc"] == 0 and counts["passed"] > 0 and not counts["failed"] and not counts["errors"]
    elif name.startswith("bench_"):
        stage["metrics"] = metrics = parse_benchmark(output_dir / name / "results.json")
        rows = metrics.get("rows", {})
        stage["counts"] = {"rows_ok": rows.get("ok", 0), "rows_not_ok": sum(rows.values()) - rows.get("ok", 0)}
        stage["passed"] = stage["rc"] == 0 and rows.get("ok", 0) > 0
    else:
        stage["metrics"] = metrics = parse_training(output_dir / "train")
        stage["counts"] = {"train_steps": metrics.get("train_steps") or 0}
        stage["passed"] = stage["rc"] == 0 and metrics.get("test_accuracy") is not None


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"# Device check: {env['device']} ({env.get('device_name')})", ""]
    lines.append(f"Overall: **{'PASS' if report['passed'] else 'FAIL'}** in {report['wall_seconds']} s")
    lines += ["", "| | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in env.items()]
    lines += ["", "| stage | result | rc | wall s | counts |", "| --- | --- | --- | --- | --- |"]
    for stage in report["stages"]:
        result = "pass" if stage["passed"] else ("timeout" if stage["timed_out"] else "FAIL")
        counts = ", ".join(f"{k} {v}" for k, v in stage.get("counts", {}).items() if v)
        lines.append(f"| {stage['name']} | {result} | {stage['rc']} | {stage['wall_seconds']} | {counts} |")
    for stage in report["stages"]:
        lines += ["", f"## {stage['name']}", "", "```", " ".join(stage["command"]), "```"]
        if stage.get("metrics"):
            lines += ["", "```json", json.dumps(stage["metrics"], indent=1), "```"]
        lines += ["", f"Log tail (`{stage['log_file']}`):", "", "```", stage["log_tail"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--output_dir", type=Path, default=ROOT / "runs" / "device_check")
    parser.add_argument("--quick", action="store_true", help="CI preset: few tests, tiny lengths, few steps")
    parser.add_argument("--train_steps", type=int, default=None, help="default 1500 (quick: 4)")
    parser.add_argument("--stages", nargs="*", default=list(TIMEOUTS), choices=list(TIMEOUTS))
    parser.add_argument("--timeout_scale", type=float, default=1.0, help="scales each stage's timeout (slow machines)")
    parser.add_argument("--wheels", type=Path, default=None, help="install these wheels for the stages (device)")
    parser.add_argument("--download_wheels", type=Path, default=None, help="fetch the device's wheels here, exit")
    args = parser.parse_args(argv)
    if args.download_wheels is not None:  # pip creates the folder
        return subprocess.run(download_command(args.download_wheels)).returncode
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False; use --device cpu")
    if args.timeout_scale <= 0:
        parser.error(f"--timeout_scale must be > 0, got {args.timeout_scale}")
    output_dir = args.output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report: dict[str, Any] = {"environment": environment(args.device), "quick": args.quick, "stages": []}
    site = None
    if args.wheels is not None:
        site = output_dir / "site"
        report["wheels"] = install_wheels(args.wheels.resolve(), site)
    env = stage_env(args.device, site)
    commands = stage_commands(args, output_dir)
    for name in args.stages:
        timeout = TIMEOUTS[name][1 if args.quick else 0] * args.timeout_scale
        stage = run_stage(name, commands[name], timeout, output_dir, env)
        judge(name, stage, output_dir)
        report["stages"].append(stage)
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    report["passed"] = all(stage["passed"] for stage in report["stages"])
    (output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (output_dir / "report.md").write_text(markdown(report))
    print(f"[device_check] {'PASS' if report['passed'] else 'FAIL'}: wrote {output_dir}/report.md and report.json")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
