"""The merged MRConv layer `k * u + b` as a real-valued DFT written with matrix products: the ONNX export form.

ONNX has no complex type and onnxruntime refuses the graphs of `torch.fft` ops, so under export the merged layer
(paper section 3.2, one kernel of length K) is computed without them. The direct form (`fftconv.direct_conv_bias`,
one depthwise `Conv`) costs O(L K) per channel at onnxruntime's depthwise-convolution speed; this module instead
evaluates the same circular convolution as `fftconv.fft_conv` with a two-factor Cooley-Tukey DFT of length
N = N1 N2 >= 2K made of real matrix products (GEMMs) and elementwise twiddles, O(N (N1 + N2)) per channel:

    X[k1 + N1 k2] = sum_{n2} W_N2^{n2 k2} W_N^{n2 k1} sum_{n1} W_N1^{n1 k1} x[N2 n1 + n2],    W_M = exp(-2 pi i / M)

and the inverse with the conjugate factors, keeping only the real part of the first K outputs. Complex values are
pairs of real tensors. The circle length depends only on K, never on the signal length L <= K, so the exported
graph keeps L dynamic: the signal is zero-padded to N, which changes no output (`fftconv.kernel_to_circular`).
"""

import math

import torch
import torch.nn.functional as F

from .fftconv import compute_dtype, kernel_to_circular


def dft_factors(min_length: int) -> tuple[int, int]:
    """(N1, N2) with N1 a power of two near sqrt(min_length), N2 = ceil(min_length / N1): N1 N2 >= min_length."""
    if min_length < 2:
        raise ValueError(f"min_length must be at least 2, got {min_length}.")
    N1 = 2 ** max(1, round(math.log2(math.sqrt(min_length))))
    return N1, -(-min_length // N1)


def dft_bases(N1: int, N2: int, rows: int) -> dict[str, torch.Tensor]:
    """float64 DFT factors for length N = N1 N2 (see the module docstring), laid out for right-hand GEMMs.

    Made on every call, never cached: a cache filled while `torch.export` traces would hold its fake tensors. Under
    export they depend on constants only, so the exported graph's optimizer (and onnxruntime's) folds them.

    Returns:
        f1: (N1, 2 N1) [Re F1 | Im F1], F1[n1, k1] = W_N1^{n1 k1} (symmetric).
        twiddle_re, twiddle_im: (N2, N1), W_N^{n2 k1} indexed [n2, k1].
        f2: (2 N2, 2 N2) [[Re F2, Im F2], [-Im F2, Re F2]]: [Re z | Im z] @ f2 = [Re | Im] of z F2.
        f2_inverse: (2 N2, 2 N2) the same for conj(F2).
        f1_inverse: (2 N1, rows) [[Re F1[:, :rows]], [Im F1[:, :rows]]]: the real part of conj(F1) products.
    """
    N = N1 * N2
    n1, n2 = torch.arange(N1, dtype=torch.float64), torch.arange(N2, dtype=torch.float64)
    angle1 = -2 * math.pi * torch.outer(n1, n1) / N1  # (N1 N1)
    angle2 = -2 * math.pi * torch.outer(n2, n2) / N2  # (N2 N2)
    twiddle = -2 * math.pi * torch.outer(n2, n1) / N  # (N2 N1)
    f2_re, f2_im = angle2.cos(), angle2.sin()
    return {
        "f1": torch.cat([angle1.cos(), angle1.sin()], dim=1),
        "twiddle_re": twiddle.cos(),
        "twiddle_im": twiddle.sin(),
        "f2": torch.cat([torch.cat([f2_re, f2_im], 1), torch.cat([-f2_im, f2_re], 1)], 0),
        "f2_inverse": torch.cat([torch.cat([f2_re, -f2_im], 1), torch.cat([f2_im, f2_re], 1)], 0),
        "f1_inverse": torch.cat([angle1.cos()[:, :rows], angle1.sin()[:, :rows]], 0),
    }


def matmul_rdft(x: torch.Tensor, bases: dict[str, torch.Tensor], N1: int, N2: int) -> torch.Tensor:
    """DFT of a real (..., N1 N2) signal: (..., N1, 2 N2) holding [Re | Im] of X[k1 + N1 k2] at [k1, k2]."""
    x = x.unflatten(-1, (N1, N2)).transpose(-1, -2)  # (... N2 N1) x[N2 n1 + n2] at [n2, n1]
    a = x @ bases["f1"]  # (... N2 2N1) stage 1 over n1
    a_re, a_im = a[..., :N1], a[..., N1:]  # (... N2 N1)
    t_re, t_im = bases["twiddle_re"], bases["twiddle_im"]
    b_re, b_im = a_re * t_re - a_im * t_im, a_re * t_im + a_im * t_re  # (... N2 N1)
    b = torch.cat([b_re.transpose(-1, -2), b_im.transpose(-1, -2)], dim=-1)  # (... N1 2N2)
    return b @ bases["f2"]  # (... N1 2N2) stage 2 over n2


def matmul_irdft_real(y: torch.Tensor, bases: dict[str, torch.Tensor], N1: int, N2: int) -> torch.Tensor:
    """N times the real part of the inverse DFT of `matmul_rdft`'s layout: (..., rows N2), outputs 0 .. rows N2 - 1."""
    z = y @ bases["f2_inverse"]  # (... N1 2N2) stage 1 over k2, indexed [k1, m2]
    z_re, z_im = z[..., :N2], z[..., N2:]  # (... N1 N2)
    t_re, t_im = bases["twiddle_re"].T, bases["twiddle_im"].T  # (N1 N2)
    w_re, w_im = z_re * t_re + z_im * t_im, z_im * t_re - z_re * t_im  # times conj(twiddle)
    w = torch.cat([w_re.transpose(-1, -2), w_im.transpose(-1, -2)], dim=-1)  # (... N2 2N1)
    out = w @ bases["f1_inverse"]  # (... N2 rows) stage 2 over k1: y[N2 m1 + m2] at [m2, m1]
    return out.transpose(-1, -2).flatten(-2)  # (... rows*N2)


def dft_conv_bias(u: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`fftconv.fft_conv_bias(u, kernel_spectrum(kernel, L), bias)` without complex tensors or FFT ops.

    Args:
        u: (B, H, L) signal with L <= K.
        kernel: (S, H, K) merged kernel, S = 1 (causal) or 2 (bidirectional, `fftconv` conventions).
        bias: (H) per-channel bias.

    Returns:
        (B, H, L) in float32 (float64 for float64 u).
    """
    dtype = compute_dtype(u.dtype)
    K, L = kernel.shape[-1], u.shape[-1]
    N1, N2 = dft_factors(2 * K)
    N = N1 * N2  # even, >= 2K: the circle holds the forward taps, the flipped backward taps and zero padding
    rows = -(-K // N2)  # output rows m1 covering positions 0 .. K - 1
    bases = {name: value.to(dtype=dtype, device=u.device) for name, value in dft_bases(N1, N2, rows).items()}
    circle = kernel_to_circular(kernel.to(dtype), N // 2)  # (H N)
    spectrum = matmul_rdft(circle, bases, N1, N2)  # (H N1 2N2)
    x = matmul_rdft(F.pad(u.to(dtype), (0, N - L)), bases, N1, N2)  # (B H N1 2N2)
    x_re, x_im, k_re, k_im = x[..., :N2], x[..., N2:], spectrum[..., :N2], spectrum[..., N2:]
    product = torch.cat([x_re * k_re - x_im * k_im, x_re * k_im + x_im * k_re], dim=-1)  # (B H N1 2N2)
    y = matmul_irdft_real(product, bases, N1, N2)[..., :L]  # (B H L), times N
    return y * (1.0 / N) + bias.to(dtype)[:, None]  # (B H L)


__all__ = ["dft_bases", "dft_conv_bias", "dft_factors", "matmul_irdft_real", "matmul_rdft"]
