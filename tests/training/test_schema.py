"""Tests for modeling_mrconv/training/schema.py: preset keys checked against MRConvConfig, TrainConfig and the task's
dataclass before any data is built, with exact messages."""

import re
from pathlib import Path

import pytest

from modeling_mrconv.training import load_preset


ROOT = Path(__file__).resolve().parents[2]
TEXT_CPU = ROOT / "configuration" / "text_cpu.yaml"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.learning_rate=abc"], "train.learning_rate: expected a number, got 'abc'"),
        (["train.batch_size=2.5"], "train.batch_size: expected an integer, got 2.5"),
        (["train.sync_batch_norm=1"], "train.sync_batch_norm: expected a boolean, got 1"),
        (["train.max_steps=abc"], "train.max_steps: expected an integer or null, got 'abc'"),
        (["model.hidden_size=wide"], "model.hidden_size: expected an integer, got 'wide'"),
        (["data.num_train=many"], "data.num_train: expected an integer, got 'many'"),
        (
            ["train.learning_rat=0.1"],
            "train.learning_rat: unknown train key; did you mean 'learning_rate'? valid keys: ['batch_size',",
        ),
        (["model.kernel_sise=8"], "model.kernel_sise: unknown model key; did you mean 'kernel_size'? valid keys:"),
        (
            ["data.num_trian=16"],
            "data.num_trian: unknown data key (not a key of task 'synthetic_text'); did you mean 'num_train'?",
        ),
        # keys of the synthetic task do not apply to real text
        (["data.task=text"], "data.num_train: unknown data key (not a key of task 'text'); valid keys: ['cache',"),
        (["data.task=txt"], "data.task: unknown data task 'txt'; did you mean 'text'? choose from"),
        (["model.vocab_size=10"], "model.vocab_size: set from the task's data, not a preset key"),
    ],
)
def test_bad_preset_values_fail_with_the_key(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_preset(TEXT_CPU, overrides)


def test_valid_keys_are_listed_and_defaults_filled():
    with pytest.raises(ValueError) as error:
        load_preset(TEXT_CPU, ["train.learning_rat=0.1"])
    assert "'learning_rate'" in str(error.value) and "'weight_decay'" in str(error.value)
    preset = load_preset(TEXT_CPU, ["train.learning_rate=1e-3", "train.max_steps=null", "data.data_seed=4"])
    assert preset["train"]["learning_rate"] == 1e-3 and preset["train"]["max_steps"] is None
    assert preset["train"]["batch_size"] == 16 and preset["train"]["log_every"] == 10  # preset value, default
    assert preset["data"]["data_seed"] == 4


def test_every_preset_passes_the_schema():
    presets = [p for p in sorted((ROOT / "configuration").glob("*.yaml")) if not p.stem.startswith("accelerate_")]
    assert len(presets) >= 17
    for path in presets:
        assert set(load_preset(path, [])) == {"model", "data", "train"}


def test_text_length_is_the_models(tmp_path):
    """The model's max_sequence_length is the one length (data/task.py cuts the documents to it): no data key."""
    text = ["data.task=text", "data.num_train=null", "data.num_validation=null", "data.num_test=null"]
    text += ["data.min_length=null"]
    with pytest.raises(ValueError, match=re.escape("data.num_train: unknown data key (not a key of task 'text')")):
        load_preset(TEXT_CPU, text)
    preset = (ROOT / "configuration" / "text_cpu.yaml").read_text()
    for key in ("num_train", "num_validation", "num_test", "min_length", "max_length"):
        preset = "\n".join(line for line in preset.splitlines() if not line.strip().startswith(f"{key}:"))
    path = tmp_path / "text.yaml"
    path.write_text(preset.replace("task: synthetic_text", "task: text"))
    assert "max_length" not in load_preset(path, ["model.max_sequence_length=4096"])["data"]
    with pytest.raises(ValueError, match=re.escape("data.max_length: unknown data key (not a key of task 'text')")):
        load_preset(path, ["data.max_length=512", "model.max_sequence_length=4096"])
