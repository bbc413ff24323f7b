"""Smoke test of scripts/benchmark.py: the --quick CPU run writes complete, well-formed outputs (no timing thresholds)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch
from mrconv_testing import load_script

from modeling_mrconv.bench.peers import S4DLayer


ROOT = Path(__file__).resolve().parents[2]
ALWAYS_MEASURED = {("mrconv_merged", "inference"), ("mrconv_unmerged", "inference"), ("s4d", "inference")}
ALWAYS_MEASURED |= {("attention", "inference"), ("mamba", "inference")}
ALWAYS_MEASURED |= {("mrconv_unmerged", "training"), ("single_kernel", "training")}


def test_quick_benchmark_writes_outputs(tmp_path: Path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--quick", "--device", "cpu", "--deployment"]
    result = subprocess.run(
        [*command, "--output_dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    payload = json.loads((tmp_path / "results.json").read_text())
    assert {"device", "device_name", "torch", "date", "memory_method"} <= set(payload["meta"])
    rows = payload["results"]
    kinds = {(row["model"], row["mode"]) for row in rows}
    assert ALWAYS_MEASURED | {("floor", "inference")} <= kinds
    for row in rows:
        if (row["model"], row["mode"]) in ALWAYS_MEASURED:
            assert row["status"] == "ok", row
        if row["status"] == "ok":
            assert row["time_ms"] > 0 and row["peak_mem_mb"] >= 0 and row["repeats"] >= 1
        else:
            assert row["status"].startswith(("skipped", "error")), row

    ratios = payload["ratios"]
    names = {r["ratio"] for r in ratios}
    assert {"unmerged eval / merged", "MRConv train step / single-kernel train step", "attention / merged"} <= names
    for r in ratios:
        for value in (r["time"], r["time_of_minima"], r["peak_memory"] or 1.0):
            assert math.isfinite(value) and value > 0, r
    assert all(math.isfinite(f["exponent"]) for f in payload["scaling_exponents"])

    deployment = payload["deployment"]  # --quick streaming rows: histories 96 and 200, chunks 1, 16, 80
    cases = {(r["history"], r["chunk"], r["variant"]) for r in deployment["rows"]}
    expected = {(P, C, v) for P in (96, 200) for C in (1, 16, 80) for v in ("stream", "recompute")}
    assert cases == expected | {(96, 80, "stream_direct"), (200, 80, "stream_direct")}  # only where the FFT path runs
    for row in deployment["rows"]:
        assert row["status"] == "ok" and row["time_ms"] > 0 and row["repeats"] >= 1, row
        assert row["kernel_support"] > 1 and row["fft_min_chunk"] == 64
    names = {(r["ratio"], r["history"], r["chunk"]) for r in deployment["ratios"]}
    assert {("recompute prefix / stream", P, C) for P in (96, 200) for C in (1, 16, 80)} <= names
    assert ("direct-only stream / hybrid stream", 200, 80) in names
    assert all(math.isfinite(r["time"]) and r["time"] > 0 for r in deployment["ratios"])
    assert "deployment_method" in payload["meta"]

    table = (tmp_path / "results.md").read_text()
    assert "| model | mode |" in table and "MRConv merged" in table
    assert "### Streaming: one chunk after a history vs recomputing the prefix" in table
    assert "| 200 | 80 |" in table
    assert (tmp_path / "time_vs_length.png").stat().st_size > 0
    assert "scaling exponents" in result.stdout and "recompute prefix / stream" in result.stdout


def test_training_only_measures_the_training_rows(tmp_path: Path):
    """--training_only: MRConv and the single-kernel model in training mode, their ratio, no inference row."""
    benchmark = load_script("benchmark")

    benchmark.main(["--quick", "--device", "cpu", "--training_only", "--output_dir", str(tmp_path)])
    payload = json.loads((tmp_path / "results.json").read_text())
    rows = {(row["model"], row["mode"], row["sequence_length"]) for row in payload["results"]}
    assert rows == {(m, "training", L) for m in ("mrconv_unmerged", "single_kernel") for L in (256, 512)}
    assert all(row["status"] == "ok" and row["time_ms"] > 0 for row in payload["results"])
    assert {(r["ratio"], r["sequence_length"]) for r in payload["ratios"]} == {
        ("MRConv train step / single-kernel train step", L) for L in (256, 512)
    }


def test_s4d_layer_matches_its_recurrence():
    """The benchmark's S4D peer is a real diagonal SSM: its FFT convolution equals the ZOH recurrence."""
    layer = S4DLayer(hidden_size=3, bidirectional=False, state_size=8).double()
    u = torch.randn(2, 3, 20, dtype=torch.float64)  # (B H L)
    with torch.no_grad():
        y = layer(u) - u * layer.D[:, None]  # (B H L)
        kernel = layer.kernel
        A = torch.complex(-kernel.log_A_real.exp(), kernel.A_imag)  # (H N2)
        dtA = A * kernel.log_dt.exp()[:, None]
        C = torch.view_as_complex(kernel.C.contiguous())
        x = torch.zeros(2, 3, A.shape[1], dtype=A.dtype)  # (B H N2)
        expected = []
        for t in range(u.shape[-1]):
            x = dtA.exp() * x + (dtA.exp() - 1) / A * u[..., t, None]
            expected.append(2 * (C * x).sum(-1).real)
    torch.testing.assert_close(y, torch.stack(expected, -1), rtol=1e-5, atol=1e-5)  # the layer convolves in float32
