"""Audio tasks: speech_commands (SC35) and synthetic_audio (chirps); C=1, int16 samples scaled to [-1, 1)."""

import io
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeling_mrconv.data.base import (
    SPLITS,
    ArrayDataset,
    TaskConfig,
    TaskData,
    _continuous_task,
    _counts,
    _get,
    register_task,
)
from modeling_mrconv.data.sources import HFSourceConfig, _column, _hf_labelled_splits, _is_plain_folder


# Speech Commands v0.02's 35 words, sorted: label k is SC35_WORDS[k].
SC35_WORDS = sorted(
    ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one", "two", "three", "four"]
    + ["five", "six", "seven", "eight", "nine", "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila"]
    + ["tree", "wow", "backward", "forward", "follow", "learn", "visual"]
)


@dataclass
class SpeechCommandsConfig(HFSourceConfig):
    """speech_commands: the 35 words of SC35, sorted.

    hub: rows whose label is not one of the 35 words (`_silence_`) are dropped. local: root = the release folder
    (`root/<word>/*.wav`, `validation_list.txt`, `testing_list.txt`; 8/16/32-bit PCM via `wave`), or a `save_to_disk`
    DatasetDict / split files read like hub.
    """

    SOURCES = ("hub", "local")

    dataset_name: str | None = "google/speech_commands"
    dataset_config: str | None = "v0.02"
    audio_column: str = "audio"
    length: int = 16000  # crop or zero-pad
    sample_rate: int = 16000
    resample_to: int | None = None  # e.g. 8000: the test split is decimated by averaging sample_rate // resample_to


@dataclass
class SyntheticAudioConfig(TaskConfig):
    """synthetic_audio: SYNTHETIC chirps, not Speech Commands; labels "chirp_<k>".

    Class k is a Hann-windowed exponential chirp from F[k] to F[num_classes - 1 - k] Hz (F log-spaced 250-4000, so
    classes k and num_classes - 1 - k are time-reversed), with random onset, duration (25-75% of the clip), amplitude
    (0.3-0.9), start phase, +-pitch_jitter frequency jitter and Gaussian noise.
    """

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
    out = np.zeros(length, dtype=np.int16)
    out[: min(length, len(samples))] = samples[:length]
    return out


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


def decimate(values: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping groups of `factor` steps along axis 1: a box low-pass, then downsampling."""
    N, L = values.shape[:2]
    L -= L % factor
    grouped = values[:, :L].reshape(N, L // factor, factor, *values.shape[2:]).astype(np.float64)
    return np.round(grouped.mean(axis=2)).astype(values.dtype)


def _audio_task(out: dict, cfg: dict, id2label: dict[int, str], where: str) -> TaskData:
    """int16 (N, L) arrays per split -> TaskData; the test split is decimated when `resample_to` is set."""
    rate, target = int(_get(cfg, "sample_rate", 16000)), cfg.get("resample_to")
    values = {s: np.asarray(out[s][0], dtype=np.int16).reshape(len(out[s][1]), -1, 1) for s in SPLITS}  # (N L 1)
    if target is not None:
        if rate % int(target):
            raise ValueError(f"resample_to={target} must divide sample_rate={rate}")
        values["test"] = decimate(values["test"], rate // int(target))
        where += f"; test split decimated to {target} Hz"
    splits = {s: ArrayDataset(values[s], out[s][1], 1 / 32768) for s in SPLITS}
    return _continuous_task(splits, id2label, f"{cfg['task']} {where}")


def _speech_commands_folder(cfg: dict, length: int, rate: int) -> tuple[dict, str]:
    root = Path(cfg["root"]).expanduser()
    lists = {}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        path = root / name
        lists[split] = set(path.read_text().split()) if path.exists() else set()
    out = {s: ([], []) for s in SPLITS}
    for label, word in enumerate(SC35_WORDS):
        for path in sorted((root / word).glob("*.wav")):
            split = next((s for s in ("validation", "test") if f"{word}/{path.name}" in lists[s]), "train")
            samples, found = read_wav(path)
            if found != rate:
                raise ValueError(f"{path}: expected {rate} Hz, got {found} Hz")
            out[split][0].append(_fit_length(samples, length))
            out[split][1].append(label)
    return {s: (a, np.array(y, dtype=np.int64)) for s, (a, y) in out.items()}, f"local folder {root}"


@register_task("speech_commands", SpeechCommandsConfig)
def _build_speech_commands(cfg: dict, seed: int) -> TaskData:
    length, rate = int(_get(cfg, "length", 16000)), int(_get(cfg, "sample_rate", 16000))
    if _is_plain_folder(cfg):
        out, where = _speech_commands_folder(cfg, length, rate)
    else:
        column = _get(cfg, "audio_column", "audio")

        def convert(ds: Any) -> list:
            if type(ds.features.get(column)).__name__ == "Audio":
                from datasets import Audio

                ds = ds.cast_column(column, Audio(decode=False))  # WAV bytes read with `wave`: no torchcodec needed
            return [_fit_length(_audio_samples(v, rate), length) for v in _column(ds, column)]

        raw, names, where = _hf_labelled_splits(
            cfg, seed, convert, "google/speech_commands", "v0.02", input_columns=(column,)
        )
        if names is None:
            raise ValueError("speech_commands needs label names (a ClassLabel column or string labels)")
        word_index = {w: i for i, w in enumerate(SC35_WORDS)}
        out = {}
        for split, (arrays, labels) in raw.items():
            keep = [i for i, y in enumerate(labels) if names[y] in word_index]  # drops `_silence_`
            out[split] = ([arrays[i] for i in keep], np.array([word_index[names[labels[i]]] for i in keep], np.int64))
    return _audio_task(out, cfg, dict(enumerate(SC35_WORDS)), where)


def _synthetic_audio_split(rng: np.random.Generator, n: int, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    num_classes, length = int(_get(cfg, "num_classes", 10)), int(_get(cfg, "length", 16000))
    rate, jitter = float(_get(cfg, "sample_rate", 16000)), float(_get(cfg, "pitch_jitter", 0.1))
    freqs = np.geomspace(250.0, 4000.0, num_classes)  # Hz
    labels = rng.integers(0, num_classes, n)
    waves = np.empty((n, length), dtype=np.int16)
    for i, k in enumerate(labels):
        duration = int(length * rng.uniform(0.25, 0.75))
        onset = int(rng.integers(0, length - duration + 1))
        start, end = np.array([freqs[k], freqs[num_classes - 1 - k]]) * rng.uniform(1 - jitter, 1 + jitter, 2)
        f = start * (end / start) ** (np.arange(duration) / duration)  # exponential chirp, Hz per step
        tone = np.sin(2 * np.pi * np.cumsum(f) / rate + rng.uniform(0, 2 * np.pi)) * np.hanning(duration)
        x = rng.normal(0.0, float(_get(cfg, "noise_std", 0.05)), length)
        x[onset : onset + duration] += rng.uniform(0.3, 0.9) * tone
        waves[i] = _audio_samples(x, int(rate))
    return waves, labels


@register_task("synthetic_audio", SyntheticAudioConfig)
def _build_synthetic_audio(cfg: dict, seed: int) -> TaskData:
    counts = _counts(cfg, (1000, 200, 200))
    out = {s: _synthetic_audio_split(np.random.default_rng([seed, i]), counts[i], cfg) for i, s in enumerate(SPLITS)}
    num_classes = int(_get(cfg, "num_classes", 10))
    where = f"SYNTHETIC chirps, not Speech Commands (seed {seed}, {num_classes} classes)"
    return _audio_task(out, cfg, {k: f"chirp_{k}" for k in range(num_classes)}, where)
