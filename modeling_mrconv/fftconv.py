"""FFT long convolution (causal or bidirectional), always computed in float32.

Conventions follow S4/SGConv: signals are zero-padded to 2L so the circular FFT
convolution equals the linear one. A kernel is given as (S, H, Lk) with S = 1 (causal) or S = 2 (bidirectional:
a forward half and a backward half). The backward tap `k[1, :, j]` multiplies `u[t + 1 + j]`, so the current step
is covered only by the forward half.

FFT math runs in float32 for float32, bfloat16 and float16 inputs (also under autocast), and in float64 for float64
inputs, so that float64 tests check the formulas rather than float32 rounding.
"""

import torch
import torch.nn.functional as F


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype FFT convolutions and BatchNorm statistics use for inputs of `dtype`: float64 or float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def kernel_to_circular(kernel: torch.Tensor, L: int) -> torch.Tensor:
    """Lay a (S, H, Lk) kernel out on the length-2L circle used by the FFT convolution.

    Args:
        kernel: (S, H, Lk) with Lk <= L; taps beyond L could never reach a valid output and are dropped.
        L: sequence length of the signal.

    Returns:
        (H, 2L) kernel whose circular convolution with a zero-padded signal is the wanted linear one.
    """
    kernel = kernel[..., :L]
    Lk = kernel.shape[-1]
    circular = F.pad(kernel[0], (0, 2 * L - Lk))  # (H 2L)
    if kernel.shape[0] == 2:
        circular = circular + F.pad(kernel[1].flip(-1), (2 * L - Lk, 0))  # (H 2L)
    return circular


def kernel_spectrum(kernel: torch.Tensor, L: int) -> torch.Tensor:
    """Spectrum of a (..., S, H, Lk) kernel on the 2L circle: (..., H, L + 1) complex64 (complex128 for float64)."""
    with torch.autocast(kernel.device.type, enabled=False):
        if kernel.dim() == 3:
            return torch.fft.rfft(kernel_to_circular(kernel.to(compute_dtype(kernel.dtype)), L), n=2 * L)
        return torch.stack([kernel_spectrum(k, L) for k in kernel])


def fft_conv(u: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
    """Depthwise long convolution of u with a kernel given by its 2L spectrum.

    Args:
        u: (B, H, L) signal, any float dtype; computed in float32 (float64 for float64 u) even under autocast.
        spectrum: (..., H, L + 1) complex spectrum from `kernel_spectrum`; leading dims broadcast against u's
            (e.g. (N, H, L + 1) with u of shape (B, 1, H, L) gives N branch outputs).

    Returns:
        float32 (float64) tensor of the broadcast shape (..., H, L).
    """
    L = u.shape[-1]
    with torch.autocast(u.device.type, enabled=False):
        u_f = torch.fft.rfft(u.to(compute_dtype(u.dtype)), n=2 * L)  # (B H L+1)
        return torch.fft.irfft(u_f * spectrum, n=2 * L)[..., :L]  # (B H L)


def fft_conv_bias(u: torch.Tensor, spectrum: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`fft_conv(u, spectrum) + bias[:, None]` without avoidable temporaries (the merged MRConv layer).

    Without autograd the spectrum product is formed in place and the bias is added in place to the sliced inverse
    transform, so a call costs one rfft, one product, one irfft and one bias pass. With autograd the result is a
    compact new tensor, so that a consumer saving it for backward does not keep the length-2L transform alive.

    Args:
        u: (B, H, L) signal.
        spectrum: (H, L + 1) complex spectrum from `kernel_spectrum`.
        bias: (H) per-channel bias.

    Returns:
        float32 (float64) tensor (B, H, L); without autograd a view of the length-2L inverse transform.
    """
    L = u.shape[-1]
    with torch.autocast(u.device.type, enabled=False):
        dtype = compute_dtype(u.dtype)
        u_f = torch.fft.rfft(u.to(dtype), n=2 * L)  # (B H L+1)
        if not torch.is_grad_enabled():
            y = torch.fft.irfft(u_f.mul_(spectrum), n=2 * L)[..., :L]  # (B H L) view of (B H 2L)
            return y.add_(bias.to(dtype)[:, None])
        if not spectrum.requires_grad:
            u_f.mul_(spectrum)  # u_f is not needed for backward
        else:
            u_f = u_f * spectrum
        return torch.fft.irfft(u_f, n=2 * L)[..., :L] + bias.to(dtype)[:, None]  # (B H L)


def is_exporting() -> bool:
    """True while `torch.onnx.export` or `torch.export` traces the model: FFT ops must not be emitted then."""
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


def direct_conv_reference(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Plain O(L^2) convolution used as the test oracle: y[t] = sum_s k_f[s] u[t-s] + sum_j k_b[j] u[t+1+j].

    Args:
        u: (B, H, L).
        kernel: (S, H, Lk).

    Returns:
        (B, H, L) in u's dtype.
    """
    B, H, L = u.shape
    Lk = min(kernel.shape[-1], L)
    y = torch.zeros_like(u)
    for s in range(Lk):
        y[..., s:] += kernel[0, :, s, None] * u[..., : L - s]
        if kernel.shape[0] == 2 and s + 1 < L:
            y[..., : L - s - 1] += kernel[1, :, s, None] * u[..., s + 1 :]
    return y


__all__ = [
    "compute_dtype",
    "direct_conv_reference",
    "fft_conv",
    "fft_conv_bias",
    "is_exporting",
    "kernel_spectrum",
    "kernel_to_circular",
]
