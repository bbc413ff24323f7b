"""Structural reparameterization of an MRConv layer (paper eq. 7).

In eval mode a branch's BatchNorm is a fixed per-channel affine map of its convolution output, so

    y = sum_i alpha_i * BN_i(k_i * u) + D * u = k_rep * u + b_rep,
    s_i   = alpha_i * gamma_i / sqrt(var_i + eps),
    k_rep = sum_i s_i * pad(k_i, L)  (+ D on the forward lag-0 tap),
    b_rep = sum_i alpha_i * (beta_i - gamma_i * mean_i / sqrt(var_i + eps)).

The BN shift is added after the convolution, so b_rep is a plain per-channel bias: exact at every position,
including the first l_i steps. These functions are pure and compute in float64.
"""

import torch


def fold_batchnorm(
    alpha: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-branch kernel scales (N, H) and the summed bias (H), float64, from (N, H) alpha and BatchNorm tensors."""
    inv_std = torch.rsqrt(running_var.double() + eps)  # (N H)
    scale = alpha.double() * weight.double() * inv_std  # (N H)
    shift = alpha.double() * (bias.double() - weight.double() * running_mean.double() * inv_std)  # (N H)
    return scale, shift.sum(0)


def merge_kernels(
    kernels: list[torch.Tensor], scale: torch.Tensor, length: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """sum_i scale_i * kernel_i, every (S, H, l_i) kernel zero-padded on the right to `length`: (S, H, length)."""
    merged = torch.zeros(*kernels[0].shape[:2], length, dtype=dtype, device=kernels[0].device)
    for kernel, s in zip(kernels, scale, strict=False):
        kernel = kernel[..., :length]
        merged[..., : kernel.shape[-1]].addcmul_(kernel.to(dtype), s[:, None].to(dtype))  # (S H l_i) of (S H L)
    return merged


def merge_with_skip(
    kernels: list[torch.Tensor],
    scale: torch.Tensor,
    skip: torch.Tensor,
    length: int,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """sum_i scale_i * kernel_i + D delta (S, H, length), differentiable: `merge_kernels` plus D on the lag-0 tap.

    `scale` = alpha gives the layer without branch BatchNorm; `merge_branches` passes the BatchNorm-folded scale.
    """
    kernel = merge_kernels(kernels, scale, length, dtype)  # (S H L)
    kernel[0, :, 0] += skip.to(dtype)
    return kernel


def merge_branches(
    kernels: list[torch.Tensor], alpha: torch.Tensor, batch_norm, skip: torch.Tensor, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval-mode layer as one kernel (S, H, length) and bias (H), float64; differentiable in every argument.

    N `kernels` (S, H, l_i), alpha (N, H), the branches' (N, H) `batch_norm` (affine parameters, running statistics,
    eps) and skip (H), the D term added to the forward lag-0 tap.
    """
    bn = batch_norm
    scale, shift = fold_batchnorm(alpha, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
    return merge_with_skip(kernels, scale, skip, length), shift  # (S H L), (H)


__all__ = ["fold_batchnorm", "merge_branches", "merge_kernels", "merge_with_skip"]
