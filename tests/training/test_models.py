"""The one model builder (`training.models.build_model`): every architecture it knows, MRConv's ablations and the
peers, builds from a `model:` section and a tiny task, runs a forward and a backward pass, and exports and reloads as
the training loop does; peer keys go through the preset schema."""

import dataclasses
import re

import pytest
import torch

from modeling_mrconv import MRConvForSequenceClassification
from modeling_mrconv.bench.peers import PeerForSequenceClassification
from modeling_mrconv.data import load_task
from modeling_mrconv.training import build_model, load_preset
from modeling_mrconv.training.models import MRConvNextFlattenedForImageClassification, model_config


SEQUENCE = {"task": "sequence", "num_train": 16, "num_validation": 8, "num_test": 8, "length": 64, "num_classes": 4}
LISTOPS = {"task": "listops", "num_train": 16, "num_validation": 4, "num_test": 4, "max_depth": 3, "max_args": 3,
           "min_length": 5, "max_length": 60, "cache": False}  # fmt: skip
BARS = {"task": "scifar", "source": "generate", "num_train": 8, "num_validation": 4, "num_test": 4}
SIZE = {"hidden_size": 16, "num_hidden_layers": 2}
# every architecture of the builder, and MRConv's ablations (the accuracy study's overrides)
SECTIONS = {
    "mrconv": {**SIZE, "kernel_type": "fourier", "kernel_size": 4},
    "no_branch_bn": {**SIZE, "kernel_size": 4, "branch_batch_norm": False},
    "single_branch": {**SIZE, "num_branches": 1, "kernel_size": 64, "max_sequence_length": 64},
    "dense_kernel": {**SIZE, "kernel_size": 4, "reparameterized": True},
    "bert": {**SIZE, "architecture": "bert"},
    "s4d": {**SIZE, "architecture": "s4d"},
    "mamba": {**SIZE, "architecture": "mamba"},
    "cnn": {**SIZE, "architecture": "cnn"},
}


@pytest.fixture(scope="module")
def tasks():
    return {"sequence": load_task(SEQUENCE), "listops": load_task(LISTOPS), "bars": load_task(BARS)}


def forward_backward(model: torch.nn.Module, task) -> torch.Tensor:
    """Loss and gradients of one training batch; returns the logits."""
    batch = task.collate_fn([task.train[i] for i in range(4)])
    out = model.train()(**batch)
    assert out.logits.shape == (4, task.num_labels) and torch.isfinite(out.loss)
    out.loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    return out.logits


@pytest.mark.parametrize("name", SECTIONS)
@pytest.mark.parametrize("task_name", ["sequence", "listops"])
def test_every_architecture_builds_trains_and_reloads(name, task_name, tasks, tmp_path):
    task = tasks[task_name]
    model = build_model(SECTIONS[name], task)
    peer = "architecture" in SECTIONS[name]
    assert isinstance(model, PeerForSequenceClassification if peer else MRConvForSequenceClassification)
    length = SECTIONS[name].get("max_sequence_length", task.max_length)  # from the data unless the section says
    assert model.config.max_sequence_length == length and model.config.num_labels == task.num_labels
    forward_backward(model, task)
    # the training loop's export: save_pretrained, then the same class's from_pretrained gives the same eval logits
    batch = task.collate_fn([task.test[i] for i in range(3)])
    with torch.no_grad():
        expected = model.eval()(**batch).logits
        model.save_pretrained(tmp_path)
        reloaded = type(model).from_pretrained(tmp_path).eval()
        torch.testing.assert_close(reloaded(**batch).logits, expected, rtol=1e-4, atol=1e-5)


def test_mrconvnext_builds_and_trains(tasks):
    section = {"architecture": "mrconvnext", "patch_size": 2, "depths": [1, 1, 1, 1], "hidden_sizes": [8, 8, 16, 16]}
    model = build_model(section, tasks["bars"])
    assert isinstance(model, MRConvNextFlattenedForImageClassification)
    forward_backward(model, tasks["bars"])


def test_ablations_and_peers_are_what_their_sections_say(tasks):
    task = tasks["sequence"]
    assert model_config(SECTIONS["no_branch_bn"], task).branch_batch_norm is False
    assert model_config(SECTIONS["single_branch"], task).num_branches == 1
    dense = build_model(SECTIONS["dense_kernel"], task)
    assert dense.mrconv.layers[0].conv.merged_kernel.shape == (2, 16, task.max_length)  # (S H L), from scratch
    bert = build_model(SECTIONS["bert"], task)
    assert bert.mixer.embeddings.position_embeddings.num_embeddings == task.max_length
    assert bert.mixer.config._attn_implementation == "sdpa"
    assert build_model(SECTIONS["mamba"], task).config.state_size == 16
    assert build_model(SECTIONS["s4d"], task).config.state_size == 64
    # FCN (Wang et al. 2017) at its published size reads the raw channels: 128-256-128 filters, kernels 8-5-3
    fcn = build_model({"architecture": "cnn", "hidden_size": 128, "num_hidden_layers": 3}, task)
    assert [tuple(c.weight.shape) for c in fcn.mixer.convs] == [(128, 1, 8), (256, 128, 5), (128, 256, 3)]
    assert isinstance(fcn.embeddings, torch.nn.Identity) and sum(p.numel() for p in fcn.mixer.parameters()) == 264_704


@pytest.mark.parametrize("name", ["bert", "s4d", "mamba", "cnn"])
def test_peers_ignore_padding(name, tasks):
    """Appending padding to a token sequence leaves its logits unchanged in eval mode (masked everywhere)."""
    task = tasks["listops"]
    model = build_model(SECTIONS[name], task).eval()
    short = {k: v for k, v in task.collate_fn([task.train[0]]).items() if k != "labels"}
    pad = torch.full((1, 7), task.pad_token_id)
    longer = {
        "input_ids": torch.cat([short["input_ids"], pad], 1),
        "attention_mask": torch.cat([short["attention_mask"], torch.zeros_like(pad)], 1),
    }
    with torch.no_grad():
        torch.testing.assert_close(model(**longer).logits, model(**short).logits, rtol=1e-4, atol=1e-5)


def test_build_is_seeded(tasks):
    for name in ("bert", "mrconv"):
        torch.manual_seed(3)
        a = build_model(SECTIONS[name], tasks["sequence"])
        torch.manual_seed(3)
        b = build_model(SECTIONS[name], tasks["sequence"])
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_peer_keys_go_through_the_preset_schema(tmp_path):
    preset = tmp_path / "peer.yaml"
    preset.write_text("model: {architecture: bert, hidden_size: 16}\ndata: {task: digits}\n")
    assert load_preset(preset, [])["model"] == {"architecture": "bert", "hidden_size": 16}
    message = "model.kernel_type: unknown model key (architecture 'bert')"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_preset(preset, ["model.kernel_type=fourier"])
    with pytest.raises(ValueError, match=re.escape("model.vocab_size: set from the task's data, not a preset key")):
        load_preset(preset, ["model.vocab_size=10"])


def test_peers_refuse_document_pairs_and_unknown_architectures(tasks):
    pair = dataclasses.replace(tasks["listops"], pair=True)  # as retrieval's TaskData
    with pytest.raises(ValueError, match="model.architecture: s4d reads one sequence, not a document pair"):
        build_model(SECTIONS["s4d"], pair)
    with pytest.raises(
        ValueError, match=re.escape("model.architecture: expected one of ['bert', 'cnn', 'mamba', 'mrconv'")
    ):
        build_model({"architecture": "gpt"}, tasks["sequence"])
