"""The merged MRConv layer `k * u + b` as a real-valued DFT written with matrix products: the ONNX export form.

ONNX has no complex type and onnxruntime refuses the graphs of `torch.fft` ops, so under export the merged layer
(paper section 3.2, one kernel of length K) is computed without them. A direct form (one depthwise `Conv`) would
cost O(L K) per channel at onnxruntime's depthwise-convolution speed; this module instead evaluates the same circular
convolution as `fftconv.fft_conv` with a two-factor Cooley-Tukey DFT of length N = N1 N2 >= 2K made of real matrix
products (GEMMs; the twiddles are folded into the per-n2 matrices of the first stage), O(N (N1 + N2)) per channel:

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
    """float64 DFT factors for length N = N1 N2 (module docstring), laid out for right-hand GEMMs.

    Never cached: a cache filled while `torch.export` traces would hold fake tensors; under export they are constants
    that the graph optimizers fold. stage1 (N2, N1, 2 N1): per n2, [Re | Im] of F1[n1, k1] W_N^{n2 k1} (stage 1 and
    its twiddles); stage2_re, stage2_im (N2, 2 N2): [Re F2 | Im F2] and [-Im F2 | Re F2], F2[n2, k2] = W_N2^{n2 k2},
    so Re(a) @ stage2_re + Im(a) @ stage2_im = [Re | Im] of a F2; inverse1_re, inverse1_im: the same for conj(F2);
    inverse2 (N2, 2 N1, rows): per m2, [[Re], [Im]] of F1[k1, m1] W_N^{m2 k1} for m1 < rows, so the real part of the
    inverse's last stage, conj(F1 W) w, is [Re w | Im w] @ inverse2.
    """
    N = N1 * N2
    n1, n2 = torch.arange(N1, dtype=torch.float64), torch.arange(N2, dtype=torch.float64)
    # angle of F1[n1, k1] W_N^{n2 k1} at [n2, n1, k1]
    angle1 = -2 * math.pi * (n1[None, :, None] / N1 + n2[:, None, None] / N) * n1[None, None, :]  # (N2 N1 N1)
    angle2 = -2 * math.pi * torch.outer(n2, n2) / N2  # (N2 N2)
    f2_re, f2_im = angle2.cos(), angle2.sin()
    m1 = n1[:rows]
    # angle of F1[k1, m1] W_N^{m2 k1} at [m2, k1, m1]
    inverse2 = -2 * math.pi * (n1[None, :, None] * m1[None, None, :] / N1 + n2[:, None, None] * n1[None, :, None] / N)
    return {
        "stage1": torch.cat([angle1.cos(), angle1.sin()], dim=-1),
        "stage2_re": torch.cat([f2_re, f2_im], 1),
        "stage2_im": torch.cat([-f2_im, f2_re], 1),
        "inverse1_re": torch.cat([f2_re, -f2_im], 1),
        "inverse1_im": torch.cat([f2_im, f2_re], 1),
        "inverse2": torch.cat([inverse2.cos(), inverse2.sin()], dim=1),
    }


def matmul_rdft(x: torch.Tensor, bases: dict[str, torch.Tensor], N1: int, N2: int) -> torch.Tensor:
    """DFT of real signals (R, N1 N2): (R, N1, 2 N2) holding [Re | Im] of X[k1 + N1 k2] at [k1, k2]."""
    R = x.shape[0]
    x = x.reshape(R, N1, N2).permute(2, 0, 1)  # (N2 R N1) x[N2 n1 + n2] at [n2, r, n1]
    a = (x @ bases["stage1"]).permute(1, 2, 0)  # (R 2N1 N2) stage 1 over n1, twiddled, [Re; Im] rows
    return a[:, :N1] @ bases["stage2_re"] + a[:, N1:] @ bases["stage2_im"]  # (R N1 2N2) stage 2 over n2


def matmul_irdft_real(
    y: tuple[torch.Tensor, torch.Tensor], bases: dict[str, torch.Tensor], N1: int, N2: int
) -> torch.Tensor:
    """N times the real part of the inverse DFT of `y` = (Re, Im), each (R, N1, N2) in `matmul_rdft`'s layout, at
    positions 0 .. rows N2 - 1: (R, rows N2)."""
    y_re, y_im = y
    R = y_re.shape[0]
    z = y_re @ bases["inverse1_re"] + y_im @ bases["inverse1_im"]  # (R N1 2N2) over k2: [Re | Im] at [k1, m2]
    w = torch.cat([z[..., :N2], z[..., N2:]], dim=1).permute(2, 0, 1)  # (N2 R 2N1) [m2, r, Re k1 | Im k1]
    out = w @ bases["inverse2"]  # (N2 R rows) over k1, twiddled: y[N2 m1 + m2] at [m2, r, m1]
    return out.permute(1, 2, 0).reshape(R, -1)  # (R rows*N2)


def dft_conv_bias(u: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`fftconv.fft_conv_bias(u, kernel_spectrum(kernel, L), bias)` without complex tensors or FFT ops.

    u (B, H, L <= K), a merged kernel (S, H, K) in `fftconv`'s conventions, bias (H): (B, H, L) in float32 (float64
    for float64 u).
    """
    dtype = compute_dtype(u.dtype)
    K, L = kernel.shape[-1], u.shape[-1]
    N1, N2 = dft_factors(2 * K)
    N = N1 * N2  # even, >= 2K: the circle holds the forward taps, the flipped backward taps and zero padding
    rows = -(-K // N2)  # output rows m1 covering positions 0 .. K - 1
    bases = {name: value.to(dtype=dtype, device=u.device) for name, value in dft_bases(N1, N2, rows).items()}
    H = kernel.shape[1]
    circle = kernel_to_circular(kernel.to(dtype), N // 2)  # (H N)
    spectrum = matmul_rdft(circle, bases, N1, N2)  # (H N1 2N2)
    x = F.pad(u.to(dtype), (0, N - L)).reshape(-1, N)  # (B*H N)
    x = matmul_rdft(x, bases, N1, N2).unflatten(0, (-1, H))  # (B H N1 2N2)
    x_re, x_im, k_re, k_im = x[..., :N2], x[..., N2:], spectrum[..., :N2], spectrum[..., N2:]
    product = (x_re * k_re - x_im * k_im).flatten(0, 1), (x_re * k_im + x_im * k_re).flatten(0, 1)  # (B*H N1 N2)
    y = matmul_irdft_real(product, bases, N1, N2)[:, :L].unflatten(0, (-1, H))  # (B H L), times N
    return y * (1.0 / N) + bias.to(dtype)[:, None]  # (B H L)


__all__ = ["dft_bases", "dft_conv_bias", "dft_factors", "matmul_irdft_real", "matmul_rdft"]
