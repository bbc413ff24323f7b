"""The local `evaluate` module `mrconv_classification` and the Trainer hook `compute_metrics`, offline."""

import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from transformers import EvalPrediction

from modeling_mrconv import compute_metrics
from modeling_mrconv.metrics import classification_metrics, metric_path


def test_values_and_confusion_matrix_match_sklearn():
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    predictions[predictions == 3] = 2  # a class never predicted
    scores = classification_metrics(predictions, labels, num_labels=5, confusion_matrix=True)
    assert scores["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert scores["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro"))
    assert scores["confusion_matrix"] == confusion_matrix(labels, predictions, labels=range(5)).tolist()
    assert len(scores["confusion_matrix"]) == 5 and scores["confusion_matrix"][4] == [0] * 5
    with pytest.raises(ValueError, match=r"num_labels=3 but class ids span \[0, 3\]"):
        classification_metrics(predictions, labels, num_labels=3)


def test_loads_offline_by_path_in_a_fresh_process(tmp_path):
    script = (
        "import evaluate\n"
        f"metric = evaluate.load({metric_path()!r})\n"
        "print(metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 0, 2]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = f1_score([0, 1, 0, 2], [0, 1, 1, 2], average="macro")
    assert result.stdout.strip().splitlines()[-1] == str(
        {"accuracy": 0.75, "macro_f1": expected, "confusion_matrix": [[1, 1, 0], [0, 1, 0], [0, 0, 1]]}
    )


def test_trainer_compute_metrics_keys_and_values():
    rng = np.random.default_rng(1)
    labels, logits = rng.integers(0, 3, 50), rng.normal(size=(50, 3))
    metrics = compute_metrics(EvalPrediction(predictions=(logits,), label_ids=labels))
    assert set(metrics) == {"accuracy", "macro_f1"}  # scalars only: Trainer logs them
    predictions = logits.argmax(-1)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro"))
