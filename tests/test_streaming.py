"""Streaming causal inference: chunked layer outputs equal the full causal forward, with bounded history."""

import pytest
import torch
from mrconv_testing import tiny_config, warmed_model

from modeling_mrconv import MRConvCache, MRConvForDocumentPairClassification
from modeling_mrconv.cache_mrconv import stream_conv, streaming_kernel
from modeling_mrconv.configuration_mrconv import KERNEL_TYPES
from modeling_mrconv.fftconv import direct_conv_reference
from modeling_mrconv.modeling_mrconv import (
    MRConvModelOutput,
    MRConvMultiResConv,
    MRConvSequenceClassifierOutput,
    masked_mean,
)


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


def test_bidirectional_and_training_layers_are_refused():
    layer = MRConvMultiResConv(tiny_config(bidirectional=True))
    with pytest.raises(ValueError, match="needs a causal model: config.bidirectional=True"):
        streaming_kernel(layer)
    layer = MRConvMultiResConv(tiny_config(bidirectional=False)).train()
    with pytest.raises(ValueError, match="Streaming needs eval mode"):
        streaming_kernel(layer)


def stream_model(config_overrides: dict, merged: bool):
    config = tiny_config(bidirectional=False, max_sequence_length=48, **config_overrides)
    model = warmed_model(config, length=48)
    return model.reparameterize() if merged else model


def model_inputs(config, B: int, L: int, generator: torch.Generator, padded: bool) -> dict[str, torch.Tensor]:
    if config.input_dim is None:
        inputs = {"input_ids": torch.randint(1, config.vocab_size, (B, L), generator=generator)}
    else:
        inputs = {"input_values": torch.randn(B, L, config.input_dim, generator=generator)}
    if padded:  # holes and runs of padding inside and across chunks; every row keeps a valid first position
        mask = (torch.rand(B, L, generator=generator) > 0.3).long()
        mask[:, 0] = 1
        mask[0, L // 2 :] = 0
        inputs["attention_mask"] = mask
    return inputs


def chunk_of(inputs: dict[str, torch.Tensor], start: int, end: int) -> dict[str, torch.Tensor]:
    return {name: value[:, start:end] for name, value in inputs.items()}


def assert_stream_matches_full(model, inputs: dict[str, torch.Tensor], sizes: list[int]) -> None:
    """Streamed backbone states == the full forward's; the head's running logits == the prefix's full logits."""
    with torch.no_grad():
        full = model.mrconv(**inputs).last_hidden_state  # (B L H)
        backbone_cache, head_cache, states, start = None, None, [], 0
        for size in sizes:
            chunk = chunk_of(inputs, start, start + size)
            out = model.mrconv(**chunk, use_cache=True, cache=backbone_cache)
            assert isinstance(out, MRConvModelOutput) and isinstance(out.cache, MRConvCache)
            backbone_cache = out.cache
            states.append(out.last_hidden_state)
            head = model(**chunk, use_cache=True, cache=head_cache)
            assert isinstance(head, MRConvSequenceClassifierOutput)
            head_cache = head.cache
            start += size
            prefix = model(**chunk_of(inputs, 0, start)).logits
            torch.testing.assert_close(head.logits, prefix, rtol=1e-5, atol=1e-5)
            assert backbone_cache.seen_tokens == head_cache.seen_tokens == start
        torch.testing.assert_close(torch.cat(states, dim=1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("merged", [False, True])
@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_streamed_model_equals_full_forward(kernel_type, merged, padded):
    model = stream_model({"kernel_type": kernel_type}, merged)
    generator = torch.Generator().manual_seed(10 * len(kernel_type) + 2 * merged + padded)
    inputs = model_inputs(model.config, 3, 48, generator, padded)
    assert_stream_matches_full(model, inputs, random_splits(48, generator))


@pytest.mark.parametrize("merged", [False, True])
def test_streamed_continuous_prenorm_layer_norm_model(merged):
    """input_values, pre-norm blocks with the final norm, LayerNorm: all per-position, so streaming stays exact."""
    model = stream_model({"input_dim": 2, "prenorm": True, "norm_type": "layer"}, merged)
    generator = torch.Generator().manual_seed(3 + merged)
    inputs = model_inputs(model.config, 2, 48, generator, padded=True)
    assert_stream_matches_full(model, inputs, [1, 16, 5, 1, 25])


def test_stream_longer_than_max_sequence_length():
    """A stream (and a single chunk) may exceed max_sequence_length: it equals the full causal forward with the
    kernel extended by zero taps, here obtained by lifting the length limit for the reference forward."""
    model = stream_model({}, merged=True)
    generator = torch.Generator().manual_seed(7)
    inputs = model_inputs(model.config, 2, 130, generator, padded=False)
    with torch.no_grad():
        cache, states = None, []
        for start, end in [(0, 60), (60, 61), (61, 130)]:  # the first chunk alone is longer than 48
            out = model.mrconv(**chunk_of(inputs, start, end), use_cache=True, cache=cache)
            cache = out.cache
            states.append(out.last_hidden_state)
        K = max(kernel.shape[-1] for kernel, _ in cache.kernels)
        assert cache.memory_positions() == K - 1 <= 47  # memory bounded by the kernel, not by the 130 positions
        with pytest.raises(ValueError, match="Sequence length 130 exceeds max_sequence_length=48"):
            model.mrconv(**inputs)
        model.config.max_sequence_length = 130
        full = model.mrconv(**inputs).last_hidden_state
    torch.testing.assert_close(torch.cat(states, dim=1), full, rtol=1e-5, atol=1e-5)


def test_cache_without_use_cache_streams_and_output_forms():
    model = stream_model({}, merged=True)
    x = torch.randint(1, 20, (2, 20))
    with torch.no_grad():
        first = model.mrconv(input_ids=x[:, :8], use_cache=True)
        implicit = model.mrconv(input_ids=x[:, 8:], cache=first.cache)  # a cache alone turns streaming on
        assert implicit.cache is first.cache and first.cache.seen_tokens == 20
        full = model.mrconv(input_ids=x)
        torch.testing.assert_close(implicit.last_hidden_state, full.last_hidden_state[:, 8:], rtol=1e-5, atol=1e-5)
        assert full.cache is None and model(input_ids=x).cache is None  # the full forward carries no cache
        hidden, cache = model.mrconv(input_ids=x[:, :4], use_cache=True, return_dict=False)
        assert isinstance(cache, MRConvCache) and hidden.shape == (2, 4, 16)
        logits, cache = model(input_ids=x[:, :4], use_cache=True, return_dict=False)
        assert isinstance(cache, MRConvCache) and logits.shape == (2, 3)
        with pytest.raises(ValueError, match=r"A cache was passed with use_cache=False: pass use_cache=True"):
            model(input_ids=x, use_cache=False, cache=cache)


def test_streaming_refusals():
    with torch.no_grad():
        bidirectional = warmed_model(tiny_config(bidirectional=True))
        with pytest.raises(ValueError, match=r"needs a causal model: config.bidirectional=True kernels read future"):
            bidirectional(input_ids=torch.randint(1, 20, (2, 5)), use_cache=True)
        model = stream_model({}, merged=False)
        x = torch.randint(1, 20, (2, 6))
        model.train()
        with pytest.raises(ValueError, match=r"Streaming \(use_cache=True\) needs eval mode: call model.eval\(\)"):
            model(input_ids=x, use_cache=True)
        model.eval()
        cache = model(input_ids=x, use_cache=True).cache
        with pytest.raises(ValueError, match="stream of batch size 2, got a chunk of batch size 3"):
            model(input_ids=torch.randint(1, 20, (3, 4)), cache=cache)
        with pytest.raises(ValueError, match="The cache has 5 layers, the model num_hidden_layers=2"):
            model(input_ids=x, cache=MRConvCache(5))
        with pytest.raises(ValueError, match="cache must be an MRConvCache, got dict"):
            model(input_ids=x, cache={})
        pair = MRConvForDocumentPairClassification(tiny_config(bidirectional=False)).eval()
        pair_ids = torch.randint(1, 20, (2, 2, 6))
        with pytest.raises(ValueError, match=r"MRConvForDocumentPairClassification does not stream \(use_cache/cache\)"):
            pair(input_ids=pair_ids, use_cache=True)
        assert pair(input_ids=pair_ids, use_cache=False).logits.shape == (2, 3)
