"""save_pretrained ships the merged kernel; from_pretrained rebuilds it; every save is loadable."""

import json
import os

import pytest
import torch
from mrconv_testing import random_inputs, run_without_package, tiny_config, warmed_model
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from modeling_mrconv import MRConvForSequenceClassification


def saved_keys(folder) -> set[str]:
    return set(load_file(os.path.join(folder, "model.safetensors")))


def is_branch_key(key: str) -> bool:
    return any(part in key for part in (".conv.kernel.", ".conv.alpha", ".conv.batch_norm.", ".conv.skip"))


@pytest.mark.parametrize("kernel_type", ["dilated", "sparse", "fourier_sparse"])
def test_save_pretrained_writes_merged_kernel_without_touching_the_model(tmp_path, kernel_type):
    model = warmed_model(tiny_config(kernel_type=kernel_type))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = random_inputs(model.config)
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(tmp_path)

    keys = saved_keys(tmp_path)
    assert not any(is_branch_key(k) for k in keys)
    assert {k for k in keys if "merged" in k} == {
        f"mrconv.layers.{i}.conv.merged_{p}" for i in (0, 1) for p in ("kernel", "bias")
    }
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["reparameterized"] is True
    assert config["auto_map"] == {
        "AutoConfig": "configuration_mrconv.MRConvConfig",
        "AutoModel": "modeling_mrconv.MRConvModel",
        "AutoModelForSequenceClassification": "modeling_mrconv.MRConvForSequenceClassification",
    }
    for module in ("configuration_mrconv", "modeling_mrconv", "kernels", "fftconv", "batchnorm", "reparam"):
        assert (tmp_path / f"{module}.py").exists(), module
    # the live model is untouched
    assert not model.config.reparameterized
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert isinstance(loaded, MRConvForSequenceClassification) and loaded.config.reparameterized
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, expected, rtol=1e-5, atol=1e-6)


def test_opt_out_keeps_training_form(tmp_path):
    model = warmed_model(tiny_config())
    model.save_pretrained(tmp_path, reparameterize=False)
    assert any(is_branch_key(k) for k in saved_keys(tmp_path))
    loaded = MRConvForSequenceClassification.from_pretrained(tmp_path)
    assert not loaded.config.reparameterized
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_trainer_checkpoint_folders_keep_training_form(tmp_path):
    """The folder rule comes from transformers' own PREFIX_CHECKPOINT_DIR: `checkpoint-<step>` only."""
    model = warmed_model(tiny_config())
    folder = tmp_path / f"{PREFIX_CHECKPOINT_DIR}-12"
    model.save_pretrained(folder)
    assert any(is_branch_key(k) for k in saved_keys(folder))
    assert json.loads((folder / "config.json").read_text())["reparameterized"] is False
    for name in ("checkpoint-12-best", "my-checkpoint-12", "checkpoint-x"):
        model.save_pretrained(tmp_path / name)
        assert not any(is_branch_key(k) for k in saved_keys(tmp_path / name)), name


@pytest.mark.parametrize("merged", [False, True])
def test_other_max_sequence_length_names_the_values(tmp_path, merged):
    """Another max_sequence_length (so other kernel shapes) raises naming the saved and requested values, instead
    of transformers' generic size-mismatch error; ignore_mismatched_sizes=True still lets the user through."""
    model = warmed_model(tiny_config())  # max_sequence_length 64, kernel_size 4: 5 branches
    model.save_pretrained(tmp_path, reparameterize=merged)
    shapes = "its merged kernels cover" if merged else r"num_branches=5 branch kernels of lengths \[4, 8, 16, 32, 64\]"
    message = r"saved with max_sequence_length=64, kernel_size=4; the requested max_sequence_length=128"
    with pytest.raises(ValueError, match=f"{message}.*{shapes}"):
        MRConvForSequenceClassification.from_pretrained(tmp_path, max_sequence_length=128)
    with pytest.raises(ValueError, match=message):
        AutoModelForSequenceClassification.from_pretrained(tmp_path, config=tiny_config(max_sequence_length=128))
    loaded = MRConvForSequenceClassification.from_pretrained(tmp_path, max_sequence_length=64)  # unchanged: loads
    assert loaded.config.max_sequence_length == 64
    grown = MRConvForSequenceClassification.from_pretrained(
        tmp_path, max_sequence_length=128, ignore_mismatched_sizes=True
    )
    assert grown.config.max_sequence_length == 128


def test_merges_the_state_dict_it_is_given(tmp_path):
    """Trainer passes a state_dict: the export must come from it, not from the live weights."""
    model = warmed_model(tiny_config())
    other = warmed_model(tiny_config(), steps=7)
    model.save_pretrained(tmp_path, state_dict=other.state_dict())
    inputs = random_inputs(model.config)
    loaded = MRConvForSequenceClassification.from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, other(**inputs).logits, rtol=1e-5, atol=1e-6)


def test_load_state_dict_refuses_layout_mismatch_even_non_strict():
    model = warmed_model(tiny_config())
    merged = MRConvForSequenceClassification(tiny_config(reparameterized=True))
    with pytest.raises(RuntimeError, match="multi-branch"):
        model.load_state_dict(merged.state_dict(), strict=False)
    with pytest.raises(RuntimeError, match="merged"):
        merged.load_state_dict(model.state_dict(), False)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_checkpoint_loads_and_runs_on_cpu(tmp_path, dtype):
    model = warmed_model(tiny_config())
    inputs = random_inputs(model.config)
    with torch.no_grad():
        expected = model(**inputs).logits
    model.to(dtype).save_pretrained(tmp_path)
    loaded = MRConvForSequenceClassification.from_pretrained(tmp_path)  # dtype "auto": stays in half precision
    assert loaded.classifier.weight.dtype == dtype and loaded.mrconv.layers[0].conv.merged_kernel.dtype == dtype
    with torch.no_grad():
        logits = loaded(**inputs).logits
    assert logits.dtype == dtype
    torch.testing.assert_close(logits.float(), expected, rtol=0.05, atol=0.02)


def test_fresh_process_remote_code_without_the_package(tmp_path):
    """Offline, from another directory, with `import modeling_mrconv` failing: auto_map + copied code suffice."""
    model = warmed_model(tiny_config())
    inputs = random_inputs(model.config)
    with torch.no_grad():
        expected = model(**inputs).logits
    folder = tmp_path / "export"
    model.save_pretrained(folder)
    torch.save(inputs["input_ids"], tmp_path / "inputs.pt")
    script = (
        "import torch\n"
        "from transformers import AutoModelForSequenceClassification\n"
        f"model = AutoModelForSequenceClassification.from_pretrained({str(folder)!r}, trust_remote_code=True)\n"
        "assert type(model).__module__.startswith('transformers_modules'), type(model).__module__\n"
        f"ids = torch.load({str(tmp_path / 'inputs.pt')!r})\n"
        "with torch.no_grad():\n"
        f"    torch.save(model(input_ids=ids).logits, {str(tmp_path / 'logits.pt')!r})\n"
    )
    run_without_package(script, tmp_path)
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected, rtol=1e-5, atol=1e-6)
