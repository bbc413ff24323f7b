"""Streaming causal inference: a per-layer input history and the chunked merged convolution.

A merged causal MRConv layer is y[t] = sum_{s<K} k[s] u[t - s] + b (paper section 3.2, one kernel of length K), so
its outputs at a chunk's positions depend only on the chunk and the last K - 1 inputs before it. `stream_conv`
correlates [history, chunk] with the flipped kernel and returns the chunk's outputs, exactly those of the full
causal forward at those positions, at a cost O(K x chunk length) independent of how much came before; `MRConvCache` keeps at most K - 1 past inputs per layer, where K
is the kernel's support (trailing zero taps are dropped), so memory does not grow with the stream.
"""

import torch
import torch.nn.functional as F

from .fftconv import compute_dtype


def streaming_kernel(layer: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal kernel (1, H, K) trimmed to its support, and bias (H), of an `MRConvMultiResConv` in eval mode.

    Raises ValueError for bidirectional layers (future inputs are not available in a stream) and for training-form
    layers in training mode (BatchNorm would use batch statistics, which a chunk cannot reproduce).
    """
    if layer.num_directions != 1:
        raise ValueError(
            "Streaming (use_cache=True) needs a causal model: config.bidirectional=True layers read future inputs."
        )
    if layer.merged_kernel is not None:
        kernel, bias = layer.merged_kernel, layer.merged_bias
    else:
        if layer.training:
            raise ValueError("Streaming needs eval mode: call model.eval() (BatchNorm uses running statistics).")
        kernel, bias = layer.merged_parameters()  # exact eval-mode merge (reparam.merge_branches)
        kernel, bias = kernel.to(layer.alpha.dtype), bias.to(layer.alpha.dtype)
    support = torch.nonzero(kernel[0].abs().amax(0)).flatten()
    K = int(support[-1]) + 1 if support.numel() else 1
    return kernel[:, :, :K], bias


def stream_conv(
    chunk: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor, history: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal convolution of a chunk given the layer's past inputs.

    Args:
        chunk: (B, H, C) layer inputs (padded positions already zeroed, as in the full forward).
        kernel: (1, H, K) causal kernel; bias: (H).
        history: (B, H, P) the last P <= K - 1 inputs before the chunk, or None at the start of the stream.

    Returns:
        outputs (B, H, C) in compute dtype, equal to the full forward's at these positions, and the new history
        (B, H, min(K - 1, P + C)).
    """
    K = kernel.shape[-1]
    dtype = compute_dtype(chunk.dtype)
    chunk = chunk.to(dtype)
    window = chunk if history is None else torch.cat([history.to(dtype), chunk], dim=-1)  # (B H P+C)
    L = window.shape[-1]
    # direct form, O(C K) per channel: the window left-padded to K - 1 + C positions, correlated with the flipped
    # kernel (fftconv.direct_conv_bias), gives exactly the C outputs of the chunk
    padded = F.pad(window, (K - 1 - min(K - 1, L - chunk.shape[-1]), 0))[..., -(K - 1 + chunk.shape[-1]) :]
    weight = kernel[0].to(dtype).flip(-1)[:, None, :]  # (H 1 K)
    outputs = F.conv1d(padded, weight, bias.to(dtype), groups=weight.shape[0])  # (B H C)
    keep = min(K - 1, L)
    new_history = window[..., L - keep :].clone()  # (B H keep)
    return outputs, new_history


class MRConvCache:
    """Streaming state of a causal MRConv model: per-layer input history and the running pooling sums.

    Attributes:
        history: per layer, the last (at most K - 1) inputs of its MRConv convolution, (B, H, P), or None.
        kernels: per layer, the cached `streaming_kernel` (merged once per stream for training-form layers).
        pooled_sum: (B, H) running sum of the final hidden states over the valid positions seen so far.
        pooled_count: (B, 1) number of valid positions seen so far.
        seen_tokens: positions (valid or padded) fed so far (advanced by `MRConvModel.forward`).

    A stream is not limited to `config.max_sequence_length`: every output reads only the last K - 1 <= L_max - 1
    inputs of each layer, so position t of a long stream sees the same kernel window as position K - 1 of a
    training sequence, and equals the full causal convolution with the kernel extended by zero taps.
    """

    def __init__(self, num_layers: int):
        self.history: list[torch.Tensor | None] = [None] * num_layers
        self.kernels: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * num_layers
        self.pooled_sum: torch.Tensor | None = None
        self.pooled_count: torch.Tensor | None = None
        self.seen_tokens = 0

    def layer_forward(self, layer: torch.nn.Module, chunk: torch.Tensor) -> torch.Tensor:
        """Streamed `MRConvMultiResConv` output for `chunk` (B, H, C); updates this layer's history."""
        idx = layer.layer_idx
        history = self.history[idx]
        if history is not None and history.shape[0] != chunk.shape[0]:
            raise ValueError(
                f"The cache holds a stream of batch size {history.shape[0]}, got a chunk of batch size "
                f"{chunk.shape[0]}: keep the batch fixed within a stream or start a new MRConvCache."
            )
        if self.kernels[idx] is None:
            self.kernels[idx] = streaming_kernel(layer)
        kernel, bias = self.kernels[idx]
        outputs, self.history[idx] = stream_conv(chunk, kernel, bias, self.history[idx])
        return outputs.to(chunk.dtype)  # (B H C)

    def update_pooling(self, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Add a chunk's final hidden states (B, H, C) to the running masked mean; returns the mean so far (B, H)."""
        weights = torch.ones_like(hidden_states[:, :1]) if mask is None else mask.to(hidden_states.dtype)[:, None]
        # torch.where, not a product: a non-finite value at a padded position must not reach the sum
        chunk_sum = torch.where(weights > 0, hidden_states, hidden_states.new_zeros(())).sum(-1)  # (B H)
        chunk_count = weights.sum(-1)  # (B 1)
        if self.pooled_sum is None:
            self.pooled_sum, self.pooled_count = chunk_sum, chunk_count
        else:
            self.pooled_sum, self.pooled_count = self.pooled_sum + chunk_sum, self.pooled_count + chunk_count
        return self.pooled_sum / self.pooled_count.clamp_min(1.0)

    def memory_positions(self) -> int:
        """Largest number of past positions held by any layer (at most kernel support - 1)."""
        return max((h.shape[-1] for h in self.history if h is not None), default=0)


__all__ = ["MRConvCache", "stream_conv", "streaming_kernel"]
