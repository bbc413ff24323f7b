"""Training cost of the classifier users train: MRConv step / single-kernel step over a grid of configurations.

For every (kernel type, mask, direction, batch size, length) it builds `MRConvForSequenceClassification` twice from
one `MRConvConfig` (continuous series, `input_dim` 1, unless `--input_dim 0` for byte tokens):

    mrconv     the multi-branch model in training mode (`conv_implementation="fast"`)
    single     `reparameterized=True` trained from scratch: one plain long-conv kernel per layer
    reference  with `--reference`: the multi-branch model with `conv_implementation="reference"`

and times one training step (forward + backward + AdamW) of each in interleaved rounds. A row reports the median and
minimum ms, the ratio of medians and of minima to `single`, the peak memory of one step and the memory saved for
backward (`modeling_mrconv.bench.measure.MEMORY_METHOD`). Masks: `none` (no attention_mask), `ones` (an all-ones
mask) and `padded` (right padding: the first sequence full, the others of lengths uniform in [L (1 - 2p), L],
p = `--padding`). `--profile_ops N` prints the N costliest ops (self CPU time) of one step of each model.

glibc's malloc returns a step's large temporaries to the OS and faults them in again the next step; in a VM where
page faults are costly that time lands mostly on the single-kernel model (autograd's large FFT temporaries) and
flatters the ratio. `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296` keeps them in the heap;
the report records the allocator variables it ran with.

    python scripts/profile_training.py --output_dir benchmarks/training_cost/amd_epyc   # the full grid, 1 thread
    python scripts/profile_training.py --kernel_types fourier --masks padded --lengths 2048 --batch_sizes 8
    python scripts/profile_training.py --lengths 2048 --batch_sizes 8 --profile_ops 15 --reference
"""

import argparse
import datetime
import itertools
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm

from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification
from modeling_mrconv.bench.measure import (
    MEMORY_METHOD,
    code_fingerprint,
    cpu_profile,
    device_name,
    interleaved_times,
    make_step,
    peak_memory,
)
from modeling_mrconv.bench.report import markdown_table
from modeling_mrconv.configuration_mrconv import KERNEL_TYPES


MASKS = ("none", "ones", "padded")
DIRECTIONS = ("bidirectional", "causal")


def batch(args: argparse.Namespace, mask: str, B: int, L: int) -> tuple[dict, torch.Tensor]:
    """Inputs (continuous series or byte ids) under `mask`, and labels, from a fixed seed."""
    generator = torch.Generator().manual_seed(0)
    if args.input_dim:
        inputs = {"input_values": torch.randn(B, L, args.input_dim, generator=generator)}  # (B L D)
    else:
        inputs = {"input_ids": torch.randint(1, 259, (B, L), generator=generator)}  # (B L)
    if mask != "none":
        lengths = torch.full((B,), L)
        if mask == "padded":
            lengths = torch.randint(round(L * (1 - 2 * args.padding)), L + 1, (B,), generator=generator)
            lengths[0] = L
        inputs["attention_mask"] = (torch.arange(L)[None] < lengths[:, None]).long()  # (B L) right padding
    return inputs, torch.randint(0, args.num_labels, (B,), generator=generator)


def build_steps(args: argparse.Namespace, kernel_type: str, direction: str, mask: str, B: int, L: int) -> dict:
    """{name: (step, model)} of the compared models at one configuration."""
    config = {
        "hidden_size": args.hidden_size,
        "num_hidden_layers": args.layers,
        "max_sequence_length": L,
        "kernel_type": kernel_type,
        "kernel_size": args.kernel_size,
        "bidirectional": direction == "bidirectional",
        "num_labels": args.num_labels,
        "input_dim": args.input_dim or None,
    }
    variants = {"mrconv": {"conv_implementation": "fast"}, "single": {"reparameterized": True}}
    if args.reference:
        variants["reference"] = {"conv_implementation": "reference"}
    inputs, labels = batch(args, mask, B, L)
    steps = {}
    for name, overrides in variants.items():
        torch.manual_seed(0)
        model = MRConvForSequenceClassification(MRConvConfig(**config, **overrides)).train()
        steps[name] = (make_step(model, "training", inputs, labels), model)
    return steps


def measure(args: argparse.Namespace, case: dict) -> dict:
    """One row: each model's median and minimum ms, peak and saved MiB, and the ratios to `single`."""
    steps = build_steps(args, **case)
    device = torch.device("cpu")
    times = interleaved_times({name: step for name, (step, _) in steps.items()}, device, args.repeats, args.warmup)
    row = {**case, "num_branches": steps["mrconv"][1].config.num_branches}
    for name, (step, model) in steps.items():
        peak, saved = peak_memory(step, device, model)
        row[name] = {
            "median_ms": 1e3 * statistics.median(times[name]),
            "min_ms": 1e3 * min(times[name]),
            "peak_mb": peak,
            "saved_mb": saved,
        }
    for name in steps.keys() - {"single"}:
        row[f"{name}_ratio"] = row[name]["median_ms"] / row["single"]["median_ms"]
        row[f"{name}_ratio_of_minima"] = row[name]["min_ms"] / row["single"]["min_ms"]
    if args.profile_ops:
        row["profile"] = {name: top_ops(step, args.profile_ops) for name, (step, _) in steps.items()}
    return row


def top_ops(step, count: int) -> list[dict]:
    """The `count` ops of one step with the most self CPU time (torch.profiler), with their call counts."""
    with cpu_profile() as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:count]
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "calls": e.count} for e in events]


def markdown(meta: dict, rows: list[dict]) -> str:
    """results.md: the environment, then one table row per configuration."""
    lines = [
        "# Training cost of the classifier: MRConv step / single-kernel step",
        "",
        f"CPU {meta['cpu']}, {meta['threads']} thread(s); torch {meta['torch']}, transformers "
        f"{meta['transformers']}, numpy {meta['numpy']}, Python {meta['python']}; code {meta['code_sha256']}; "
        f"{meta['date']}. Allocator: "
        + (", ".join(f"{k}={v}" for k, v in meta["allocator"].items()) or "glibc malloc defaults")
        + ".",
        "",
        f"`{meta['command']}`",
        "",
        f"`MRConvForSequenceClassification`, {meta['args']['layers']} layers, hidden {meta['args']['hidden_size']}, "
        f"l0 = {meta['args']['kernel_size']}, input_dim {meta['args']['input_dim'] or 'none (byte ids)'}; a step is "
        f"forward + backward + AdamW; {meta['args']['repeats']} interleaved rounds. Ratio: median MRConv step / "
        "median single-kernel step (ratio of minima in parentheses). Memory: MRConv / single, peak MiB of one step "
        "and MiB saved for backward.",
        "",
    ]
    header = ["kernel", "mask", "direction", "batch", "L", "MRConv ms (min)", "single ms (min)", "ratio", "peak MiB"]
    header.append("saved MiB")
    body = []
    for r in rows:
        m, s = r["mrconv"], r["single"]
        body.append(
            [
                r["kernel_type"],
                r["mask"],
                r["direction"],
                r["B"],
                f"{r['L']:,}",
                f"{m['median_ms']:.1f} ({m['min_ms']:.1f})",
                f"{s['median_ms']:.1f} ({s['min_ms']:.1f})",
                f"**{r['mrconv_ratio']:.2f}x** ({r['mrconv_ratio_of_minima']:.2f}x)",
                f"{m['peak_mb']:.1f} / {s['peak_mb']:.1f}",
                f"{m['saved_mb']:.1f} / {s['saved_mb']:.1f}",
            ]
        )
    return "\n".join([*lines, *markdown_table(header, body)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel_types", nargs="+", default=["dilated", "fourier", "fourier_sparse"])
    parser.add_argument("--masks", nargs="+", default=list(MASKS), choices=MASKS)
    parser.add_argument("--directions", nargs="+", default=list(DIRECTIONS), choices=DIRECTIONS)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--kernel_size", type=int, default=16, help="l0, the shortest branch")
    parser.add_argument("--input_dim", type=int, default=1, help="channels of the series; 0: byte-token input_ids")
    parser.add_argument("--num_labels", type=int, default=10)
    parser.add_argument("--padding", type=float, default=0.25, help="mask padded: mean fraction of padding (0-0.5)")
    parser.add_argument("--repeats", type=int, default=7, help="timed interleaved rounds")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: torch's default)")
    parser.add_argument("--reference", action="store_true", help="also time the plain reference training path")
    parser.add_argument("--profile_ops", type=int, default=0, help="record the N costliest ops of each model")
    parser.add_argument("--output_dir", type=Path, default=None, help="write results.json and results.md there")
    args = parser.parse_args(argv)
    if not 0 <= args.padding <= 0.5:
        parser.error(f"--padding: got {args.padding}, expected a fraction from 0 to 0.5")
    unknown = set(args.kernel_types) - set(KERNEL_TYPES)
    if unknown:
        parser.error(f"--kernel_types: unknown {sorted(unknown)}; expected {', '.join(KERNEL_TYPES)}")
    for name in ("repeats", "layers", "hidden_size", "kernel_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: got {getattr(args, name)}, expected a positive integer")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    meta = {
        "cpu": device_name(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "scripts/profile_training.py", *(argv if argv is not None else sys.argv[1:])]),
        "code_sha256": code_fingerprint(),
        # the CPU allocator's settings: how often a step's temporaries are faulted in afresh (costly in some VMs)
        "allocator": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_") or k == "LD_PRELOAD"},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "memory_method": {"peak": MEMORY_METHOD["cpu"], "saved": MEMORY_METHOD["saved"]},
    }
    grid = itertools.product(args.kernel_types, args.masks, args.directions, args.batch_sizes, sorted(args.lengths))
    cases = [dict(zip(("kernel_type", "mask", "direction", "B", "L"), c, strict=True)) for c in grid]
    rows = []
    for case in tqdm(cases, desc="training cost", unit="case"):
        row = measure(args, case)
        rows.append(row)
        tqdm.write(
            f"{case['kernel_type']:>14} {case['mask']:>6} {case['direction']:>13} B={case['B']:<3} L={case['L']:<6} "
            f"mrconv {row['mrconv']['median_ms']:8.1f} ms  single {row['single']['median_ms']:8.1f} ms  "
            f"{row['mrconv_ratio']:.2f}x ({row['mrconv_ratio_of_minima']:.2f}x)"
            + (f"  reference {row['reference_ratio']:.2f}x" if args.reference else "")
        )
        for name, ops in row.get("profile", {}).items():
            tqdm.write(f"  {name}: " + "; ".join(f"{o['op']} {o['self_ms']:.1f} ms x{o['calls']}" for o in ops))
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
        (args.output_dir / "results.md").write_text(markdown(meta, rows))
        print(f"wrote {args.output_dir}/results.json, results.md")
    return rows


if __name__ == "__main__":
    main()
