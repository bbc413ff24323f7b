"""`branch_batch_norm=False`: the ablation y = (sum_i alpha_i k_i) * u + D u without per-branch BatchNorm."""

import pytest
import torch
from mrconv_testing import random_inputs, tiny_config, warmed_model

from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification
from modeling_mrconv.batchnorm import MRConvBatchNorm
from modeling_mrconv.fftconv import direct_conv_reference


KERNEL_TYPES = ["dilated", "fourier", "sparse", "fourier_sparse"]


def test_no_branch_batch_norm_modules():
    model = MRConvForSequenceClassification(tiny_config(branch_batch_norm=False))
    layers = [layer.conv for layer in model.mrconv.layers]
    assert all(layer.batch_norm is None for layer in layers)
    assert not any("conv.batch_norm" in name for name in model.state_dict())
    # only the block norms remain: one (H,) BatchNorm per layer
    assert [m.num_features for m in model.modules() if isinstance(m, MRConvBatchNorm)] == [(16,), (16,)]


@pytest.mark.parametrize("bidirectional", [True, False])
def test_layer_is_alpha_weighted_kernel_sum(bidirectional):
    """The layer equals the O(L^2) reference convolution with sum_i alpha_i k_i, plus D u, in train and eval."""
    config = tiny_config(branch_batch_norm=False, bidirectional=bidirectional, max_sequence_length=40)
    layer = MRConvForSequenceClassification(config).double().mrconv.layers[0].conv
    with torch.no_grad():
        layer.alpha.normal_()
    u = torch.randn(3, 16, 40, dtype=torch.float64)  # (B H L)
    kernels = layer.kernel()
    summed = sum(torch.nn.functional.pad(k, (0, 40 - k.shape[-1])) * a[:, None] for k, a in zip(kernels, layer.alpha))
    expected = direct_conv_reference(u, summed) + layer.skip[:, None] * u  # (B H L)
    for mode in (True, False):
        layer.train(mode)
        torch.testing.assert_close(layer(u), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_merged_equals_unmerged_in_eval(kernel_type):
    config = tiny_config(branch_batch_norm=False, kernel_type=kernel_type, max_sequence_length=100)
    model = warmed_model(config)
    inputs = random_inputs(config, length=100)
    with torch.no_grad():
        expected = model(**inputs).logits
        merged = model.reparameterize()(**inputs).logits
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(merged, expected, rtol=1e-5, atol=1e-6)


def test_merge_state_dict_has_zero_bias():
    model = warmed_model(tiny_config(branch_batch_norm=False))
    merged = model.merge_state_dict(model.state_dict())
    biases = [v for k, v in merged.items() if k.endswith("conv.merged_bias")]
    assert len(biases) == 2 and all(torch.equal(b, torch.zeros(16)) for b in biases)


def test_save_load_round_trip(tmp_path):
    model = warmed_model(tiny_config(branch_batch_norm=False))
    inputs = random_inputs(model.config, length=50)
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(tmp_path / "merged")
    model.save_pretrained(tmp_path / "training", reparameterize=False)
    assert MRConvConfig.from_pretrained(tmp_path / "training").branch_batch_norm is False
    for folder, merged in (("merged", True), ("training", False)):
        loaded = MRConvForSequenceClassification.from_pretrained(tmp_path / folder).eval()
        assert loaded.config.branch_batch_norm is False and loaded.config.reparameterized is merged
        with torch.no_grad():
            torch.testing.assert_close(loaded(**inputs).logits, expected, rtol=1e-5, atol=1e-6)


def test_gradients_reach_every_parameter():
    model = MRConvForSequenceClassification(tiny_config(branch_batch_norm=False, kernel_type="fourier_sparse")).train()
    inputs = random_inputs(model.config, length=30)
    attention_mask = torch.ones(4, 30, dtype=torch.long)
    attention_mask[0, 20:] = 0
    loss = model(**inputs, attention_mask=attention_mask, labels=torch.tensor([0, 1, 2, 0])).loss
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("value", [0, "no", None])
def test_branch_batch_norm_must_be_bool(value):
    with pytest.raises(ValueError, match=f"branch_batch_norm must be a bool, got {value!r}"):
        MRConvConfig(branch_batch_norm=value)
