"""A study cell is a run of the training loop of scripts/train.py: the same preset gives the same results through
`study.runner.run_cell` and through `scripts/train.py`, and a peer cell trains, exports and reloads through it."""

import json
import sys
from pathlib import Path

import pytest
import yaml
from mrconv_testing import load_script

from modeling_mrconv.bench.peers import PeerForSequenceClassification
from modeling_mrconv.study.config import RunSpec, load_study
from modeling_mrconv.study.runner import RUNNER, run_cell


ROOT = Path(__file__).resolve().parents[2]
STUDY = f"""
seeds: 1
workers: 1
peer_learning_rates: [0.01]
tasks:
  tiny: {{preset: {ROOT / "configuration" / "tiny.yaml"}, values: {{width: 8}}}}
models:
  mrconv: {{base: [train.max_steps=6, train.num_threads=1]}}
  peer: {{s4d: [model.architecture=s4d, "model.hidden_size={{width}}", train.max_steps=4, train.num_threads=1]}}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "tiny_study.yaml"
    path.write_text(STUDY)
    return load_study(path)


def test_a_cell_gives_what_scripts_train_gives_on_its_preset(study, tmp_path, monkeypatch):
    record = run_cell(RunSpec("tiny", "base", 0, 5e-3), study, tmp_path / "cells")
    cell = Path(record["output_dir"])
    assert cell == tmp_path / "cells" / "tiny" / "base" / "seed0" / "lr0.005"
    assert record["runner"] == RUNNER and record["steps"] == 6 and record["threads"] == 1
    assert "validation accuracy" in (cell / "train.log").read_text()  # the loop's output, not the study's console

    script = tmp_path / "script"
    argv = ["train.py", "--config", str(cell / "training_preset.yaml"), "--output_dir", str(script), "--cpu"]
    monkeypatch.setattr(sys, "argv", argv)
    load_script("train").main()
    cell_results = json.loads((cell / "all_results.json").read_text())
    script_results = json.loads((script / "all_results.json").read_text())
    for results in (cell_results, script_results):
        results.pop("train_runtime_seconds")
    assert cell_results == script_results

    def losses(folder: Path) -> list[float]:
        events = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        return [e["train_loss"] for e in events if "train_loss" in e]

    assert losses(cell) == losses(script) and len(losses(cell)) == 3  # log_every 2
    assert record["test"]["accuracy"] == cell_results["test_accuracy"]
    assert record["validation"]["accuracy"] == cell_results["validation_accuracy"]
    assert record["parameters"] == cell_results["num_parameters"]


def test_a_peer_cell_trains_exports_and_reloads_through_the_loop(study, tmp_path):
    spec = RunSpec("tiny", "s4d", 0, 0.01, "sweep")
    record = run_cell(spec, study, tmp_path)
    cell = Path(record["output_dir"])
    preset = yaml.safe_load((cell / "training_preset.yaml").read_text())
    assert preset["model"] == {"architecture": "s4d", "hidden_size": 8} and preset["train"]["learning_rate"] == 0.01
    exported = PeerForSequenceClassification.from_pretrained(cell)
    assert exported.config.architecture == "s4d" and exported.config.hidden_size == 8
    assert record["parameters"] == exported.num_parameters() and record["config"]["architecture"] == "s4d"
    assert (record["phase"], record["learning_rate"], record["steps"], record["key"]) == (
        "sweep",
        0.01,
        4,
        "tiny/s4d/seed0/lr0.01",
    )
    for split in ("train", "validation", "test"):
        assert 0.0 <= record[split]["accuracy"] <= 1.0
    # an unfinished earlier try of a cell (its folder is ours) starts over
    (cell / "all_results.json").unlink()
    assert run_cell(spec, study, tmp_path)["test"] == record["test"]
