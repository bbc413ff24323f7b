"""Speed and memory of MRConv (merged and unmerged) against its floor, a single-kernel model and peer layers.

Answers GitHub issue "Performance", item 3 (and the device-agnostic part of item 4). Every model below is a sequence
classifier (token ids in, logits out) at the same width and depth, timed side by side in one process:

    mrconv_merged     MRConv after `reparameterize()`: one FFT long convolution + bias per layer (eval, no_grad)
    mrconv_unmerged   the same MRConv model before merging: N branches + N BatchNorms (eval, no_grad; and training)
    floor             `scripts/floor_model.py::build_floor_model`: plain torch doing exactly the merged model's ops
    single_kernel     `MRConvConfig(reparameterized=True)` trained directly: one plain long-conv kernel (training)
    attention         `transformers.BertModel`, `attn_implementation="sdpa"`, 4 heads, intermediate 4x hidden
    mamba             `transformers.MambaModel`, state 16 (torch path unless `mamba_ssm` is installed on CUDA)
    s4d               an S4D-Lin layer written here: diagonal complex A, N=64, Vandermonde kernel every call, FFT conv

Peers get MRConv's head (mean pooling + linear), and the S4D model uses MRConv's block around its convolution. Inference
rows are the paper's appendix figure (inference time vs length: MRConv merged vs attention vs S4D), plus the others.

Commands (from the repository root):

    python scripts/benchmark.py --device cpu                      # default sweep, writes benchmarks/cpu/ (~10 min)
    python scripts/benchmark.py --device cuda --dtype bfloat16    # writes benchmarks/cuda/
    python scripts/benchmark.py --lengths 1024 4096 --inference_lengths --batch_sizes 1 8 --num_layers 4
    python scripts/benchmark.py --quick --device cpu --output_dir /tmp/bench   # tiny CI run (seconds)

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
import contextlib
import datetime
import gc
import hashlib
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, when not pip-installed
sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/floor_model.py

import transformers  # noqa: E402
from transformers import AutoModel, BertConfig, MambaConfig  # noqa: E402

from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification  # noqa: E402


try:
    from tqdm.auto import tqdm
except ImportError:  # progress bars are optional
    tqdm = None

INFERENCE_MODELS = ("mrconv_merged", "mrconv_unmerged", "floor", "attention", "mamba", "s4d")
TRAINING_MODELS = ("mrconv_unmerged", "single_kernel")
LABELS = {
    "mrconv_merged": "MRConv merged",
    "mrconv_unmerged": "MRConv unmerged",
    "floor": "floor (plain torch)",
    "single_kernel": "single long-conv kernel",
    "attention": "Transformer (BERT, SDPA)",
    "mamba": "Mamba (transformers)",
    "s4d": "S4D-Lin (Vandermonde)",
}
# (numerator, numerator mode, denominator, denominator mode, printed name)
RATIOS = (
    ("mrconv_merged", "inference", "floor", "inference", "merged / floor"),
    ("mrconv_unmerged", "inference", "mrconv_merged", "inference", "unmerged eval / merged"),
    ("mrconv_unmerged", "training", "single_kernel", "training", "MRConv train step / single-kernel train step"),
    ("attention", "inference", "mrconv_merged", "inference", "attention / merged"),
    ("mamba", "inference", "mrconv_merged", "inference", "mamba / merged"),
    ("s4d", "inference", "mrconv_merged", "inference", "s4d / merged"),
)
# time ~ L^p used to extrapolate from shorter lengths (the fitted slope is used when it is steeper)
PRIOR_EXPONENT = {"attention": 2.0}
MEMORY_METHOD = {
    "cpu": (
        "peak_mem_mb: torch.profiler.profile(profile_memory=True) around one untimed call; the signed sizes of the "
        "CPU allocator's [memory] events are summed in time order and the maximum is reported, i.e. the peak bytes "
        "allocated by torch during the call above what was live before it (weights, inputs and optimizer state from "
        "earlier steps excluded; FFT/BLAS library workspaces not allocated through torch are not seen). "
        "Deterministic for a given model and shape."
    ),
    "cuda": (
        "peak_mem_mb: torch.cuda.max_memory_allocated() after torch.cuda.reset_peak_memory_stats(), minus "
        "torch.cuda.memory_allocated() before the call, around one untimed call (same baseline as on CPU: weights, "
        "inputs and optimizer state from earlier steps excluded)."
    ),
    "saved": (
        "saved_mb (training rows): bytes of the distinct storages that autograd saves for backward during the forward "
        "pass, seen through torch.autograd.graph.saved_tensors_hooks, parameters excluded: the activation memory "
        "(tensors a custom autograd.Function keeps as plain ctx attributes instead of save_for_backward are not seen)."
    ),
}


@dataclass
class Runner:
    """One model ready to run: `step()` does one forward (inference) or one optimizer step (training)."""

    name: str
    mode: str  # "inference" or "training"
    step: Callable[[], None]
    params: int
    parameter_ptrs: set[int] = field(default_factory=set)


# --------------------------------------------------------------------------------------------- S4D-Lin (peer layer)
class S4DKernel(nn.Module):
    """S4D-Lin kernel: diagonal complex A, recomputed for every call by a Vandermonde product (Gu et al., 2022).

    K[h, l] = 2 Re(sum_n C'[h, n] exp(dt_h A[h, n] l)) with C' = C (exp(dt A) - 1) / A (zero-order hold),
    using N/2 complex modes (conjugate pairs give the N real states). One kernel per direction.
    """

    def __init__(self, channels: int, state_size: int = 64, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        N2 = state_size // 2
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)  # (C)
        self.log_dt = nn.Parameter(log_dt)
        self.C = nn.Parameter(torch.view_as_real(torch.randn(channels, N2, dtype=torch.cfloat)))  # (C N2 2)
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(channels, N2)))  # (C N2)
        self.A_imag = nn.Parameter(math.pi * torch.arange(N2).float().repeat(channels, 1))  # (C N2) S4D-Lin

    def forward(self, L: int) -> torch.Tensor:
        dt = self.log_dt.exp()  # (C)
        A = torch.complex(-self.log_A_real.exp(), self.A_imag)  # (C N2)
        dtA = A * dt[:, None]  # (C N2)
        C = torch.view_as_complex(self.C) * (dtA.exp() - 1.0) / A  # (C N2)
        vandermonde = (dtA[..., None] * torch.arange(L, device=A.device)).exp()  # (C N2 L)
        return 2 * torch.einsum("cn,cnl->cl", C, vandermonde).real  # (C L)


class S4DLayer(nn.Module):
    """y = k * u + D u with an S4D kernel; bidirectional kernels are laid out as in S4 (forward + flipped backward)."""

    def __init__(self, hidden_size: int, bidirectional: bool, state_size: int = 64):
        super().__init__()
        self.directions = 2 if bidirectional else 1
        self.kernel = S4DKernel(self.directions * hidden_size, state_size)
        self.D = nn.Parameter(torch.randn(hidden_size))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        B, H, L = u.shape
        with torch.autocast(u.device.type, enabled=False):
            k = self.kernel(L).view(self.directions, H, L)  # (S H L)
            circular = F.pad(k[0], (0, L))  # (H 2L)
            if self.directions == 2:
                circular = circular + F.pad(k[1].flip(-1), (L, 0))  # backward tap j multiplies u[t + 1 + j]
            k_f = torch.fft.rfft(circular, n=2 * L)  # (H L+1)
            u_f = torch.fft.rfft(u.float(), n=2 * L)  # (B H L+1)
            y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]  # (B H L)
            return (y + u.float() * self.D[:, None]).to(u.dtype)


class S4DClassifier(nn.Module):
    """Embedding, MRConv's block with the S4D layer as its convolution, mean pooling, linear head."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, num_labels: int, bidirectional: bool):
        super().__init__()
        H = hidden_size
        self.embeddings = nn.Embedding(vocab_size, H)
        self.convs = nn.ModuleList([S4DLayer(H, bidirectional) for _ in range(num_layers)])
        self.linears = nn.ModuleList([nn.Conv1d(H, 2 * H, kernel_size=1) for _ in range(num_layers)])
        self.norms = nn.ModuleList([nn.BatchNorm1d(H) for _ in range(num_layers)])
        self.classifier = nn.Linear(H, num_labels)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids).transpose(1, 2)  # (B H L)
        for conv, linear, norm in zip(self.convs, self.linears, self.norms, strict=True):
            x = norm(x + F.glu(linear(F.gelu(conv(x))), dim=1))  # (B H L)
        return self.classifier(x.mean(-1))  # (B num_labels)


class PooledClassifier(nn.Module):
    """A transformers backbone returning (B, L, H) hidden states, with MRConv's head: mean pooling + linear."""

    def __init__(self, backbone: nn.Module, hidden_size: int, num_labels: int, **call_kwargs):
        super().__init__()
        self.backbone = backbone
        self.call_kwargs = call_kwargs
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, **self.call_kwargs).last_hidden_state  # (B L H)
        return self.classifier(hidden.mean(1))  # (B num_labels)


# ----------------------------------------------------------------------------------------------------- measurement
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], None], device: torch.device) -> float:
    """Wall-clock seconds of one call, synchronized on CUDA."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def peak_memory(
    fn: Callable[[], None], device: torch.device, parameter_ptrs: set[int] | None = None
) -> tuple[float, float | None]:
    """Run `fn` once; return (peak MiB allocated above the pre-call level, MiB saved for backward or None).

    See MEMORY_METHOD for what each number means. `parameter_ptrs` (training) turns on the saved-tensor count.
    """
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(RuntimeError):  # tensors without storage (e.g. some wrappers) are not counted
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in parameter_ptrs:
                saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if parameter_ptrs is not None else None
    with hooks or contextlib.nullcontext():
        if device.type == "cuda":
            synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            fn()
            synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) - before
        else:
            peak = _profiled_cpu_peak(fn)
    saved_mb = sum(saved.values()) / 2**20 if parameter_ptrs is not None else None
    return peak / 2**20, saved_mb


def _profiled_cpu_peak(fn: Callable[[], None]) -> int:
    """Peak of the running sum of the CPU allocator's signed [memory] events recorded by the profiler."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with silence_stderr():  # kineto logs every start and stop on the C-level stderr
        prof.start()
    try:
        fn()
    finally:
        with silence_stderr():
            prof.stop()
    cpu_types = (DeviceType.CPU, DeviceType.MKLDNN, DeviceType.IDEEP)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() in cpu_types:
            current += event.nbytes()
            peak = max(peak, current)
    return peak


@contextlib.contextmanager
def silence_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (C++ logging bypasses sys.stderr)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory the benchmark may plan with: free GPU memory, or MemAvailable of the host."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as f:
            line = next(line for line in f if line.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    return None


def matmul_flops_per_second(device: torch.device) -> float:
    """Rough dense fp32 throughput of this device, for the a-priori time estimate of attention."""
    a = torch.randn(1024, 1024, device=device)
    time_fn(lambda: a @ a, device)
    seconds = min(time_fn(lambda: a @ a, device) for _ in range(3))
    return 2 * 1024**3 / max(seconds, 1e-9)


def code_fingerprint() -> str:
    """sha256 (12 hex digits) of the package and floor sources as imported, to tie results to a code version."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in [*sorted((root / "modeling_mrconv").glob("*.py")), root / "scripts" / "floor_model.py"]:
        if path.exists():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        return next(line for line in f if line.startswith("model name")).split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def is_oom(error: BaseException) -> bool:
    message = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError | MemoryError) or any(
        s in message for s in ("out of memory", "can't allocate", "cannot allocate", "not enough memory")
    )


# ---------------------------------------------------------------------------------------------------------- models
def mrconv_config(args: argparse.Namespace, L: int, **overrides) -> MRConvConfig:
    return MRConvConfig(
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_layers,
        max_sequence_length=L,
        kernel_size=args.kernel_size,
        kernel_type=args.kernel_type,
        bidirectional=True,
        num_labels=args.num_labels,
        **overrides,
    )


def build_module(name: str, mode: str, args: argparse.Namespace, L: int) -> nn.Module:
    """The model `name` at length L, on CPU, in the mode's train/eval state."""
    H, layers, labels = args.hidden_size, args.num_layers, args.num_labels
    vocab = MRConvConfig().vocab_size
    if name == "mrconv_merged":
        module = MRConvForSequenceClassification(mrconv_config(args, L)).eval().reparameterize()
    elif name == "mrconv_unmerged":
        module = MRConvForSequenceClassification(mrconv_config(args, L))
    elif name == "single_kernel":
        module = MRConvForSequenceClassification(mrconv_config(args, L, reparameterized=True))
    elif name == "floor":
        from floor_model import build_floor_model  # ImportError: handled by the caller

        module = build_floor_model(mrconv_config(args, L, reparameterized=True))
    elif name == "attention":
        config = BertConfig(
            vocab_size=vocab,
            hidden_size=H,
            num_hidden_layers=layers,
            num_attention_heads=4,
            intermediate_size=4 * H,
            max_position_embeddings=L,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        backbone = AutoModel.from_config(config, attn_implementation="sdpa", add_pooling_layer=False)
        module = PooledClassifier(backbone, H, labels)
    elif name == "mamba":
        config = MambaConfig(vocab_size=vocab, hidden_size=H, state_size=16, num_hidden_layers=layers, use_cache=False)
        module = PooledClassifier(AutoModel.from_config(config), H, labels, use_cache=False)
    elif name == "s4d":
        module = S4DClassifier(vocab, H, layers, labels, bidirectional=True)
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
        except ImportError as error:
            failed[name] = f"skipped: scripts/floor_model.py not found ({error})"
            continue
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


# --------------------------------------------------------------------------------------------------------- outputs
def compute_ratios(rows: list[dict]) -> list[dict]:
    """Every ratio of RATIOS at each (L, B) where both numbers were measured in this run."""
    ok = {(r["model"], r["mode"], r["sequence_length"], r["batch_size"]): r for r in rows if r["status"] == "ok"}
    ratios = []
    for num, num_mode, den, den_mode, label in RATIOS:
        for (model, mode, L, B), a in sorted(ok.items(), key=lambda kv: (kv[0][3], kv[0][2])):
            b = ok.get((den, den_mode, L, B))
            if model != num or mode != num_mode or b is None:
                continue
            memory = None
            if a["peak_mem_mb"] and b["peak_mem_mb"]:
                memory = a["peak_mem_mb"] / b["peak_mem_mb"]
            ratio = {"ratio": label, "sequence_length": L, "batch_size": B, "time": a["time_ms"] / b["time_ms"]}
            ratio["time_of_minima"] = a["time_ms_min"] / b["time_ms_min"]  # contention only adds time: a cross-check
            ratios.append(ratio | {"peak_memory": memory})
    return ratios


def fit_exponents(rows: list[dict]) -> list[dict]:
    """Least-squares slope of log(time) against log(L) for each (model, mode, batch size) with 2+ lengths."""
    groups: dict[tuple, list[tuple[float, float]]] = {}
    for r in rows:
        if r["status"] == "ok":
            groups.setdefault((r["model"], r["mode"], r["batch_size"]), []).append(
                (math.log(r["sequence_length"]), math.log(r["time_ms"]))
            )
    fits = []
    for (model, mode, B), points in groups.items():
        if len({x for x, _ in points}) < 2:
            continue
        mx, my = statistics.fmean(x for x, _ in points), statistics.fmean(y for _, y in points)
        slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
        lengths = sorted(round(math.exp(x)) for x, _ in points)
        fits.append({"model": model, "mode": mode, "batch_size": B, "exponent": slope, "lengths": lengths})
    return fits


def markdown(meta: dict, rows: list[dict], ratios: list[dict], fits: list[dict]) -> str:
    lengths = sorted({r["sequence_length"] for r in rows})
    lines = [
        f"# MRConv benchmark: {meta['device_name']} ({meta['device']}, {meta['dtype']})",
        "",
        f"{meta['date']}; torch {meta['torch']}, transformers {meta['transformers']}, {meta['threads']} threads; "
        f"hidden {meta['args']['hidden_size']}, layers {meta['args']['num_layers']}, kernel "
        f"{meta['args']['kernel_type']} l0={meta['args']['kernel_size']}, bidirectional.",
        f"Command: `{meta['command']}`; code sha256 {meta['code_sha256']} (modeling_mrconv/*.py + floor_model.py).",
        "",
        "Cells: median ms over interleaved repeats / peak MiB (training rows: / MiB saved for backward).",
        "",
    ]
    for B in sorted({r["batch_size"] for r in rows}):
        lines += [f"## batch size {B}", "", "| model | mode | " + " | ".join(f"L={L}" for L in lengths) + " |"]
        lines.append("|---|---|" + "---|" * len(lengths))
        for mode, names in (("inference", INFERENCE_MODELS), ("training", TRAINING_MODELS)):
            for name in names:
                cells = {
                    r["sequence_length"]: _cell(r)
                    for r in rows
                    if (r["model"], r["mode"], r["batch_size"]) == (name, mode, B)
                }
                if cells:
                    lines.append(
                        f"| {LABELS[name]} | {mode} | " + " | ".join(cells.get(L, "") for L in lengths) + " |"
                    )
        lines.append("")
    lines += ["## Ratios", "", "Time: ratio of medians (ratio of minima in parentheses); memory: ratio of peaks.", ""]
    lines += ["| ratio | B | L | time | memory |", "|---|---|---|---|---|"]
    for r in ratios:
        memory = f"{r['peak_memory']:.2f}" if r["peak_memory"] else ""
        time_cell = f"{r['time']:.2f} ({r['time_of_minima']:.2f})"
        lines.append(f"| {r['ratio']} | {r['batch_size']} | {r['sequence_length']} | {time_cell} | {memory} |")
    lines += ["", "## Scaling exponents (slope of log time vs log L)", "", "| model | mode | B | exponent | lengths |"]
    lines.append("|---|---|---|---|---|")
    for f in fits:
        lines.append(
            f"| {LABELS[f['model']]} | {f['mode']} | {f['batch_size']} | {f['exponent']:.2f} | {f['lengths']} |"
        )
    skipped = [r for r in rows if r["status"] != "ok" and not r["status"].startswith("skipped: scripts/floor")]
    if skipped:
        lines += ["", "## Not measured", ""]
        lines += [
            f"- {LABELS[r['model']]}, {r['mode']}, L={r['sequence_length']}, B={r['batch_size']}: {r['status']}"
            for r in skipped
        ]
    lines += ["", "## Method", "", f"- {meta['timing_method']}", f"- {meta['skip_policy']}"]
    lines += [*(f"- {m}" for m in meta["memory_method"].values()), ""]
    return "\n".join(lines)


def _cell(row: dict) -> str:
    if row["status"] != "ok":
        return row["status"].split(" (")[0][:48]
    cell = f"{row['time_ms']:.1f} / {row['peak_mem_mb']:.0f}"
    return cell + (f" / {row['saved_mb']:.0f}" if row["saved_mb"] is not None else "")


def plot(rows: list[dict], path: Path) -> None:
    """Log-log time vs L: inference (the paper's appendix figure, plus the other rows) and training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    batch_sizes = sorted({r["batch_size"] for r in rows})
    for ax, mode, names in zip(axes, ("inference", "training"), (INFERENCE_MODELS, TRAINING_MODELS), strict=True):
        for name in names:
            for B in batch_sizes:
                points = sorted(
                    (r["sequence_length"], r["time_ms"])
                    for r in rows
                    if (r["model"], r["mode"], r["batch_size"], r["status"]) == (name, mode, B, "ok")
                )
                if points:
                    label = LABELS[name] + (f" (B={B})" if len(batch_sizes) > 1 else "")
                    index = list(LABELS).index(name)  # one color and marker per model in both panels
                    style = {
                        "color": f"C{index}",
                        "marker": "osD^vPX"[index],
                        "linestyle": "--" if index == 2 else "-",
                    }
                    ax.plot(*zip(*points, strict=True), label=label, markersize=5, **style)
        ax.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel="median time (ms)")
        ax.set_title(f"{mode} ({'forward, no_grad' if mode == 'inference' else 'forward + backward + AdamW'})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(output_dir: Path, meta: dict, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """results.json, results.md and time_vs_length.png under output_dir; returns the ratios and fits."""
    output_dir.mkdir(parents=True, exist_ok=True)
    ratios, fits = compute_ratios(rows), fit_exponents(rows)
    payload = {"meta": meta, "results": rows, "ratios": ratios, "scaling_exponents": fits}
    (output_dir / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    (output_dir / "results.md").write_text(markdown(meta, rows, ratios, fits))
    plot(rows, output_dir / "time_vs_length.png")
    return ratios, fits


def format_row(row: dict) -> str:
    case = f"{row['mode']:<9} L={row['sequence_length']:<6} B={row['batch_size']:<3} {row['model']:<16}"
    if row["status"] != "ok":
        return f"{case} {row['status']}"
    saved = f", saved {row['saved_mb']:.0f} MiB" if row["saved_mb"] is not None else ""
    return f"{case} {row['time_ms']:10.1f} ms (x{row['repeats']}), peak {row['peak_mem_mb']:.0f} MiB{saved}"


def print_summary(ratios: list[dict], fits: list[dict], rows: list[dict]) -> None:
    print("\nratios (time: medians, minima in parentheses; peak memory):")
    for r in ratios:
        memory = f"; memory {r['peak_memory']:.2f}x" if r["peak_memory"] else ""
        case = f"{r['ratio']:<46} L={r['sequence_length']:<6} B={r['batch_size']:<3}"
        print(f"  {case} {r['time']:7.2f}x (minima {r['time_of_minima']:.2f}x){memory}")
    print("scaling exponents (slope of log time vs log L):")
    for f in fits:
        print(
            f"  {LABELS[f['model']]:<28} {f['mode']:<9} B={f['batch_size']:<3} {f['exponent']:5.2f}  L={f['lengths']}"
        )
    for r in rows:
        if r["status"] != "ok":
            print(f"  {r['model']} {r['mode']} L={r['sequence_length']} B={r['batch_size']}: {r['status']}")


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
    parser.add_argument("--output_dir", type=Path, default=None, help="default: benchmarks/<device>")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI preset (overrides sizes): L 256 and 512, batch 2, width <= 32, 1 repeat",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.inference_lengths, args.batch_sizes = [256, 512], [], [2]
        args.hidden_size, args.warmup, args.repeats = min(args.hidden_size, 32), 1, 1
    if args.output_dir is None:
        args.output_dir = Path(__file__).resolve().parents[1] / "benchmarks" / args.device
    args.too_slow = set()
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
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
    progress = tqdm(cases, desc="benchmark", unit="case") if tqdm is not None else cases
    rows, history = [], {}
    for mode, L, B in progress:
        if tqdm is not None:
            progress.set_postfix_str(f"{mode} L={L} B={B}")
        for row in run_case(mode, L, B, args, device, history, flops_per_s):
            rows.append(row)
            (tqdm.write if tqdm is not None else print)(format_row(row))
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
        "floor_model": importlib.util.find_spec("floor_model") is not None,
    }
    ratios, fits = write_outputs(args.output_dir, meta, rows)
    print_summary(ratios, fits, rows)
    print(f"\nwrote {args.output_dir}/results.json, results.md, time_vs_length.png")


if __name__ == "__main__":
    main()
