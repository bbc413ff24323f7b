"""scripts/evaluate_model.py --sampling_rate_factor: the zero-shot rate change is applied before evaluating."""

import json
import runpy
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState

from modeling_mrconv import MRConvForSequenceClassification
from modeling_mrconv.data import load_task
from modeling_mrconv.training import build_model, load_preset


ROOT = Path(__file__).resolve().parents[2]
PRESET = {
    "model": {"hidden_size": 8, "num_hidden_layers": 1, "kernel_type": "fourier", "kernel_size": 8},
    "data": {"task": "synthetic_audio", "num_classes": 3, "length": 64, "num_train": 4, "num_validation": 4},
    "train": {"batch_size": 4},
}


def run_evaluate(model_dir: Path, config: Path, out: Path, *extra: str) -> dict:
    """scripts/evaluate_model.py run in-process as `__main__`."""
    argv = ["evaluate_model.py", "--model_dir", str(model_dir), "--config", str(config), "--output_file", str(out)]
    argv += ["--set", "data.resample_to=8000", *extra]
    AcceleratorState._reset_state(reset_partial_state=True)
    with mock.patch.object(sys, "argv", argv):
        runpy.run_path(str(ROOT / "scripts" / "evaluate_model.py"), run_name="__main__")
    AcceleratorState._reset_state(reset_partial_state=True)
    return json.loads(out.read_text())


def test_sampling_rate_factor_changes_the_model_and_writes_metrics(tmp_path):
    config = tmp_path / "preset.yaml"
    config.write_text(yaml.safe_dump({**PRESET, "data": {**PRESET["data"], "num_test": 12}}))
    preset = load_preset(config, ["data.resample_to=8000"])
    task = load_task(preset["data"], seed=preset["train"]["seed"])
    model = build_model(preset["model"], task).eval()
    with torch.no_grad():  # non-trivial weights (the head starts at zero) and BatchNorm statistics
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    model.save_pretrained(tmp_path / "export")  # merged at the training rate (64 steps)

    changed = run_evaluate(tmp_path / "export", config, tmp_path / "changed.json", "--sampling_rate_factor", "0.5")
    plain = run_evaluate(tmp_path / "export", config, tmp_path / "plain.json")
    assert changed["sampling_rate_factor"] == 0.5 and changed["max_sequence_length"] == 32
    assert "sampling_rate_factor" not in plain and changed["reparameterized"] and plain["reparameterized"]

    # reference: the export changed in-process, on the decimated test split (32 steps)
    reference = MRConvForSequenceClassification.from_pretrained(tmp_path / "export").change_sampling_rate(0.5)
    batch = task.collate_fn([task.test[i] for i in range(len(task.test))])
    assert batch["input_values"].shape[1] == 32
    with torch.no_grad():
        out = reference(**batch)
    expected_accuracy = (out.logits.argmax(-1) == batch["labels"]).double().mean().item()
    assert changed["test_accuracy"] == pytest.approx(expected_accuracy, abs=1e-12)
    assert changed["test_loss"] == pytest.approx(out.loss.item(), rel=1e-5)
    assert changed["test_loss"] != pytest.approx(plain["test_loss"], rel=1e-6)  # the option changed the model


@pytest.mark.parametrize("name", ["speech_commands", "speech_commands_cpu", "synthetic_audio_cpu"])
def test_audio_presets_document_and_accept_the_zero_shot_evaluation(name):
    path = ROOT / "configuration" / f"{name}.yaml"
    assert load_preset(path, ["data.resample_to=8000"])["data"]["resample_to"] == 8000
    assert "--set data.resample_to=8000 --sampling_rate_factor 0.5" in path.read_text()
