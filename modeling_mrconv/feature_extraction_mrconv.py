"""`MRConvFeatureExtractor`: the preprocessing of a continuous series task, shipped with its export.

The `sequence` task (`modeling_mrconv/data/sequence.py`) interpolates missing values along time and z-normalizes the
series (`normalize: per_series`, `global` or `none`); the export saves this extractor with the task's settings (and
the train split's statistics for `global`) as `preprocessor_config.json`, so `AutoFeatureExtractor` and the
`sequence-classification` pipeline give raw series the trained model's inputs. The task and the export share the math
here (`fill_missing`, `normalize_series`). Copied next to checkpoints: imports only numpy, transformers and stdlib.
"""

from numbers import Real
from typing import Any

import numpy as np
from transformers import BatchFeature, SequenceFeatureExtractor


NORMALIZE = ("per_series", "global", "none")


def fill_missing(x: np.ndarray) -> np.ndarray:
    """Linear interpolation of NaNs along time in each channel of `x` (L, C), the edges taking the nearest observed
    value; a `ValueError` when a channel has none."""
    if not np.isnan(x).any():
        return x
    x, t = x.copy(), np.arange(x.shape[0])
    for c in range(x.shape[1]):
        seen = ~np.isnan(x[:, c])
        if not seen.any():
            raise ValueError(f"channel {c} has no observed value (all NaN): nothing to interpolate from")
        x[:, c] = np.interp(t, t[seen], x[seen, c])
    return x


def normalize_series(
    x: np.ndarray, mode: str, mean: np.ndarray | None = None, std: np.ndarray | None = None
) -> np.ndarray:
    """`x` (L, C) z-normalized by `mode`: `per_series` (each channel to zero mean and unit std, a zero std replaced by
    1), `global` (`(x - mean) / std`, the train split's per-channel statistics) or `none`."""
    if mode == "none":
        return x
    if mode == "per_series":
        std = x.std(0)  # (C)
        return (x - x.mean(0)) / np.where(std > 0, std, 1.0)
    if mode == "global":
        return (x - mean) / std
    raise ValueError(f"normalize: expected one of {' | '.join(NORMALIZE)}, got {mode!r}")


class MRConvFeatureExtractor(SequenceFeatureExtractor):
    """Raw series (L,) or (L, C) -> the model's `input_values` (B, L, C) float32 and `attention_mask` (B, L).

    Each series: non-finite values are refused, except NaN (missing) when `interpolate_missing` (filled by linear
    interpolation along time, as the `sequence` task does); then `normalize` (`per_series`, `global` with `mean` and
    `std`, or `none`). A batch is padded on the right with `padding_value` and masked.

    Args:
        feature_size: The number of channels C (the model's `input_dim`).
        sampling_rate: Steps per second of the series (1: unitless).
        padding_value: The value of padded positions (never seen by the model: they are masked).
        normalize: `per_series`, `global` or `none`, as the task's `data.normalize`.
        mean: Per-channel mean of the train split (`global` only).
        std: Per-channel std of the train split, zeros replaced by 1 (`global` only).
        interpolate_missing: Fill NaN by linear interpolation; when False, a NaN is an error.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = 1,
        padding_value: float = 0.0,
        normalize: str = "none",
        mean: list[float] | None = None,
        std: list[float] | None = None,
        interpolate_missing: bool = False,
        **kwargs,
    ):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        if normalize not in NORMALIZE:
            raise ValueError(f"normalize: expected one of {' | '.join(NORMALIZE)}, got {normalize!r}")
        if normalize == "global":
            if mean is None or std is None or len(mean) != feature_size or len(std) != feature_size:
                raise ValueError(f"normalize='global' needs mean and std of {feature_size} channel(s) each")
            if not all(s > 0 for s in std):
                raise ValueError(f"std: every channel's std must be positive, got {list(std)}")
        self.normalize = normalize
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]
        self.interpolate_missing = interpolate_missing

    def __call__(
        self,
        raw_series: Any,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
    ) -> BatchFeature:
        """Preprocess one series (an array (L,) or (L, C), a list of numbers) or a batch (an array (B, L, C), a list of
        series of any lengths). A `ValueError` naming the series and step for a wrong shape, length 0, an infinite
        value, or NaN unless `interpolate_missing`.
        """
        batch = self._as_batch(raw_series)
        values = [self.preprocess_series(s, index=i if len(batch) > 1 else None) for i, s in enumerate(batch)]
        longest = max(len(v) for v in values)
        padded = np.full((len(values), longest, self.feature_size), self.padding_value, dtype=np.float32)  # (B L C)
        mask = np.zeros((len(values), longest), dtype=np.int64)  # (B L)
        for i, v in enumerate(values):
            padded[i, : len(v)] = v
            mask[i, : len(v)] = 1
        features = {"input_values": padded}
        if return_attention_mask if return_attention_mask is not None else self.return_attention_mask:
            features["attention_mask"] = mask
        return BatchFeature(features, tensor_type=return_tensors)

    def preprocess_series(self, series: Any, index: int | None = None) -> np.ndarray:
        """One raw series (L,) or (L, C) -> float32 (L, C): checked, missing values filled, normalized."""
        where = "inputs" if index is None else f"inputs: series {index}"
        x = np.asarray(series, dtype=np.float64)
        if x.ndim == 1 and self.feature_size == 1:
            x = x[:, None]  # (L,) -> (L 1)
        if x.ndim != 2 or x.shape[1] != self.feature_size:
            expected = "(length,) or (length, 1)" if self.feature_size == 1 else f"(length, {self.feature_size})"
            raise ValueError(f"{where}: expected a series of shape {expected}, got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{where}: got a series of length 0; expected at least one step")
        infinite = np.argwhere(np.isinf(x))
        if len(infinite):
            raise ValueError(f"{where}: infinite value at step {int(infinite[0][0])} (channel {int(infinite[0][1])})")
        missing = np.argwhere(np.isnan(x))
        if len(missing):
            if not self.interpolate_missing:
                raise ValueError(
                    f"{where}: missing value (NaN) at {len(missing)} position(s), first at step {int(missing[0][0])} "
                    f"(channel {int(missing[0][1])}); this model's preprocessing does not fill them "
                    "(interpolate_missing=False): fill or drop them first"
                )
            try:
                x = fill_missing(x)
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
        mean = None if self.mean is None else np.asarray(self.mean)
        std = None if self.std is None else np.asarray(self.std)
        return normalize_series(x, self.normalize, mean, std).astype(np.float32)

    def _as_batch(self, raw_series: Any) -> list:
        """A list of series: arrays and tensors of 1-2 dims and lists of numbers are one series, (B, L, C) a batch."""
        if hasattr(raw_series, "detach"):  # a torch tensor
            raw_series = raw_series.detach().cpu().numpy()
        if isinstance(raw_series, np.ndarray):
            return list(raw_series) if raw_series.ndim == 3 else [raw_series]
        if isinstance(raw_series, list | tuple):
            if not raw_series:
                raise ValueError("inputs: got an empty list; expected a series or a non-empty batch of series")
            first = raw_series[0]
            if isinstance(first, Real) and not isinstance(first, bool):
                return [raw_series]
            return list(raw_series)
        raise ValueError(f"inputs: expected an array, a tensor or a list of numbers or series, got {type(raw_series)}")


__all__ = ["NORMALIZE", "MRConvFeatureExtractor", "fill_missing", "normalize_series"]
