"""Streaming causal inference: chunked layer outputs equal the full causal forward, with bounded history."""

import pytest
import torch
from mrconv_testing import tiny_config

from modeling_mrconv.cache_mrconv import MRConvCache, stream_conv, streaming_kernel
from modeling_mrconv.configuration_mrconv import KERNEL_TYPES
from modeling_mrconv.fftconv import direct_conv_reference
from modeling_mrconv.modeling_mrconv import MRConvMultiResConv, masked_mean


def random_splits(L: int, generator: torch.Generator) -> list[int]:
    """Chunk sizes summing to L, including size-1 chunks."""
    sizes = []
    while sum(sizes) < L:
        sizes.append(min(int(torch.randint(1, 12, (1,), generator=generator)), L - sum(sizes)))
    return sizes


def eval_layer(kernel_type: str, merged: bool) -> MRConvMultiResConv:
    config = tiny_config(bidirectional=False, kernel_type=kernel_type, max_sequence_length=48)
    layer = MRConvMultiResConv(config)
    for module in layer.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    layer.train()
    with torch.no_grad():
        for _ in range(3):  # move the BatchNorm running statistics away from their init
            layer(torch.randn(4, 16, 48))
    layer.eval()
    return layer.reparameterize() if merged else layer


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("merged", [False, True])
@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_chunked_layer_equals_full_causal_forward(kernel_type, merged, padded):
    layer = eval_layer(kernel_type, merged)
    generator = torch.Generator().manual_seed(len(kernel_type) + 2 * merged + padded)
    B, H, L = 3, 16, 48
    x = torch.randn(B, H, L, generator=generator)
    mask = None
    if padded:  # masked positions inside chunks: left and right padding and holes
        mask = (torch.rand(B, L, generator=generator) > 0.3).float()
        x = x * mask[:, None, :]
    with torch.no_grad():
        full = layer(x, mask)  # (B H L)
        for _trial in range(2):
            cache = MRConvCache(num_layers=1)
            outputs, start = [], 0
            for size in random_splits(L, generator):
                outputs.append(cache.layer_forward(layer, x[..., start : start + size]))
                start += size
                K = cache.kernels[0][0].shape[-1]
                assert cache.history[0].shape[-1] == min(K - 1, start)  # bounded by the kernel support
            torch.testing.assert_close(torch.cat(outputs, dim=-1), full, rtol=1e-5, atol=1e-5)


def test_stream_conv_matches_direct_reference_and_uses_only_kernel_history():
    """float64: outputs at a chunk need only the last K - 1 inputs; older history does not change them."""
    kernel = torch.randn(1, 5, 7, dtype=torch.float64)
    bias = torch.randn(5, dtype=torch.float64)
    u = torch.randn(2, 5, 30, dtype=torch.float64)
    expected = direct_conv_reference(u, kernel) + bias[:, None]
    y, history = stream_conv(u[..., 20:], kernel, bias, u[..., 14:20])  # exactly K - 1 = 6 past inputs
    torch.testing.assert_close(y, expected[..., 20:], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(history, u[..., 24:])
    y_long, _ = stream_conv(u[..., 20:], kernel, bias, u[..., :20])  # a longer history gives the same outputs
    torch.testing.assert_close(y_long, y, rtol=1e-12, atol=1e-12)


def test_kernel_support_trims_trailing_zero_taps():
    layer = eval_layer("dilated", merged=True)
    with torch.no_grad():
        layer.merged_kernel[..., 10:] = 0.0
        layer.merged_kernel[..., 9] = 1.0
    kernel, _ = streaming_kernel(layer)
    assert kernel.shape == (1, 16, 10)
    cache = MRConvCache(1)
    with torch.no_grad():
        cache.layer_forward(layer, torch.randn(2, 16, 30))
    assert cache.memory_positions() == 9


def test_running_pooling_equals_masked_mean():
    hidden = torch.randn(2, 4, 20)
    mask = (torch.rand(2, 20) > 0.4).float()
    mask[:, 0] = 1.0
    cache = MRConvCache(1)
    for start in range(0, 20, 6):
        running = cache.update_pooling(hidden[..., start : start + 6], mask[:, start : start + 6])
        end = min(start + 6, 20)
        torch.testing.assert_close(running, masked_mean(hidden[..., :end], mask[:, :end]))
    assert cache.seen_tokens == 20


def test_bidirectional_and_training_layers_are_refused():
    layer = MRConvMultiResConv(tiny_config(bidirectional=True))
    with pytest.raises(ValueError, match="needs a causal model: config.bidirectional=True"):
        streaming_kernel(layer)
    layer = MRConvMultiResConv(tiny_config(bidirectional=False)).train()
    with pytest.raises(ValueError, match="Streaming needs eval mode"):
        streaming_kernel(layer)
