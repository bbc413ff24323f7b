"""Evaluate an export (merged) or a training checkpoint on a split of its task, or on a data file, and write
`eval_results.json`.

    python scripts/evaluate_model.py --model_dir runs/listops_cpu                       # the export, test split
    python scripts/evaluate_model.py --model_dir runs/listops_cpu/checkpoints/step_300 --split validation
    python scripts/evaluate_model.py --model_dir runs/mine --data_file new_series.parquet  # a file, as the test split
    python scripts/evaluate_model.py --model_dir path/to/export --config configuration/listops.yaml --set data.source=local ...

The task comes from `--config`, else from `training_preset.yaml` in the model folder or its run folder. `--data_file
PATH` is the test split of the run's task read with `source: local` (tasks with a `test_file` key): generator keys are
dropped, `train_file` and `validation_file` default to PATH (so `normalize: global` statistics come from it) and
string labels map to the model's classes (`label_names`: its `config.id2label`). `eval_results.json` (in
`--output_dir`, default the model folder) holds `<split>_accuracy`, `_macro_f1`, `_loss`, `_confusion_matrix` (rows:
true class) and the data's origin; an existing one is replaced only if this script wrote it (`written_by`).

Metrics: `modeling_mrconv.metrics`, not `evaluate.evaluator` (evaluate 0.4.6 tests `transformers.TFPreTrainedModel`,
gone in transformers 5, and covers neither (L, C) series nor document pairs). Not named `evaluate.py`: that would
hide the `evaluate` library from every script (`scripts/` comes first on `sys.path`).
"""

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from modeling_mrconv.data import TASKS, load_task
from modeling_mrconv.data.base import keys_for_other_sources
from modeling_mrconv.training import evaluate, load_preset, model_class


RESULTS_FILE = "eval_results.json"
WRITTEN_BY = "scripts/evaluate_model.py"  # the value of the marker key `written_by`: files holding it are ours


def find_preset(model_dir: Path) -> Path:
    for folder in (model_dir, *model_dir.parents[:3]):
        if (path := folder / "training_preset.yaml").exists():
            return path
    raise FileNotFoundError(f"No training_preset.yaml in or above {model_dir}; pass --config")


def load_model(model_dir: Path, task, architecture: str | None = None) -> torch.nn.Module:
    """An export (from_pretrained) or an accelerate `save_state` folder (config.json + training-form weights)."""
    cls = model_class(task, architecture)
    if (model_dir / "trainer_state.json").exists():  # written by scripts/train.py next to save_state's files
        model = cls(cls.config_class.from_pretrained(model_dir))
        model.load_state_dict(load_file(model_dir / "model.safetensors"))
        return model.eval()
    return cls.from_pretrained(model_dir)


def data_file_config(data: dict[str, Any], path: Path, label_names: list[str]) -> dict[str, Any]:
    """The run's `data:` section turned into `source: local` with `path` as its test file (module docstring)."""
    spec = TASKS[data["task"]]  # load_preset checked the task
    fields = spec.config_cls.__dataclass_fields__
    if "test_file" not in fields or "local" not in spec.config_cls.SOURCES:
        readers = sorted(t for t, s in TASKS.items() if "test_file" in s.config_cls.__dataclass_fields__)
        raise ValueError(f"--data_file: task {data['task']!r} does not read data files; tasks that do: {readers}")
    if not path.exists():
        raise FileNotFoundError(f"--data_file {path} does not exist")
    dropped = keys_for_other_sources(spec.config_cls, "local")
    if data.get("source") != "local":
        dropped |= {"train_file", "validation_file"}
    cfg = {k: v for k, v in data.items() if k not in dropped}
    cfg.update(source="local", test_file=str(path.resolve()))
    for key in ("train_file", "validation_file"):
        cfg[key] = cfg.get(key) or str(path.resolve())
    if "label_names" in fields:
        cfg["label_names"] = list(label_names)
    return cfg


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate as the command line asks; returns what `eval_results.json` holds."""
    split = args.split or "test"
    if args.data_file is not None and split != "test":
        raise ValueError(f"--data_file is scored as the test split; drop --split {split}")
    results_path = Path(args.output_dir or args.model_dir) / RESULTS_FILE
    if results_path.exists() and f'"written_by": "{WRITTEN_BY}"' not in results_path.read_text(errors="replace"):
        raise ValueError(
            f"{results_path} exists and was not written by {WRITTEN_BY} (no 'written_by' key); move it away or pass "
            "another --output_dir"
        )
    preset = load_preset(args.config or find_preset(args.model_dir), args.set)
    data = preset["data"]
    if args.data_file is not None:
        id2label = json.loads((Path(args.model_dir) / "config.json").read_text())["id2label"]  # any architecture
        names = [id2label[str(i)] for i in range(len(id2label))]
        data = data_file_config(data, Path(args.data_file), names)
    accelerator = Accelerator()
    length = preset["model"].get("max_sequence_length")  # the run's: its documents were cut to it
    task = load_task(data, seed=preset["train"]["seed"], max_sequence_length=length)
    model = load_model(args.model_dir, task, preset["model"].get("architecture"))
    if model.config.num_labels != task.num_labels:
        raise ValueError(f"model has {model.config.num_labels} labels, the task {task.num_labels}")
    factor = args.sampling_rate_factor
    if factor is not None:
        model = model.change_sampling_rate(factor)
    dataset = getattr(task, split)
    loader = DataLoader(dataset, batch_size=args.batch_size, collate_fn=task.collate_fn)
    model, loader = accelerator.prepare(model, loader)
    metrics = evaluate(model, loader, accelerator, task.num_labels, confusion_matrix=True)
    results = {"written_by": WRITTEN_BY, **{f"{split}_{k}": v for k, v in metrics.items()}}
    results.update(
        split=split,
        num_examples=len(dataset),
        data_file=None if args.data_file is None else str(Path(args.data_file).resolve()),
        data=task.description,
        id2label={str(k): v for k, v in task.id2label.items()},
        model_dir=str(args.model_dir),
        reparameterized=bool(model.config.reparameterized),
    )
    if factor is not None:
        results.update(sampling_rate_factor=factor, max_sequence_length=model.config.max_sequence_length)
    accelerator.print(json.dumps({k: v for k, v in results.items() if not k.endswith("confusion_matrix")}, indent=2))
    if accelerator.is_main_process:
        text = json.dumps(results, indent=2) + "\n"
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(text)
        if args.output_file:
            args.output_file.write_text(text)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None, help="task preset (default: the run's own)")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="override preset values")
    parser.add_argument("--split", choices=["train", "validation", "test"], default=None, help="default: test")
    parser.add_argument("--data_file", type=Path, default=None, help="score this file as the task's test split")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--output_dir", type=Path, help=f"where {RESULTS_FILE} goes (default: model_dir)")
    parser.add_argument("--output_file", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument(
        "--sampling_rate_factor", type=float, help="zero-shot model.change_sampling_rate(factor) (0.5: 16 -> 8 kHz)"
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
