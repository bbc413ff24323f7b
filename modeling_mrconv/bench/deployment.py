"""Deployment rows of scripts/benchmark.py: torch.compile against eager, and streaming against recomputing.

All rows use one causal MRConv classifier (`bidirectional=False`, token ids in, logits out):

- compile, inference: the merged model (`reparameterize()`, eval, no_grad), eager vs
  `torch.compile(model, fullgraph=True, dynamic=False)`; training: one AdamW step of the training form (branches +
  BatchNorms), eager vs the compiled model (forward and backward compiled, the optimizer step eager in both).
  `compile_s` is the first compiled call minus one eager call: the one-time compile cost, with Inductor's caches
  disabled for that call (a warm cache would make it a cache lookup).
- streaming: the merged model fed a chunk of C positions after a history of P positions
  (`model(input_ids=chunk, use_cache=True, cache=cache)`, `modeling_mrconv/cache_mrconv.py`) vs recomputing the
  whole prefix, a full forward over P + C positions, which is what a model without a cache runs to get the chunk's
  outputs. `stream` is the default hybrid (`FFT_MIN_CHUNK`); `stream_direct` forces the direct form for every chunk
  (measured where the hybrid takes the FFT path), to show what the FFT path buys.

Timing: warm-up calls, then interleaved rounds (one call of each variant of a case per round, order rotated) and the
median over rounds, as in scripts/benchmark.py. A streamed call starts from a copy of the cache after the history,
so every timed call sees the same history (the copy is made outside the timed region).
"""

import copy
import statistics
from collections.abc import Callable

import torch
import torch._inductor.config
import torch.nn.functional as F

from modeling_mrconv import MRConvCache, MRConvConfig, MRConvForSequenceClassification
from modeling_mrconv.bench.measure import time_fn
from modeling_mrconv.cache_mrconv import FFT_MIN_CHUNK


DIRECT_ONLY = 10**9  # fft_min_chunk that keeps every chunk on the direct path
COMPILE_VARIANTS = ("eager", "compiled")
STREAM_VARIANTS = ("stream", "stream_direct", "recompute")
# (suite, numerator variant, denominator variant, printed name): a ratio > 1 means the denominator is faster
DEPLOYMENT_RATIOS = (
    ("compile", "eager", "compiled", "eager / compiled"),
    ("streaming", "recompute", "stream", "recompute prefix / stream"),
    ("streaming", "stream_direct", "stream", "direct-only stream / hybrid stream"),
)


def interleaved_medians(steps: dict[str, Callable[[], None]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Milliseconds of each step over `repeats` interleaved rounds (order rotated) after `warmup` calls each."""
    device = torch.device("cpu")
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(1e3 * time_fn(steps[name], device))
    return times


def timing_fields(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"status": "ok", "time_ms": statistics.median(ms), "time_ms_min": ms[0], "repeats": len(ms)}


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
    input_ids = torch.randint(1, config.vocab_size, (batch_size, length), generator=generator)  # (B L)
    labels = torch.randint(0, config.num_labels, (batch_size,), generator=generator)  # (B)
    for mode in modes:
        torch.manual_seed(0)
        torch._dynamo.reset()
        base = {"suite": "compile", "mode": mode, "sequence_length": length, "batch_size": batch_size}
        base |= {"hidden_size": config.hidden_size, "num_layers": config.num_hidden_layers, "backend": backend}
        try:
            steps = {}
            for variant in COMPILE_VARIANTS:
                model = MRConvForSequenceClassification(config)
                if mode == "inference":
                    model = model.eval().reparameterize()
                module = model
                if variant == "compiled":
                    module = torch.compile(model, fullgraph=True, dynamic=False, backend=backend)
                steps[variant] = make_step(module, model, mode, input_ids, labels)
            with torch._inductor.config.patch(force_disable_caches=True):  # a cold compile, not a cache hit
                first = 1e3 * time_fn(steps["compiled"], torch.device("cpu"))
            eager = 1e3 * time_fn(steps["eager"], torch.device("cpu"))
            times = interleaved_medians(steps, warmup, repeats)
        except Exception as error:  # an unknown backend or an unsupported op must not stop the benchmark
            status = f"error: {type(error).__name__}: {error}"[:300]
            rows += [base | {"variant": variant, "status": status} for variant in COMPILE_VARIANTS]
            continue
        for variant in COMPILE_VARIANTS:
            row = base | {"variant": variant} | timing_fields(times[variant])
            if variant == "compiled":
                row["compile_s"] = max(first - eager, 0.0) / 1e3
            rows.append(row)
    return rows


def make_step(
    module: Callable, model: MRConvForSequenceClassification, mode: str, input_ids: torch.Tensor, labels: torch.Tensor
) -> Callable[[], None]:
    """One no_grad forward (inference) or one forward + backward + AdamW step (training) of `module`."""
    if mode == "inference":

        def step() -> None:
            with torch.no_grad():
                module(input_ids=input_ids)

        return step
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = F.cross_entropy(module(input_ids=input_ids).logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def fork(cache: MRConvCache) -> MRConvCache:
    """A copy of `cache` that a streamed call can advance without changing the original (tensors are shared: the
    streaming code never writes into a cached tensor). Kernels, direct-path weights and spectra stay shared, as in a
    running stream (they depend only on the model)."""
    new = copy.copy(cache)
    new.history, new.kernels = list(cache.history), list(cache.kernels)
    return new


def streaming_rows(
    config: MRConvConfig,
    batch_size: int,
    histories: list[int],
    chunks: list[int],
    warmup: int,
    repeats: int,
) -> list[dict]:
    """Per (history P, chunk C): the streamed chunk (hybrid, and direct-only where they differ) and the recompute.

    `config.max_sequence_length` must be at least max(histories) + max(chunks) (the recompute's length).
    """
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
        kernel_support = max(kernel.shape[-1] for kernel, _ in primed.kernels)
        for C in chunks:
            chunk, prefix = input_ids[:, P : P + C], input_ids[:, : P + C]
            steps = {"stream": stream_step(model, chunk, primed, FFT_MIN_CHUNK)}
            if C >= FFT_MIN_CHUNK:
                steps["stream_direct"] = stream_step(model, chunk, primed, DIRECT_ONLY)

            def recompute(prefix: torch.Tensor = prefix) -> None:
                with torch.no_grad():
                    model(input_ids=prefix)

            steps["recompute"] = recompute
            times = interleaved_medians(steps, warmup, repeats)
            for variant, ms in times.items():
                row = {"suite": "streaming", "variant": variant, "history": P, "chunk": C, "batch_size": batch_size}
                row |= {"hidden_size": config.hidden_size, "num_layers": config.num_hidden_layers}
                row |= {"kernel_support": kernel_support, "fft_min_chunk": FFT_MIN_CHUNK} | timing_fields(ms)
                rows.append(row)
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


def deployment_ratios(rows: list[dict]) -> list[dict]:
    """DEPLOYMENT_RATIOS for every case where both variants were measured: ratio of medians and of minima."""
    ok = [r for r in rows if r["status"] == "ok"]

    def case(row: dict) -> tuple:
        if row["suite"] == "compile":
            return (row["mode"], row["sequence_length"], row["batch_size"])
        return (row["history"], row["chunk"], row["batch_size"])

    by_key = {(r["suite"], r["variant"], case(r)): r for r in ok}
    ratios = []
    for suite, num, den, label in DEPLOYMENT_RATIOS:
        for (row_suite, variant, key), a in by_key.items():
            b = by_key.get((suite, den, key))
            if row_suite != suite or variant != num or b is None:
                continue
            names = (
                ("mode", "sequence_length", "batch_size") if suite == "compile" else ("history", "chunk", "batch_size")
            )
            ratio = {"ratio": label, "suite": suite} | dict(zip(names, key, strict=True))
            ratio |= {"time": a["time_ms"] / b["time_ms"], "time_of_minima": a["time_ms_min"] / b["time_ms_min"]}
            ratios.append(ratio)
    return ratios


def markdown_section(deployment: dict) -> list[str]:
    """Markdown lines of the deployment tables (compile, streaming) and their ratios."""
    rows, ratios = deployment["rows"], deployment["ratios"]
    lines = ["## Deployment (causal model)", ""]
    compile_rows_ = [r for r in rows if r["suite"] == "compile"]
    if compile_rows_:
        lines += ["### torch.compile vs eager", ""]
        lines.append("| mode | B | L | backend | eager ms | compiled ms | eager / compiled | compile s |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for mode in ("inference", "training"):
            pair = {r["variant"]: r for r in compile_rows_ if r["mode"] == mode}
            if not pair:
                continue
            eager, compiled = pair.get("eager", {}), pair.get("compiled", {})
            ratio = next((r for r in ratios if r["suite"] == "compile" and r["mode"] == mode), None)
            first = compiled or eager
            compile_s = f"{compiled['compile_s']:.1f}" if "compile_s" in compiled else ""
            lines.append(
                f"| {mode} | {first['batch_size']} | {first['sequence_length']} | {first['backend']} | "
                f"{_ms(eager)} | {_ms(compiled)} | {_ratio(ratio)} | {compile_s} |"
            )
        lines.append("")
    stream_rows_ = [r for r in rows if r["suite"] == "streaming"]
    if stream_rows_:
        first = stream_rows_[0]
        lines += [
            "### Streaming: one chunk after a history vs recomputing the prefix",
            "",
            f"Merged model, batch {first['batch_size']}, kernel support K = {first['kernel_support']}, "
            f"FFT path for chunks >= {first['fft_min_chunk']}.",
            "",
            "| history | chunk | stream ms | direct-only stream ms | recompute ms | recompute / stream | "
            "direct-only / stream |",
            "|---|---|---|---|---|---|---|",
        ]
        cases = sorted({(r["history"], r["chunk"]) for r in stream_rows_})
        for P, C in cases:
            cell = {r["variant"]: r for r in stream_rows_ if (r["history"], r["chunk"]) == (P, C)}
            found = {
                r["ratio"]: r for r in ratios if r["suite"] == "streaming" and (r["history"], r["chunk"]) == (P, C)
            }
            lines.append(
                f"| {P} | {C} | {_ms(cell.get('stream', {}))} | {_ms(cell.get('stream_direct', {}))} | "
                f"{_ms(cell.get('recompute', {}))} | {_ratio(found.get('recompute prefix / stream'))} | "
                f"{_ratio(found.get('direct-only stream / hybrid stream'))} |"
            )
        lines.append("")
    lines += ["Ratios: median over median (minimum over minimum in parentheses); > 1: the second is faster.", ""]
    return lines


def _ms(row: dict) -> str:
    if not row:
        return ""
    return f"{row['time_ms']:.2f}" if row["status"] == "ok" else row["status"][:60]


def _ratio(ratio: dict | None) -> str:
    return f"{ratio['time']:.2f}x ({ratio['time_of_minima']:.2f}x)" if ratio else ""


def format_deployment_row(row: dict) -> str:
    if row["suite"] == "compile":
        case = (
            f"compile   {row['mode']:<9} L={row['sequence_length']:<6} B={row['batch_size']:<3} {row['variant']:<14}"
        )
    else:
        case = f"streaming P={row['history']:<6} C={row['chunk']:<5} B={row['batch_size']:<3} {row['variant']:<14}"
    if row["status"] != "ok":
        return f"{case} {row['status']}"
    extra = f", compile {row['compile_s']:.1f} s" if "compile_s" in row else ""
    return f"{case} {row['time_ms']:10.2f} ms (x{row['repeats']}){extra}"
