"""Image tasks: image (grayscale CIFAR-10, C=1) and scifar (RGB CIFAR-10, C=3), raster scan (H*W, C) in [0, 1].

Images are decoded with Pillow (`pip install pillow`).
"""

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.base import SPLITS, ArrayDataset, TaskData, _continuous_task, _get, register_task
from tasks.sources import HFSourceConfig, _column, _fill_validation, _hf_labelled_splits, _id2label, _is_plain_folder


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class ImageConfig(HFSourceConfig):
    """image / scifar. local: root = an image folder `root/<split>/<class>/*.png` (splits train,
    validation|val|valid (else carved), test) or a `save_to_disk` DatasetDict; or train_file / ... (parquet, ...)."""

    SOURCES = ("hub", "local")

    dataset_name: str | None = "uoft-cs/cifar10"
    image_column: str = "img"
    normalize: bool = False  # per-channel mean/std of the train split


def _open_image(value: Any) -> Any:
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("image files are read with Pillow: pip install pillow") from err
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):  # undecoded `datasets.Image`: {"bytes", "path"}
        return Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") else Image.open(value["path"])
    if isinstance(value, str | Path):
        return Image.open(value)
    return Image.fromarray(np.asarray(value, dtype=np.uint8))


def image_to_sequence(value: Any, channels: int) -> np.ndarray:
    """An image (PIL, file, undecoded dict or (H, W[, C]) uint8 array) as a raster-scan (H*W, C) uint8 array.

    `channels=1` uses PIL's `convert("L")`: ITU-R 601-2 luma, 0.299 R + 0.587 G + 0.114 B.
    """
    with _open_image(value) as image:
        pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)  # (H W) or (H W 3)
    return pixels.reshape(-1, channels)  # (H*W C)


def _stack(arrays: list[np.ndarray], what: str) -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{what}: all sequences must share one shape, got {sorted(shapes)[:4]}")
    return np.stack(arrays)


def _image_folder(root: Path, channels: int) -> tuple[dict, list[str]]:
    """`root/<split>/<class>/*.png` -> ({split: (arrays, labels) or None}, sorted class names of train)."""
    aliases = {"train": ["train"], "validation": ["validation", "val", "valid"], "test": ["test"]}
    folders = {s: next((root / a for a in aliases[s] if (root / a).is_dir()), None) for s in SPLITS}
    if folders["train"] is None or folders["test"] is None:
        raise ValueError(f"{root}: expected train/ and test/ sub-folders (root/<split>/<class>/*.png)")
    classes = sorted(p.name for p in folders["train"].iterdir() if p.is_dir())
    out = {}
    for split, folder in folders.items():
        if folder is None:
            out[split] = None
            continue
        files = [(f, c) for c, name in enumerate(classes) for f in sorted((folder / name).glob("*"))]
        files = [(f, c) for f, c in files if f.suffix.lower() in IMAGE_SUFFIXES]
        out[split] = ([image_to_sequence(f, channels) for f, _ in files], np.array([c for _, c in files]))
    return out, classes


def _build_cifar(cfg: dict, seed: int, channels: int) -> TaskData:
    task = cfg["task"]
    if _is_plain_folder(cfg):
        out, names = _image_folder(Path(cfg["root"]).expanduser(), channels)
        out, where = _fill_validation(out, _get(cfg, "validation_fraction", 0.1), seed), f"image folder {cfg['root']}"
    else:
        column = _get(cfg, "image_column", "img")

        def convert(ds: Any) -> list:
            if type(ds.features.get(column)).__name__ == "Image":
                from datasets import Image

                ds = ds.cast_column(column, Image(decode=False))  # decode with PIL here, one image at a time
            return [image_to_sequence(v, channels) for v in _column(ds, column)]

        out, names, where = _hf_labelled_splits(cfg, seed, convert, "uoft-cs/cifar10")
    values = {s: _stack(out[s][0], task) for s in SPLITS}  # (N H*W C) uint8
    mean = std = None
    if _get(cfg, "normalize", False):
        train = values["train"].astype(np.float64) / 255.0
        mean, std = train.mean(axis=(0, 1)), train.std(axis=(0, 1)) + 1e-8  # (C)
    splits = {s: ArrayDataset(values[s], out[s][1], 1 / 255, mean, std) for s in SPLITS}
    kind = "grayscale" if channels == 1 else "RGB"
    return _continuous_task(splits, _id2label(names, out["train"][1]), f"{task} ({kind}) {where}")


@register_task("image", ImageConfig)
def _build_image(cfg: dict, seed: int) -> TaskData:
    return _build_cifar(cfg, seed, channels=1)


@register_task("scifar", ImageConfig)
def _build_scifar(cfg: dict, seed: int) -> TaskData:
    return _build_cifar(cfg, seed, channels=3)
