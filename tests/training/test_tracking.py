"""`train.report_to`: Accelerate trackers fed by every metrics.jsonl event; TensorBoard read back offline."""

import json
import re
import sys
from pathlib import Path

import pytest
from accelerate.state import AcceleratorState

from modeling_mrconv.training import load_preset
from modeling_mrconv.training.config import flat_preset, resolve_trackers
from modeling_mrconv.training.loop import tracker_values, train


TINY = Path(__file__).resolve().parents[2] / "configuration" / "tiny.yaml"


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _args(output_dir: Path) -> dict:
    return {"output_dir": str(output_dir), "cpu": True}


def test_tensorboard_events_hold_the_logged_train_loss(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = ["train.report_to=tensorboard", "train.max_steps=3", "train.log_every=1", "train.eval_every=3"]
    train(load_preset(TINY, overrides), **_args(tmp_path))
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = {e["step"]: e["train_loss"] for e in events if "train_loss" in e}
    assert sorted(logged) == [1, 2, 3]
    board = EventAccumulator(str(tmp_path / "mrconv"))
    board.Reload()
    scalars = board.Tags()["scalars"]
    assert {"train_loss", "train_accuracy", "lr/kernel", "validation_accuracy", "final_test_accuracy"} <= set(scalars)
    loss = board.Scalars("train_loss")
    assert [s.step for s in loss] == [1, 2, 3]
    assert [s.value for s in loss] == pytest.approx([logged[k] for k in (1, 2, 3)], rel=1e-6)
    final = json.loads((tmp_path / "all_results.json").read_text())["test_accuracy"]
    assert board.Scalars("final_test_accuracy")[0].value == pytest.approx(final, rel=1e-6)


def test_report_to_choices_and_missing_packages(tmp_path, monkeypatch):
    message = "train.report_to: expected one of none | tensorboard | trackio | wandb | all, got 'tb'"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_preset(TINY, ["train.report_to=tb"])
    assert load_preset(TINY, [])["train"]["report_to"] == "none" and resolve_trackers("none") == []
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed: `import tensorboard` fails
    with pytest.raises(
        ValueError,
        match=re.escape(
            "train.report_to=tensorboard: the 'tensorboard' package is not installed; pip install tensorboard"
        ),
    ):
        train(load_preset(TINY, ["train.report_to=tensorboard"]), **_args(tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # refused before the output folder, the data or a step
    for name in ("trackio", "wandb"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "train.report_to=all: no tracker package is installed; pip install tensorboard or trackio or wandb"
        ),
    ):
        resolve_trackers("all")


def test_tracker_values_and_flat_preset():
    record = {
        "step": 4,
        "epoch": 1,
        "lr": {"kernel": 0.001, "decay": 0.01},
        "train_loss": 0.5,
        "data": "x",
        "ok": True,
    }
    assert tracker_values(record) == {"epoch": 1, "lr/kernel": 0.001, "lr/decay": 0.01, "train_loss": 0.5}
    flat = flat_preset(
        {"model": {"hidden_size": 16, "branch": None}, "data": {"input_column": ["a", "b"]}, "train": {}}
    )
    assert flat == {"model.hidden_size": 16, "model.branch": "null", "data.input_column": '["a", "b"]'}
