"""The study's model zoo: every model builds for token and continuous tasks, gives (B, num_labels) logits, trains, and
the peers' parameter counts are matched to MRConv's."""

import math

import pytest
import torch

from modeling_mrconv.data import build_task_data
from modeling_mrconv.study.models import (
    ABLATIONS,
    PEERS,
    Architecture,
    MRConvClassifier,
    build_model,
    count_parameters,
    family,
    model_names,
    mrconv_config,
    optimizer_groups,
)


ARCH = Architecture(hidden_size=16, num_layers=2, l0_small=4, l0_large=32, base_kernel="fourier")


@pytest.fixture(scope="module")
def sequence_task():
    cfg = {"task": "sequence", "num_train": 16, "num_validation": 8, "num_test": 8, "length": 64, "num_classes": 4}
    return build_task_data(cfg, 0)


@pytest.fixture(scope="module")
def listops_task():
    cfg = {
        "task": "listops",
        "num_train": 16,
        "num_validation": 4,
        "num_test": 4,
        "max_depth": 3,
        "max_args": 3,
        "min_length": 5,
        "max_length": 60,
        "cache": False,
    }
    return build_task_data(cfg, 0)


def test_names_and_families():
    names = model_names()
    assert len(names) == len(set(names)) == 12
    assert [family(n) for n in names] == ["mrconv"] * 6 + ["ablation"] * 3 + ["peer"] * 3
    with pytest.raises(ValueError, match="model: unknown name 'gpt'"):
        family("gpt")


@pytest.mark.parametrize("name", model_names())
def test_every_model_builds_and_trains_on_continuous_inputs(name, sequence_task):
    torch.manual_seed(0)
    model, info = build_model(name, sequence_task, ARCH)
    batch = sequence_task.collate_fn([sequence_task.train[i] for i in range(4)])
    logits = model(batch)
    assert logits.shape == (4, 4) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, batch["labels"]).backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert info["parameters"] == sum(p.numel() for p in trainable) > 0
    assert all(p.grad is not None for p in trainable)
    grouped = sum(p.numel() for g in optimizer_groups(model, 3e-3, 0.05) for p in g["params"])
    assert grouped == info["parameters"]


@pytest.mark.parametrize("name", ["mrconv_dilated_l0small", *ABLATIONS, *PEERS])
def test_token_models_ignore_padding(name, listops_task):
    """Appending padding to a token sequence leaves its logits unchanged in eval mode (masked everywhere)."""
    torch.manual_seed(0)
    model, _ = build_model(name, listops_task, ARCH)
    model.eval()
    item = listops_task.train[0]
    short = listops_task.collate_fn([item])
    longer = dict(short)
    pad = torch.full((1, 7), listops_task.pad_token_id)
    longer["input_ids"] = torch.cat([short["input_ids"], pad], 1)
    longer["attention_mask"] = torch.cat([short["attention_mask"], torch.zeros_like(pad)], 1)
    with torch.no_grad():
        torch.testing.assert_close(model(longer), model(short), rtol=1e-4, atol=1e-5)


def test_variant_configs(sequence_task):
    L = sequence_task.max_length
    _, small = build_model("mrconv_dilated_l0small", sequence_task, ARCH)
    _, large = build_model("mrconv_fourier_sparse_l0large", sequence_task, ARCH)
    assert (small["config"]["kernel_type"], small["config"]["kernel_size"]) == ("dilated", 4)
    assert (large["config"]["kernel_type"], large["config"]["kernel_size"]) == ("fourier_sparse", 32)
    _, no_bn = build_model("no_branch_bn", sequence_task, ARCH)
    assert no_bn["config"]["branch_batch_norm"] is False and no_bn["config"]["kernel_type"] == "fourier"
    base = mrconv_config(sequence_task, ARCH)
    _, single = build_model("single_branch", sequence_task, ARCH)
    assert single["config"]["num_branches"] == 1 and single["config"]["kernel_size"] == L
    # one full-length branch with the base variant's total Fourier modes: the same kernel parameter budget
    assert single["config"]["fourier_modes"] == base.fourier_modes * base.num_branches
    dense, info = build_model("dense_kernel", sequence_task, ARCH)
    assert info["config"]["reparameterized"] is True
    assert dense.model.mrconv.layers[0].conv.merged_kernel.shape == (2, 16, L)


@pytest.mark.parametrize("name", PEERS)
def test_peer_parameters_matched_to_mrconv(name, sequence_task):
    target = count_parameters(MRConvClassifier(mrconv_config(sequence_task, ARCH)))
    _, info = build_model(name, sequence_task, ARCH)
    assert info["config"]["matched_to"] == target
    assert abs(math.log(info["parameters"] / target)) < math.log(1.5), (info["parameters"], target)


def test_build_is_seeded(sequence_task):
    """The same torch seed gives the same init, also for peers (the width search must not consume randomness)."""
    for name in ("bert", "mrconv_fourier_l0small"):
        torch.manual_seed(3)
        a, _ = build_model(name, sequence_task, ARCH)
        torch.manual_seed(3)
        b, _ = build_model(name, sequence_task, ARCH)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
