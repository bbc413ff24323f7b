"""Measurement shared by scripts/benchmark.py and scripts/profile_training.py: timing, peak and saved memory,
device facts and the code fingerprint that ties results to a code version."""

import contextlib
import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch


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
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for path in [*sorted((root / "modeling_mrconv").glob("*.py")), Path(__file__).with_name("floor_model.py")]:
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


def saved_bytes(step, parameters: list[torch.Tensor]) -> int:
    """Bytes of the distinct non-parameter storages saved for backward while `step` runs."""
    skip = {p.untyped_storage().data_ptr() for p in parameters}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(RuntimeError):
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in skip:
                saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(saved.values())


def peak_bytes(step, device: torch.device) -> int:
    """Peak bytes allocated by torch during `step` above the level before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    current = peak = 0
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() in (DeviceType.CPU, DeviceType.MKLDNN, DeviceType.IDEEP):
            current += event.nbytes()
            peak = max(peak, current)
    return peak
