"""Parameters and CPU images/s of MRConvNeXt (merged and unmerged eval) next to transformers' ConvNeXt.

    python -m modeling_mrconv.bench.mrconvnext             # MRConvNeXt-T vs ConvNeXt-T (ConvNextConfig()) at 224²
    python -m modeling_mrconv.bench.mrconvnext --batch_sizes 1 8 --repeats 5 --output_file runs/mrconvnext.json

Timing: `warmup` untimed calls, then `repeats` interleaved rounds (`bench.measure.interleaved_times`), no_grad; the
median is reported.
"""

import argparse
import copy
import json
import statistics
from pathlib import Path

import torch
from torch import nn
from transformers import ConvNextConfig, ConvNextForImageClassification

from modeling_mrconv import MRConvNextConfig, MRConvNextForImageClassification
from modeling_mrconv.bench.measure import code_fingerprint, device_name, interleaved_times, make_step
from modeling_mrconv.bench.report import markdown_table


def build_models(mrconvnext_config: MRConvNextConfig, convnext_config: ConvNextConfig) -> dict[str, nn.Module]:
    """Eval-mode models: MRConvNeXt in training form (unmerged), its merged copy, and transformers' ConvNeXt."""
    unmerged = MRConvNextForImageClassification(mrconvnext_config).eval()
    merged = copy.deepcopy(unmerged).reparameterize()
    convnext = ConvNextForImageClassification(convnext_config).eval()
    return {"mrconvnext_unmerged": unmerged, "mrconvnext_merged": merged, "convnext": convnext}


@torch.no_grad()
def benchmark(
    models: dict[str, nn.Module],
    image_size: int,
    batch_sizes: tuple[int, ...] = (1, 8),
    repeats: int = 5,
    warmup: int = 1,
    num_channels: int = 3,
) -> list[dict]:
    """One row per (model, batch size): parameters, median ms per call and images/s.

    MRConvNeXt rows also carry `max_abs_diff_vs_unmerged`: the largest |logit difference| of the merged model from the
    unmerged one on the timed batch (the merge is exact up to float rounding).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    rows = []
    for batch_size in batch_sizes:
        pixel_values = torch.randn(batch_size, num_channels, image_size, image_size)  # (B C H W)
        logits = {name: model(pixel_values=pixel_values).logits for name, model in models.items()}  # first warm-up
        steps = {name: make_step(model, "inference", {"pixel_values": pixel_values}) for name, model in models.items()}
        times = interleaved_times(steps, torch.device("cpu"), repeats, warmup - 1)
        for name, model in models.items():
            seconds = statistics.median(times[name])
            row = {"model": name, "batch_size": batch_size, "image_size": image_size}
            row |= {"parameters": sum(p.numel() for p in model.parameters()), "time_ms": 1000 * seconds}
            row |= {"images_per_s": batch_size / seconds, "repeats": repeats}
            if name.startswith("mrconvnext"):
                row["max_abs_diff_vs_unmerged"] = (logits[name] - logits["mrconvnext_unmerged"]).abs().max().item()
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    body = [
        [r["model"], r["batch_size"], f"{r['parameters']:,}", f"{r['time_ms']:.1f}", f"{r['images_per_s']:.2f}"]
        for r in rows
    ]
    return "\n".join(markdown_table(["model", "batch", "parameters", "ms / call", "images/s"], body))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small", "base"], default="tiny", help="MRConvNeXt/ConvNeXt size")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--output_file", type=Path, default=None, help="write rows and metadata as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    mrconvnext_config = getattr(MRConvNextConfig, args.size)(image_size=args.image_size)
    # ConvNeXt of MRConvNeXt's stage sizes (tiny: ConvNextConfig()'s)
    sizes = {k: mrconvnext_config.to_dict()[k] for k in ("num_stages", "depths", "hidden_sizes")}
    models = build_models(mrconvnext_config, ConvNextConfig(**sizes, image_size=args.image_size))
    rows = benchmark(models, args.image_size, tuple(args.batch_sizes), args.repeats, args.warmup)
    meta = {"device": device_name(torch.device("cpu")), "threads": torch.get_num_threads()}
    meta |= {"code": code_fingerprint(), "size": args.size}
    print(json.dumps(meta))
    print(markdown(rows))
    if args.output_file:
        args.output_file.parent.mkdir(parents=True, exist_ok=True)
        args.output_file.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
