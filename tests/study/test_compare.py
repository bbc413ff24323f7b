"""scripts/compare.py --quick end to end (a fresh process, offline), resumption, the grid's scheduling rules, and
the committed results rendered by --report_only."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mrconv_testing import load_script

from modeling_mrconv.study.config import RunSpec, load_study
from modeling_mrconv.study.grid import best_learning_rate, initial_specs, planned_runs, run_grid
from modeling_mrconv.study.report import comparison_lines
from modeling_mrconv.study.runner import RUNNER


ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "benchmarks" / "accuracy"
QUICK_MODELS = {"mrconv_fourier_l0small", "no_branch_bn", "s4d"}


def run_compare(output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "scripts" / "compare.py"), "--quick", "--output_dir", str(output_dir)]
    command += ["--runs_dir", str(output_dir / "cells")]
    result = subprocess.run([*command, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_quick_study_writes_results_and_resumes(tmp_path: Path):
    first = run_compare(tmp_path, "--workers", "2")
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["meta"]["quick"] is True and payload["meta"]["tasks"] == ["digits"]
    assert "scripts/compare.py --quick" in payload["meta"]["command"]
    runs = payload["runs"]
    # 2 MRConv runs (1 seed) + the s4d sweep (2 rates on seed 0, the chosen one is its main run)
    assert len(runs) == 4 and len({r["key"] for r in runs}) == 4
    for r in runs:
        for split in ("train", "validation", "test"):
            assert 0.0 <= r[split]["accuracy"] <= 1.0 and math.isfinite(r[split]["loss"])
        assert r["parameters"] > 0 and r["steps"] == 4 and r["seconds_per_step"] >= 0 and r["threads"] == 1
        # every cell is a run of the training loop, with its own folder
        assert r["runner"] == RUNNER and Path(r["output_dir"]) == tmp_path / "cells" / r["key"]
        assert (
            json.loads((Path(r["output_dir"]) / "all_results.json").read_text())["test_accuracy"]
            == r["test"]["accuracy"]
        )
    summary = {row["model"]: row for row in payload["summary"]}
    assert set(summary) == QUICK_MODELS
    assert summary["s4d"]["learning_rate"] in (1e-3, 1e-2) and summary["s4d"]["seeds"] == [0]
    chosen = [s for s in payload["sweep"] if s["chosen"]]
    assert len(payload["sweep"]) == 2 and len(chosen) == 1
    assert chosen[0]["learning_rate"] == summary["s4d"]["learning_rate"]

    table = (tmp_path / "results.md").read_text()
    assert "scripts/compare.py --quick" in table and "Runs finished: 4 of 4 planned" in table
    assert "previous runner" not in table
    for name, row in summary.items():
        line = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert f"{row['parameters']:,}" in line and f"{100 * row['test_accuracy_mean']:.1f} ±" in line
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "4 runs planned" in first.stdout

    # a rerun trains nothing: every key is in runs.jsonl already; rerunning one model keeps the whole table
    lines = (tmp_path / "runs.jsonl").read_text()
    second = run_compare(tmp_path, "--workers", "1", "--models", "s4d")
    assert (tmp_path / "runs.jsonl").read_text() == lines
    assert "records" not in second.stdout  # no run finished
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["summary"] == payload["summary"] and again["meta"]["command"] == payload["meta"]["command"]
    # --report_only rewrites the report from runs.jsonl and keeps the command that trained the runs
    run_compare(tmp_path, "--report_only")
    table = (tmp_path / "results.md").read_text()
    assert "--workers 2" in table and "--report_only" not in table
    # without that report, the command names the table's tasks and models
    (tmp_path / "results.json").unlink()
    run_compare(tmp_path, "--report_only", "--models", "s4d")
    command = json.loads((tmp_path / "results.json").read_text())["meta"]["command"]
    assert command.endswith("--tasks digits --models mrconv_fourier_l0small,no_branch_bn,s4d")
    assert "--report_only" not in command and "--models s4d" not in command


def fake_run(spec: RunSpec) -> dict:
    """A run record whose validation accuracy peaks at lr 3e-3 (no training)."""
    accuracy = 0.9 if spec.learning_rate == 3e-3 else 0.5
    return {
        **spec.__dict__,
        "key": spec.key,
        "validation": {"accuracy": accuracy, "loss": 1.0},
        "test": {"accuracy": accuracy, "loss": 1.0},
    }


def test_grid_sweeps_peers_first_then_runs_their_seeds_at_the_best_rate(tmp_path: Path):
    calls = []

    def recording_run(spec: RunSpec) -> dict:
        calls.append(spec)
        return fake_run(spec)

    path, study = tmp_path / "runs.jsonl", load_study()
    records = run_grid(study, ["digits"], ["dense_kernel", "bert"], 3, path, recording_run, workers=1)
    keys = [c.key for c in calls]
    assert len(keys) == len(set(keys)) == 3 + 3 + 2  # dense x 3 seeds, bert sweep x 3 rates, bert seeds 1 and 2
    assert [c.phase for c in calls[:3]] == ["sweep"] * 3
    followups = [c for c in calls if c.model == "bert" and c.phase == "main"]
    assert [(c.seed, c.learning_rate) for c in followups] == [(1, 3e-3), (2, 3e-3)]
    assert len(records) == 8 and len(path.read_text().splitlines()) == 8
    # resumable: nothing left to run
    calls.clear()
    run_grid(study, ["digits"], ["dense_kernel", "bert"], 3, path, recording_run, workers=1)
    assert calls == []


def test_best_learning_rate_ties_and_nan():
    records = [
        {"learning_rate": 1e-2, "validation": {"accuracy": 0.8, "loss": float("nan")}},
        {"learning_rate": 3e-3, "validation": {"accuracy": 0.8, "loss": 0.7}},
        {"learning_rate": 1e-3, "validation": {"accuracy": 0.8, "loss": 0.7}},
    ]
    assert best_learning_rate(records) == 1e-3
    assert best_learning_rate(records[:2]) == 3e-3


def test_initial_specs_use_preset_rates_and_exclusions():
    study = load_study()
    specs = initial_specs(study, ["digits"], ["mrconv_dilated_l0small", "mamba"], 3)
    assert [(s.model, s.seed, s.phase) for s in specs[:3]] == [("mrconv_dilated_l0small", i, "main") for i in range(3)]
    assert {s.learning_rate for s in specs[:3]} == {5e-3}
    assert [(s.model, s.learning_rate, s.phase) for s in specs[3:]] == [
        ("mamba", lr, "sweep") for lr in (1e-3, 3e-3, 1e-2)
    ]
    # the study excludes Mamba on the sequence task (too slow on CPU): no run, and the plan counts none
    assert [s.model for s in initial_specs(study, ["sequence"], ["mamba", "s4d"], 3)] == ["s4d"] * 3
    assert planned_runs(study, ["sequence", "digits"], ["mamba", "dense_kernel"], 3) == 3 + 5 + 3


def test_comparison_lines_call_wins_losses_and_noise():
    def row(model, fam, test, std, val):
        return {"model": model, "family": fam, "test_accuracy_mean": test, "test_accuracy_std": std,
                "validation_accuracy_mean": val}  # fmt: skip

    rows = [
        row("mrconv_fourier_l0small", "mrconv", 0.90, 0.01, 0.80),
        row("mrconv_fourier_l0large", "mrconv", 0.95, 0.01, 0.70),
        row("dense_kernel", "ablation", 0.96, 0.02, 0.9),
        row("no_branch_bn", "ablation", 0.80, 0.01, 0.9),
        row("s4d", "peer", 0.895, 0.01, 0.9),
    ]
    lines = comparison_lines(rows, baseline=0.1, base_model="mrconv_fourier_l0small")
    assert lines == [
        "- Base variant `mrconv_fourier_l0small` vs its ablations: `dense_kernel` -6.0 (MRConv loses); "
        "`no_branch_bn` +10.0 (MRConv wins).",
        # the peer is compared with the variant of best validation accuracy, not of best test accuracy
        "- Best-validation variant `mrconv_fourier_l0small` vs the peers: `s4d` +0.5 (within noise).",
    ]
    assert comparison_lines(rows, baseline=0.93, base_model="mrconv_fourier_l0small")[-1].startswith("- Every model")


def test_quick_runs_never_mix_with_study_runs(tmp_path: Path):
    """--quick into a folder of full-study runs (or the reverse) is refused before anything is written."""
    record = {"key": "digits/s4d/seed0/lr0.01", "quick": False, "test": {"accuracy": 0.9}}
    (tmp_path / "runs.jsonl").write_text(json.dumps(record) + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "scripts" / "compare.py"), "--quick", "--output_dir", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert (
        "holds 1 full-study run(s) (e.g. digits/s4d/seed0/lr0.01); use another --output_dir for --quick"
        in result.stderr
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.jsonl"]


@pytest.mark.slow
def test_report_only_renders_the_committed_results(tmp_path: Path):
    """The committed runs (previous runner) through today's report: same summary numbers, a note on the runner."""
    for name in ("runs.jsonl", "results.json"):
        shutil.copy(COMMITTED / name, tmp_path / name)
    load_script("compare").main(["--report_only", "--output_dir", str(tmp_path)])
    committed = json.loads((COMMITTED / "results.json").read_text())
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["meta"]["command"] == committed["meta"]["command"]
    assert written["meta"]["majority_baseline"] == committed["meta"]["majority_baseline"]
    assert written["summary"] == committed["summary"] and written["sweep"] == committed["sweep"]
    table = (tmp_path / "results.md").read_text()
    assert "Runs finished: 153 of 153 planned" in table
    assert "**Runner.** 153 of the 153 runs below were made by the previous runner" in table


@pytest.mark.slow
def test_quick_ucr_cell_on_real_data_beside_published_results(tmp_path: Path):
    """The UCR study's quick form: three cells on the archive's Computers split (3 steps each), reported against the
    published accuracies of benchmarks/ucr/published.json."""
    run_compare(tmp_path, "--study", str(ROOT / "configuration" / "study" / "ucr.yaml"), "--workers", "1")
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["meta"]["tasks"] == ["Computers"] and len(payload["runs"]) == 3
    assert {r["model"] for r in payload["runs"]} == {"mrconv_fourier_l0small", "dense_kernel", "cnn"}
    for r in payload["runs"]:
        assert r["steps"] == 3 and 0.0 <= r["test"]["accuracy"] <= 1.0
        assert json.loads((Path(r["output_dir"]) / "all_results.json").read_text())["num_test_examples"] == 250
    published = json.loads((ROOT / "benchmarks" / "ucr" / "published.json").read_text())["datasets"]["Computers"]
    assert payload["meta"]["published"] == {"Computers": published["published"]}
    table = (tmp_path / "results.md").read_text()
    assert "## Against published results" in table
    assert f"| {100 * published['published']['InceptionTime']:.1f} (InceptionTime) | 62.0 |" in table
    assert (tmp_path / "accuracy.png").stat().st_size > 0
