"""Deployment rows of scripts/benchmark.py, one causal MRConv classifier (`bidirectional=False`) on CPU.

- compile: the merged model's no_grad forward (inference) and one AdamW step of the training form (training), eager
  vs `torch.compile(model, fullgraph=True, dynamic=False)` (the optimizer step stays eager). `compile_s` is the first
  compiled call minus one eager call, with Inductor's caches disabled for that call (a warm cache is a lookup).
- streaming: the merged model fed a chunk of C positions after a history of P positions (`use_cache=True`,
  `modeling_mrconv/cache_mrconv.py`) vs recomputing the whole prefix (a full forward over P + C, what a model without
  a cache runs). `stream` is the default hybrid (`FFT_MIN_CHUNK`); `stream_direct` forces the direct form (measured
  where the hybrid takes the FFT path), to show what the FFT path buys. Every timed call starts from a copy of the
  cache after the history, made outside the timed region.

Timing: `measure.interleaved_times`, median over rounds.
"""

import copy
import statistics
from collections.abc import Callable

import torch
import torch._inductor.config

from modeling_mrconv import MRConvCache, MRConvConfig, MRConvForSequenceClassification
from modeling_mrconv.bench.measure import failure_status, interleaved_times, make_step, time_fn
from modeling_mrconv.cache_mrconv import FFT_MIN_CHUNK


CPU = torch.device("cpu")
DIRECT_ONLY = 10**9  # fft_min_chunk that keeps every chunk on the direct path


def timed_rows(steps: dict[str, Callable[[], None]], warmup: int, repeats: int, **fields) -> list[dict]:
    """One row per step: `fields`, the variant and its median and minimum ms over interleaved rounds."""
    rows = []
    for variant, seconds in interleaved_times(steps, CPU, repeats, warmup).items():
        ms = sorted(1e3 * s for s in seconds)
        timing = {"status": "ok", "time_ms": statistics.median(ms), "time_ms_min": ms[0], "repeats": len(ms)}
        rows.append({**fields, "variant": variant, **timing})
    return rows


def compile_rows(
    config: MRConvConfig,
    batch_size: int,
    length: int,
    warmup: int,
    repeats: int,
    backend: str = "inductor",
    modes: tuple[str, ...] = ("inference", "training"),
) -> list[dict]:
    """Eager and compiled rows per mode at (batch_size, length); a compile failure becomes an `error:` row."""
    rows = []
    generator = torch.Generator().manual_seed(0)
    inputs = {"input_ids": torch.randint(1, config.vocab_size, (batch_size, length), generator=generator)}  # (B L)
    labels = torch.randint(0, config.num_labels, (batch_size,), generator=generator)  # (B)
    for mode in modes:
        torch.manual_seed(0)
        torch._dynamo.reset()
        base = {"suite": "compile", "mode": mode, "sequence_length": length, "batch_size": batch_size}
        base |= {"hidden_size": config.hidden_size, "num_layers": config.num_hidden_layers, "backend": backend}
        try:
            steps = {}
            for variant in ("eager", "compiled"):
                model = MRConvForSequenceClassification(config).train(mode == "training")
                if mode == "inference":
                    model = model.reparameterize()
                if variant == "compiled":
                    model = torch.compile(model, fullgraph=True, dynamic=False, backend=backend)
                steps[variant] = make_step(model, mode, inputs, labels)
            with torch._inductor.config.patch(force_disable_caches=True):  # a cold compile, not a cache hit
                first = time_fn(steps["compiled"], CPU)
            eager = time_fn(steps["eager"], CPU)
            eager_row, compiled_row = timed_rows(steps, warmup, repeats, **base)
        except Exception as error:  # an unknown backend or an unsupported op must not stop the benchmark
            rows += [base | {"variant": variant, "status": failure_status(error)} for variant in ("eager", "compiled")]
            continue
        rows += [eager_row, compiled_row | {"compile_s": max(first - eager, 0.0)}]
    return rows


def fork(cache: MRConvCache) -> MRConvCache:
    """A copy of `cache` that a streamed call can advance without changing the original. Tensors are shared: the
    streaming code never writes into a cached tensor, and kernels and spectra depend only on the model."""
    new = copy.copy(cache)
    new.history, new.kernels = list(cache.history), list(cache.kernels)
    return new


def streaming_rows(
    config: MRConvConfig, batch_size: int, histories: list[int], chunks: list[int], warmup: int, repeats: int
) -> list[dict]:
    """Per (history P, chunk C): the streamed chunk (hybrid, and direct-only where they differ) and the recompute,
    whose length max(histories) + max(chunks) `config.max_sequence_length` must cover."""
    if config.max_sequence_length < max(histories) + max(chunks):
        raise ValueError(
            f"config.max_sequence_length={config.max_sequence_length} must be >= max(histories) + max(chunks) = "
            f"{max(histories) + max(chunks)} for the recompute rows."
        )
    torch.manual_seed(0)
    model = MRConvForSequenceClassification(config).eval().reparameterize()
    generator = torch.Generator().manual_seed(0)
    rows = []
    for P in histories:
        input_ids = torch.randint(1, config.vocab_size, (batch_size, P + max(chunks)), generator=generator)
        with torch.no_grad():
            primed = model(input_ids=input_ids[:, :P], use_cache=True).cache  # the stream after P positions
        fields = {"suite": "streaming", "history": P, "batch_size": batch_size, "hidden_size": config.hidden_size}
        fields |= {"num_layers": config.num_hidden_layers, "fft_min_chunk": FFT_MIN_CHUNK}
        fields["kernel_support"] = max(kernel.shape[-1] for kernel, _ in primed.kernels)
        for C in chunks:
            chunk = input_ids[:, P : P + C]
            steps = {"stream": stream_step(model, chunk, primed, FFT_MIN_CHUNK)}
            if C >= FFT_MIN_CHUNK:
                steps["stream_direct"] = stream_step(model, chunk, primed, DIRECT_ONLY)
            steps["recompute"] = make_step(model, "inference", {"input_ids": input_ids[:, : P + C]})
            rows += timed_rows(steps, warmup, repeats, **fields, chunk=C)
    return rows


def stream_step(
    model: MRConvForSequenceClassification, chunk: torch.Tensor, primed: MRConvCache, fft_min_chunk: int
) -> Callable[[], None]:
    """A step that streams `chunk` after the history in `primed`; the copy of the cache is made before the timer."""
    pending: list[MRConvCache] = []

    def step() -> None:
        cache = pending.pop() if pending else fork(primed)
        cache.fft_min_chunk = fft_min_chunk
        with torch.no_grad():
            model(input_ids=chunk, use_cache=True, cache=cache)
        pending.append(fork(primed))  # the next call's copy, outside its timed region

    return step
