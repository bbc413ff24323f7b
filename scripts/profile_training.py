"""Measured training-step and merged-model cost ratios (CPU or CUDA, one process, interleaved).

For every (number of layers, length) it builds, from the same `MRConvConfig`:

    mrconv     the multi-branch model in training mode (`conv_implementation="fast"`)
    reference  with `--reference`: the same with `conv_implementation="reference"`, the switch users have
    single     `reparameterized=True` trained from scratch: one plain long-conv kernel per layer
    merged     the multi-branch model after `reparameterize()`, eval, no_grad
    floor      `modeling_mrconv.bench.floor_model`: plain torch doing exactly the merged model's ops, eval, no_grad

and prints `train time` (median mrconv step / median single step; a step is forward + backward + AdamW), the memory
saved for backward and the peak memory of one step, and `merged/floor`; only ratios from the same run are meaningful.

    python scripts/profile_training.py                    # batch 8, hidden 128, 1-2 layers, L 4096 16384
    python scripts/profile_training.py --lengths 4096 --layers 1 --repeats 5 --kernel_type fourier
    python scripts/profile_training.py --reference        # also time the plain reference path
    python scripts/profile_training.py --padding 0.25     # right-padded batches

`--padding p` trains on right-padded batches (the first sequence full, the others of lengths drawn uniformly from
[L (1 - 2p), L], p L padded positions on average); the merged and floor forwards stay unpadded.
"""

import argparse
import statistics

import torch

from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification
from modeling_mrconv.bench.floor_model import build_floor_model
from modeling_mrconv.bench.measure import interleaved_times, make_step, peak_memory


def build(args: argparse.Namespace, layers: int, L: int, device: torch.device) -> dict[str, tuple]:
    """(step, model) of every model at (layers, L), keyed by name."""
    config = {"hidden_size": args.hidden_size, "num_hidden_layers": layers, "max_sequence_length": L}
    config |= {"kernel_type": args.kernel_type, "kernel_size": args.kernel_size, "bidirectional": not args.causal}
    config["num_labels"] = 10
    input_ids = torch.randint(1, 259, (args.batch_size, L), device=device)  # (B L)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)  # (B)
    train_inputs = {"input_ids": input_ids}
    if args.padding > 0:
        generator = torch.Generator().manual_seed(0)
        lengths = torch.randint(round(L * (1 - 2 * args.padding)), L + 1, (args.batch_size,), generator=generator)
        lengths[0] = L
        mask = (torch.arange(L)[None] < lengths[:, None]).long().to(device)  # (B L) right padding
        train_inputs = {"input_ids": input_ids * mask, "attention_mask": mask}
    trained = {"mrconv": {"conv_implementation": "fast"}}
    if args.reference:
        trained["reference"] = {"conv_implementation": "reference"}
    trained["single"] = {"reparameterized": True}
    torch.manual_seed(0)
    models = {}
    for name, overrides in trained.items():
        model = MRConvForSequenceClassification(MRConvConfig(**config, **overrides)).to(device).train()
        models[name] = (make_step(model, "training", train_inputs, labels), model)
    merged = MRConvForSequenceClassification(MRConvConfig(**config)).to(device)
    with torch.no_grad():  # move the running statistics away from their init before merging
        merged(input_ids=input_ids)
    floor = build_floor_model(MRConvConfig(**config, reparameterized=True)).to(device)
    for name, model in (("merged", merged.eval().reparameterize()), ("floor", floor)):
        models[name] = (make_step(model, "inference", {"input_ids": input_ids}), model)
    return models


def measure(models: dict, args: argparse.Namespace, device: torch.device) -> dict[str, dict]:
    """Median ms per call, then peak MiB and (training) MiB saved for backward of one more call, of every model."""
    times = interleaved_times({name: step for name, (step, _) in models.items()}, device, args.repeats, args.warmup)
    results = {}
    for name, (step, model) in models.items():
        peak, saved = peak_memory(step, device, model if model.training else None)
        results[name] = {"ms": 1e3 * statistics.median(times[name]), "peak": peak, "saved": saved}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--lengths", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--kernel_type", default="dilated", choices=["dilated", "fourier", "sparse", "fourier_sparse"])
    parser.add_argument("--kernel_size", type=int, default=16)
    parser.add_argument("--causal", action="store_true", help="causal kernels (default: bidirectional)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--reference", action="store_true", help="also time the plain reference training path")
    parser.add_argument("--padding", type=float, default=0.0, help="mean fraction of right padding (0 to 0.5)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if not 0 <= args.padding <= 0.5:
        parser.error(f"--padding: got {args.padding}, expected a fraction from 0 to 0.5")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"batch {args.batch_size}, hidden {args.hidden_size}, kernel {args.kernel_type} l0={args.kernel_size}, "
        f"{'causal' if args.causal else 'bidirectional'}, {torch.get_num_threads()} threads, device {device}, "
        f"{args.repeats} interleaved rounds, padding {args.padding:.2f}, torch {torch.__version__}"
    )
    header = f"{'layers':>6} {'L':>6} {'N':>3} | {'mrconv':>8} {'single':>8} {'train time':>10} "
    header += f"{'saved MiB':>11} {'saved':>6} {'peak':>6} | {'merged':>8} {'floor':>8} {'merged/floor':>12}"
    print(header + (f" | {'reference':>9} {'ref/single':>10} {'ref saved':>9}" if args.reference else ""))
    for L in args.lengths:
        for layers in args.layers:
            models = build(args, layers, L, device)
            N = models["mrconv"][1].config.num_branches
            r = measure(models, args, device)
            mrconv, single, merged, floor = r["mrconv"], r["single"], r["merged"], r["floor"]
            line = (
                f"{layers:>6} {L:>6} {N:>3} | {mrconv['ms']:>6.0f}ms {single['ms']:>6.0f}ms "
                f"{mrconv['ms'] / single['ms']:>9.2f}x {mrconv['saved']:>5.0f}/{single['saved']:<5.0f} "
                f"{mrconv['saved'] / single['saved']:>5.2f}x {mrconv['peak'] / single['peak']:>5.2f}x | "
                f"{merged['ms']:>6.0f}ms {floor['ms']:>6.0f}ms {merged['ms'] / floor['ms']:>11.3f}x"
            )
            if args.reference:
                reference = r["reference"]
                line += (
                    f" | {reference['ms']:>7.0f}ms {reference['ms'] / single['ms']:>9.2f}x "
                    f"{reference['saved'] / single['saved']:>8.2f}x"
                )
            print(line, flush=True)
            del models


if __name__ == "__main__":
    main()
