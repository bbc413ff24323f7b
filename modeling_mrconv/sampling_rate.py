"""Sampling-rate change of a trained MRConv sequence model (the paper's Speech Commands 16 kHz -> 8 kHz zero-shot).

`change_sampling_rate(model, factor)` prepares a model for inputs at `factor = 2^-k` x the training rate (1 only
merges): every layer ends merged, with kernels of length ceil(l / 2^k) and `max_sequence_length` divided likewise.

A kernel is read as the samples of a continuous-time response: at half the rate an impulse at an even lag moves to
half that lag with the same weight (dilated taps, D), and a smooth kernel becomes k'[t] = 2 k[2t] (half as many taps
for the same integral). One rule gives both, used for every merged or non-Fourier kernel: low-pass with a half-band
filter h (h[0] = 1/2, h[2m] = 0 for m != 0, unit DC gain), keep the even lags, multiply by 2.

What is exact (in float64, before the final cast):
- Fourier branches are re-evaluated from their modes on the coarser grid (k'[t] = 2^k g(t_old), g the trigonometric
  polynomial of `kernels.MRConvFourierKernel`'s orthonormal irfft): exact below the new Nyquist frequency; the modes
  above it are dropped (ideal low-pass: the coarser grid cannot carry them).
- Dilated branches i >= k: forward taps at lags 2^i tau move to 2^(i-k) tau exactly. Backward taps, at odd lags
  -(2^i tau + 1) (`fftconv.py`'s S4 convention), are interpolated by the half-band filter, as are all taps of
  branches i < k, sparse taps at lags not divisible by 2^k and merged kernels' content above the new Nyquist.
- D, the merged bias, BatchNorm scales and alpha do not depend on the rate; the running statistics, measured at the
  training rate, carry over on band-limited inputs (the same signals, sampled more coarsely).
- Causal models: the zero-phase low-pass spreads taps near lag 0 into negative lags, which are dropped (an
  approximation near lag 0; Fourier branches are unaffected).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import MRConvFourierKernel, MRConvFourierSparseKernel, MRConvKernel
from .modeling_mrconv import MRConvMultiResConv


HALF_BAND_HALF_WIDTH = 31  # taps on each side of the half-band filter (odd lags only are non-zero)


def half_band_filter(half_width: int = HALF_BAND_HALF_WIDTH, dtype=torch.float64, device=None) -> torch.Tensor:
    """Hann-windowed sinc low-pass at a quarter of the sampling rate: (2 * half_width + 1,), zero-phase. h[0] = 1/2
    and h[n] = 0 at other even n (even-lag impulses survive decimation by 2); odd taps scaled to DC gain 1."""
    n = torch.arange(-half_width, half_width + 1, dtype=dtype, device=device)
    window = 0.5 + 0.5 * torch.cos(math.pi * n / (half_width + 1))
    h = 0.5 * torch.sinc(n / 2) * window
    odd = n.remainder(2) == 1
    h[odd] *= 0.5 / h[odd].sum()
    h[~odd] = 0.0
    h[half_width] = 0.5
    return h


def decimate_kernel(kernel: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """A (S, H, Lk) kernel for a rate 2^-steps lower: half-band low-pass on the two-sided lag axis, even lags, x2.

    (S, H, ceil(Lk / 2^steps)) float64; both halves are filtered together (backward tap j is lag -(j + 1)); for
    S = 1 (causal) the negative lags are dropped.
    """
    kernel = kernel.double()
    h = half_band_filter(device=kernel.device)
    for _ in range(steps):
        S, H, Lk = kernel.shape
        forward = kernel[0]  # (H Lk) lags 0 .. Lk-1
        backward = kernel[1].flip(-1) if S == 2 else kernel.new_zeros(H, Lk)  # (H Lk) lags -Lk .. -1
        two_sided = torch.cat([backward, forward], dim=-1)[:, None]  # (H 1 2Lk), lag 0 at index Lk
        filtered = F.conv1d(F.pad(two_sided, (len(h) // 2, len(h) // 2)), h.view(1, 1, -1))[:, 0]  # (H 2Lk)
        new_length = math.ceil(Lk / 2)
        halves = [2 * filtered[:, Lk::2][:, :new_length]]  # lags 0, 2, 4, ...
        if S == 2:
            halves.append(2 * filtered[:, : Lk - 1].flip(-1)[:, ::2][:, :new_length])  # lags -2, -4, ...
            halves[1] = F.pad(halves[1], (0, new_length - halves[1].shape[-1]))
        kernel = torch.stack(halves)  # (S H ceil(Lk/2))
    return kernel


def fourier_kernels_at_rate(kernel: MRConvFourierKernel, steps: int) -> list[torch.Tensor]:
    """The Fourier branches sampled 2^steps times more coarsely, from their modes: N tensors (S, H, ceil(l_i / r)).

    Branch i is g_i(p) = (Re c_0 + 2 sum_{0 < f < m} Re(c_f exp(2 pi i f p / n_i))) / sqrt(n_i), n_i = l0 * 2^i; new
    forward tap t is r g(r t), backward tap t is r g(r (t + 1) - 1) (lag -(t + 1)), r = 2^steps. Modes at or above
    the new Nyquist n_i / 2r are dropped; steps = 0 gives `kernel()` (when no mode sits at Nyquist).
    """
    rate = 2**steps
    modes = torch.view_as_complex(kernel.weight.detach().double())  # (N S H m)
    frequencies = torch.arange(modes.shape[-1], dtype=torch.float64, device=modes.device)  # (m)
    kernels = []
    for i, length in enumerate(kernel.branch_lengths):
        n = kernel.branch_lengths[0] * 2**i
        c = modes[i] * (frequencies < n / (2 * rate))  # (S H m) keep the modes the coarse grid can carry
        c = c * torch.where(frequencies == 0, 1.0, 2.0)  # the conjugate half of the spectrum
        c[..., 0] = c[..., 0].real
        t = torch.arange(math.ceil(length / rate), dtype=torch.float64, device=modes.device)
        positions = [t * rate, (t + 1) * rate - 1][: kernel.num_directions]
        halves = []
        for s, p in enumerate(positions):
            phase = torch.exp(2j * math.pi * frequencies[:, None] * p[None, :] / n)  # (m l')
            halves.append((c[s] @ phase).real / math.sqrt(n))  # (H l')
        kernels.append(rate * torch.stack(halves))  # (S H l')
    return kernels


def branch_kernels_at_rate(kernel: MRConvKernel, steps: int) -> list[torch.Tensor]:
    """Every branch kernel for a rate 2^-steps lower (float64): Fourier from its modes, the others decimated."""
    if isinstance(kernel, MRConvFourierKernel):
        return fourier_kernels_at_rate(kernel, steps)
    if isinstance(kernel, MRConvFourierSparseKernel):
        fourier = fourier_kernels_at_rate(kernel.fourier, steps)
        sparse = [decimate_kernel(k, steps) for k in kernel.sparse()]
        mix = kernel.mix.detach().double()  # (N 2 H)
        return [m[0, :, None] * k_f + m[1, :, None] * k_s for k_f, k_s, m in zip(fourier, sparse, mix, strict=True)]
    return [decimate_kernel(k, steps) for k in kernel()]


@torch.no_grad()
def change_layer_sampling_rate(layer: MRConvMultiResConv, steps: int) -> MRConvMultiResConv:
    """Replace `layer` (either form) in place by its merged form for a rate 2^-steps lower; returns it."""
    new_length = math.ceil(layer.max_length / 2**steps)
    if layer.merged_kernel is not None:
        dtype = layer.merged_kernel.dtype
        kernel = decimate_kernel(layer.merged_kernel, steps)[..., :new_length]  # (S H L')
        bias = layer.merged_bias.double()
    else:
        dtype = layer.alpha.dtype
        kernel, bias = layer.merged_parameters(branch_kernels_at_rate(layer.kernel, steps), new_length)  # (S H L')
    layer.merged_kernel = nn.Parameter(F.pad(kernel, (0, new_length - kernel.shape[-1])).to(dtype))
    layer.merged_bias = nn.Parameter(bias.to(dtype))
    layer.kernel = layer.batch_norm = layer.alpha = layer.skip = None
    layer.max_length = new_length
    return layer


def factor_to_steps(factor: float) -> int:
    """k for factor = 2^-k; a `ValueError` naming the factor otherwise."""
    steps = -math.log2(factor) if isinstance(factor, (int, float)) and factor > 0 else -1.0
    if steps < 0 or abs(steps - round(steps)) > 1e-9:
        raise ValueError(
            f"factor must be 2^-k for an integer k >= 0 (1, 0.5, 0.25, ...: the new rate over the training rate), "
            f"got {factor!r}"
        )
    return round(steps)


def change_sampling_rate(model: nn.Module, factor: float) -> nn.Module:
    """Merge every MRConv layer for inputs at `factor` x the training rate, in place (module docstring); the config
    records the new `max_sequence_length`, `reparameterized=True` and the cumulative `sampling_rate_factor`."""
    steps = factor_to_steps(factor)
    layers = [m for m in model.modules() if isinstance(m, MRConvMultiResConv)]
    for layer in layers:
        change_layer_sampling_rate(layer, steps)
    config = model.config
    rate = 2**steps
    config.max_sequence_length = math.ceil(config.max_sequence_length / rate)
    # only descriptive in the merged form; kept consistent so the saved config validates on load
    config.kernel_size = max(1, min(config.kernel_size // rate, config.max_sequence_length))
    config.fourier_modes = min(config.fourier_modes, config.kernel_size // 2 + 1)
    config.sparse_taps = min(config.sparse_taps, config.kernel_size)
    config.reparameterized = True
    config.sampling_rate_factor = getattr(config, "sampling_rate_factor", 1.0) * factor
    return model


__all__ = ["change_sampling_rate", "decimate_kernel", "fourier_kernels_at_rate", "half_band_filter"]
