"""FFT convolution against the direct O(L^2) convolution, in float64."""

import pytest
import torch

from modeling_mrconv.fftconv import (
    direct_conv_reference,
    fft_conv,
    fft_conv_bias,
    kernel_spectrum,
    kernel_to_circular,
)


@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize(("L", "Lk"), [(37, 37), (37, 5), (64, 13), (1, 1), (20, 40)])
def test_fft_conv_matches_direct_convolution(directions, L, Lk):
    u = torch.randn(3, 4, L, dtype=torch.float64)
    k = torch.randn(directions, 4, Lk, dtype=torch.float64)
    spectrum = torch.fft.rfft(kernel_to_circular(k, L), n=2 * L)
    L_f = u.shape[-1]
    y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L_f) * spectrum, n=2 * L_f)[..., :L_f]
    torch.testing.assert_close(y, direct_conv_reference(u, k), rtol=1e-10, atol=1e-10)


def test_direct_reference_conventions():
    """Causal tap s multiplies u[t - s]; backward tap j multiplies u[t + 1 + j]."""
    u = torch.zeros(1, 1, 8, dtype=torch.float64)
    u[..., 4] = 1.0
    k = torch.zeros(2, 1, 3, dtype=torch.float64)
    k[0, 0, 2] = 2.0  # output at t = 4 + 2
    k[1, 0, 1] = 3.0  # output at t = 4 - 1 - 1
    y = direct_conv_reference(u, k)[0, 0]
    assert y[6] == 2.0 and y[2] == 3.0 and y.abs().sum() == 5.0


@pytest.mark.parametrize("directions", [1, 2])
def test_fft_conv_float32_and_autocast(directions):
    L = 33
    u = torch.randn(2, 3, L)
    k = torch.randn(directions, 3, L)
    reference = direct_conv_reference(u.double(), k.double())
    torch.testing.assert_close(fft_conv(u, kernel_spectrum(k, L)).double(), reference, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fft_conv(u.bfloat16(), kernel_spectrum(k.bfloat16(), L))
    assert y.dtype == torch.float32  # the FFT region is float32 even under autocast
    torch.testing.assert_close(y.double(), reference, rtol=0.05, atol=0.1)


def test_fft_conv_broadcasts_branches():
    u = torch.randn(2, 3, 16, dtype=torch.float64)
    kernels = torch.randn(5, 2, 3, 16, dtype=torch.float64)
    y = fft_conv(u[:, None], kernel_spectrum(kernels, 16))  # (B N H L)
    assert y.shape == (2, 5, 3, 16)
    torch.testing.assert_close(y[:, 3].double(), direct_conv_reference(u, kernels[3]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize(("L", "K"), [(9, 9), (5, 12), (1, 4)])
def test_fft_conv_bias_with_a_longer_kernel_matches_reference(directions, L, K):
    """`fft_conv_bias` with the spectrum of a kernel longer than the signal equals the O(L^2) oracle plus bias."""
    u = torch.randn(2, 3, L, dtype=torch.float64)
    k = torch.randn(directions, 3, K, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    expected = direct_conv_reference(u, k) + b[:, None]
    torch.testing.assert_close(fft_conv_bias(u, kernel_spectrum(k, L), b), expected, rtol=1e-10, atol=1e-10)
