"""Speed and memory of MRConv (merged and unmerged) against its floor, a single-kernel model and peer layers.

Every model is a sequence classifier (token ids in, logits out) at the same width and depth, timed side by side in one
process:

    mrconv_merged     MRConv after `reparameterize()`: one FFT long convolution + bias per layer (eval, no_grad)
    mrconv_unmerged   the same model before merging: N branches + N BatchNorms (eval, no_grad; and training)
    floor             `modeling_mrconv.bench.floor_model`: plain torch doing exactly the merged model's ops
    single_kernel     `MRConvConfig(reparameterized=True)` trained directly: one plain long-conv kernel (training)
    attention         `transformers.BertModel`, `attn_implementation="sdpa"`, 4 heads, intermediate 4x hidden
    mamba             `transformers.MambaModel`, state 16 (torch path unless `mamba_ssm` is installed on CUDA)
    s4d               S4D-Lin (`bench.peers`): diagonal complex A, N=64, Vandermonde kernel every call, FFT conv

All but the floor come from `training.models.build_model` (the builder of scripts/train.py and the study); the peers
get MRConv's input layer and head. The inference rows are the paper's appendix figure (time vs length), plus the
others. `--deployment` adds the rows of `bench/deployment.py`: streaming and, with `--compile`, torch.compile.

    python scripts/benchmark.py --device cpu                      # default sweep, writes benchmarks/cpu/ (~10 min)
    python scripts/benchmark.py --device cuda --dtype bfloat16    # writes benchmarks/cuda/
    python scripts/benchmark.py --quick --device cpu --output_dir /tmp/bench   # tiny CI run (seconds)
    python scripts/benchmark.py --deployment_only --compile --hidden_size 64 --num_layers 4 \
        --output_dir benchmarks/cpu_deployment                    # streaming + compile rows only (~8 min)

Method: per (length, batch size) the models of a mode are built once, given `--warmup` untimed calls and one untimed
memory call (memory_method), then timed in up to `--repeats` interleaved rounds (one call of each model per round,
order rotated; CUDA calls synchronized); time_ms is the median. A model is skipped ("skipped: too slow" or
"skipped: OOM") when warm-up + memory call + one timed call are estimated to exceed `--max_seconds_per_case` (time
extrapolated from the last two lengths measured, exponent >= 1, >= 2 for attention; a FLOP prior for attention
otherwise), when its warm-up already does, or when its estimated memory (extrapolated; a prior for Mamba's
materialized scan) exceeds `--memory_fraction` of the free memory. Ratios are only formed between numbers of the same
run. On CPU the default is one intra-op thread: on a shared machine every multi-threaded op otherwise waits at its
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
from pathlib import Path
from types import SimpleNamespace


os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from torch import nn  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from modeling_mrconv import MRConvConfig  # noqa: E402
from modeling_mrconv.bench import deployment as bench_deployment  # noqa: E402
from modeling_mrconv.bench.floor_model import build_floor_model  # noqa: E402
from modeling_mrconv.bench.measure import (  # noqa: E402
    MEMORY_METHOD,
    available_memory_bytes,
    code_fingerprint,
    device_name,
    failure_status,
    make_step,
    matmul_flops_per_second,
    peak_memory,
    time_fn,
)
from modeling_mrconv.bench.report import (  # noqa: E402
    DEPLOYMENT_RATIOS,
    INFERENCE_MODELS,
    LABELS,
    TRAINING_MODELS,
    compute_ratios,
    format_row,
    print_summary,
    write_outputs,
)
from modeling_mrconv.configuration_mrconv import KERNEL_TYPES  # noqa: E402
from modeling_mrconv.training.models import build_model, model_config  # noqa: E402


# time ~ L^p used to extrapolate from shorter lengths (the fitted slope is used when it is steeper)
PRIOR_EXPONENT = {"attention": 2.0}
# the `model:` section of each model (`training.models.build_model`) on top of the benchmark's width and depth
MODEL_SECTIONS = {
    "mrconv_merged": {},
    "mrconv_unmerged": {},
    "single_kernel": {"reparameterized": True},
    "attention": {"architecture": "bert"},
    "mamba": {"architecture": "mamba"},
    "s4d": {"architecture": "s4d"},
}


def bench_task(args: argparse.Namespace, L: int) -> SimpleNamespace:
    """The benchmark's inputs as the `TaskData` attributes the model builder reads: MRConv's byte vocabulary,
    `args.num_labels` classes, length L."""
    labels = {i: str(i) for i in range(args.num_labels)}
    tokens = {"input_dim": None, "vocab_size": MRConvConfig().vocab_size, "pad_token_id": 0}
    return SimpleNamespace(max_length=L, num_labels=len(labels), id2label=labels, pair=False, **tokens)


def model_section(name: str, args: argparse.Namespace, **overrides) -> dict:
    """`name` at `args`' width and depth: MRConv with `args`' kernel (bidirectional unless overridden), or a peer."""
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
    else:
        module = build_model(model_section(name, args), bench_task(args, L))
        if name == "mrconv_merged":
            module.eval().reparameterize()
    return module.train(mode == "training")


def build_models(
    names: list[str], mode: str, args: argparse.Namespace, L: int, B: int, device: torch.device
) -> tuple[dict[str, tuple], dict[str, str]]:
    """(step, module) of each model of `names` at (L, B), and the status of each model that could not be built."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")
    inputs = {"input_ids": torch.randint(1, MRConvConfig().vocab_size, (B, L), device=device)}  # (B L), no padding
    labels = torch.randint(0, args.num_labels, (B,), device=device)  # (B)
    runners, failed = {}, {}
    for name in names:
        torch.manual_seed(0)
        try:
            module = build_module(name, mode, args, L).to(device)
        except Exception as error:  # a peer that cannot be built must not stop the sweep
            failed[name] = failure_status(error)
            continue
        runners[name] = (make_step(module, mode, inputs, labels, autocast), module)
    return runners, failed


def skip_status(
    name: str, mode: str, L: int, B: int, history: dict, args: argparse.Namespace, flops_per_s: float, limit
) -> str | None:
    """Why `name` is not run at (L, B): over budget at a shorter length, or its time per call or memory, extrapolated
    from the shorter lengths measured (else a prior), over the budget or `limit` bytes; None when it runs."""
    if (name, mode, B) in args.too_slow:
        return "skipped: too slow (over the time budget at a shorter length)"
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
    reasons = []
    if seconds is not None and 3 * seconds > args.max_seconds_per_case:
        reasons.append(f"too slow (estimated {seconds:.1f} s per call, 3 calls minimum)")
    if memory is not None and limit is not None and memory > limit:
        reasons.append(f"OOM (estimated {memory / 2**30:.1f} GiB > {limit / 2**30:.1f} GiB usable)")
    return "skipped: " + "; ".join(reasons) if reasons else None


def run_case(
    mode: str, L: int, B: int, args: argparse.Namespace, device: torch.device, history: dict, flops_per_s: float
) -> list[dict]:
    """Measure every model of `mode` at (L, B), interleaved; update `history`; return one row per model."""
    names = list(INFERENCE_MODELS if mode == "inference" else TRAINING_MODELS)
    limit = available_memory_bytes(device)
    limit = limit * args.memory_fraction if limit is not None else None
    status = {n: s for n in names if (s := skip_status(n, mode, L, B, history, args, flops_per_s, limit))}
    runners, failed = build_models([n for n in names if n not in status], mode, args, L, B, device)
    status.update(failed)
    results = {name: {"times": [], "memory": (None, None)} for name in runners}
    repeats = {}
    for name, (step, module) in list(runners.items()):  # warm-up, memory call, then the timed calls that fit
        try:
            warm = [time_fn(step, device) for _ in range(max(args.warmup, 1))]
            t_call = min(warm)  # the first call can carry one-time costs (lazy imports, allocator growth)
            if sum(warm) + 2 * t_call > args.max_seconds_per_case:
                raise TimeoutError(f"warm-up calls took {', '.join(f'{t:.1f}' for t in warm)} s")
            results[name]["memory"] = peak_memory(step, device, module if mode == "training" else None)
            repeats[name] = max(1, min(args.repeats, int((args.max_seconds_per_case - sum(warm)) / t_call) - 1))
        except Exception as error:
            status[name] = failure_status(error)
            if isinstance(error, TimeoutError):
                args.too_slow.add((name, mode, B))
            del runners[name]
    for r in range(max(repeats.values(), default=0)):  # interleaved rounds, order rotated every round
        order = [n for n in runners if repeats[n] > r]
        for name in order[r % max(len(order), 1) :] + order[: r % max(len(order), 1)]:
            try:
                results[name]["times"].append(time_fn(runners[name][0], device))
            except Exception as error:
                status[name] = failure_status(error)
                repeats[name] = 0
    rows = [_row(name, mode, L, B, args, device, runners, results, status) for name in names]
    for row in rows:
        if row["status"] == "ok":
            point = (L, row["time_ms"] / 1e3, row["peak_mem_mb"] or 1.0)
            history.setdefault((row["model"], mode, B), []).append(point)
    del runners
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def _row(name, mode, L, B, args, device, runners: dict, results: dict, status: dict) -> dict:
    """One results.json row: the case's config, then the measurements or the reason there are none."""
    row = {"model": name, "label": LABELS[name], "mode": mode, "sequence_length": L, "batch_size": B}
    row |= {"hidden_size": args.hidden_size, "num_layers": args.num_layers, "dtype": args.dtype, "device": device.type}
    times = results.get(name, {}).get("times", [])
    if name in status or not times:
        return row | {"status": status.get(name, "error: no measurement")}
    ms = sorted(1e3 * t for t in times)
    row.update(status="ok", time_ms=statistics.median(ms), time_ms_min=ms[0], time_ms_max=ms[-1], repeats=len(ms))
    row["times_ms"], (row["peak_mem_mb"], row["saved_mb"]) = ms, results[name]["memory"]
    return row | {"params": sum(p.numel() for p in runners[name][1].parameters())}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="bfloat16: autocast")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384], help="training + inference")
    parser.add_argument("--inference_lengths", type=int, nargs="*", default=[65536], help="extra, inference only")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8])
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--num_layers", type=int, default=1)
    parser.add_argument("--kernel_type", default="dilated", choices=KERNEL_TYPES)
    parser.add_argument("--kernel_size", type=int, default=16, help="l0, the shortest MRConv branch")
    parser.add_argument("--num_labels", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before the (also untimed) memory call")
    parser.add_argument("--repeats", type=int, default=7, help="timed interleaved calls per model, at most")
    parser.add_argument("--max_seconds_per_case", type=float, default=90.0, help="budget of one model at (L, B)")
    parser.add_argument("--memory_fraction", type=float, default=0.6, help="of the free memory a case may plan to use")
    parser.add_argument(
        "--num_threads", type=int, help="default 1 on CPU (see the method), torch's on CUDA; 0: torch's"
    )
    parser.add_argument("--output_dir", type=Path, default=None, help="default: benchmarks/<device>[_deployment]")
    parser.add_argument("--quick", action="store_true", help="CI preset: L 256 and 512, batch 2, width <= 32, ...")
    parser.add_argument("--training_only", action="store_true", help="only MRConv vs single-kernel training rows")
    deployment = parser.add_argument_group("deployment rows (modeling_mrconv/bench/deployment.py, causal model)")
    deployment.add_argument("--deployment", action="store_true", help="also measure the deployment rows")
    deployment.add_argument("--deployment_only", action="store_true", help="only the deployment rows")
    deployment.add_argument("--compile", action="store_true", help="add torch.compile rows (CPU: tens of seconds)")
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
    """Run the benchmark; torch's threads and transformers' verbosity are restored after (tests call it in-process)."""
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
    if not args.training_only:
        lengths = sorted({*args.lengths, *args.inference_lengths})
        cases += [("inference", L, B) for B in args.batch_sizes for L in lengths]
    if args.deployment_only:
        cases = []
    rows, history, progress = [], {}, tqdm(cases, desc="benchmark", unit="case", disable=not cases)
    for mode, L, B in progress:
        progress.set_postfix_str(f"{mode} L={L} B={B}")
        for row in run_case(mode, L, B, args, device, history, flops_per_s):
            rows.append(row)
            tqdm.write(format_row(row))
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
        "method": " ".join(__doc__[__doc__.index("Method: ") :].split()),
        "memory_method": {"peak": MEMORY_METHOD[device.type], "saved": MEMORY_METHOD["saved"]},
        "matmul_gflops": flops_per_s / 1e9,
        "mamba_path": "mamba_ssm kernels" if importlib.util.find_spec("mamba_ssm") else "torch (sequential scan)",
        "floor_model": "modeling_mrconv.bench.floor_model.build_floor_model",
    }
    if deployment is not None:
        meta["deployment_method"] = " ".join(bench_deployment.__doc__.split())
    ratios, fits = write_outputs(args.output_dir, meta, rows, deployment)
    print_summary(ratios + (deployment["ratios"] if deployment else []), fits, rows)
    print(f"\nwrote {args.output_dir}/results.json, results.md" + (", time_vs_length.png" if rows else ""))


def measure_deployment(args: argparse.Namespace, device: torch.device) -> dict:
    """The deployment rows (bench.deployment) at the benchmark's width, depth and kernel; CPU only."""
    if device.type != "cpu":
        raise SystemExit("the deployment rows are measured on CPU only (bench.deployment times without syncing)")
    rows = []
    if args.compile:
        config = mrconv_config(args, args.compile_length, bidirectional=False)
        rows += bench_deployment.compile_rows(
            config, args.compile_batch_size, args.compile_length, args.warmup, args.repeats, args.compile_backend
        )
    config = mrconv_config(args, max(args.stream_histories) + max(args.stream_chunks), bidirectional=False)
    rows += bench_deployment.streaming_rows(
        config, args.stream_batch_size, args.stream_histories, args.stream_chunks, args.warmup, args.repeats
    )
    for row in rows:
        print(format_row(row))
    return {"rows": rows, "ratios": compute_ratios(rows, DEPLOYMENT_RATIOS)}


if __name__ == "__main__":
    main()
