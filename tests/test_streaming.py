"""Streaming causal inference: chunked layer outputs equal the full causal forward, with bounded history."""

import logging

import pytest
import torch
from mrconv_testing import tiny_config, warmed_model
from transformers.testing_utils import CaptureLogger

import modeling_mrconv.cache_mrconv as cache_mrconv
from modeling_mrconv import MRConvCache, MRConvForDocumentPairClassification
from modeling_mrconv.cache_mrconv import (
    FFT_MIN_CHUNK,
    MAX_CACHED_SPECTRA,
    direct_weight,
    fft_length,
    stream_conv,
    stream_conv_direct,
    stream_conv_fft,
    streaming_kernel,
)
from modeling_mrconv.configuration_mrconv import KERNEL_TYPES
from modeling_mrconv.fftconv import direct_conv_reference
from modeling_mrconv.modeling_mrconv import (
    MRConvModelOutput,
    MRConvMultiResConv,
    MRConvSequenceClassifierOutput,
    masked_mean,
)
from modeling_mrconv.modeling_mrconv import logger as modeling_logger


# fft_min_chunk per streaming path: every chunk direct, every chunk FFT, or both within one stream (random splits
# hold chunks on either side of 4)
PATHS = {"direct": 10**9, "fft": 1, "hybrid": 4}


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


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("merged", [False, True])
@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_chunked_layer_equals_full_causal_forward(kernel_type, merged, padded, path):
    layer = eval_layer(kernel_type, merged)
    generator = torch.Generator().manual_seed(len(kernel_type) + 2 * merged + padded + 4 * len(path))
    B, H, L = 3, 16, 48
    x = torch.randn(B, H, L, generator=generator)
    mask = None
    if padded:  # masked positions inside chunks: left and right padding and holes
        mask = (torch.rand(B, L, generator=generator) > 0.3).float()
        x = x * mask[:, None, :]
    with torch.no_grad():
        full = layer(x, mask)  # (B H L)
        for _trial in range(2):
            cache = MRConvCache(num_layers=1, fft_min_chunk=PATHS[path])
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


@pytest.mark.parametrize("history_length", [0, 5, 36, 50])
@pytest.mark.parametrize("chunk_length", [1, 7, 64, 100])
def test_direct_and_fft_paths_equal_float64_reference_and_each_other(history_length, chunk_length):
    """Both paths against the plain O(L^2) convolution, in float64, for histories shorter and longer than K - 1."""
    generator = torch.Generator().manual_seed(history_length + chunk_length)
    kernel = torch.randn(1, 6, 37, generator=generator, dtype=torch.float64)  # K = 37
    bias = torch.randn(6, generator=generator, dtype=torch.float64)
    u = torch.randn(2, 6, history_length + chunk_length, generator=generator, dtype=torch.float64)
    expected = (direct_conv_reference(u, kernel) + bias[:, None])[..., history_length:]  # (B H C)
    history = u[..., :history_length] if history_length else None
    results = {}
    for path, threshold in (("direct", 10**9), ("fft", 1)):
        results[path], new_history = stream_conv(u[..., history_length:], kernel, bias, history, threshold)
        assert results[path].dtype == torch.float64
        torch.testing.assert_close(results[path], expected, rtol=1e-12, atol=1e-12, msg=path)
        torch.testing.assert_close(new_history, u[..., -min(36, u.shape[-1]) :], rtol=0, atol=0)
    torch.testing.assert_close(results["fft"], results["direct"], rtol=1e-12, atol=1e-12)


def test_paths_agree_in_float32_for_a_long_kernel():
    """float32 at K = 4096: the FFT path equals the direct path (and the float64 reference) to 1e-5."""
    generator = torch.Generator().manual_seed(0)
    kernel = torch.randn(1, 4, 4096, generator=generator) / 64
    bias = torch.randn(4, generator=generator)
    u = torch.randn(1, 4, 4096 + 300, generator=generator)
    history, chunk = u[..., :4095], u[..., 4095:4395]
    direct = stream_conv_direct(torch.cat([history, chunk], -1), direct_weight(kernel, torch.float32), bias, 300)
    fft = stream_conv_fft(torch.cat([history, chunk], -1), kernel, bias, 300)
    reference = torch.nn.functional.conv1d(  # float64 direct correlation of the whole signal
        u[..., :4395].double(), kernel[0].double().flip(-1)[:, None], bias.double(), padding=4095, groups=4
    )[..., 4095:4395]
    torch.testing.assert_close(fft, direct, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fft.double(), reference, rtol=1e-5, atol=1e-5)


def test_dispatch_point_picks_the_path_by_chunk_length_and_bounds_the_window(monkeypatch):
    """Chunks shorter than fft_min_chunk go direct, longer ones through the FFT; both see at most K - 1 + C inputs."""
    calls = []
    for name in ("stream_conv_direct", "stream_conv_fft"):
        original = getattr(cache_mrconv, name)

        def record(window, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, window.shape[-1]))
            return _original(window, *args, **kwargs)

        monkeypatch.setattr(cache_mrconv, name, record)
    kernel, bias = torch.randn(1, 3, 20), torch.randn(3)
    history = torch.randn(2, 3, 500)  # longer than K - 1 = 19: only the last 19 inputs are read
    for C in (1, FFT_MIN_CHUNK - 1, FFT_MIN_CHUNK, 300):
        stream_conv(torch.randn(2, 3, C), kernel, bias, history)
    assert calls == [
        ("stream_conv_direct", 20),
        ("stream_conv_direct", 19 + FFT_MIN_CHUNK - 1),
        ("stream_conv_fft", 19 + FFT_MIN_CHUNK),
        ("stream_conv_fft", 319),
    ]


def test_history_never_aliases_the_callers_chunk():
    kernel, bias = torch.randn(1, 3, 8), torch.randn(3)
    chunk = torch.randn(2, 3, 5)
    _, history = stream_conv(chunk, kernel, bias, None)
    expected = history.clone()
    chunk.add_(1.0)  # a caller reusing its buffer must not change the stream's state
    torch.testing.assert_close(history, expected, rtol=0, atol=0)
    long_chunk = torch.randn(2, 3, 100)
    _, history = stream_conv(long_chunk, kernel, bias, torch.randn(2, 3, 7))
    assert history.untyped_storage().nbytes() == 2 * 3 * 7 * 4  # a long window is not kept alive by a view


def test_fft_length_is_the_smallest_5_smooth_length():
    def smooth(n: int) -> bool:
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1

    for n in range(1, 3000):
        expected = next(m for m in range(n, 2 * n + 1) if smooth(m))
        assert fft_length(n) == expected, n
    with pytest.raises(ValueError, match="n must be a positive length, got 0"):
        fft_length(0)


def test_cached_spectra_are_bounded_and_reused():
    layer = eval_layer("dilated", merged=True)
    cache = MRConvCache(1, fft_min_chunk=1)
    with torch.no_grad():
        x = torch.randn(2, 16, 200)
        full = layer(x[..., :48])
        outputs, start = [], 0
        for size in (3, 4, 5, 6, 7, 7, 7, 9):  # growing windows, FFT lengths from 3 up to fft_length(48)
            outputs.append(cache.layer_forward(layer, x[..., start : start + size]))
            start += size
            assert len(cache.spectra[0]) <= MAX_CACHED_SPECTRA
        torch.testing.assert_close(torch.cat(outputs, -1), full, rtol=1e-5, atol=1e-5)
        assert len(cache.spectra[0]) == MAX_CACHED_SPECTRA  # more lengths were seen than are kept
        cached = dict(cache.spectra[0])
        K = cache.kernels[0][0].shape[-1]
        steady = (fft_length(K - 1 + 7), torch.float32)  # the history is full: every 7-chunk has the same window
        cache.layer_forward(layer, x[..., 48:55])
        first = cache.spectra[0][steady]
        cache.layer_forward(layer, x[..., 55:62])
        assert cache.spectra[0][steady] is first  # reused, not recomputed
        assert steady not in cached or cached[steady] is first
    with pytest.raises(ValueError, match="fft_min_chunk must be a positive number of positions, got 0"):
        MRConvCache(1, fft_min_chunk=0)


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


def assert_stream_matches_full(
    model, inputs: dict[str, torch.Tensor], sizes: list[int], fft_min_chunk: int = FFT_MIN_CHUNK
) -> None:
    """Streamed backbone states == the full forward's; the head's running logits == the prefix's full logits."""
    layers = model.config.num_hidden_layers
    with torch.no_grad():
        full = model.mrconv(**inputs).last_hidden_state  # (B L H)
        backbone_cache, head_cache = MRConvCache(layers, fft_min_chunk), MRConvCache(layers, fft_min_chunk)
        states, start = [], 0
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


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("merged", [False, True])
@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_streamed_model_equals_full_forward(kernel_type, merged, padded, path):
    model = stream_model({"kernel_type": kernel_type}, merged)
    generator = torch.Generator().manual_seed(10 * len(kernel_type) + 2 * merged + padded + 4 * len(path))
    inputs = model_inputs(model.config, 3, 48, generator, padded)
    assert_stream_matches_full(model, inputs, random_splits(48, generator), PATHS[path])


@pytest.mark.parametrize("merged", [False, True])
def test_streamed_continuous_prenorm_layer_norm_model(merged):
    """input_values, pre-norm blocks with the final norm, LayerNorm: all per-position, so streaming stays exact."""
    model = stream_model({"input_dim": 2, "prenorm": True, "norm_type": "layer"}, merged)
    generator = torch.Generator().manual_seed(3 + merged)
    inputs = model_inputs(model.config, 2, 48, generator, padded=True)
    assert_stream_matches_full(model, inputs, [1, 16, 5, 1, 25], fft_min_chunk=16)  # both paths


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
        x = torch.randint(1, 20, (2, 5))
        # use_cache=True alone is ignored, as transformers' encoders do (tests/test_transformers_common_mrconv.py)
        logging.Logger.warning_once.cache_clear()  # warned once per process: maybe already, by another test
        with CaptureLogger(modeling_logger) as captured:
            ignored = bidirectional(input_ids=x, use_cache=True)
        assert "use_cache=True is ignored: this MRConv model is bidirectional" in captured.out
        assert ignored.cache is None
        torch.testing.assert_close(ignored.logits, bidirectional(input_ids=x).logits, rtol=0, atol=0)
        with pytest.raises(ValueError, match=r"a cache\) needs a causal model: config.bidirectional=True kernels"):
            bidirectional(input_ids=x, cache=MRConvCache(2))
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
        with pytest.raises(
            ValueError, match=r"MRConvForDocumentPairClassification does not stream \(use_cache/cache\)"
        ):
            pair(input_ids=pair_ids, use_cache=True)
        assert pair(input_ids=pair_ids, use_cache=False).logits.shape == (2, 3)
