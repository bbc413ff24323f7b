"""Audio tasks: speech_commands (SC35) and synthetic_audio (chirps); C=1, int16 samples scaled to [-1, 1)."""

import io
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeling_mrconv.data.base import SPLITS, TaskConfig, register_task, value_features
from modeling_mrconv.data.caching import generated_dataset, map_batches, split_by_counts
from modeling_mrconv.data.sources import (
    HFSourceConfig,
    describe_source,
    encode_class_ids,
    is_plain_folder,
    labelled_splits,
    refuse_streaming,
)
from modeling_mrconv.data.task import TaskData
from modeling_mrconv.data.values import scale_values


# Speech Commands v0.02's 35 words, sorted: label k is SC35_WORDS[k].
SC35_WORDS = sorted(
    ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one", "two", "three", "four"]
    + ["five", "six", "seven", "eight", "nine", "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila"]
    + ["tree", "wow", "backward", "forward", "follow", "learn", "visual"]
)


@dataclass
class SpeechCommandsConfig(HFSourceConfig):
    """speech_commands: the 35 words of SC35, sorted; rows of other labels (`_silence_`) are dropped. local: root =
    the release folder (`root/<word>/*.wav`, `validation_list.txt`, `testing_list.txt`; 8/16/32-bit PCM via `wave`),
    or a `save_to_disk` DatasetDict / split files read like hub."""

    dataset_name: str | None = "google/speech_commands"
    dataset_config: str | None = "v0.02"
    audio_column: str = "audio"
    length: int = 16000  # crop or zero-pad
    sample_rate: int = 16000
    resample_to: int | None = None  # e.g. 8000: the test split is decimated by averaging sample_rate // resample_to


@dataclass
class SyntheticAudioConfig(TaskConfig):
    """synthetic_audio: SYNTHETIC chirps, not Speech Commands; labels "chirp_<k>". Class k is a Hann-windowed
    exponential chirp from F[k] to F[num_classes - 1 - k] Hz (F log-spaced 250-4000, so classes k and num_classes - 1
    - k are time-reversed), with random onset, duration (25-75% of the clip), amplitude (0.3-0.9), start phase,
    +-pitch_jitter frequency jitter and Gaussian noise."""

    num_train: int = 1000
    num_validation: int = 200
    num_test: int = 200
    num_classes: int = 10
    length: int = 16000
    sample_rate: int = 16000
    noise_std: float = 0.05
    pitch_jitter: float = 0.1
    resample_to: int | None = None


def read_wav(source: str | Path | bytes) -> tuple[np.ndarray, int]:
    """An integer-PCM WAV (path or bytes) as mono int16 samples and its sample rate, read with the stdlib `wave`."""
    with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb") as handle:
        rate, width, channels = handle.getframerate(), handle.getsampwidth(), handle.getnchannels()
        raw = handle.readframes(handle.getnframes())
    if width == 2:
        samples = np.frombuffer(raw, dtype="<i2")
    elif width == 1:  # unsigned 8-bit
        samples = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) * 256).astype(np.int16)
    elif width == 4:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise ValueError(f"unsupported WAV sample width: {width} bytes")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return samples, rate


def _fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Crop, or right-pad with zeros, to `length` samples."""
    return np.pad(samples[:length], (0, max(length - len(samples), 0)))


def _audio_samples(value: Any, sample_rate: int) -> np.ndarray:
    """int16 samples from an undecoded `datasets.Audio` dict (bytes/path), a decoded one ("array") or an array."""
    if isinstance(value, dict):
        if value.get("array") is None:
            samples, rate = read_wav(value["bytes"] if value.get("bytes") else value["path"])
        else:
            samples, rate = np.asarray(value["array"]), value.get("sampling_rate", sample_rate)
        if rate != sample_rate:
            raise ValueError(f"expected {sample_rate} Hz audio, got {rate} Hz ({value.get('path')})")
        value = samples
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating):  # [-1, 1] floats
        return np.round(np.clip(array, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    return array.astype(np.int16)


def _decimate(batch: dict, factor: int) -> dict:
    """Average non-overlapping groups of `factor` steps of each (L, C) row: a box low-pass, then downsampling."""
    samples = []
    for x in batch["samples"]:
        L = len(x) - len(x) % factor
        grouped = x[:L].reshape(L // factor, factor, *x.shape[1:]).astype(np.float64)  # (L/factor factor C)
        samples.append(np.round(grouped.mean(1)).astype(x.dtype))
    return {"samples": samples, "labels": batch["labels"]}


def _audio_task(splits: Any, config: Any, where: dict[str, str], description: str) -> TaskData:
    """int16 `samples` (L, 1) splits -> TaskData; the test split is decimated when `resample_to` is set."""
    if config.resample_to is not None:
        if config.sample_rate % int(config.resample_to):
            raise ValueError(f"resample_to={config.resample_to} must divide sample_rate={config.sample_rate}")
        factor = config.sample_rate // int(config.resample_to)
        test = splits["test"]
        splits["test"] = map_batches(test, _decimate, test.features, config, {"factor": factor}, numpy=True)
        description += f"; test split decimated to {config.resample_to} Hz"
    splits, _, _ = scale_values(splits, config, "samples", 1 / 32768)
    return TaskData(splits, None, f"{config.task} {description}", where, input_scale=1 / 32768)


def _folder_rows(files: tuple[tuple[str, int], ...], length: int, rate: int) -> Iterator[dict]:
    for path, label in files:
        samples, found = read_wav(path)
        if found != rate:
            raise ValueError(f"{path}: expected {rate} Hz, got {found} Hz")
        yield {"samples": _fit_length(samples, length)[:, None], "labels": label}


def _speech_commands_folder(config: SpeechCommandsConfig) -> tuple[Any, dict[str, str]]:
    """The release folder `root/<word>/*.wav` split by `validation_list.txt` and `testing_list.txt`."""
    from datasets import DatasetDict

    root = Path(config.root).expanduser()
    lists = {}
    for split, path in (("validation", root / "validation_list.txt"), ("test", root / "testing_list.txt")):
        lists[split] = set(path.read_text().split()) if path.exists() else set()
    files = {s: [] for s in SPLITS}
    for label, word in enumerate(SC35_WORDS):
        for path in sorted((root / word).glob("*.wav")):
            split = next((s for s in ("validation", "test") if f"{word}/{path.name}" in lists[s]), "train")
            files[split].append((str(path), label))
    features, splits = value_features(1, SC35_WORDS, "int16", "samples"), {}
    for split, rows in files.items():
        kwargs = {"files": tuple(rows), "length": config.length, "rate": config.sample_rate}
        paths = [p for p, _ in rows]
        splits[split] = generated_dataset(
            "speech-commands-folder", _folder_rows, kwargs, features, config, files=paths
        )
    return DatasetDict(splits), {s: f"{root} {s} split" for s in SPLITS}


def _decode_audio(batch: dict, indices, names, split, where, label_column, column, length, rate) -> dict:
    """Samples cropped or padded to `length`; labels as SC35 word indices, rows of other labels (`_silence_`) dropped."""
    labels = encode_class_ids(batch[label_column], names, split, where, indices[0])
    word_index = {w: i for i, w in enumerate(SC35_WORDS)}
    keep = [i for i, y in enumerate(labels) if names[y] in word_index]
    samples = [_fit_length(_audio_samples(batch[column][i], rate), length)[:, None] for i in keep]
    return {"samples": samples, "labels": [word_index[names[labels[i]]] for i in keep]}


def _need_names(names: list[str], integers: bool) -> list[str]:
    if integers:
        raise ValueError("speech_commands needs label names (a ClassLabel column or string labels)")
    return names


@register_task("speech_commands", SpeechCommandsConfig)
def _build_speech_commands(config: SpeechCommandsConfig, seed: int) -> TaskData:
    if is_plain_folder(config):
        refuse_streaming(config, "Speech Commands release folders")
        splits, where = _speech_commands_folder(config)
        return _audio_task(splits, config, where, f"local folder {config.root}")
    column, features = config.audio_column, value_features(1, SC35_WORDS, "int16", "samples")
    kwargs = {"column": column, "length": config.length, "rate": config.sample_rate}
    splits, where = labelled_splits(
        config, seed, _decode_audio, lambda _: features, (column,), kwargs, rename=_need_names
    )
    return _audio_task(splits, config, where, describe_source(config))


def _synthetic_audio_rows(
    counts: tuple, seed: int, num_classes: int, length: int, sample_rate: int, noise_std: float, pitch_jitter: float
) -> Iterator[dict]:
    """Chirps of the `SyntheticAudioConfig` rules, one seeded generator per split."""
    freqs = np.geomspace(250.0, 4000.0, num_classes)  # Hz
    for split, n in enumerate(counts):
        rng = np.random.default_rng([seed, split])
        labels = rng.integers(0, num_classes, n)
        for k in labels:
            duration = int(length * rng.uniform(0.25, 0.75))
            onset = int(rng.integers(0, length - duration + 1))
            jitter = rng.uniform(1 - pitch_jitter, 1 + pitch_jitter, 2)
            start, end = np.array([freqs[k], freqs[num_classes - 1 - k]]) * jitter
            f = start * (end / start) ** (np.arange(duration) / duration)  # exponential chirp, Hz per step
            tone = np.sin(2 * np.pi * np.cumsum(f) / sample_rate + rng.uniform(0, 2 * np.pi)) * np.hanning(duration)
            x = rng.normal(0.0, float(noise_std), length)
            x[onset : onset + duration] += rng.uniform(0.3, 0.9) * tone
            yield {"samples": _audio_samples(x, sample_rate)[:, None], "labels": int(k)}


@register_task("synthetic_audio", SyntheticAudioConfig)
def _build_synthetic_audio(config: SyntheticAudioConfig, seed: int) -> TaskData:
    counts = (config.num_train, config.num_validation, config.num_test)
    params = {k: getattr(config, k) for k in ("num_classes", "length", "sample_rate", "noise_std", "pitch_jitter")}
    features = value_features(1, [f"chirp_{k}" for k in range(config.num_classes)], "int16", "samples")
    kwargs = {"counts": counts, "seed": seed, **params}
    pool = generated_dataset("synthetic_audio", _synthetic_audio_rows, kwargs, features, config)
    where = {s: f"synthetic_audio generated {s} split" for s in SPLITS}
    description = f"SYNTHETIC chirps, not Speech Commands (seed {seed}, {config.num_classes} classes)"
    return _audio_task(split_by_counts(pool, counts), config, where, description)
