"""scripts/profile_training.py: the training-cost grid of the full classifier (every row's ratios are its own
measured medians and minima; the report names the CPU, threads and versions) and its argument errors."""

import json
import re
from pathlib import Path

import pytest
import torch
import transformers

from tests.mrconv_testing import load_script


def test_training_cost_grid_reports_measured_ratios_and_environment(tmp_path: Path, monkeypatch):
    profile = load_script("profile_training")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4294967296")  # recorded in the report (glibc reads it at start)
    argv = ["--kernel_types", "dilated", "fourier_sparse", "--masks", "none", "padded", "--directions", "causal"]
    argv += ["--batch_sizes", "2", "--lengths", "64", "--hidden_size", "4", "--repeats", "2", "--reference"]
    threads, verbosity = torch.get_num_threads(), transformers.logging.get_verbosity()
    try:  # main() sets 1 thread (its default) and silences transformers' warnings: restore both for later tests
        rows = profile.main([*argv, "--profile_ops", "2", "--output_dir", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
        transformers.logging.set_verbosity(verbosity)
    assert [(r["kernel_type"], r["mask"]) for r in rows] == [
        ("dilated", "none"),
        ("dilated", "padded"),
        ("fourier_sparse", "none"),
        ("fourier_sparse", "padded"),
    ]
    for row in rows:
        assert row["direction"] == "causal" and (row["B"], row["L"]) == (2, 64)
        for name in ("mrconv", "reference"):
            assert row[f"{name}_ratio"] == row[name]["median_ms"] / row["single"]["median_ms"]
            assert row[f"{name}_ratio_of_minima"] == row[name]["min_ms"] / row["single"]["min_ms"]
        for name in ("mrconv", "single", "reference"):
            assert 0 < row[name]["min_ms"] <= row[name]["median_ms"] and row[name]["saved_mb"] > 0
            assert len(row["profile"][name]) == 2 and row["profile"][name][0]["self_ms"] > 0
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["rows"] == json.loads(json.dumps(rows))
    meta = written["meta"]
    assert meta["threads"] == 1 and meta["torch"] == torch.__version__
    assert meta["cpu"] and {"transformers", "numpy", "python", "code_sha256"} <= set(meta)
    table = (tmp_path / "results.md").read_text()
    assert f"CPU {meta['cpu']}, 1 thread(s)" in table
    assert meta["allocator"]["MALLOC_TRIM_THRESHOLD_"] == "4294967296" and "MALLOC_TRIM_THRESHOLD_=4294967296" in table
    line = next(
        line for line in table.splitlines() if line.startswith("| fourier_sparse | padded | causal | 2 | 64 |")
    )
    assert f"**{rows[-1]['mrconv_ratio']:.2f}x** ({rows[-1]['mrconv_ratio_of_minima']:.2f}x)" in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--padding", "0.7"], "--padding: got 0.7, expected a fraction from 0 to 0.5"),
        (["--kernel_types", "gaussian"], "--kernel_types: unknown ['gaussian']"),
        (["--masks", "left"], "argument --masks: invalid choice: 'left'"),
        (["--repeats", "0"], "--repeats: got 0, expected a positive integer"),
    ],
)
def test_bad_arguments_name_the_argument(argv, message, capsys):
    with pytest.raises(SystemExit):
        load_script("profile_training").parse_args(argv)
    assert re.search(re.escape(message), capsys.readouterr().err)
