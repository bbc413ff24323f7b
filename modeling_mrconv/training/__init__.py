"""What `scripts/train.py` and `scripts/evaluate_model.py` share: presets and `TrainConfig`, model building, evaluation."""

from training.config import DEFAULT_PRESET, TrainConfig, load_preset
from training.evaluation import dataset_labels, evaluate
from training.models import build_model, model_class
from training.run_dir import mark_run_dir, prepare_output_dir


__all__ = [
    "DEFAULT_PRESET",
    "TrainConfig",
    "build_model",
    "dataset_labels",
    "evaluate",
    "load_preset",
    "mark_run_dir",
    "model_class",
    "prepare_output_dir",
]
