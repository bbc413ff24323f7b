"""The evaluation loop: accuracy, macro-F1 and mean loss over a prepared loader, gathered over processes."""

from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from modeling_mrconv.metrics import classification_metrics


def dataset_labels(dataset: Any) -> torch.Tensor:
    """Every label of a split (B,): a `datasets.Dataset`'s label column, or a stream's labels read one batch at a time
    (the stream is read through once, holding only the labels)."""
    from datasets import IterableDataset

    if isinstance(dataset, IterableDataset):
        batches = dataset.select_columns(["labels"]).with_format("numpy").iter(batch_size=1024)
        return torch.from_numpy(np.concatenate([batch["labels"] for batch in batches])).long()
    return torch.tensor(dataset.with_format("arrow")["labels"].to_numpy(), dtype=torch.long)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    accelerator: Accelerator,
    num_labels: int,
    confusion_matrix: bool = False,
) -> dict[str, float]:
    """Accuracy, macro-F1 and mean loss (and the confusion matrix, rows = true class) over a prepared loader,
    gathered over processes (no duplicates), scored by `modeling_mrconv.metrics`."""
    was_training = model.training
    model.eval()
    predictions, labels, losses = [], [], []
    for batch in loader:
        out = model(**batch)
        loss = out.loss.detach().float().repeat(len(batch["labels"]))
        preds, labs, loss = accelerator.gather_for_metrics((out.logits.argmax(-1), batch["labels"], loss))
        predictions.append(preds.cpu())
        labels.append(labs.cpu())
        losses.append(loss.cpu())
    model.train(was_training)
    predictions, labels = torch.cat(predictions).numpy(), torch.cat(labels).numpy()
    scores = classification_metrics(predictions, labels, num_labels, confusion_matrix=confusion_matrix)
    return {**scores, "loss": torch.cat(losses).mean().item()}
