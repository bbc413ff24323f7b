"""Tensors for looking inside a trained MRConv model: merged kernels, their spectra, and ||alpha||^2 per resolution.

The ||alpha_i||^2 map over depth x resolution is the paper's Figure 3 (section 5): which kernel resolutions each
layer relies on. `scripts/inspect_kernels.py` plots these.
"""

import torch

from .modeling_mrconv import MRConvMultiResConv


def conv_layers(model: torch.nn.Module) -> list[MRConvMultiResConv]:
    """The MRConv layers of `model`, in depth order."""
    return [m for m in model.modules() if isinstance(m, MRConvMultiResConv)]


@torch.no_grad()
def merged_kernels(model: torch.nn.Module) -> list[torch.Tensor]:
    """Per layer the eval-mode merged kernel (S, H, max_length) in float64, for merged or training-form layers."""
    return [layer.merged_parameters()[0].cpu() for layer in conv_layers(model)]  # running statistics (eq. 7)


def kernel_spectra(kernel: torch.Tensor) -> torch.Tensor:
    """Magnitude response |rfft| of each direction and channel of a (S, H, K) kernel: (S, H, K // 2 + 1)."""
    return torch.fft.rfft(kernel, dim=-1).abs()


@torch.no_grad()
def alpha_norms(model: torch.nn.Module) -> torch.Tensor | None:
    """||alpha_i||^2 over channels for every layer and resolution i: (num_layers, N) float64; None when merged."""
    layers = conv_layers(model)
    if not layers or any(layer.alpha is None for layer in layers):
        return None
    return torch.stack([layer.alpha.detach().double().cpu().pow(2).sum(-1) for layer in layers])  # (layers N)


__all__ = ["alpha_norms", "conv_layers", "kernel_spectra", "merged_kernels"]
