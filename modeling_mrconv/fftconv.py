"""FFT long convolution (causal or bidirectional), always computed in float32 (float64 for float64 inputs).

Conventions follow S4/SGConv: signals are zero-padded to 2L so the circular FFT convolution equals the linear one. A
kernel is (S, H, Lk) with S = 1 (causal) or S = 2 (bidirectional: a forward and a backward half). The backward tap
`k[1, :, j]` multiplies `u[t + 1 + j]`, so only the forward half covers the current step. float16/bfloat16 inputs
(also under autocast) are computed in float32, float64 ones in float64, so float64 tests check the formulas.
"""

import torch
import torch.nn.functional as F


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype FFT convolutions and BatchNorm statistics use for inputs of `dtype`: float64 or float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def kernel_to_circular(kernel: torch.Tensor, L: int) -> torch.Tensor:
    """A (S, H, Lk) kernel laid out on the 2L circle of the FFT convolution: (H, 2L). Taps beyond L are dropped."""
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
    """Depthwise long convolution of u (B, H, L) with a kernel's 2L `spectrum` (..., H, L + 1): float32 (float64).

    Leading dims broadcast: a (N, H, L + 1) spectrum with u of shape (B, 1, H, L) gives N branch outputs.
    """
    L = u.shape[-1]
    with torch.autocast(u.device.type, enabled=False):
        u_f = torch.fft.rfft(u.to(compute_dtype(u.dtype)), n=2 * L)  # (B H L+1)
        return torch.fft.irfft(u_f * spectrum, n=2 * L)[..., :L]  # (B H L)


def fft_conv_bias(u: torch.Tensor, spectrum: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`fft_conv(u, spectrum) + bias[:, None]` for the merged layer, without avoidable temporaries: (B, H, L).

    Without autograd the product and the bias are formed in place (the result is a view of the 2L inverse
    transform); with autograd it is a compact new tensor, so a consumer saving it does not keep the 2L one alive.
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
    """Plain O(L^2) convolution, the test oracle: y[t] = sum_s k_f[s] u[t-s] + sum_j k_b[j] u[t+1+j], (B, H, L)."""
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
