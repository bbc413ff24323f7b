"""scripts/device_check.py: the quick CPU check end to end (report structure, every stage passed), its parsers and
its stage runner (exit codes, timeouts)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mrconv_testing import load_script


device_check = load_script("device_check")


ROOT = Path(__file__).resolve().parents[2]
STAGES = ["tests", "bench_float32", "bench_bfloat16", "train_bf16"]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    output_dir = tmp_path_factory.mktemp("device_check")
    command = [
        sys.executable,
        "scripts/device_check.py",
        "--device",
        "cpu",
        "--quick",
        "--output_dir",
        str(output_dir),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return output_dir, json.loads((output_dir / "report.json").read_text()), result


def test_quick_cpu_check_passes_every_stage(quick_report):
    output_dir, report, result = quick_report
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert report["passed"] is True and report["quick"] is True
    assert [stage["name"] for stage in report["stages"]] == STAGES
    for stage in report["stages"]:
        assert stage["passed"] and stage["rc"] == 0 and not stage["timed_out"], stage["log_tail"]
        assert stage["wall_seconds"] <= stage["timeout_seconds"]
        log = (output_dir / stage["log_file"]).read_text()
        assert stage["log_tail"] == log[-device_check.LOG_TAIL_CHARS :]
    assert "PASS: wrote" in result.stdout


def test_quick_report_environment_and_numbers(quick_report):
    output_dir, report, _ = quick_report
    env = report["environment"]
    import accelerate
    import torch
    import transformers

    assert (env["torch"], env["transformers"], env["accelerate"]) == (
        torch.__version__,
        transformers.__version__,
        accelerate.__version__,
    )
    assert env["device"] == "cpu" and env["device_name"]
    stages = {stage["name"]: stage for stage in report["stages"]}
    tests = stages["tests"]
    assert tests["command"][-3:] == ["tests/test_devices.py", "-k", "cpu"]
    assert tests["counts"]["passed"] > 0 and tests["counts"]["failed"] == tests["counts"]["errors"] == 0
    for dtype in ("float32", "bfloat16"):
        bench = stages[f"bench_{dtype}"]
        results = json.loads((output_dir / f"bench_{dtype}" / "results.json").read_text())
        ok = [row for row in results["results"] if row["status"] == "ok"]
        assert bench["counts"]["rows_ok"] == len(ok) > 0
        assert results["meta"]["dtype"] == dtype
        assert len(bench["metrics"]["ratios"]) == len(results["ratios"]) > 0
        longest = max(row["sequence_length"] for row in ok)
        assert any(v["sequence_length"] == longest for v in bench["metrics"]["longest_length_time_ms"].values())
    train = stages["train_bf16"]
    all_results = json.loads((output_dir / "train" / "all_results.json").read_text())
    assert train["metrics"]["test_accuracy"] == all_results["test_accuracy"]
    assert train["metrics"]["train_steps"] == all_results["train_steps"] == 4
    assert "mixed precision bf16" in (output_dir / "train_bf16.log").read_text()
    assert (output_dir / "train" / "model.safetensors").exists()
    markdown = (output_dir / "report.md").read_text()
    assert markdown.startswith("# Device check: cpu") and "Overall: **PASS**" in markdown
    for name in STAGES:
        assert f"## {name}" in markdown and f"| {name} | pass | 0 |" in markdown


def test_parse_pytest_counts():
    log = "....F.s\nFAILED tests/x.py::test_a\n3 passed, 1 failed, 2 skipped, 1 error in 1.20s\n"
    counts = device_check.parse_pytest(log)
    assert counts == {"passed": 3, "failed": 1, "errors": 1, "skipped": 2, "xfailed": 0, "xpassed": 0}
    assert device_check.parse_pytest("no summary")["passed"] == 0


def test_run_stage_records_failure_and_timeout(tmp_path):
    env = {"PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]
    failed = device_check.run_stage("failing", command, 60, tmp_path, env)
    assert (failed["rc"], failed["timed_out"]) == (3, False)
    assert failed["log_tail"] == "boom\n" == (tmp_path / "failing.log").read_text()
    device_check.judge("tests", failed, tmp_path)
    assert failed["passed"] is False
    slow = device_check.run_stage("slow", [sys.executable, "-c", "import time; time.sleep(60)"], 1, tmp_path, env)
    assert (slow["rc"], slow["timed_out"]) == (None, True)


def test_bad_arguments_are_named(capsys):
    with pytest.raises(SystemExit):
        device_check.main(["--device", "cpu", "--timeout_scale", "0"])
    assert "--timeout_scale must be > 0, got 0.0" in capsys.readouterr().err


def make_wheel(folder: Path, name: str = "tiny_device_pkg", version: str = "0.1") -> Path:
    """A minimal pure-Python wheel whose module holds VALUE = 3."""
    import base64
    import hashlib
    import zipfile

    files = {
        f"{name}/__init__.py": b"VALUE = 3\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{name}-{version}.dist-info/RECORD"] = (
        "\n".join([*record, f"{name}-{version}.dist-info/RECORD,,"]) + "\n"
    ).encode()
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def test_wheels_are_installed_for_the_stages(tmp_path):
    """--wheels: the folder's wheels go to a site the stages import from, beside the repository's package."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    installed = device_check.install_wheels(wheels, tmp_path / "site")
    assert installed["wheels"] == ["tiny_device_pkg-0.1-py3-none-any.whl"]
    env = device_check.stage_env("cpu", tmp_path / "site")
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(tmp_path / "site"), str(ROOT)]
    code = "import tiny_device_pkg, modeling_mrconv; print(tiny_device_pkg.VALUE, modeling_mrconv.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    value, package = out.stdout.split()
    assert value == "3" and Path(package).is_relative_to(ROOT)
    with pytest.raises(SystemExit, match=r"--wheels .*: no .whl files there \(make them with --download_wheels"):
        device_check.install_wheels(tmp_path / "site", tmp_path / "other")


def test_download_command_targets_the_device_python():
    command = device_check.download_command(Path("/tmp/wheels"))
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in command and command[command.index("--python-version") + 1] == device_check.DEVICE_PYTHON
    pins = [arg for arg in command if "==" in arg]
    assert [pin.split("==")[0] for pin in pins] == list(device_check.DEVICE_WHEELS)
    assert all(pin.split("==")[1] == device_check.package_version(pin.split("==")[0]) for pin in pins)
