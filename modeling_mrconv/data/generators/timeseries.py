"""Seeded time-series classification set whose classes need a long and a short time scale at once (numpy only).

Each series (L, C) is the sum of a slow component (a sinusoid with `s + 1` periods over the whole series, slow type s,
random phase and amplitude per channel), a burst (a Hann-windowed sinusoid of `burst_length` steps at a random
position, the same in every channel, of `burst_frequencies(num_classes)[f]` cycles per step, burst type f, random
phase and amplitude) and Gaussian noise of standard deviation `noise_std`.

The label is `(s + f) mod num_classes`, with s uniform and f chosen to match the label, so the label is uniform given
s alone and given f alone: neither scale carries information by itself, a classifier must see both (the slow type
needs the whole series, the burst type a short window at an unknown position). Labels are balanced (counts differ by
at most one).
"""

from pathlib import Path

import numpy as np


def burst_frequencies(num_classes: int) -> np.ndarray:
    """Burst frequencies in cycles per step, log-spaced in [0.06, 0.35] (far above the slow periods)."""
    return np.geomspace(0.06, 0.35, num_classes)


def generate_timeseries(
    num_examples: int,
    length: int = 256,
    num_channels: int = 1,
    num_classes: int = 4,
    burst_length: int | None = None,
    noise_std: float = 0.3,
    seed: int | list[int] = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """`num_examples` series (values float32 (N, L, C), labels int64 (N,)); module docstring for the rules.

    `num_classes` (>= 2) is the number of slow types, burst types and labels; `burst_length` (null = length // 8)
    must lie in [8, length / 4]; `seed` seeds `np.random.default_rng`.
    """
    burst_length = length // 8 if burst_length is None else int(burst_length)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if burst_length < 8 or 4 * burst_length > length:
        raise ValueError(f"burst_length must be in [8, length / 4 = {length // 4}], got {burst_length}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_examples) % num_classes).astype(np.int64)  # balanced
    slow = rng.integers(0, num_classes, num_examples)
    fast = (labels - slow) % num_classes
    t = np.arange(length)[:, None]  # (L 1)
    window = np.hanning(burst_length)[:, None]  # (burst 1)
    freqs = burst_frequencies(num_classes)
    values = np.empty((num_examples, length, num_channels), dtype=np.float32)
    for i in range(num_examples):
        amplitude, phase = rng.uniform(0.5, 1.5, num_channels), rng.uniform(0, 2 * np.pi, num_channels)  # (C)
        x = amplitude * np.sin(2 * np.pi * (slow[i] + 1) * t / length + phase)  # (L C)
        start = int(rng.integers(0, length - burst_length + 1))
        amplitude, phase = rng.uniform(0.8, 1.6, num_channels), rng.uniform(0, 2 * np.pi, num_channels)  # (C)
        tb = np.arange(burst_length)[:, None]  # (burst 1)
        x[start : start + burst_length] += window * amplitude * np.sin(2 * np.pi * freqs[fast[i]] * tb + phase)
        values[i] = x + rng.normal(0.0, noise_std, (length, num_channels))
    return values, labels


def write_parquet(
    path: str | Path,
    values: np.ndarray | list[np.ndarray],
    labels: np.ndarray,
    input_column: str = "series",
    label_column: str = "label",
) -> None:
    """Write series to parquet: `input_column` holds float arrays ((L,) lists when C = 1, else (L, C) nested lists;
    series may differ in length), `label_column` the labels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [np.asarray(v, dtype=np.float32) for v in values]
    rows = [r[:, 0] if r.ndim == 2 and r.shape[1] == 1 else r for r in rows]
    table = pa.table({input_column: [r.tolist() for r in rows], label_column: np.asarray(labels).tolist()})
    pq.write_table(table, str(path))
