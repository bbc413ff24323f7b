"""The floor of the merged MRConv model: plain torch doing exactly the merged model's eval ops and nothing else.

Per layer the merged model (`reparameterize()`; merge in `modeling_mrconv/reparam.py`) should cost the FFT
convolution with a cached kernel spectrum plus the pointwise block ops:

    embedding -> per layer: rfft(x, n=2L) * precomputed spectrum -> irfft -> [..., :L] + bias -> GELU
    -> 1x1 conv H -> 2H -> GLU -> residual -> eval BatchNorm as a precomputed affine map (or LayerNorm),
    in the configured pre-/post-norm order -> (masked) mean pooling -> linear head.

Weights are random (the cost does not depend on them); each op is the cheapest plain-torch way (in place without
autograd, the BatchNorm as one `addcmul`). The FFT runs in float32 with autocast off, as in `modeling_mrconv.fftconv`
(bf16/fp16 FFTs are too inaccurate for long kernels).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from modeling_mrconv import MRConvConfig
from modeling_mrconv.fftconv import kernel_spectrum
from modeling_mrconv.modeling_mrconv import masked_mean, zero_padding


class FloorNorm(nn.Module):
    """Eval BatchNorm as a precomputed per-channel affine map (one `addcmul`), or LayerNorm, on (B, H, L)."""

    def __init__(self, config: MRConvConfig):
        super().__init__()
        H = config.hidden_size
        self.layer_norm = nn.LayerNorm(H, eps=config.norm_eps) if config.norm_type == "layer" else None
        self.register_buffer("scale", 1.0 + 0.1 * torch.randn(H))  # (H) gamma / sqrt(running_var + eps)
        self.register_buffer("shift", 0.1 * torch.randn(H))  # (H) beta - running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm is not None:
            return self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        return torch.addcmul(self.shift[:, None], x, self.scale[:, None])  # (B H L)


class FloorLayer(nn.Module):
    """One merged MRConv block as bare tensor ops."""

    def __init__(self, config: MRConvConfig):
        super().__init__()
        H, L = config.hidden_size, config.max_sequence_length
        S = 2 if config.bidirectional else 1
        self.prenorm = config.prenorm
        self.kernel = nn.Parameter(torch.randn(S, H, L) / math.sqrt(L))  # (S H L)
        self.conv_bias = nn.Parameter(torch.randn(H) * 0.1)  # (H)
        self.linear_weight = nn.Parameter(torch.randn(2 * H, H, 1) / math.sqrt(H))  # (2H H 1)
        self.linear_bias = nn.Parameter(torch.zeros(2 * H))  # (2H)
        self.norm = FloorNorm(config)
        self.spectra: dict[tuple, torch.Tensor] = {}  # (L, device) -> (H L+1), computed once like the cached one

    def spectrum(self, L: int, device: torch.device) -> torch.Tensor:
        if (L, device) not in self.spectra:
            with torch.no_grad():
                self.spectra[L, device] = kernel_spectrum(self.kernel.to(device), L)  # (H L+1)
        return self.spectra[L, device]

    def fft_conv(self, x: torch.Tensor) -> torch.Tensor:
        L = x.shape[-1]
        spectrum = self.spectrum(L, x.device)
        with torch.autocast(x.device.type, enabled=False):
            x_f = torch.fft.rfft(x.float(), n=2 * L)  # (B H L+1)
            x_f = x_f * spectrum if torch.is_grad_enabled() else x_f.mul_(spectrum)
            return torch.fft.irfft(x_f, n=2 * L)[..., :L].add_(self.conv_bias[:, None])  # (B H L)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        residual = x
        if self.prenorm:
            x = self.norm(x)
        y = F.gelu(self.fft_conv(zero_padding(x, mask)))  # (B H L)
        y = F.glu(F.conv1d(y, self.linear_weight, self.linear_bias), dim=1)  # (B H L)
        x = residual + y
        return x if self.prenorm else self.norm(x)


class FloorModel(nn.Module):
    """Token classifier with the merged MRConv model's op sequence: `forward(input_ids) -> logits`."""

    def __init__(self, config: MRConvConfig):
        super().__init__()
        H = config.hidden_size
        self.embeddings = nn.Embedding(config.vocab_size, H)
        self.layers = nn.ModuleList([FloorLayer(config) for _ in range(config.num_hidden_layers)])
        self.final_norm = FloorNorm(config) if config.prenorm else None
        self.classifier = nn.Linear(H, config.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embeddings(input_ids).transpose(1, 2)  # (B H L)
        for layer in self.layers:
            x = layer(x, attention_mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.classifier(masked_mean(x, attention_mask))  # (B num_labels)


def build_floor_model(config: MRConvConfig) -> nn.Module:
    """The floor model for `config` (any `reparameterized` value), random weights, in eval mode."""
    return FloorModel(config).eval()


__all__ = ["FloorLayer", "FloorModel", "FloorNorm", "build_floor_model"]
