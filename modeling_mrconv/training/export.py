"""What the training loop writes next to the merged export: the task's preprocessing for raw continuous series
(`preprocessor_config.json`, `MRConvFeatureExtractor`) and the model card (`README.md` with Hub metadata, as
`Trainer.create_model_card` writes for Trainer runs)."""

import importlib.metadata
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCardData
from transformers import PreTrainedConfig

from modeling_mrconv.data import TASKS, TaskData
from modeling_mrconv.feature_extraction_mrconv import MRConvFeatureExtractor


# the first line of every card this module writes: a README.md without it is the user's and is never replaced
CARD_MARKER = "<!-- model card written by scripts/train.py (modeling_mrconv.training); the next run replaces it -->"
AUDIO_TASKS = ("speech_commands", "synthetic_audio")
IMAGE_TASKS = ("image", "scifar", "pathfinder", "pathx", "digits")


def task_feature_extractor(data_cfg: dict[str, Any], task: TaskData) -> MRConvFeatureExtractor | None:
    """The feature extractor that turns raw series into the inputs of the `sequence` task built from `data_cfg`:
    missing values interpolated, the task's `normalize` (`global`: the train split's statistics); None for other
    tasks."""
    if data_cfg.get("task") != "sequence" or task.input_dim is None:
        return None
    normalize = TASKS["sequence"].config_cls(**data_cfg).normalize  # the preset's value or the task's default
    stats = {}
    if normalize == "global":  # the train split's per-channel statistics, as the task computed them
        stats = {"mean": [float(m) for m in task.input_mean], "std": [float(s) for s in task.input_std]}
    return MRConvFeatureExtractor(
        feature_size=task.input_dim,
        normalize=normalize,
        interpolate_missing=True,  # the task's rule for NaN, None and `?` in its files
        **stats,
    )


def task_type(data_cfg: dict[str, Any], config: PreTrainedConfig) -> str:
    """The Hub task of a run: text-, image- or audio-classification, or this package's `sequence-classification`."""
    name = data_cfg.get("task")
    if config.model_type == "mrconvnext" or name in IMAGE_TASKS:
        return "image-classification"
    if name in AUDIO_TASKS:
        return "audio-classification"
    return "text-classification" if getattr(config, "input_dim", None) is None else "sequence-classification"


def write_model_card(
    output_dir: Path, preset: dict[str, Any], results: dict[str, Any], config: PreTrainedConfig
) -> bool:
    """Write `model_card` as `output_dir/README.md`, unless a README.md without `CARD_MARKER` (the user's) is there;
    returns whether the card was written."""
    path = Path(output_dir) / "README.md"
    if path.exists() and CARD_MARKER not in path.read_text(errors="replace"):
        return False
    path.write_text(model_card(Path(output_dir).name, preset, results, config))
    return True


def model_card(name: str, preset: dict[str, Any], results: dict[str, Any], config: PreTrainedConfig) -> str:
    """The README.md of an export: Hub metadata (library, tags, datasets, metrics, model-index with the measured
    results), the data, the results, the intended use, usage, the preset and the framework versions."""
    data = preset["data"]
    kind = task_type(data, config)
    hub_dataset = data.get("dataset_name") if data.get("source") == "hub" else None
    dataset_type = hub_dataset or f"{data.get('task')}-{data.get('source') or 'default'}"
    dataset_name = hub_dataset or f"{data.get('task')} ({data.get('source') or 'default source'})"
    scores = [
        ("test", "accuracy", results["test_accuracy"], "Test accuracy", None),
        ("test", "f1", results["test_macro_f1"], "Test macro-F1", {"average": "macro"}),
        ("validation", "accuracy", results["validation_accuracy"], "Validation accuracy", None),
    ]
    metadata = ModelCardData(
        library_name="transformers",
        tags=["mrconv", "long-sequence", "convolution", "reparameterization", kind],
        datasets=[hub_dataset] if hub_dataset else None,
        metrics=["accuracy", "f1"],
        pipeline_tag=kind if kind != "sequence-classification" else None,
        model_name=name,
        eval_results=[
            EvalResult(
                task_type=kind,
                task_name=kind.replace("-", " ").capitalize(),
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_split=split,
                dataset_config=data.get("dataset_config"),
                metric_type=metric,
                metric_value=round(float(value), 4),
                metric_name=label,
                metric_args=args,
            )
            for split, metric, value, label, args in scores
        ],
    )
    table = "\n".join(
        f"| {key} | {round(value, 4) if isinstance(value, float) else value} |"
        for key, value in results.items()
        if key != "data"
    )
    preset_yaml = yaml.safe_dump(preset, sort_keys=False).rstrip()
    generated = data.get("source", "generate") == "generate" and data.get("task") not in ("text", "retrieval")
    note = "The data set is generated (synthetic): the model is a benchmark result, not a tool for real data.\n"
    return f"""---
{metadata.to_yaml()}
---
{CARD_MARKER}

# {name}

{config.architectures[0] if config.architectures else type(config).__name__} trained with `scripts/train.py` of the
`mrconv` repository (package `modeling-mrconv`): MRConv, reparameterized multi-resolution convolutions (Cunningham et
al., *Reparameterized Multi-Resolution Convolutions for Long Sequence Modelling*, NeurIPS 2024). The weights are the
merged inference form: one long kernel per layer. The modeling code is in this folder (`trust_remote_code=True`).

## Data

{results.get("data", "")}

Task `{data.get("task")}`, source `{data.get("source") or "default"}`; every data key is in the preset below.

## Results

Measured by the training run on its splits (the merged export, reloaded from disk), one seed
(`train.seed={preset["train"].get("seed")}`):

| result | value |
|---|---|
{table}

## Intended use and limitations

Classifying inputs drawn like this data set's, e.g. to study MRConv or as a baseline. It has seen only this data:
on inputs of another kind or scale its predictions mean nothing. Compare the accuracy with the majority baseline above.
{note if generated else ""}
## How to use

```python
{_usage(config, data)}
```

## Training preset (`training_preset.yaml`)

```yaml
{preset_yaml}
```

## Framework versions

{_versions()}
"""


def _usage(config: PreTrainedConfig, data: dict[str, Any]) -> str:
    """The card's example: the export's pipeline on one input of its kind."""
    before, after = "", ""
    if config.model_type == "mrconvnext":
        pipeline_task, imports, example = "image-classification", "from PIL import Image\n", 'Image.open("image.png")'
    elif getattr(config, "input_dim", None) is None:
        pipeline_task, imports, example = "text-classification", "", '"your input text"'
    else:
        pipeline_task, imports = "sequence-classification", "import numpy as np\n"
        example, after = f"np.random.randn(100, {config.input_dim})", "  # one series (length, channels)"
        before = (
            f"# raw series: preprocessor_config.json applies the task's preprocessing (NaN interpolated, "
            f"normalize {TASKS['sequence'].config_cls(**data).normalize})\n"
            if data.get("task") == "sequence"
            else "# the series as the data task feeds the model (scaled and normalized as in training)\n"
        )
    return (
        f"{imports}from transformers import pipeline\n\n"
        f'classify = pipeline("{pipeline_task}", model="path/to/this/folder", trust_remote_code=True)\n'
        f"{before}classify({example}, top_k=3){after}"
    )


def _versions() -> str:
    lines = []
    for package in ("modeling-mrconv", "transformers", "torch", "accelerate", "datasets"):
        try:
            lines.append(f"- {package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return "\n".join(lines)


__all__ = ["CARD_MARKER", "model_card", "task_feature_extractor", "task_type", "write_model_card"]
