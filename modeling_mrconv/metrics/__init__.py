"""Classification metrics through the `evaluate` library and the project's local module `mrconv_classification`.

`metric_path()` locates the module shipped inside this package (`metrics/mrconv_classification/`), so
`evaluate.load(metric_path())` works offline from a source checkout and from an installed wheel. `evaluate` is
imported lazily (it belongs to the `train` extra): `import modeling_mrconv` does not need it.
"""

from functools import cache
from pathlib import Path

import numpy as np
from transformers import EvalPrediction


METRIC_NAME = "mrconv_classification"


def metric_path() -> str:
    """Folder of the local `evaluate` module (holds `mrconv_classification.py`): the argument of `evaluate.load`."""
    return str(Path(__file__).resolve().parent / METRIC_NAME)


@cache
def load_metric():
    """The `mrconv_classification` module, loaded once per process, kept in memory (no cache files, no locks)."""
    import evaluate

    return evaluate.load(metric_path(), keep_in_memory=True)


def classification_metrics(
    predictions: np.ndarray, labels: np.ndarray, num_labels: int | None = None, confusion_matrix: bool = False
) -> dict:
    """Accuracy, macro-F1 (and optionally the confusion matrix) of class ids through `mrconv_classification`."""
    return load_metric().compute(
        predictions=np.asarray(predictions).reshape(-1),
        references=np.asarray(labels).reshape(-1),
        num_labels=num_labels,
        confusion_matrix=confusion_matrix,
    )


def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
    """Accuracy and macro-F1 of single-label logits: the `compute_metrics` argument of `Trainer` (scalars only)."""
    logits = eval_prediction.predictions
    logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits)
    return classification_metrics(logits.argmax(-1), eval_prediction.label_ids, num_labels=logits.shape[-1])


__all__ = ["METRIC_NAME", "classification_metrics", "compute_metrics", "load_metric", "metric_path"]
