"""Train MRConv on a task preset with Accelerate, export the merged model, reload it and evaluate the test split.

Commands:
    python scripts/train.py                                   # default: generated ListOps at CPU scale (~4 min on 2 idle cores)
    python scripts/train.py --config configuration/listops.yaml --output_dir runs/listops
    accelerate launch scripts/train.py --config configuration/image.yaml --mixed_precision bf16   # 1..n GPUs
    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 scripts/train.py --config configuration/tiny.yaml
    python scripts/train.py --config configuration/tiny.yaml --resume runs/tiny/checkpoints/latest
    python scripts/train.py --set train.batch_size=16 model.kernel_size=8    # dotted overrides of the preset
    python scripts/train.py --set train.report_to=tensorboard                 # then: tensorboard --logdir runs/listops_cpu

The output directory (HF-style) holds the merged export (config.json, model.safetensors, the copied modeling code,
the tokenizer), `metrics.jsonl` (one line per log/eval event; also sent to `train.report_to`'s trackers, TensorBoard
events under `mrconv/`), `all_results.json`, `training_preset.yaml` and
`checkpoints/step_<N>` (resumable `accelerator.save_state` folders, training form, `latest` pointing at the newest).
"""

import argparse
import os
from pathlib import Path

from modeling_mrconv.training import DEFAULT_PRESET, load_preset, prepare_output_dir, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_PRESET, help="YAML preset in configuration/")
    parser.add_argument("--output_dir", default=None, help="defaults to runs/<preset name>")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="override preset values")
    parser.add_argument("--resume", default=None, help="a checkpoints/step_<N> folder, or checkpoints/latest")
    parser.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"], default=None)
    parser.add_argument("--max_steps", type=int, default=None, help="shortcut for --set train.max_steps=N")
    parser.add_argument("--cpu", action="store_true", help="train on CPU even when a GPU is present")
    parser.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="replace an output_dir written by an earlier run of this script",
    )
    args = parser.parse_args()
    overrides = list(args.set) + ([f"train.max_steps={args.max_steps}"] if args.max_steps else [])
    preset = load_preset(args.config, overrides)
    args.output_dir = args.output_dir or str(Path("runs") / args.config.stem)
    if int(os.environ.get("RANK", "0")) == 0:  # before any process writes: rank 0 alone decides
        prepare_output_dir(Path(args.output_dir), args.resume, args.overwrite_output_dir)
    train(preset, args.output_dir, args.resume, args.mixed_precision, args.cpu)


if __name__ == "__main__":
    main()
