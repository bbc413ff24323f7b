"""Continuous inputs: raw (L, C) arrays (uint8 pixels, int16 samples) -> float32 `input_values`, scaled and optionally
normalized per channel with the train split's statistics."""

from typing import Any

import numpy as np

from modeling_mrconv.data.base import SPLITS, TaskConfig, value_features
from modeling_mrconv.data.caching import map_batches


def channel_stats(dataset: Any, column: str, scale: float) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of `column * scale` over every step of `dataset`, in float64, one batch at a time."""
    total = total_sq = count = 0
    for batch in dataset.with_format("numpy").iter(batch_size=256):
        for x in batch[column]:
            x = np.asarray(x, dtype=np.float64) * scale  # (L C)
            total, total_sq, count = total + x.sum(0), total_sq + (x * x).sum(0), count + len(x)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    return mean.tolist(), std.tolist()


def _scale(batch: dict, column: str, scale: float, mean: list | None, std: list | None) -> dict:
    scale32 = np.float32(scale)
    values = [np.asarray(x).astype(np.float32) * scale32 for x in batch[column]]  # (L C) each
    if mean is not None:
        mean32, std32 = np.asarray(mean, np.float32), np.asarray(std, np.float32)  # (C)
        values = [(x - mean32) / std32 for x in values]
    return {"input_values": values, "labels": batch["labels"]}


def scale_values(
    splits: Any, config: TaskConfig, column: str, scale: float, normalize: bool = False
) -> tuple[Any, list[float] | None, list[float] | None]:
    """(splits, mean, std): every split's raw `column` mapped to float32 `input_values = column * scale`, then
    `(x - mean) / std` with the train split's per-channel statistics when `normalize` (else mean, std are None)."""
    mean = std = None
    if normalize:
        mean, std = channel_stats(splits["train"], column, scale)
        std = [s + 1e-8 for s in std]
    features = splits["train"].features
    out = value_features(features[column].shape[1], features["labels"].names)
    kwargs = {"column": column, "scale": float(scale), "mean": mean, "std": std}
    for split in SPLITS:
        splits[split] = map_batches(splits[split], _scale, out, config, kwargs, numpy=True)
    return splits, mean, std
