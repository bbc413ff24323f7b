"""Offline classification metrics for `Trainer(compute_metrics=...)` and the scripts (no `evaluate.load`)."""

import numpy as np
from transformers import EvalPrediction


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of exact matches."""
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def macro_f1(predictions: np.ndarray, labels: np.ndarray, num_labels: int | None = None) -> float:
    """Unweighted mean over classes of F1; a class absent from both predictions and labels is skipped."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    classes = np.arange(num_labels) if num_labels is not None else np.union1d(predictions, labels)
    scores = []
    for c in classes:
        true_pos = np.sum((predictions == c) & (labels == c))
        denominator = np.sum(predictions == c) + np.sum(labels == c)
        if denominator:
            scores.append(2.0 * true_pos / denominator)
    return float(np.mean(scores)) if scores else 0.0


def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
    """Accuracy and macro-F1 of single-label logits: the `compute_metrics` argument of `Trainer`."""
    logits = eval_prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    predictions = np.asarray(logits).argmax(-1)
    labels = np.asarray(eval_prediction.label_ids)
    return {"accuracy": accuracy(predictions, labels), "macro_f1": macro_f1(predictions, labels, logits.shape[-1])}


__all__ = ["accuracy", "compute_metrics", "macro_f1"]
