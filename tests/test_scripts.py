"""scripts/train.py and scripts/evaluate_model.py: presets, smoke runs, exact resume, evaluation, 2 CPU processes."""

import json
import os
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
    with pytest.raises(ValueError, match=r"train.num_threads: expected a positive number of threads or null, got 0"):
        train(load_preset(config, ["train.num_threads=0"]), **run_args(tmp_path / "zero", config))


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
