"""MRConvFeatureExtractor (modeling_mrconv/feature_extraction_mrconv.py): the `sequence` task's preprocessing of raw
series (missing values interpolated, normalize per_series / global / none), padding, errors, save and load."""

import re

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor

from modeling_mrconv import MRConvFeatureExtractor
from modeling_mrconv.data import load_task
from modeling_mrconv.feature_extraction_mrconv import fill_missing
from modeling_mrconv.training.export import task_feature_extractor


def raw_series(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    series = [rng.normal(size=(int(rng.integers(10, 30)), 2)) * 100 + 50 for _ in range(n)]
    series[0][4:7, 1] = np.nan
    series[1][0, 0] = series[1][-1, 1] = np.nan
    return series


@pytest.mark.parametrize("normalize", ["per_series", "global", "none"])
def test_raw_series_become_the_sequence_tasks_inputs(tmp_path, normalize):
    """The export's extractor (training.export.task_feature_extractor, with the task's global statistics) on the raw
    test series equals the data layer's inputs."""
    splits = {"train": raw_series(12, 0), "test": raw_series(5, 1)}
    for split, series in splits.items():
        x = np.empty(len(series), dtype=object)
        x[:] = series
        np.savez(tmp_path / f"{split}.npz", x=x, y=np.arange(len(series)) % 2)
    files = {"train_file": str(tmp_path / "train.npz"), "test_file": str(tmp_path / "test.npz")}
    data = {"task": "sequence", "source": "local", "normalize": normalize, **files}
    task = load_task(data, seed=0)
    extractor = task_feature_extractor(data, task)
    assert (extractor.normalize, extractor.interpolate_missing) == (normalize, True)
    for i, series in enumerate(splits["test"]):
        got = extractor(series, return_tensors="pt")["input_values"][0]
        torch.testing.assert_close(got, task.test[i]["input_values"].float(), atol=1e-5, rtol=0)


def test_missing_values_are_interpolated_along_time():
    x = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, 3.0], [6.0, 5.0], [np.nan, np.nan]])
    expected = np.array([[2.0, 1.0], [2.0, 2.0], [4.0, 3.0], [6.0, 5.0], [6.0, 5.0]])
    np.testing.assert_array_equal(fill_missing(x), expected)
    extractor = MRConvFeatureExtractor(feature_size=2, interpolate_missing=True)
    np.testing.assert_array_equal(extractor(x)["input_values"][0], expected.astype(np.float32))


def test_batches_are_padded_on_the_right_and_masked():
    extractor = MRConvFeatureExtractor(feature_size=1, normalize="per_series", padding_value=-1.0)
    out = extractor([np.arange(3.0), np.arange(5.0)], return_tensors="pt")
    assert out["input_values"].shape == (2, 5, 1) and out["input_values"].dtype == torch.float32
    assert out["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert out["input_values"][0, 3:].flatten().tolist() == [-1.0, -1.0]
    z = (np.arange(3.0) - 1) / np.arange(3.0).std()
    assert out["input_values"][0, :3, 0].tolist() == pytest.approx(z.tolist())
    assert extractor(np.zeros((2, 4, 1)))["input_values"].shape == (2, 4, 1)  # (B L C) array: a batch
    assert extractor([1.0, 2.0, 3.0])["input_values"].shape == (1, 3, 1)  # a list of numbers: one series


@pytest.mark.parametrize(
    ("extractor", "series", "message"),
    [
        (
            MRConvFeatureExtractor(feature_size=1),
            [1.0, float("nan"), 3.0],
            "inputs: missing value (NaN) at 1 position(s), first at step 1 (channel 0); this model's preprocessing "
            "does not fill them (interpolate_missing=False): fill or drop them first",
        ),
        (
            MRConvFeatureExtractor(feature_size=1, interpolate_missing=True),
            [1.0, float("inf")],
            "inputs: infinite value at step 1 (channel 0)",
        ),
        (
            MRConvFeatureExtractor(feature_size=2, interpolate_missing=True),
            np.array([[1.0, np.nan], [2.0, np.nan]]),
            "inputs: channel 1 has no observed value (all NaN): nothing to interpolate from",
        ),
        (
            MRConvFeatureExtractor(feature_size=2),
            np.zeros(4),
            "inputs: expected a series of shape (length, 2), got shape (4,)",
        ),
        (MRConvFeatureExtractor(feature_size=1), np.zeros((0, 1)), "inputs: got a series of length 0"),
        (MRConvFeatureExtractor(feature_size=1), [], "inputs: got an empty list"),
    ],
)
def test_bad_series_are_refused_with_a_clear_message(extractor, series, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        extractor(series)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="normalize: expected one of per_series | global | none, got 'zscore'"):
        MRConvFeatureExtractor(normalize="zscore")
    with pytest.raises(ValueError, match=re.escape("normalize='global' needs mean and std of 2 channel(s) each")):
        MRConvFeatureExtractor(feature_size=2, normalize="global", mean=[0.0], std=[1.0])


def test_save_and_load_with_auto_feature_extractor(tmp_path):
    extractor = MRConvFeatureExtractor(
        feature_size=2, normalize="global", mean=[1.5, -2.0], std=[3.0, 0.25], interpolate_missing=True
    )
    extractor.save_pretrained(tmp_path)
    assert (tmp_path / "feature_extraction_mrconv.py").exists()  # copied for trust_remote_code
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert isinstance(loaded, MRConvFeatureExtractor)
    assert loaded.to_dict() == extractor.to_dict()
    x = np.array([[1.5, -2.0], [4.5, np.nan], [7.5, -1.5]])
    assert loaded(x)["input_values"][0].tolist() == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
