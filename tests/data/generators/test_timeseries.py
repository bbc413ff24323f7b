"""Tests for modeling_mrconv/data/generators/timeseries.py: determinism, shapes, balance, and that the label needs both scales."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from modeling_mrconv.data.generators.timeseries import burst_frequencies, generate_timeseries, write_parquet


K, L, BURST = 4, 256, 32


def hand_features(values: np.ndarray, num_classes: int = K, burst_length: int = BURST) -> np.ndarray:
    """(slow type, burst type) estimates per series (N, 2): the strongest low-pass bin of the spectrum, and the
    dominant frequency of the high-passed window of largest local energy, mapped to the nearest burst frequency."""
    spectrum = np.abs(np.fft.rfft(values, axis=1)).sum(-1)  # (N F)
    slow = spectrum[:, 1 : num_classes + 1].argmax(1)  # bin k = k periods per series
    high = np.fft.rfft(values, axis=1)
    high[:, : 2 * num_classes + 1] = 0
    high = np.fft.irfft(high, n=values.shape[1], axis=1)  # (N L C): slow component removed
    energy = (high**2).sum(-1)  # (N L)
    local = np.stack([np.convolve(e, np.ones(burst_length), "valid") for e in energy])  # (N L-burst+1)
    fast = np.empty(len(values), dtype=np.int64)
    freqs = np.fft.rfftfreq(1024)
    for i, start in enumerate(local.argmax(1)):
        segment = high[i, start : start + burst_length] * np.hanning(burst_length)[:, None]
        peak = freqs[np.abs(np.fft.rfft(segment, n=1024, axis=0)).sum(-1).argmax()]
        fast[i] = np.abs(np.log(burst_frequencies(num_classes) / max(peak, 1e-3))).argmin()
    return np.stack([slow, fast], 1)


def lookup_accuracy(train_keys: np.ndarray, train_y: np.ndarray, test_keys: np.ndarray, test_y: np.ndarray) -> float:
    """Accuracy of a table fitted on train: each feature value predicts its majority train label."""
    table = {}
    for key in {tuple(k) for k in train_keys}:
        rows = (train_keys == key).all(1)
        table[key] = np.bincount(train_y[rows], minlength=K).argmax()
    predictions = np.array([table.get(tuple(k), 0) for k in test_keys])
    return float((predictions == test_y).mean())


def test_deterministic_shapes_and_balance():
    a, ya = generate_timeseries(50, length=128, num_channels=3, num_classes=3, seed=7)
    b, yb = generate_timeseries(50, length=128, num_channels=3, num_classes=3, seed=7)
    c, _ = generate_timeseries(50, length=128, num_channels=3, num_classes=3, seed=8)
    assert a.shape == (50, 128, 3) and a.dtype == np.float32 and ya.shape == (50,) and ya.dtype == np.int64
    assert np.array_equal(a, b) and np.array_equal(ya, yb) and not np.array_equal(a, c)
    counts = np.bincount(ya, minlength=3)
    assert counts.sum() == 50 and counts.max() - counts.min() <= 1


def test_argument_errors():
    with pytest.raises(ValueError, match="num_classes must be >= 2, got 1"):
        generate_timeseries(4, num_classes=1)
    with pytest.raises(ValueError, match=r"burst_length must be in \[8, length / 4 = 16\], got 32"):
        generate_timeseries(4, length=64, burst_length=32)


def test_label_needs_both_time_scales():
    """Hand features of both scales classify well; either scale alone stays at chance (1 / K)."""
    train_x, train_y = generate_timeseries(800, length=L, num_channels=2, num_classes=K, seed=0)
    test_x, test_y = generate_timeseries(800, length=L, num_channels=2, num_classes=K, seed=1)
    train_f, test_f = hand_features(train_x), hand_features(test_x)
    both = lookup_accuracy(train_f, train_y, test_f, test_y)
    slow_only = lookup_accuracy(train_f[:, :1], train_y, test_f[:, :1], test_y)
    fast_only = lookup_accuracy(train_f[:, 1:], train_y, test_f[:, 1:], test_y)
    assert both > 0.9
    assert slow_only < 1 / K + 0.1 and fast_only < 1 / K + 0.1


def test_write_parquet_round_trip(tmp_path):
    values, labels = generate_timeseries(6, length=64, num_channels=1, burst_length=8, seed=0)
    write_parquet(tmp_path / "one.parquet", values, labels)
    table = pq.read_table(tmp_path / "one.parquet").to_pydict()
    assert np.array_equal(np.array(table["series"], dtype=np.float32), values[..., 0])
    assert table["label"] == labels.tolist()
    multi, _ = generate_timeseries(3, length=64, num_channels=2, burst_length=8, seed=0)
    ragged = [multi[0], multi[1, :40], multi[2, :10]]
    write_parquet(tmp_path / "two.parquet", ragged, [0, 1, 2], input_column="x", label_column="y")
    table = pq.read_table(tmp_path / "two.parquet").to_pydict()
    for row, expected in zip(table["x"], ragged, strict=True):
        assert np.array_equal(np.array(row, dtype=np.float32), expected)
