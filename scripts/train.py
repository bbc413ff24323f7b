"""Train MRConv on a task preset with Accelerate, export the merged model, reload it and evaluate the test split.

    python scripts/train.py                                   # default: generated ListOps at CPU scale (~4 min on 2 idle cores)
    python scripts/train.py --config configuration/listops.yaml --output_dir runs/listops
    accelerate launch scripts/train.py --config configuration/image.yaml --mixed_precision bf16   # 1..n GPUs
    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 scripts/train.py --config configuration/tiny.yaml
    python scripts/train.py --config configuration/tiny.yaml --resume runs/tiny/checkpoints/latest
    python scripts/train.py --set train.batch_size=16 model.kernel_size=8    # dotted overrides of the preset
    python scripts/train.py --set train.report_to=tensorboard                 # then: tensorboard --logdir runs/listops_cpu

The output directory holds the merged export (config.json, model.safetensors, the modeling code, the tokenizer or,
for `sequence`, preprocessor_config.json), a model card README.md, `metrics.jsonl` (one line per log/eval event, also
sent to `train.report_to`'s trackers; TensorBoard events under `mrconv/`), `all_results.json`, `training_preset.yaml`
and `checkpoints/step_<N>` (resumable training-form `accelerator.save_state` folders; `latest` names the newest).

Arguments, the preset file, its sections and `train:` keys, the output folder and `--resume` are checked before torch
is imported; user errors end in one line and exit status 2.
"""

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType


def light_module(name: str) -> ModuleType:
    """`modeling_mrconv/training/<name>.py` loaded from its file, without running `modeling_mrconv/__init__.py` (torch,
    transformers): `--help`, the preset and the output folder are checked before the heavy imports."""
    package = importlib.util.find_spec("modeling_mrconv")  # finds the installed package without importing it
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("modeling_mrconv is not installed: pip install -e '.[train]'")
    path = Path(package.submodule_search_locations[0]) / "training" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_mrconv_cli_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    config, run_dir = light_module("config"), light_module("run_dir")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=config.DEFAULT_PRESET, help="YAML preset in configuration/")
    parser.add_argument("--output_dir", default=None, help="defaults to runs/<preset name>")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="override preset values")
    parser.add_argument("--resume", default=None, help="a checkpoints/step_<N> folder, or checkpoints/latest")
    parser.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"], default=None)
    parser.add_argument("--max_steps", type=int, default=None, help="shortcut for --set train.max_steps=N")
    parser.add_argument("--cpu", action="store_true", help="train on CPU even when a GPU is present")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace an output_dir this script wrote")
    args = parser.parse_args()
    overrides = list(args.set) + ([f"train.max_steps={args.max_steps}"] if args.max_steps else [])
    output_dir = Path(args.output_dir or Path("runs") / args.config.stem)
    rank_zero = int(os.environ.get("RANK", "0")) == 0  # before any process writes: rank 0 alone decides

    def user_error(error: Exception) -> None:  # one line and exit status 2, as argparse reports bad arguments
        parser.exit(2, f"{parser.prog}: error: {error}\n")

    try:  # user errors that need no torch: the file, sections, --set, train keys, the output folder, --resume
        config.read_preset(args.config, overrides)
        if args.resume is not None:
            run_dir.resolve_resume(args.resume)
        if rank_zero:
            run_dir.check_output_dir(output_dir, args.resume, args.overwrite_output_dir)
    except (ValueError, FileNotFoundError) as error:
        user_error(error)

    from modeling_mrconv.training import load_preset, prepare_output_dir, train  # torch, transformers, accelerate

    try:  # model: and data: keys against the config classes
        preset = load_preset(args.config, overrides)
    except (ValueError, FileNotFoundError) as error:
        user_error(error)
    if rank_zero:
        prepare_output_dir(output_dir, args.resume, args.overwrite_output_dir)  # deletes only after every check
    train(preset, str(output_dir), args.resume, args.mixed_precision, args.cpu)


if __name__ == "__main__":
    main()
