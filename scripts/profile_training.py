"""Measured training-step and merged-model cost ratios (CPU or CUDA, one process, interleaved).

For every (number of layers, length) it builds, from the same `MRConvConfig`:

    mrconv    the multi-branch model in training mode (`conv_implementation="fast"`)
    single    `reparameterized=True` trained from scratch: the same model with one plain long-conv kernel per layer
    merged    the multi-branch model after `reparameterize()`, eval, no_grad
    floor     `modeling_mrconv.bench.floor_model`: plain torch doing exactly the merged model's ops, eval, no_grad

and prints
    train time   median(mrconv step) / median(single step); a step is forward + backward + AdamW
    train saved  activation memory ratio: bytes of the distinct storages autograd saves for backward during one
                 forward (torch.autograd.graph.saved_tensors_hooks; parameters excluded). Deterministic.
    train peak   peak bytes allocated by torch during one step above the level before it (CPU: the running sum of
                 the profiler's [memory] events; CUDA: max_memory_allocated). Includes transient buffers.
    merged/floor median(merged forward) / median(floor forward)

Timings are interleaved (one call of each model per round, order rotated) and reduced by the median, so load from
other processes on the machine hits all models alike; only ratios from the same run are meaningful.

    python scripts/profile_training.py                                  # batch 8, hidden 128, 1-2 layers, L 4096 16384
    python scripts/profile_training.py --lengths 4096 --layers 1 --repeats 5 --kernel_type fourier
    python scripts/profile_training.py --reference                      # also time the plain reference path
    python scripts/profile_training.py --padding 0.25                   # right-padded batches

`--padding p` trains on right-padded batches (the first sequence full, the others of lengths drawn uniformly from
[L (1 - 2p), L], p L padded positions on average; the merged and floor forwards stay unpadded). `--reference` builds
its model with `conv_implementation="reference"` (`MRConvConfig`), the switch users have.
"""

import argparse
import os
import statistics
import time


os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # silence the profiler's start/stop lines

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification  # noqa: E402
from modeling_mrconv.bench.floor_model import build_floor_model  # noqa: E402
from modeling_mrconv.bench.measure import peak_bytes, saved_bytes  # noqa: E402


def build(args: argparse.Namespace, layers: int, L: int, device: torch.device) -> dict:
    """The step functions of every model at (layers, L), keyed by name."""
    config = {
        "hidden_size": args.hidden_size,
        "num_hidden_layers": layers,
        "max_sequence_length": L,
        "kernel_type": args.kernel_type,
        "kernel_size": args.kernel_size,
        "bidirectional": not args.causal,
        "num_labels": 10,
    }
    input_ids = torch.randint(1, 259, (args.batch_size, L), device=device)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)
    attention_mask, predictor_ids = None, input_ids  # the merged and floor forwards: unpadded
    if args.padding > 0:
        generator = torch.Generator().manual_seed(0)
        lengths = torch.randint(round(L * (1 - 2 * args.padding)), L + 1, (args.batch_size,), generator=generator)
        lengths[0] = L
        attention_mask = (torch.arange(L)[None] < lengths[:, None]).long().to(device)  # (B L) right padding
        input_ids = input_ids * attention_mask
    models = {}

    def trainer(model):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            loss = F.cross_entropy(model(input_ids=input_ids, attention_mask=attention_mask).logits, labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step

    def predictor(model):
        def step():
            with torch.no_grad():
                out = model(input_ids=predictor_ids)
            return out.logits if hasattr(out, "logits") else out

        return step

    torch.manual_seed(0)
    mrconv = MRConvConfig(**config, conv_implementation="fast")
    mrconv = MRConvForSequenceClassification(mrconv).to(device).train()
    models["mrconv"] = (trainer(mrconv), mrconv)
    if args.reference:
        reference = MRConvConfig(**config, conv_implementation="reference")
        reference = MRConvForSequenceClassification(reference).to(device).train()
        models["reference"] = (trainer(reference), reference)
    single = MRConvForSequenceClassification(MRConvConfig(**config, reparameterized=True)).to(device).train()
    models["single"] = (trainer(single), single)
    merged = MRConvForSequenceClassification(MRConvConfig(**config)).to(device)
    with torch.no_grad():  # move the running statistics away from their init before merging
        merged(input_ids=predictor_ids)
    merged.eval().reparameterize()
    models["merged"] = (predictor(merged), merged)
    floor = build_floor_model(MRConvConfig(**config, reparameterized=True)).to(device).eval()
    models["floor"] = (predictor(floor), floor)
    return models


def measure(models: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """Median seconds per call and memory of every model."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for step, _ in models.values():
        for _ in range(args.warmup):
            step()
    results = {name: {"times": []} for name in models}
    for name, (step, model) in models.items():
        if model.training:
            results[name]["saved"] = saved_bytes(step, list(model.parameters()))
        results[name]["peak"] = peak_bytes(step, device)
    names = list(models)
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            sync()
            start = time.perf_counter()
            models[name][0]()
            sync()
            results[name]["times"].append(time.perf_counter() - start)
    for result in results.values():
        result["median"] = statistics.median(result["times"])
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
    header += f"{'saved MiB':>11} {'saved':>6} {'peak':>6}"
    header += f" | {'merged':>8} {'floor':>8} {'merged/floor':>12}"
    if args.reference:
        header += f" | {'reference':>9} {'ref/single':>10} {'ref saved':>9}"
    print(header)
    for L in args.lengths:
        for layers in args.layers:
            models = build(args, layers, L, device)
            N = models["mrconv"][1].config.num_branches
            r = measure(models, args, device)
            ms = {name: 1e3 * result["median"] for name, result in r.items()}
            saved = {name: r[name]["saved"] / 2**20 for name in ("mrconv", "single")}
            line = (
                f"{layers:>6} {L:>6} {N:>3} | {ms['mrconv']:>6.0f}ms {ms['single']:>6.0f}ms "
                f"{ms['mrconv'] / ms['single']:>9.2f}x {saved['mrconv']:>5.0f}/{saved['single']:<5.0f} "
                f"{r['mrconv']['saved'] / r['single']['saved']:>5.2f}x "
                f"{r['mrconv']['peak'] / r['single']['peak']:>5.2f}x | {ms['merged']:>6.0f}ms {ms['floor']:>6.0f}ms "
                f"{ms['merged'] / ms['floor']:>11.3f}x"
            )
            if args.reference:
                line += (
                    f" | {ms['reference']:>7.0f}ms {ms['reference'] / ms['single']:>9.2f}x "
                    f"{r['reference']['saved'] / r['single']['saved']:>8.2f}x"
                )
            print(line, flush=True)
            del models


if __name__ == "__main__":
    main()
