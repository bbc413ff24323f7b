"""The classifier of a task: model class choice and an `MRConvConfig` sized from the task's data."""

from typing import Any

import torch
from tasks import TaskData

from modeling_mrconv import MRConvConfig, MRConvForDocumentPairClassification, MRConvForSequenceClassification


def model_class(task: TaskData) -> type[MRConvForSequenceClassification | MRConvForDocumentPairClassification]:
    """The pair head for two-document tasks (retrieval), else the sequence head."""
    return MRConvForDocumentPairClassification if task.pair else MRConvForSequenceClassification


def build_model(model_cfg: dict[str, Any], task: TaskData) -> torch.nn.Module:
    """The classifier for a task: token or continuous inputs, sized from the data, single-label."""
    config = MRConvConfig(
        **{"max_sequence_length": task.max_length, **model_cfg},
        vocab_size=task.vocab_size or 1,
        input_dim=task.input_dim,
        pad_token_id=task.pad_token_id,
        num_labels=task.num_labels,
        id2label=task.id2label,
        label2id={v: k for k, v in task.id2label.items()},
        problem_type="single_label_classification",
    )
    if config.max_sequence_length < task.max_length:
        raise ValueError(f"model.max_sequence_length {config.max_sequence_length} < data length {task.max_length}")
    return model_class(task)(config)
