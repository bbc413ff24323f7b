"""Tests for modeling_mrconv/data/audio.py: synthetic chirps, Speech Commands folders and Audio features."""

import io
import wave

import numpy as np
import torch
from task_checks import check_task, items_of, same_items, tiny

from modeling_mrconv.data import load_task
from modeling_mrconv.data.audio import SC35_WORDS


def test_synthetic_audio_resample(tmp_path):
    full = load_task(tiny("synthetic_audio", tmp_path), seed=0)
    half = load_task(tiny("synthetic_audio", tmp_path, resample_to=8000), seed=0)
    assert half.max_length == 400 and half.test[0]["input_values"].shape == (200, 1)
    assert same_items(full.train, half.train)
    x = full.test[0]["input_values"][:, 0] * 32768
    expected = torch.round(x.view(-1, 2).double().mean(1)).float() / 32768
    assert torch.allclose(half.test[0]["input_values"][:, 0], expected)
    assert "SYNTHETIC" in full.description and set(full.id2label.values()) == {f"chirp_{k}" for k in range(4)}


def _wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def test_speech_commands_local_folder(tmp_path):
    rng = np.random.default_rng(0)
    clips = {}
    for word in ("yes", "cat", "zero"):
        (tmp_path / word).mkdir()
        for i in range(3):
            clips[f"{word}/{i}.wav"] = rng.integers(-3000, 3000, 300 + 100 * i, dtype=np.int16)
            (tmp_path / word / f"{i}.wav").write_bytes(_wav_bytes(clips[f"{word}/{i}.wav"]))
    (tmp_path / "_background_noise_").mkdir()
    (tmp_path / "_background_noise_" / "noise.wav").write_bytes(_wav_bytes(np.ones(50, np.int16)))
    (tmp_path / "validation_list.txt").write_text("yes/1.wav\ncat/1.wav\n")
    (tmp_path / "testing_list.txt").write_text("zero/2.wav\n")
    cfg = {"task": "speech_commands", "source": "local", "root": str(tmp_path), "length": 400}
    task_data = load_task(cfg)
    check_task(task_data, (6, 2, 1))
    assert task_data.num_labels == 35 and task_data.id2label[task_data.test[0]["labels"]] == "zero"
    assert list(task_data.id2label.values()) == SC35_WORDS
    test = task_data.test[0]["input_values"][:, 0] * 32768  # zero/2.wav: 500 samples cropped to 400
    assert torch.equal(test.round().short(), torch.from_numpy(clips["zero/2.wav"][:400]))
    first = task_data.train[0]["input_values"][:, 0] * 32768  # cat/0.wav: 300 samples, zero-padded to 400
    assert task_data.id2label[task_data.train[0]["labels"]] == "cat"
    assert torch.equal(first[:300].round().short(), torch.from_numpy(clips["cat/0.wav"])) and (first[300:] == 0).all()
    half = load_task({**cfg, "resample_to": 8000})
    assert half.test[0]["input_values"].shape == (200, 1) and half.max_length == 400


def test_speech_commands_datasets_audio_feature(tmp_path):
    import datasets

    rng = np.random.default_rng(0)
    clips = [rng.integers(-3000, 3000, 100, dtype=np.int16) for _ in range(6)]
    struct = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
    features = datasets.Features({"audio": struct, "label": datasets.ClassLabel(names=["yes", "_silence_", "wow"])})
    rows = {"audio": [{"bytes": _wav_bytes(c), "path": None} for c in clips], "label": [0, 1, 2, 0, 2, 1]}
    full = datasets.Dataset.from_dict(rows, features=features).cast_column(
        "audio", datasets.Audio(sampling_rate=16000)
    )
    splits = {"train": full.select(range(3)), "validation": full.select([3]), "test": full.select([4, 5])}
    datasets.DatasetDict(splits).save_to_disk(tmp_path / "dd")
    task_data = load_task({"task": "speech_commands", "source": "local", "root": str(tmp_path / "dd"), "length": 120})
    check_task(task_data, (2, 1, 1))  # the two `_silence_` rows are dropped
    assert [task_data.id2label[y] for _, y in items_of(task_data.train)] == ["yes", "wow"]
    assert torch.equal(
        (task_data.test[0]["input_values"][:100, 0] * 32768).round().short(), torch.from_numpy(clips[4])
    )
