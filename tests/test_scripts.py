"""scripts/train.py and scripts/evaluate_model.py: presets, smoke runs, exact resume, evaluation, 2 CPU processes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from mrconv_testing import run_two_processes
from safetensors.torch import load_file

from modeling_mrconv import MRConvConfig, MRConvForDocumentPairClassification, MRConvForSequenceClassification
from modeling_mrconv.training import DEFAULT_PRESET, load_preset, train
from modeling_mrconv.training.config import resolve_num_threads


ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(
    p for p in (ROOT / "configuration").glob("*.yaml") if not p.stem.startswith("accelerate_")
)  # not launcher configs
FULL_PRESETS = [p for p in PRESETS if not p.stem.endswith("_cpu") and p.stem != "tiny"]
CPU_PRESETS = [p for p in PRESETS if p.stem.endswith("_cpu") or p.stem == "tiny"]
# what each paper task feeds the model: (vocab_size, input_dim, num_labels)
TASK_INPUTS = {
    "listops": (18, None, 10),
    "text": (259, None, 2),
    "retrieval": (259, None, 2),
    "image": (1, 1, 10),
    "scifar": (1, 3, 10),
    "pathfinder": (1, 1, 2),
    "pathx": (1, 1, 2),
    "speech_commands": (1, 1, 35),
}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "scripts")}


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    """Each in-process run builds its own Accelerator (mixed precision differs between tests): reset the per-process
    singleton state around every test, as accelerate's own test utilities do."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def run_args(output_dir: Path, config: Path = DEFAULT_PRESET, resume: str | None = None) -> dict:
    """`train`'s keyword arguments of a CPU run into `output_dir` (`config` names the preset, as the CLI does)."""
    return {"output_dir": str(output_dir), "resume": resume, "cpu": True}


def test_every_paper_preset_has_a_cpu_preset():
    assert {p.stem for p in FULL_PRESETS} == set(TASK_INPUTS)
    assert {p.stem + "_cpu" for p in FULL_PRESETS} <= {p.stem for p in CPU_PRESETS}


@pytest.mark.parametrize("path", FULL_PRESETS, ids=lambda p: p.stem)
def test_paper_presets_load_and_build(path):
    preset = load_preset(path, [])
    vocab_size, input_dim, num_labels = TASK_INPUTS[preset["data"]["task"]]
    config = MRConvConfig(**preset["model"], vocab_size=vocab_size, input_dim=input_dim, num_labels=num_labels)
    cls = (
        MRConvForDocumentPairClassification
        if preset["data"]["task"] == "retrieval"
        else MRConvForSequenceClassification
    )
    model = cls(config).eval()
    assert config.branch_lengths[-1] == config.max_sequence_length  # the longest branch covers the sequence
    shape = (2, 2, 64) if cls is MRConvForDocumentPairClassification else (2, 64)
    inputs = (
        {"input_ids": torch.randint(1, vocab_size, shape)}
        if input_dim is None
        else {"input_values": torch.randn(2, 64, input_dim)}
    )
    with torch.no_grad():
        assert model(**inputs).logits.shape == (2, num_labels)


def test_unknown_preset_keys_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"train.learning_rat: unknown train key; did you mean 'learning_rate'\?"):
        load_preset(ROOT / "configuration" / "tiny.yaml", ["train.learning_rat=0.1"])
    with pytest.raises(ValueError, match="section.key=value"):
        load_preset(ROOT / "configuration" / "tiny.yaml", ["batch_size=3"])


@pytest.mark.parametrize("path", CPU_PRESETS, ids=lambda p: p.stem)
def test_cpu_presets_smoke_train(tmp_path, path):
    preset = load_preset(path, ["train.max_steps=2", "train.log_every=1"])
    results = train(preset, **run_args(tmp_path, path))
    assert results["train_steps"] == 2 and 0.0 <= results["test_accuracy"] <= 1.0
    assert json.loads((tmp_path / "config.json").read_text())["reparameterized"] is True
    assert json.loads((tmp_path / "all_results.json").read_text())["test_accuracy"] == results["test_accuracy"]
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("train_loss" in e for e in events) and any("validation_accuracy" in e for e in events)


def test_gradient_accumulation_and_bf16_autocast(tmp_path):
    """Accumulating 2 micro-batches halves the optimizer steps; bf16 autocast trains and exports float32 weights."""
    config = ROOT / "configuration" / "tiny.yaml"
    overrides = ["train.gradient_accumulation_steps=2", "train.mixed_precision=bf16", "train.eval_every=2"]
    results = train(load_preset(config, overrides), **run_args(tmp_path, config))
    assert results["train_steps"] == 8  # 128 examples / 16 per batch / 2 micro-batches x 2 epochs
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "float32"
    losses = [
        e["train_loss"]
        for e in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
        if "train_loss" in e
    ]
    assert len(losses) == 4 and all(0 < loss < 10 for loss in losses)


def test_too_few_training_batches_are_refused_before_training(tmp_path):
    """drop_last with fewer examples than one optimizer step used to loop forever without a step."""
    config = ROOT / "configuration" / "tiny.yaml"
    preset = load_preset(config, ["data.num_train=24", "train.batch_size=16", "train.gradient_accumulation_steps=2"])
    with pytest.raises(
        ValueError,
        match=r"train split: 24 examples give 1 full batches of train.batch_size=16 per "
        r"process \(1 process\(es\)\), fewer than the 2 micro-batch\(es\)",
    ):
        train(preset, **run_args(tmp_path, config))
    assert not (tmp_path / "checkpoints").exists()


def test_num_threads_sets_torch_threads(tmp_path):
    config = ROOT / "configuration" / "tiny.yaml"
    before = torch.get_num_threads()
    try:
        train(load_preset(config, ["train.num_threads=1", "train.max_steps=1"]), **run_args(tmp_path, config))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    for value in ("0", "two"):
        with pytest.raises(
            ValueError, match=r"train.num_threads: expected a positive number of threads, auto or null"
        ):
            load_preset(config, [f"train.num_threads={value}"])


@pytest.mark.parametrize(
    ("cores", "environment", "expected"),
    [
        (2, {}, 1),  # a 2-core machine: one core left to the other jobs
        (8, {}, 7),
        (1, {}, 1),
        (16, {"LOCAL_WORLD_SIZE": "2"}, 3),  # torch's default (physical cores) 8, less one, per process
        (8, {"OMP_NUM_THREADS": "3"}, 3),  # the user's choice
    ],
)
def test_auto_num_threads_leaves_a_core_to_other_jobs(monkeypatch, cores, environment, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert resolve_num_threads("auto", default=min(cores, 8)) == expected
    assert resolve_num_threads(4, default=2) == 4 and resolve_num_threads(None, default=2) is None


def test_cpu_presets_leave_a_core_to_other_jobs():
    for path in CPU_PRESETS:
        if path.stem != "tiny":
            assert load_preset(path, [])["train"]["num_threads"] == "auto", path.name


def test_resume_in_place_logs_each_step_once_and_rotation_keeps_the_new_checkpoint(tmp_path):
    config = ROOT / "configuration" / "tiny.yaml"
    preset = load_preset(config, [])
    train(preset, **run_args(tmp_path, config))
    checkpoints = tmp_path / "checkpoints"
    # as after a kill: resume in the same folder from an earlier checkpoint; steps 13-16 are logged again
    train(preset, **run_args(tmp_path, config, resume=str(checkpoints / "step_12")))
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_steps = [e["step"] for e in events if "train_loss" in e]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == 16
    assert all(set(e["lr"]) == {"kernel", "no_decay", "decay"} for e in events if "train_loss" in e)
    # a shorter run into a folder holding higher step numbers keeps the checkpoint it just wrote
    train(load_preset(config, ["train.max_steps=4"]), **run_args(tmp_path, config))
    latest = (checkpoints / "latest").read_text()
    assert latest == "step_4" and (checkpoints / latest / "trainer_state.json").exists()


def test_resuming_a_finished_run_keeps_its_runtime_and_logs_one_final_line(tmp_path, capsys):
    config = ROOT / "configuration" / "tiny.yaml"
    preset = load_preset(config, ["train.max_steps=4"])
    first = train(preset, **run_args(tmp_path, config))
    log = capsys.readouterr().out  # as redirected to a file: plain lines, the evaluation on its own line
    assert "\r" not in log and re.search(r"^step 4: validation accuracy \d\.\d{4}$", log, re.MULTILINE)
    assert re.search(r"^step 4/4 \(100%\), [\d.]+ s/step, 0m00s left, loss=[\d.]+, acc=[\d.]+$", log, re.MULTILINE)
    state_file = tmp_path / "checkpoints" / "step_4" / "trainer_state.json"
    saved = json.loads(state_file.read_text())
    assert saved["train_runtime_seconds"] > 0 and first["train_steps"] == 4
    state_file.write_text(json.dumps({**saved, "train_runtime_seconds": 100.0}))  # as after a long first segment
    (tmp_path / "README.md").write_text("# my notes\n")  # the model card never replaces a README of the user's
    again = train(preset, **run_args(tmp_path, config, resume=str(tmp_path / "checkpoints" / "latest")))
    assert again["train_steps"] == 4
    assert again["train_runtime_seconds"] >= 100.0  # the earlier segment counts (was 0.0)
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    finals = [e for e in events if "final_test_accuracy" in e]
    assert len(finals) == 1 and finals[0]["final_train_runtime_seconds"] == again["train_runtime_seconds"]
    assert (tmp_path / "README.md").read_text() == "# my notes\n"


HEAVY_MODULES = {"torch", "transformers", "accelerate", "datasets"}


def run_train_cli(*args: str, cwd: Path = ROOT) -> tuple[int, str, list[str], set[str]]:
    """`python -X importtime scripts/train.py args`: (exit status, stdout, stderr lines that are not import times,
    the top-level modules imported)."""
    command = [sys.executable, "-X", "importtime", str(ROOT / "scripts" / "train.py"), *args]
    result = subprocess.run(command, env=ENV, cwd=cwd, capture_output=True, text=True, timeout=300)
    lines = result.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    messages = [line for line in lines if not line.startswith("import time:")]
    return result.returncode, result.stdout, messages, imported


def test_help_needs_no_heavy_imports():
    status, stdout, messages, imported = run_train_cli("--help")
    assert status == 0 and stdout.startswith("usage: train.py") and not messages
    assert not imported & HEAVY_MODULES


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "train.learning_rat=1"],
            "train.learning_rat: unknown train key; did you mean 'learning_rate'? valid keys: ['batch_size', ",
        ),
        (
            ["--set", "modle.kernel_size=8"],
            "--set modle.kernel_size=8: unknown section 'modle'; did you mean 'model'? sections: model | data | train",
        ),
        (
            ["--config", "configuration/listops_cpu.yml"],
            f"configuration/listops_cpu.yml: no such preset file; did you mean "
            f"'{ROOT / 'configuration' / 'listops_cpu.yaml'}'?",
        ),
        (["--set", "train.batch_size"], "--set expects section.key=value with section model|data|train"),
        (["--resume", "nowhere/checkpoints/latest"], "--resume nowhere/checkpoints/latest: not a checkpoint"),
    ],
)
def test_user_errors_are_one_line_before_the_heavy_imports(tmp_path, args, message):
    status, _, messages, imported = run_train_cli(*args, "--output_dir", str(tmp_path / "run"))
    assert status == 2 and len(messages) == 1, messages
    assert messages[0].startswith(f"train.py: error: {message}")
    assert not imported & HEAVY_MODULES


def test_a_failed_runs_folder_is_refused_with_what_works(tmp_path):
    """A run that failed on its data leaves a folder without a checkpoint: no --resume is offered (issue 18)."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".mrconv_run").write_text("")
    status, _, messages, imported = run_train_cli("--output_dir", str(tmp_path / "run"))
    assert status == 2 and messages == [
        f"train.py: error: --output_dir {tmp_path / 'run'} holds a run of scripts/train.py that stopped before its "
        "first checkpoint (nothing to resume); pass --overwrite_output_dir to replace it, or another --output_dir."
    ]
    assert not imported & HEAVY_MODULES


def test_model_key_errors_are_one_line_too(tmp_path):
    """`model:` and `data:` keys are checked against the config classes, after the imports: one line as well."""
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--set", "model.kernel_sise=8"]
    result = subprocess.run(
        [*command, "--output_dir", str(tmp_path / "run")], env=ENV, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("train.py: error: model.kernel_sise: unknown model key; did you mean 'kernel_size'?")
    )
    assert not (tmp_path / "run").exists()


def test_resume_from_saved_state_is_exact(tmp_path):
    config = ROOT / "configuration" / "tiny.yaml"
    preset = load_preset(config, [])
    full = train(preset, **run_args(tmp_path / "full", config))
    checkpoints = sorted((tmp_path / "full" / "checkpoints").glob("step_*"))
    assert [p.name for p in checkpoints] == ["step_12", "step_16"]  # save_total_limit 2
    resumed = train(preset, **run_args(tmp_path / "resumed", config, resume=str(checkpoints[0])))
    assert resumed["train_steps"] == full["train_steps"] == 16
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)

    # evaluate_model.py: the export and the training checkpoint give the same test metrics
    outputs = {}
    for name, folder in (("export", tmp_path / "full"), ("checkpoint", checkpoints[-1])):
        out = tmp_path / f"{name}.json"
        command = [
            sys.executable,
            str(ROOT / "scripts" / "evaluate_model.py"),
            "--model_dir",
            str(folder),
            "--output_file",
            str(out),
        ]
        result = subprocess.run(command, env=ENV, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = json.loads(out.read_text())
    assert outputs["export"]["reparameterized"] and not outputs["checkpoint"]["reparameterized"]
    assert outputs["export"]["test_accuracy"] == outputs["checkpoint"]["test_accuracy"] == full["test_accuracy"]
    assert outputs["export"]["test_loss"] == pytest.approx(outputs["checkpoint"]["test_loss"], abs=1e-5)


@pytest.mark.slow
def test_two_cpu_processes(tmp_path):
    config = str(ROOT / "configuration" / "tiny.yaml")
    script = ROOT / "scripts" / "train.py"
    run_two_processes(
        script, "--config", config, "--output_dir", str(tmp_path), env={**ENV, "ACCELERATE_USE_CPU": "true"}
    )
    results = json.loads((tmp_path / "all_results.json").read_text())
    assert results["num_processes"] == 2
    assert results["train_steps"] == 8  # 128 examples / (16 per process x 2 processes) x 2 epochs
    assert MRConvForSequenceClassification.from_pretrained(tmp_path).config.reparameterized
