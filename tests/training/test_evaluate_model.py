"""scripts/evaluate_model.py: eval_results.json for a task split and for a data file, metrics equal to a recomputation
from the model's logits, and an existing eval_results.json replaced only when this script wrote it."""

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from mrconv_testing import load_script

from modeling_mrconv import MRConvForSequenceClassification
from modeling_mrconv.data import load_task
from modeling_mrconv.data.generators.timeseries import generate_timeseries, write_parquet
from modeling_mrconv.training import build_model, load_preset


RESULTS_FILE, run = load_script("evaluate_model").RESULTS_FILE, load_script("evaluate_model").run


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _args(model_dir: Path, **keys) -> argparse.Namespace:
    values = {"config": None, "set": [], "split": None, "data_file": None, "batch_size": 8, "output_dir": None}
    return argparse.Namespace(model_dir=model_dir, output_file=None, sampling_rate_factor=None, **{**values, **keys})


@pytest.fixture
def export(tmp_path) -> Path:
    """A sequence model (random weights) saved with the preset of its run, on parquet files with labels 0..3."""
    x, y = generate_timeseries(40, length=32, num_channels=2, num_classes=4, burst_length=8, seed=0)
    write_parquet(tmp_path / "train.parquet", x[:24], y[:24])
    write_parquet(tmp_path / "test.parquet", x[24:], y[24:])
    preset = {
        "model": {"hidden_size": 8, "num_hidden_layers": 1, "kernel_type": "fourier", "kernel_size": 8},
        "data": {
            "task": "sequence",
            "source": "local",
            "train_file": str(tmp_path / "train.parquet"),
            "test_file": str(tmp_path / "test.parquet"),
            "validation_fraction": 0.25,
        },
        "train": {"batch_size": 4},
    }
    (tmp_path / "preset.yaml").write_text(yaml.safe_dump(preset))
    preset = load_preset(tmp_path / "preset.yaml", [])
    model = build_model(preset["model"], load_task(preset["data"])).eval()
    with torch.no_grad():  # non-trivial predictions (the head starts at zero)
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    folder = tmp_path / "export"
    model.save_pretrained(folder)
    (folder / "training_preset.yaml").write_text(yaml.safe_dump(preset))
    return folder


def _reference(model_dir: Path, series: list[np.ndarray], labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Accuracy and confusion matrix from the export's logits on per-series z-normalized inputs (the task default)."""
    model = MRConvForSequenceClassification.from_pretrained(model_dir).eval()
    x = torch.tensor(np.stack([(s - s.mean(0)) / s.std(0) for s in series]), dtype=torch.float32)  # (B L C)
    with torch.no_grad():
        predictions = model(input_values=x).logits.argmax(-1).numpy()
    matrix = np.zeros((4, 4), dtype=int)
    np.add.at(matrix, (labels, predictions), 1)
    return float((predictions == labels).mean()), matrix


def test_split_and_data_file_results_equal_the_logits(export, tmp_path):
    results = run(_args(export, split="validation"))
    saved = json.loads((export / RESULTS_FILE).read_text())
    assert saved == results and saved["written_by"] == "scripts/evaluate_model.py" and saved["split"] == "validation"
    task = load_task(load_preset(export / "training_preset.yaml", [])["data"])
    series = [item["input_values"].double().numpy() for item in task.validation]  # z-normalized: again is the identity
    accuracy, matrix = _reference(export, series, np.array(list(task.validation["labels"])))
    assert saved["validation_accuracy"] == pytest.approx(accuracy, abs=1e-12) and saved["num_examples"] == 6
    assert saved["validation_confusion_matrix"] == matrix.tolist()

    # a new file, as the test split, labels given as strings of the model's names; written to another folder
    x, y = generate_timeseries(10, length=32, num_channels=2, num_classes=4, burst_length=8, seed=5)
    write_parquet(tmp_path / "new.parquet", x, [str(v) for v in y])
    out = tmp_path / "eval_new"
    results = run(_args(export, data_file=tmp_path / "new.parquet", output_dir=out))
    saved = json.loads((out / RESULTS_FILE).read_text())
    assert saved == results and saved["data_file"] == str(tmp_path / "new.parquet") and saved["num_examples"] == 10
    accuracy, matrix = _reference(export, list(x.astype(np.float64)), y)
    assert saved["test_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert saved["test_confusion_matrix"] == matrix.tolist() and 0 < accuracy < 1


def test_results_file_is_replaced_only_when_ours(export, tmp_path):
    run(_args(export))
    first = json.loads((export / RESULTS_FILE).read_text())
    run(_args(export, split="train"))  # ours: replaced
    assert "train_accuracy" in json.loads((export / RESULTS_FILE).read_text()) and "test_accuracy" in first
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / RESULTS_FILE).write_text('{"eval_accuracy": 0.9}\n')
    message = f"{foreign / RESULTS_FILE} exists and was not written by scripts/evaluate_model.py (no 'written_by' key)"
    with pytest.raises(ValueError, match=re.escape(message)):
        run(_args(export, output_dir=foreign))
    assert (foreign / RESULTS_FILE).read_text() == '{"eval_accuracy": 0.9}\n'
    with pytest.raises(ValueError, match=re.escape("--data_file is scored as the test split; drop --split train")):
        run(_args(export, split="train", data_file=tmp_path / "test.parquet"))
