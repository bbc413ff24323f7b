"""Measurement shared by the benchmark CLIs: one-step closures, interleaved timing, peak and saved memory, device
facts and the code fingerprint that ties results to a code version."""

import contextlib
import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


MEMORY_METHOD = {
    "cpu": (
        "peak_mem_mb: the maximum running sum of the CPU allocator's signed [memory] events (torch.profiler, "
        "profile_memory=True) over one untimed call: the peak bytes torch allocated above what was live before it "
        "(weights, inputs, optimizer state excluded; FFT/BLAS workspaces outside torch unseen). Deterministic."
    ),
    "cuda": "peak_mem_mb: torch.cuda.max_memory_allocated() over one untimed call minus memory_allocated() before it.",
    "saved": (
        "saved_mb (training rows): bytes of the distinct storages autograd saves for backward in the forward "
        "(saved_tensors_hooks), parameters excluded: the activation memory (tensors a custom autograd.Function keeps "
        "as plain ctx attributes are unseen)."
    ),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one call, synchronized on CUDA."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_times(
    steps: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int = 0
) -> dict[str, list[float]]:
    """Seconds of each step over `repeats` interleaved rounds (one call of each per round, order rotated) after
    `warmup` untimed calls each, so that load from other processes hits every step alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(time_fn(steps[name], device))
    return times


def make_step(
    model: nn.Module, mode: str, inputs: dict, labels: torch.Tensor | None = None, autocast=None
) -> Callable[[], None]:
    """One no_grad forward of `model` (mode "inference") or one forward + backward + AdamW step ("training")."""
    autocast = autocast or contextlib.nullcontext()
    if mode == "inference":

        def step() -> None:
            with torch.no_grad(), autocast:
                model(**inputs)

        return step
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(model(**inputs).logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def peak_memory(
    fn: Callable[[], object], device: torch.device, model: nn.Module | None = None
) -> tuple[float, float | None]:
    """Run `fn` once; return (peak MiB allocated above the pre-call level, MiB saved for backward or None): see
    MEMORY_METHOD. A `model` (training) turns on the count of saved tensors, its parameters excluded."""
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()} if model is not None else set()
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(RuntimeError):  # tensors without storage (e.g. some wrappers) are not counted
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in skip:
                saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if model is not None else None
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
    return peak / 2**20, sum(saved.values()) / 2**20 if model is not None else None


def _profiled_cpu_peak(fn: Callable[[], object]) -> int:
    """Peak of the running sum of the CPU allocator's signed [memory] events recorded by the profiler."""
    from torch.autograd import DeviceType

    with cpu_profile(profile_memory=True) as prof:
        fn()
    cpu_types = (DeviceType.CPU, DeviceType.MKLDNN, DeviceType.IDEEP)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() in cpu_types:
            current += event.nbytes()
            peak = max(peak, current)
    return peak


@contextlib.contextmanager
def cpu_profile(**options) -> Iterator[torch.profiler.profile]:
    """A CPU `torch.profiler.profile` over the block, without kineto's start and stop lines on the C-level stderr."""
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], **options)
    with silence_stderr():
        prof.start()
    try:
        yield prof
    finally:
        with silence_stderr():
            prof.stop()


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
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for path in [*sorted((root / "modeling_mrconv").glob("*.py")), Path(__file__).with_name("floor_model.py")]:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        return next(line for line in f if line.startswith("model name")).split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def failure_status(error: BaseException) -> str:
    """The status of a row that could not be measured: "skipped: too slow", "skipped: OOM" or "error: ..."."""
    message = str(error).lower()
    if isinstance(error, TimeoutError):
        return f"skipped: too slow ({error})"
    if isinstance(error, torch.OutOfMemoryError | MemoryError) or any(
        s in message for s in ("out of memory", "can't allocate", "cannot allocate", "not enough memory")
    ):
        return "skipped: OOM"
    return f"error: {type(error).__name__}: {error}"[:300]
