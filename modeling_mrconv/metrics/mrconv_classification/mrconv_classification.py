"""`mrconv_classification`: accuracy, macro-F1 and the confusion matrix of single-label predictions (scikit-learn).

A local `evaluate` module: `evaluate.load(modeling_mrconv.metrics.metric_path())` loads it offline. `evaluate` copies
this file into its modules cache and imports it there, so it imports only `evaluate`, `datasets` and scikit-learn.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix  # `_compute`'s argument shadows the name


_DESCRIPTION = """
Single-label classification scores: accuracy (fraction of exact matches), macro-F1 (unweighted mean of the per-class
F1 over the classes that occur in the references or the predictions, as scikit-learn's `f1_score(average="macro")`)
and the confusion matrix (rows: references, columns: predictions).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    num_labels (`int`, *optional*): number of classes; fixes the confusion matrix to (num_labels, num_labels) over
        ids 0..num_labels-1 (ids outside that range are an error). Without it the matrix covers the ids that occur.
    confusion_matrix (`bool`, defaults to `True`): also return the confusion matrix (a list of rows).
Returns:
    `accuracy` (`float`), `macro_f1` (`float`) and, if asked, `confusion_matrix` (`list[list[int]]`).
Examples:
    >>> metric = evaluate.load(path)
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], num_labels=2)
    {'accuracy': 0.6666666666666666, 'macro_f1': 0.6666666666666666, 'confusion_matrix': [[1, 1], [0, 1]]}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MrconvClassification(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, num_labels: int | None = None, confusion_matrix: bool = True) -> dict:
        predictions, references = np.asarray(predictions, dtype=np.int64), np.asarray(references, dtype=np.int64)
        if len(references) == 0:
            raise ValueError("mrconv_classification: got no predictions/references to score")
        if num_labels is not None:
            both = np.concatenate([predictions, references])
            if both.min() < 0 or both.max() >= num_labels:
                raise ValueError(
                    f"mrconv_classification: num_labels={num_labels} but class ids span "
                    f"[{both.min()}, {both.max()}]; expected ids in [0, {num_labels - 1}]"
                )
        present = np.union1d(predictions, references)  # macro-F1 over the classes that occur
        scores = {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(f1_score(references, predictions, labels=present, average="macro", zero_division=0.0)),
        }
        if confusion_matrix:
            labels = np.arange(num_labels) if num_labels is not None else present
            scores["confusion_matrix"] = sklearn_confusion_matrix(references, predictions, labels=labels).tolist()
        return scores
