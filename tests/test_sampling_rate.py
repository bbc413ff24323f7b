"""change_sampling_rate: exact where the docstring of sampling_rate.py says so, close on band-limited signals."""

import copy

import pytest
import torch

from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification, MRConvNextConfig
from modeling_mrconv.kernels import MRConvFourierKernel
from modeling_mrconv.modeling_mrconv import MRConvMultiResConv
from modeling_mrconv.modeling_mrconvnext import MRConvNextForImageClassification
from modeling_mrconv.sampling_rate import (
    change_layer_sampling_rate,
    decimate_kernel,
    fourier_kernels_at_rate,
    half_band_filter,
)


def gaussian(t: torch.Tensor) -> torch.Tensor:
    return torch.exp(-(((t - 60) / 15) ** 2))


def smooth_signal(batch: int, length: int) -> torch.Tensor:
    """Band-limited noise (moving Hann average), (B, L, 1)."""
    x = torch.randn(batch, 1, length + 64, dtype=torch.float64)
    window = torch.hann_window(33, dtype=torch.float64)
    return (torch.nn.functional.conv1d(x, (window / window.sum()).view(1, 1, -1))[:, 0, :length, None] * 5).float()


def test_half_band_filter_properties():
    h = half_band_filter(7)
    assert h.shape == (15,) and h[7] == 0.5
    lags = torch.arange(-7, 8)
    assert torch.all(h[(lags % 2 == 0) & (lags != 0)] == 0)
    torch.testing.assert_close(h.sum(), torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(h, h.flip(0), rtol=0, atol=0)


def test_continuous_kernel_sampled_at_both_rates():
    """k[t] = g(t) at the training rate becomes 2 g(2t) forward and g at lag -2(t+1) backward."""
    t = torch.arange(200, dtype=torch.float64)
    kernel = torch.stack([gaussian(t)[None], 0.5 * gaussian(t + 1)[None]])  # backward tap j is lag -(j + 1)
    new = decimate_kernel(kernel, 1)
    t_new = torch.arange(100, dtype=torch.float64)
    assert new.shape == (2, 1, 100)
    torch.testing.assert_close(new[0, 0], 2 * gaussian(2 * t_new), rtol=0, atol=1e-4)
    torch.testing.assert_close(new[1, 0], gaussian(2 * t_new + 2), rtol=0, atol=1e-4)
    quarter = decimate_kernel(kernel, 2)
    torch.testing.assert_close(
        quarter[0, 0], 4 * gaussian(4 * torch.arange(50.0, dtype=torch.float64)), rtol=0, atol=1e-3
    )


def test_impulses_at_even_lags_move_exactly():
    kernel = torch.zeros(2, 1, 12, dtype=torch.float64)
    kernel[0, 0, [0, 4, 6]] = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    kernel[1, 0, [1, 5]] = torch.tensor([0.5, 4.0], dtype=torch.float64)  # lags -2 and -6
    new = decimate_kernel(kernel, 1)
    expected = torch.zeros(2, 1, 6, dtype=torch.float64)
    expected[0, 0, [0, 2, 3]] = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    expected[1, 0, [0, 2]] = torch.tensor([0.5, 4.0], dtype=torch.float64)  # lags -1 and -3
    torch.testing.assert_close(new, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_fourier_branches_regenerated_exactly(bidirectional):
    config = MRConvConfig(
        hidden_size=3, max_sequence_length=128, kernel_size=16, fourier_modes=4, bidirectional=bidirectional
    )
    kernel = MRConvFourierKernel(config)
    kernel.reset_parameters()
    old = [k.double() for k in kernel()]
    for k_old, k_same in zip(old, fourier_kernels_at_rate(kernel, 0), strict=True):
        torch.testing.assert_close(k_same, k_old, rtol=0, atol=1e-6)
    for k_old, k_new in zip(old, fourier_kernels_at_rate(kernel, 1), strict=True):  # all 4 modes fit at 8 taps
        assert k_new.shape[-1] == k_old.shape[-1] // 2
        torch.testing.assert_close(k_new[0], 2 * k_old[0, :, ::2], rtol=0, atol=1e-6)
        if bidirectional:  # new lag -(t + 1) = old lag -(2t + 2) = old backward tap 2t + 1
            torch.testing.assert_close(k_new[1], 2 * k_old[1, :, 1::2], rtol=0, atol=1e-6)


def test_dilated_branches_halve_their_dilation_exactly():
    """Causal dilated layer without branch 0: the changed layer on x[::2] is the old layer's output at even t."""
    config = MRConvConfig(hidden_size=4, max_sequence_length=64, kernel_size=4, bidirectional=False)
    layer = MRConvMultiResConv(config)
    layer.kernel.reset_parameters()
    layer.batch_norm.reset_parameters()
    layer.reset_parameters()
    with torch.no_grad():
        layer.alpha[0] = 0.0  # branch 0 has odd-lag taps: not representable at half the rate
        layer.batch_norm.running_mean.normal_()
        layer.batch_norm.running_var.uniform_(0.5, 2.0)
    layer.eval()
    x = torch.randn(2, 4, 64, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(x)[..., ::2]
        changed = copy.deepcopy(layer)
        change_layer_sampling_rate(changed, 1)
        assert changed.merged_kernel.shape == (1, 4, 32)
        torch.testing.assert_close(changed(x[..., ::2]), expected, rtol=1e-5, atol=1e-6)  # fp32 parameters


def test_layer_without_branch_batch_norm_halves_its_dilation_exactly():
    """branch_batch_norm=False (sum_i alpha_i k_i + D delta, no bias): the same exactness as with BatchNorm."""
    config = MRConvConfig(
        hidden_size=4, max_sequence_length=64, kernel_size=4, bidirectional=False, branch_batch_norm=False
    )
    layer = MRConvMultiResConv(config)
    layer.kernel.reset_parameters()
    layer.reset_parameters()
    with torch.no_grad():
        layer.alpha[0] = 0.0  # branch 0 has odd-lag taps
        layer.skip.normal_()
    layer.eval()
    x = torch.randn(2, 4, 64, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(x)[..., ::2]
        changed = change_layer_sampling_rate(copy.deepcopy(layer), 1)
        assert changed.merged_kernel.shape == (1, 4, 32) and not changed.merged_bias.any()
        torch.testing.assert_close(changed(x[..., ::2]), expected, rtol=1e-5, atol=1e-6)


def fourier_model() -> MRConvForSequenceClassification:
    config = MRConvConfig(
        input_dim=1,
        hidden_size=16,
        num_hidden_layers=2,
        max_sequence_length=512,
        kernel_size=32,
        kernel_type="fourier",
        fourier_modes=4,
        num_labels=3,
    )
    model = MRConvForSequenceClassification(config).train()
    with torch.no_grad():
        for _ in range(5):
            model(input_values=smooth_signal(8, 512))
    return model.eval()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_decimated_signal_close_after_the_change_far_without(tmp_path):
    model = fourier_model()
    x = smooth_signal(4, 512)
    with torch.no_grad():
        reference = model.mrconv(input_values=x).last_hidden_state[:, ::2]  # the 16 kHz model at 16 kHz, decimated
        without = model.mrconv(input_values=x[:, ::2]).last_hidden_state
        changed = copy.deepcopy(model).change_sampling_rate(0.5)
        from_merged = copy.deepcopy(model).reparameterize().change_sampling_rate(0.5)
        with_change = changed.mrconv(input_values=x[:, ::2]).last_hidden_state
        with_merged_change = from_merged.mrconv(input_values=x[:, ::2]).last_hidden_state
    error_with, error_merged, error_without = (
        relative_error(y, reference) for y in (with_change, with_merged_change, without)
    )
    assert error_with < 0.02 and error_merged < 0.02
    assert error_without > 10 * max(error_with, error_merged)
    assert changed.config.max_sequence_length == 256 and changed.config.reparameterized
    assert changed.config.sampling_rate_factor == 0.5
    # the changed model saves and reloads as an ordinary merged checkpoint
    changed.save_pretrained(tmp_path)
    loaded = MRConvForSequenceClassification.from_pretrained(tmp_path)
    assert loaded.config.sampling_rate_factor == 0.5
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_values=x[:, ::2]).logits, changed(input_values=x[:, ::2]).logits)


def test_bad_factors_and_image_models_raise():
    model = fourier_model()
    for factor in (0.3, 2, 0, -0.5):
        with pytest.raises(ValueError, match=rf"factor must be 2\^-k for an integer k >= 0 .*got {factor!r}"):
            model.change_sampling_rate(factor)
    image_model = MRConvNextForImageClassification(
        MRConvNextConfig(image_size=32, patch_size=2, depths=[1, 1, 1, 1], hidden_sizes=[8, 8, 8, 8])
    )
    with pytest.raises(NotImplementedError, match="change_sampling_rate applies to sequence models"):
        image_model.change_sampling_rate(0.5)
