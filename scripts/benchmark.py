"""Speed and memory of MRConv (merged and unmerged) against its floor, a single-kernel model and peer layers.

Every model below is a sequence
classifier (token ids in, logits out) at the same width and depth, timed side by side in one process:

    mrconv_merged     MRConv after `reparameterize()`: one FFT long convolution + bias per layer (eval, no_grad)
    mrconv_unmerged   the same MRConv model before merging: N branches + N BatchNorms (eval, no_grad; and training)
    floor             `modeling_mrconv.bench.floor_model.build_floor_model`: plain torch doing exactly the merged model's ops
    single_kernel     `MRConvConfig(reparameterized=True)` trained directly: one plain long-conv kernel (training)
    attention         `transformers.BertModel`, `attn_implementation="sdpa"`, 4 heads, intermediate 4x hidden
    mamba             `transformers.MambaModel`, state 16 (torch path unless `mamba_ssm` is installed on CUDA)
    s4d               an S4D-Lin layer written here: diagonal complex A, N=64, Vandermonde kernel every call, FFT conv

All but the floor come from `modeling_mrconv.training.models.build_model`, the model builder of scripts/train.py and
the accuracy study; the peers (`bench.peers.PeerForSequenceClassification`) get MRConv's input layer and head (masked
mean pooling + linear), and the S4D model MRConv's block around its convolution. Inference rows are the paper's
appendix figure (inference time vs length: MRConv merged vs attention vs S4D), plus the others.

Deployment rows (`--deployment`, measured in modeling_mrconv/bench/deployment.py, causal model): streaming latency per chunk
after a history vs recomputing the prefix (merged model; chunks `--stream_chunks` after `--stream_histories`), and
with `--compile` torch.compile vs eager for merged inference and the training step (`--compile_length`,
`--compile_batch_size`). They go into results.json under "deployment" and into results.md's Deployment section.

Commands (from the repository root):

    python scripts/benchmark.py --device cpu                      # default sweep, writes benchmarks/cpu/ (~10 min)
    python scripts/benchmark.py --device cuda --dtype bfloat16    # writes benchmarks/cuda/
    python scripts/benchmark.py --lengths 1024 4096 --inference_lengths --batch_sizes 1 8 --num_layers 4
    python scripts/benchmark.py --quick --device cpu --output_dir /tmp/bench   # tiny CI run (seconds)
    python scripts/benchmark.py --deployment_only --compile --hidden_size 64 --num_layers 4 \
        --output_dir benchmarks/cpu_deployment                    # streaming + compile rows only (~8 min)

Method. Timing: per (length, batch size) all models of a group are built once, warmed up, then timed in interleaved
rounds (one call of each model per round, order rotated), and the median over rounds is reported; on CUDA every call
is synchronized. Peak memory is measured on one extra untimed call of each model (see MEMORY_METHOD). A model whose
estimated time (extrapolated from shorter lengths; a FLOP prior for attention) or memory (extrapolated; a prior for
Mamba's materialized scan) would exceed `--max_seconds_per_case` or the free memory is skipped and recorded as
"skipped: too slow" or "skipped: OOM". Ratios are only formed between numbers measured in the same run. On CPU the
default is one intra-op thread (`--num_threads`): on a shared machine every multi-threaded op otherwise waits at its
barrier for a busy core (~4-12 ms per op, measured), which swamps the small ops and says nothing about the models.
"""

import argparse
import datetime
import gc
import importlib.util
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace


os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from torch import nn  # noqa: E402

from modeling_mrconv import MRConvConfig  # noqa: E402
from modeling_mrconv.bench.deployment import (  # noqa: E402
    compile_rows,
    deployment_ratios,
    format_deployment_row,
    streaming_rows,
)
from modeling_mrconv.bench.floor_model import build_floor_model  # noqa: E402
from modeling_mrconv.bench.measure import (  # noqa: E402
    MEMORY_METHOD,
    available_memory_bytes,
    code_fingerprint,
    device_name,
    is_oom,
    matmul_flops_per_second,
    peak_memory,
    time_fn,
)
from modeling_mrconv.bench.report import (  # noqa: E402
    INFERENCE_MODELS,
    LABELS,
    TRAINING_MODELS,
    format_row,
    print_summary,
    write_outputs,
)
from modeling_mrconv.training.models import build_model, model_config  # noqa: E402


try:
    from tqdm.auto import tqdm
except ImportError:  # progress bars are optional
    tqdm = None

# time ~ L^p used to extrapolate from shorter lengths (the fitted slope is used when it is steeper)
PRIOR_EXPONENT = {"attention": 2.0}


@dataclass
class Runner:
    """One model ready to run: `step()` does one forward (inference) or one optimizer step (training)."""

    name: str
    mode: str  # "inference" or "training"
    step: Callable[[], None]
    params: int
    parameter_ptrs: set[int] = field(default_factory=set)


# ---------------------------------------------------------------------------------------------------------- models
# the `model:` section of each model (`training.models.build_model`, the one builder of scripts/train.py and the study)
# on top of the benchmark's width and depth; the floor model is `floor_model.build_floor_model`
MODEL_SECTIONS = {
    "mrconv_merged": {},
    "mrconv_unmerged": {},
    "single_kernel": {"reparameterized": True},
    "attention": {"architecture": "bert"},
    "mamba": {"architecture": "mamba"},
    "s4d": {"architecture": "s4d"},
}


def bench_task(args: argparse.Namespace, L: int) -> SimpleNamespace:
    """The benchmark's inputs as the attributes of a `TaskData` the model builder reads: random ids of MRConv's byte
    vocabulary, `args.num_labels` classes, length L."""
    labels = {i: str(i) for i in range(args.num_labels)}
    tokens = {"input_dim": None, "vocab_size": MRConvConfig().vocab_size, "pad_token_id": 0}
    return SimpleNamespace(max_length=L, num_labels=len(labels), id2label=labels, pair=False, **tokens)


def model_section(name: str, args: argparse.Namespace, **overrides) -> dict:
    """`name` at `args`' width and depth: MRConv with `args`' kernel (bidirectional unless `overrides` say otherwise),
    or a peer."""
    section = {"hidden_size": args.hidden_size, "num_hidden_layers": args.num_layers, **MODEL_SECTIONS[name]}
    if "architecture" not in section:
        section.update(kernel_size=args.kernel_size, kernel_type=args.kernel_type, bidirectional=True)
    return {**section, **overrides}


def mrconv_config(args: argparse.Namespace, L: int, **overrides) -> MRConvConfig:
    """The benchmark's MRConv at length L (the floor model and the deployment rows)."""
    return model_config(model_section("mrconv_unmerged", args, **overrides), bench_task(args, L))


def build_module(name: str, mode: str, args: argparse.Namespace, L: int) -> nn.Module:
    """The model `name` at length L, on CPU, in the mode's train/eval state."""
    if name == "floor":
        module = build_floor_model(mrconv_config(args, L, reparameterized=True))
    elif name in MODEL_SECTIONS:
        module = build_model(model_section(name, args), bench_task(args, L))
        if name == "mrconv_merged":
            module.eval().reparameterize()
    else:
        raise ValueError(f"unknown model {name!r}")
    return module.train(mode == "training")


def logits_of(output: object) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output


def build_models(
    names: list[str], mode: str, args: argparse.Namespace, L: int, B: int, device: torch.device
) -> tuple[dict[str, Runner], dict[str, str]]:
    """Runners for the models `names` at (L, B), and a status for each model that could not be built."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")
    input_ids = torch.randint(1, MRConvConfig().vocab_size, (B, L), device=device)  # (B L), no padding token
    labels = torch.randint(0, args.num_labels, (B,), device=device)  # (B)
    runners, failed = {}, {}
    for name in names:
        torch.manual_seed(0)
        try:
            module = build_module(name, mode, args, L).to(device)
        except Exception as error:  # a peer that cannot be built must not stop the sweep
            failed[name] = ("skipped: OOM" if is_oom(error) else "error: ") + f"{type(error).__name__}: {error}"[:300]
            continue
        params = sum(p.numel() for p in module.parameters())
        if mode == "inference":

            def step(module: nn.Module = module) -> None:
                with torch.no_grad(), autocast:
                    logits_of(module(input_ids=input_ids))

            runners[name] = Runner(name, mode, step, params)
        else:
            optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)

            def step(module: nn.Module = module, optimizer: torch.optim.Optimizer = optimizer) -> None:
                with autocast:
                    loss = F.cross_entropy(logits_of(module(input_ids=input_ids)).float(), labels)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            ptrs = {p.untyped_storage().data_ptr() for p in module.parameters()}
            runners[name] = Runner(name, mode, step, params, ptrs)
    return runners, failed


# ----------------------------------------------------------------------------------------------------------- cases
def estimate(
    name: str, mode: str, L: int, B: int, history: dict, args: argparse.Namespace, flops_per_s: float
) -> tuple[float | None, float | None]:
    """(seconds per call, bytes) expected at (L, B) from the shorter lengths measured, else a prior, else None."""
    points = sorted(history.get((name, mode, B), []))
    seconds = memory = None
    if points:
        L0, t0, m0 = points[-1]
        p_time, p_mem = PRIOR_EXPONENT.get(name, 1.0), 1.0
        if len(points) >= 2:
            L1, t1, m1 = points[-2]
            p_time = max(p_time, math.log(t0 / t1) / math.log(L0 / L1))
            p_mem = max(p_mem, math.log(max(m0, 1.0) / max(m1, 1.0)) / math.log(L0 / L1))
        seconds, memory = t0 * (L / L0) ** p_time, m0 * 2**20 * (L / L0) ** p_mem
    elif name == "attention":  # QK^T and PV: 4 B L^2 H flops per layer (x3 with backward)
        seconds = 4 * B * L**2 * args.hidden_size * args.num_layers / flops_per_s
    if name == "mamba" and mode == "inference":  # torch path: dA, dB, dB*u of shape (B, 2H, L, 16) in float32
        memory = max(memory or 0.0, 3 * B * 2 * args.hidden_size * L * 16 * 4)
    return seconds, memory


def run_case(
    mode: str, L: int, B: int, args: argparse.Namespace, device: torch.device, history: dict, flops_per_s: float
) -> list[dict]:
    """Measure every model of `mode` at (L, B), interleaved; update `history`; return one row per model."""
    names = list(INFERENCE_MODELS if mode == "inference" else TRAINING_MODELS)
    status: dict[str, str] = {}
    limit = available_memory_bytes(device)
    limit = limit * args.memory_fraction if limit is not None else None
    for name in names:
        if (name, mode, B) in args.too_slow:
            status[name] = "skipped: too slow (over the time budget at a shorter length)"
            continue
        seconds, memory = estimate(name, mode, L, B, history, args, flops_per_s)
        reasons = []
        if seconds is not None and 3 * seconds > args.max_seconds_per_case:
            reasons.append(f"too slow (estimated {seconds:.1f} s per call, 3 calls minimum)")
        if memory is not None and limit is not None and memory > limit:
            reasons.append(f"OOM (estimated {memory / 2**30:.1f} GiB > {limit / 2**30:.1f} GiB usable)")
        if reasons:
            status[name] = "skipped: " + "; ".join(reasons)
    runners, failed = build_models([n for n in names if n not in status], mode, args, L, B, device)
    status.update(failed)
    results = {name: {"times": [], "peak_mem_mb": None, "saved_mb": None} for name in runners}
    repeats = {}
    for name, runner in list(runners.items()):  # warm-up, memory call, then the number of timed calls that fit
        try:
            warm = [time_fn(runner.step, device) for _ in range(max(args.warmup, 1))]
            t_call = min(warm)  # the first call can carry one-time costs (lazy imports, allocator growth)
            if sum(warm) + 2 * t_call > args.max_seconds_per_case:
                raise TimeoutError(f"warm-up calls took {', '.join(f'{t:.1f}' for t in warm)} s")
            saved_ptrs = runner.parameter_ptrs if mode == "training" else None
            results[name]["peak_mem_mb"], results[name]["saved_mb"] = peak_memory(runner.step, device, saved_ptrs)
            repeats[name] = max(1, min(args.repeats, int((args.max_seconds_per_case - sum(warm)) / t_call) - 1))
        except Exception as error:
            status[name] = _failure_status(error)
            if isinstance(error, TimeoutError):
                args.too_slow.add((name, mode, B))
            del runners[name]
    for r in range(max(repeats.values(), default=0)):  # interleaved rounds, order rotated every round
        order = [n for n in runners if repeats[n] > r]
        for name in order[r % max(len(order), 1) :] + order[: r % max(len(order), 1)]:
            try:
                results[name]["times"].append(time_fn(runners[name].step, device))
            except Exception as error:
                status[name] = _failure_status(error)
                repeats[name] = 0
    rows = [_row(name, mode, L, B, args, device, runners, results, status) for name in names]
    for row in rows:
        if row["status"] == "ok":
            history.setdefault((row["model"], mode, B), []).append(
                (L, row["time_ms"] / 1e3, row["peak_mem_mb"] or 1.0)
            )
    del runners
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def _failure_status(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"skipped: too slow ({error})"
    if is_oom(error):
        return "skipped: OOM"
    return f"error: {type(error).__name__}: {error}"[:300]


def _row(
    name: str,
    mode: str,
    L: int,
    B: int,
    args: argparse.Namespace,
    device: torch.device,
    runners: dict[str, Runner],
    results: dict[str, dict],
    status: dict[str, str],
) -> dict:
    """One results.json row: the case's config, then the measurements or the reason there are none."""
    row = {
        "model": name,
        "label": LABELS[name],
        "mode": mode,
        "sequence_length": L,
        "batch_size": B,
        "hidden_size": args.hidden_size,
        "num_layers": args.num_layers,
        "dtype": args.dtype,
        "device": device.type,
    }
    times = results.get(name, {}).get("times", [])
    if name not in status and times:
        ms = sorted(1e3 * t for t in times)
        row.update(status="ok", time_ms=statistics.median(ms), time_ms_min=ms[0], time_ms_max=ms[-1], repeats=len(ms))
        row.update(times_ms=ms, peak_mem_mb=results[name]["peak_mem_mb"], saved_mb=results[name]["saved_mb"])
        row["params"] = runners[name].params
    else:
        row["status"] = status.get(name, "error: no measurement")
    return row


# ------------------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="bfloat16: autocast")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384], help="training + inference")
    parser.add_argument("--inference_lengths", type=int, nargs="*", default=[65536], help="extra, inference only")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8])
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--num_layers", type=int, default=1)
    parser.add_argument("--kernel_type", default="dilated", choices=["dilated", "fourier", "sparse", "fourier_sparse"])
    parser.add_argument("--kernel_size", type=int, default=16, help="l0, the shortest MRConv branch")
    parser.add_argument("--num_labels", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before the (also untimed) memory call")
    parser.add_argument("--repeats", type=int, default=7, help="timed interleaved calls per model, at most")
    parser.add_argument(
        "--max_seconds_per_case", type=float, default=90.0, help="time budget of one model at one (L, B)"
    )
    parser.add_argument("--memory_fraction", type=float, default=0.6, help="of the free memory a case may plan to use")
    parser.add_argument(
        "--num_threads",
        type=int,
        default=None,
        help="intra-op CPU threads; default 1 on CPU (on a shared machine a multi-threaded op waits for a busy core "
        "at every barrier, which swamps small ops), torch's default on CUDA; 0 = torch's default (all cores)",
    )
    parser.add_argument(
        "--output_dir", type=Path, default=None, help="default: benchmarks/<device> (<device>_deployment)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI preset (overrides sizes): L 256 and 512, batch 2, width <= 32, 1 repeat; deployment rows tiny",
    )
    parser.add_argument(
        "--training_only",
        action="store_true",
        help="only the training rows (MRConv vs the single-kernel model): the training-cost reports",
    )
    deployment = parser.add_argument_group("deployment rows (modeling_mrconv/bench/deployment.py, causal model)")
    deployment.add_argument("--deployment", action="store_true", help="also measure the deployment rows")
    deployment.add_argument("--deployment_only", action="store_true", help="only the deployment rows")
    deployment.add_argument(
        "--compile", action="store_true", help="add torch.compile rows (CPU compiles take tens of seconds)"
    )
    deployment.add_argument("--compile_backend", default="inductor", help="torch.compile backend")
    deployment.add_argument("--compile_length", type=int, default=1024)
    deployment.add_argument("--compile_batch_size", type=int, default=8)
    deployment.add_argument("--stream_histories", type=int, nargs="+", default=[4096, 16384])
    deployment.add_argument("--stream_chunks", type=int, nargs="+", default=[1, 16, 256, 1024])
    deployment.add_argument("--stream_batch_size", type=int, default=1)
    args = parser.parse_args(argv)
    args.deployment = args.deployment or args.deployment_only or args.compile
    if args.quick:
        args.lengths, args.inference_lengths, args.batch_sizes = [256, 512], [], [2]
        args.hidden_size, args.warmup, args.repeats = min(args.hidden_size, 32), 1, 1
        args.num_layers = min(args.num_layers, 2)
        args.compile_length, args.compile_batch_size = 64, 2
        args.stream_histories, args.stream_chunks = [96, 200], [1, 16, 80]
    if args.output_dir is None:
        folder = args.device + ("_deployment" if args.deployment_only else "")
        args.output_dir = Path(__file__).resolve().parents[1] / "benchmarks" / folder
    args.too_slow = set()
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; the process's torch threads and transformers' log verbosity are restored afterwards (tests
    call this in-process)."""
    verbosity, threads = transformers.logging.get_verbosity(), torch.get_num_threads()
    try:
        run(parse_args(argv))
    finally:
        transformers.logging.set_verbosity(verbosity)
        torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    threads = args.num_threads if args.num_threads is not None else (1 if device.type == "cpu" else 0)
    if threads > 0:
        torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    fingerprint = code_fingerprint()
    flops_per_s = matmul_flops_per_second(device)
    cases = [("training", L, B) for B in args.batch_sizes for L in sorted(args.lengths)]
    cases += [("inference", L, B) for B in args.batch_sizes for L in sorted({*args.lengths, *args.inference_lengths})]
    if args.training_only:
        cases = [case for case in cases if case[0] == "training"]
    if args.deployment_only:
        cases = []
    progress = tqdm(cases, desc="benchmark", unit="case") if tqdm is not None and cases else cases
    rows, history = [], {}
    for mode, L, B in progress:
        if tqdm is not None:
            progress.set_postfix_str(f"{mode} L={L} B={B}")
        for row in run_case(mode, L, B, args, device, history, flops_per_s):
            rows.append(row)
            (tqdm.write if tqdm is not None else print)(format_row(row))
    deployment = measure_deployment(args, device) if args.deployment else None
    meta = {
        "device": device.type,
        "device_name": device_name(device),
        "dtype": args.dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "code_sha256": fingerprint,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "too_slow"},
        "timing_method": (
            f"time_ms: median wall-clock ms over up to {args.repeats} interleaved rounds (one call of each model per "
            f"round, order rotated) after {args.warmup} untimed warm-up call(s) and the untimed memory call; CUDA "
            f"calls synchronized; {torch.get_num_threads()} intra-op thread(s)."
        ),
        "skip_policy": (
            f"A model is skipped when warm-up + memory call + one timed call are estimated to exceed "
            f"--max_seconds_per_case={args.max_seconds_per_case:g} s (time extrapolated from the last two lengths "
            "measured, exponent >= 1, >= 2 for attention; a FLOP prior for attention otherwise), when its warm-up "
            f"already does, or when its estimated memory exceeds {args.memory_fraction:g} of the free memory."
        ),
        "memory_method": {"peak": MEMORY_METHOD[device.type], "saved": MEMORY_METHOD["saved"]},
        "matmul_gflops": flops_per_s / 1e9,
        "mamba_path": "mamba_ssm kernels" if importlib.util.find_spec("mamba_ssm") else "torch (sequential scan)",
        "floor_model": "modeling_mrconv.bench.floor_model.build_floor_model",
    }
    if deployment is not None:
        meta["deployment_method"] = deployment_method(args)
    ratios, fits = write_outputs(args.output_dir, meta, rows, deployment)
    if rows:
        print_summary(ratios, fits, rows)
    if deployment is not None:
        print("\ndeployment ratios (time: medians, minima in parentheses; > 1: the second is faster):")
        for r in deployment["ratios"]:
            case = (
                f"{r['mode']} L={r['sequence_length']}"
                if r["suite"] == "compile"
                else f"P={r['history']} C={r['chunk']}"
            )
            print(
                f"  {r['ratio']:<36} {case:<22} B={r['batch_size']:<3} {r['time']:8.2f}x (minima {r['time_of_minima']:.2f}x)"
            )
    written = "results.json, results.md" + (", time_vs_length.png" if rows else "")
    print(f"\nwrote {args.output_dir}/{written}")


def measure_deployment(args: argparse.Namespace, device: torch.device) -> dict:
    """The deployment rows (bench.deployment) at the benchmark's width, depth and kernel; CPU only."""
    if device.type != "cpu":
        raise SystemExit("the deployment rows are measured on CPU only (bench.deployment times without syncing)")
    rows = []
    if args.compile:
        config = mrconv_config(args, args.compile_length, bidirectional=False)
        rows += compile_rows(
            config, args.compile_batch_size, args.compile_length, args.warmup, args.repeats, args.compile_backend
        )
        for row in rows:
            print(format_deployment_row(row))
    stream_length = max(args.stream_histories) + max(args.stream_chunks)
    config = mrconv_config(args, stream_length, bidirectional=False)
    stream = streaming_rows(
        config, args.stream_batch_size, args.stream_histories, args.stream_chunks, args.warmup, args.repeats
    )
    for row in stream:
        print(format_deployment_row(row))
    rows += stream
    return {"rows": rows, "ratios": deployment_ratios(rows)}


def deployment_method(args: argparse.Namespace) -> str:
    return (
        "Deployment rows (modeling_mrconv/bench/deployment.py): causal model; median ms over up to "
        f"{args.repeats} interleaved rounds after {args.warmup} warm-up call(s) per variant. Streaming: merged "
        f"model, max_sequence_length = max history + max chunk = {max(args.stream_histories) + max(args.stream_chunks)}"
        ", one chunk after the history from a copy of the primed cache vs a full forward over history + chunk. "
        "Compile: torch.compile(fullgraph=True, dynamic=False); compile_s = first compiled call - one eager call."
    )


if __name__ == "__main__":
    main()
