"""Reparameterization: the merged single kernel + bias reproduces the eval-mode branch model."""

import copy

import pytest
import torch
from mrconv_testing import random_inputs, tiny_config, warmed_model

from modeling_mrconv import MRConvForSequenceClassification
from modeling_mrconv.reparam import fold_batchnorm, merge_kernels


KERNEL_TYPES = ["dilated", "fourier", "sparse", "fourier_sparse"]


@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_merged_matches_branches_in_eval(kernel_type, bidirectional):
    config = tiny_config(kernel_type=kernel_type, bidirectional=bidirectional, max_sequence_length=100)
    model = warmed_model(config)
    inputs = random_inputs(config, length=100)
    with torch.no_grad():
        expected = model.mrconv(**inputs).last_hidden_state
        model.reparameterize()
        merged = model.mrconv(**inputs).last_hidden_state
    assert expected.abs().max() > 0.01
    torch.testing.assert_close(merged, expected, rtol=1e-5, atol=1e-5)


def test_reparameterize_in_place_idempotent_and_flagged():
    model = warmed_model(tiny_config())
    assert model.reparameterize() is model and model.config.reparameterized
    keys = set(model.state_dict())
    assert not any(".kernel." in k or ".alpha" in k or "conv.batch_norm" in k or ".skip" in k for k in keys)
    assert sum(k.endswith("merged_kernel") for k in keys) == 2
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.reparameterize()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_config_flag_builds_merged_architecture_with_same_keys():
    model = warmed_model(tiny_config())
    merged = copy.deepcopy(model).reparameterize()
    fresh = MRConvForSequenceClassification(tiny_config(reparameterized=True))
    assert set(fresh.state_dict()) == set(merged.state_dict())
    fresh.load_state_dict(merged.state_dict())
    inputs = random_inputs(model.config)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(**inputs).logits, merged(**inputs).logits)


def test_merge_state_dict_is_pure_and_equal_to_in_place_merge():
    model = warmed_model(tiny_config(kernel_type="sparse"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merged_sd = model.merge_state_dict(model.state_dict())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # live model untouched
    assert not model.config.reparameterized
    in_place = copy.deepcopy(model).reparameterize().state_dict()
    assert set(merged_sd) == set(in_place)
    for key, value in in_place.items():
        torch.testing.assert_close(merged_sd[key], value, rtol=0, atol=0)


def test_fold_and_merge_formula_float64():
    """Eval-mode sum_i alpha_i BN_i(k_i * u) equals (sum_i s_i k_i) * u + b, computed by hand."""
    N, H, L = 3, 2, 10
    alpha, weight, bias = (torch.randn(N, H, dtype=torch.float64) for _ in range(3))
    mean, var = torch.randn(N, H, dtype=torch.float64), torch.rand(N, H, dtype=torch.float64) + 0.5
    kernels = [torch.randn(1, H, 2**i * 2, dtype=torch.float64) for i in range(N)]
    u = torch.randn(4, H, L, dtype=torch.float64)
    branch_sum = 0
    for i, k in enumerate(kernels):
        z = torch.nn.functional.conv1d(
            torch.nn.functional.pad(u, (k.shape[-1] - 1, 0)), k[0].flip(-1)[:, None], groups=H
        )  # causal
        bn = (z - mean[i, :, None]) / torch.sqrt(var[i, :, None] + 1e-5) * weight[i, :, None] + bias[i, :, None]
        branch_sum = branch_sum + alpha[i, :, None] * bn
    scale, shift = fold_batchnorm(alpha, weight, bias, mean, var, 1e-5)
    k_rep = merge_kernels(kernels, scale, L)
    merged = torch.nn.functional.conv1d(torch.nn.functional.pad(u, (L - 1, 0)), k_rep[0].flip(-1)[:, None], groups=H)
    torch.testing.assert_close(merged + shift[:, None], branch_sum, rtol=1e-10, atol=1e-10)
