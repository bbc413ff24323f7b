"""Streaming causal inference: a per-layer input history and the chunked merged convolution.

A merged causal MRConv layer is y[t] = sum_{s<K} k[s] u[t - s] + b (paper section 3.2), so a chunk's outputs depend
only on the chunk and the last K - 1 inputs. `stream_conv` convolves the window [history, chunk] and returns exactly
the full causal forward's outputs at the chunk's C positions, by one of two paths (one dispatch point):
`stream_conv_direct` (one depthwise `F.conv1d`, O(K x C) per channel; short chunks) or `stream_conv_fft`
(`fftconv.fft_conv_bias` on an FFT-friendly length, O((K + C) log(K + C)); chunks of `FFT_MIN_CHUNK` or more).
Neither cost nor memory grows with the stream: `MRConvCache` keeps at most K - 1 past inputs per layer, K the
kernel's support (trailing zero taps dropped).
"""

import torch
import torch.nn.functional as F

from .fftconv import compute_dtype, fft_conv_bias, kernel_spectrum


# Chunks of at least this many positions take the FFT path. Measured per layer (H = 64, batch 1, 1 CPU thread):
# at K = 4096 and K = 16384 the direct form costs 2.2 / 9.0 ms at C = 64 against 1.7 / 8.2 ms for the FFT (cached
# spectrum), and 7.7 / 33 ms at C = 256 against 2.0 / 7.9 ms; below 64 the direct form wins (at K = 1024 up to C ~ 256,
# by at most 0.2 ms).
FFT_MIN_CHUNK = 64
# spectra kept per layer: one per FFT length, i.e. per distinct (history + chunk) length rounded up by `fft_length`
MAX_CACHED_SPECTRA = 4


def streaming_kernel(layer: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal kernel (1, H, K) trimmed to its support, and bias (H), of an `MRConvMultiResConv` in eval mode;
    ValueError for bidirectional layers and training-form layers in training mode (batch statistics)."""
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


def fft_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: FFTs of these lengths (and of twice them) run at full speed."""
    if n < 1:
        raise ValueError(f"n must be a positive length, got {n}.")
    best = 1 << (n - 1).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def direct_weight(kernel: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The depthwise correlation weight (H, 1, K) of a causal kernel (1, H, K): the kernel flipped in time."""
    return kernel[0].to(dtype).flip(-1)[:, None, :].contiguous()  # (H 1 K)


def stream_conv_direct(window: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, C: int) -> torch.Tensor:
    """Outputs (B, H, C) at the last C positions of `window` (B, H, P + C): the window, left-padded (or cut) to
    K - 1 + C positions, correlated with `weight` = `direct_weight(kernel)` (hence the flip)."""
    K = weight.shape[-1]
    L = window.shape[-1]
    if L < K - 1 + C:  # the start of a stream: zeros stand for the inputs before it
        window = F.pad(window, (K - 1 + C - L, 0))  # (B H K-1+C)
    elif L > K - 1 + C:
        window = window[..., L - (K - 1 + C) :]  # (B H K-1+C)
    return F.conv1d(window, weight.to(window.dtype), bias.to(window.dtype), groups=weight.shape[0])  # (B H C)


def stream_conv_fft(
    window: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor,
    C: int,
    spectra: dict[tuple, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Outputs (B, H, C) at the last C positions of `window` (B, H, P + C), FFT form: O((P + C) log(P + C)).

    The window is left-padded with zeros (which change no output) to N = `fft_length(P + C)` and convolved with the
    kernel's length-N spectrum. `spectra` (the caller's dict, keyed by length and dtype) keeps up to
    `MAX_CACHED_SPECTRA` of them.
    """
    N = fft_length(window.shape[-1])
    key = (N, window.dtype)
    spectrum = spectra.get(key) if spectra is not None else None
    if spectrum is None:
        spectrum = kernel_spectrum(kernel.to(window.dtype), N)  # (H N+1); taps beyond N cannot reach an output
        if spectra is not None:
            while len(spectra) >= MAX_CACHED_SPECTRA:
                spectra.pop(next(iter(spectra)))  # oldest first
            spectra[key] = spectrum
    padded = F.pad(window, (N - window.shape[-1], 0))  # (B H N)
    return fft_conv_bias(padded, spectrum, bias)[..., N - C :]  # (B H C)


def stream_conv(
    chunk: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor,
    history: torch.Tensor | None,
    fft_min_chunk: int = FFT_MIN_CHUNK,
    spectra: dict[tuple, torch.Tensor] | None = None,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal convolution of a chunk (B, H, C) given the layer's past inputs: the dispatch between the two paths.

    `history` (B, H, P) holds the inputs before the chunk (only the last K - 1 are read), None at the start; chunks
    of at least `fft_min_chunk` positions take `stream_conv_fft` (with the `spectra` cache), shorter ones
    `stream_conv_direct` (with `weight`, if already made). Returns the outputs (B, H, C) in compute dtype, equal to
    the full forward's, and the new history (B, H, min(K - 1, P + C)).
    """
    K, C = kernel.shape[-1], chunk.shape[-1]  # (K taps, C chunk positions)
    dtype = compute_dtype(chunk.dtype)
    chunk = chunk.to(dtype)
    if history is not None and history.shape[-1] > K - 1:
        history = history[..., history.shape[-1] - (K - 1) :]  # older inputs cannot reach the chunk's outputs
    window = chunk if history is None else torch.cat([history.to(dtype), chunk], dim=-1)  # (B H P+C)
    if chunk.shape[-1] >= fft_min_chunk:  # the one dispatch point (FFT_MIN_CHUNK)
        outputs = stream_conv_fft(window, kernel, bias, C, spectra)  # (B H C)
    else:
        weight = direct_weight(kernel, dtype) if weight is None else weight  # (H 1 K)
        outputs = stream_conv_direct(window, weight, bias, C)  # (B H C)
    L = window.shape[-1]
    keep = min(K - 1, L)
    new_history = window[..., L - keep :]  # (B H keep)
    if history is None or 2 * keep < L:
        # a view of the caller's chunk, or of a much longer window, must not be kept; otherwise the view of the
        # window made here saves a copy (and a fresh allocation, which page faults cost on CPU) per chunk
        new_history = new_history.clone()
    return outputs, new_history


class MRConvCache:
    """Streaming state of a causal MRConv model: per layer the last (at most K - 1) inputs `history` (B, H, P), the
    `streaming_kernel`, the FFT `spectra` and the direct `weights`; the running pooling sums `pooled_sum` (B, H)
    and `pooled_count` (B, 1) of valid positions; `seen_tokens`, positions fed so far (valid or padded).

    A stream may exceed `config.max_sequence_length`: each output reads only the last K - 1 <= L_max - 1 inputs of a
    layer, so it equals the full causal convolution with the kernel extended by zero taps.
    """

    def __init__(self, num_layers: int, fft_min_chunk: int = FFT_MIN_CHUNK):
        if fft_min_chunk < 1:
            raise ValueError(f"fft_min_chunk must be a positive number of positions, got {fft_min_chunk}.")
        self.history: list[torch.Tensor | None] = [None] * num_layers
        self.kernels: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * num_layers
        self.spectra: list[dict[tuple, torch.Tensor]] = [{} for _ in range(num_layers)]
        self.weights: list[torch.Tensor | None] = [None] * num_layers
        self.fft_min_chunk = fft_min_chunk
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
        dtype = compute_dtype(chunk.dtype)
        if chunk.shape[-1] < self.fft_min_chunk and (self.weights[idx] is None or self.weights[idx].dtype != dtype):
            self.weights[idx] = direct_weight(kernel, dtype)  # (H 1 K)
        outputs, self.history[idx] = stream_conv(
            chunk, kernel, bias, self.history[idx], self.fft_min_chunk, self.spectra[idx], self.weights[idx]
        )
        return outputs.to(chunk.dtype)  # (B H C)

    def update_pooling(self, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Add a chunk's final hidden states (B, H, C) to the running masked mean; returns the mean so far (B, H)."""
        weights = torch.ones_like(hidden_states[:, :1]) if mask is None else mask.to(hidden_states.dtype)[:, None]
        # torch.where, not a product: a non-finite value at a padded position must not reach the sum
        chunk_sum = torch.where(weights > 0, hidden_states, hidden_states.new_zeros(())).sum(-1)  # (B H)
        chunk_count = weights.sum(-1)  # (B 1)
        if self.pooled_sum is not None:
            chunk_sum, chunk_count = self.pooled_sum + chunk_sum, self.pooled_count + chunk_count
        self.pooled_sum, self.pooled_count = chunk_sum, chunk_count
        return self.pooled_sum / self.pooled_count.clamp_min(1.0)

    def memory_positions(self) -> int:
        """Largest number of past positions held by any layer (at most kernel support - 1)."""
        return max((h.shape[-1] for h in self.history if h is not None), default=0)


__all__ = [
    "FFT_MIN_CHUNK",
    "MRConvCache",
    "direct_weight",
    "fft_length",
    "stream_conv",
    "stream_conv_direct",
    "stream_conv_fft",
    "streaming_kernel",
]
