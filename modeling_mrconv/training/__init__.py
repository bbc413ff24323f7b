"""Training and evaluation on the Hugging Face stack (the `train` extra: accelerate, datasets): presets and
`TrainConfig`, model building, the training loop of `scripts/train.py` (`train`), evaluation."""

from modeling_mrconv.training.config import DEFAULT_PRESET, TrainConfig, load_preset
from modeling_mrconv.training.evaluation import evaluate
from modeling_mrconv.training.loop import train
from modeling_mrconv.training.models import build_model, model_class
from modeling_mrconv.training.run_dir import mark_run_dir, prepare_output_dir, resolve_resume


__all__ = [
    "DEFAULT_PRESET",
    "TrainConfig",
    "build_model",
    "evaluate",
    "load_preset",
    "mark_run_dir",
    "model_class",
    "prepare_output_dir",
    "resolve_resume",
    "train",
]
