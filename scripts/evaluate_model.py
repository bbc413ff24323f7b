"""Evaluate an exported (merged) model or a training checkpoint on a split of its task.

Commands:
    python scripts/evaluate_model.py --model_dir runs/listops_cpu                       # the export, test split
    python scripts/evaluate_model.py --model_dir runs/listops_cpu/checkpoints/step_300 --split validation
    python scripts/evaluate_model.py --model_dir path/to/export --config configuration/listops.yaml --set data.source=local ...

The task comes from `--config`, else from `training_preset.yaml` in the model folder or its run folder.

Named `evaluate_model.py`, not `evaluate.py`: a script runs with `scripts/` first on `sys.path`, so a file
`scripts/evaluate.py` would hide the `evaluate` library from every script and from the metric in
`modeling_mrconv.metrics`.
"""

import argparse
import json
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from tasks import build_task_data
from torch.utils.data import DataLoader
from training import evaluate, load_preset, model_class

from modeling_mrconv import MRConvConfig


def find_preset(model_dir: Path) -> Path:
    for folder in (model_dir, *model_dir.parents[:3]):
        if (folder / "training_preset.yaml").exists():
            return folder / "training_preset.yaml"
    raise FileNotFoundError(f"No training_preset.yaml in or above {model_dir}; pass --config")


def load_model(model_dir: Path, task) -> torch.nn.Module:
    """An export (from_pretrained) or an accelerate `save_state` folder (config.json + training-form weights)."""
    cls = model_class(task)
    if (model_dir / "trainer_state.json").exists():  # written by scripts/train.py next to save_state's files
        model = cls(MRConvConfig.from_pretrained(model_dir))
        model.load_state_dict(load_file(model_dir / "model.safetensors"))
        return model.eval()
    return cls.from_pretrained(model_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None, help="task preset (default: the run's own)")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="override preset values")
    parser.add_argument("--split", choices=["train", "validation", "test"], default="test")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--output_file", type=Path, default=None, help="write the metrics as JSON here")
    parser.add_argument(
        "--sampling_rate_factor",
        type=float,
        default=None,
        help="zero-shot rate change (2^-k, e.g. 0.5 for 16 -> 8 kHz): model.change_sampling_rate(factor) first",
    )
    args = parser.parse_args()

    preset = load_preset(args.config or find_preset(args.model_dir), args.set)
    accelerator = Accelerator()
    task = build_task_data(preset["data"], seed=preset["train"]["seed"])
    model = load_model(args.model_dir, task)
    if model.config.num_labels != task.num_labels:
        raise ValueError(f"model has {model.config.num_labels} labels, the task {task.num_labels}")
    if args.sampling_rate_factor is not None:
        model = model.change_sampling_rate(args.sampling_rate_factor)
    loader = DataLoader(getattr(task, args.split), batch_size=args.batch_size, collate_fn=task.collate_fn)
    model, loader = accelerator.prepare(model, loader)
    metrics = evaluate(model, loader, accelerator, task.num_labels)
    results = {f"{args.split}_{k}": v for k, v in metrics.items()}
    results.update(model_dir=str(args.model_dir), reparameterized=bool(model.config.reparameterized))
    if args.sampling_rate_factor is not None:
        results.update(
            sampling_rate_factor=args.sampling_rate_factor, max_sequence_length=model.config.max_sequence_length
        )
    accelerator.print(json.dumps(results, indent=2))
    if args.output_file and accelerator.is_main_process:
        args.output_file.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
