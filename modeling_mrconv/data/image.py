"""Image tasks: image (grayscale, C=1) and scifar (RGB, C=3), raster scan (H*W, C) in [0, 1].

Sources: `hub` (default: CIFAR-10, `uoft-cs/cifar10`; any image-classification set by `dataset_name`, e.g. ImageNet),
`local` (an image folder `root/<split>/<class>/*.png`, a `save_to_disk` DatasetDict, or parquet/... split files) and
`generate` (oriented bars, offline, `generate_bars`). `image_size` resizes every image to a square of that side (short
side to `image_size`, centre crop: the resize of the processor shipped with MRConvNeXt exports,
`training.models.export_image_processor`); without it every image must already have one size (CIFAR: 32x32).
Images are decoded with Pillow (`pip install pillow`).
"""

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeling_mrconv.data.base import SPLITS, ArrayDataset, TaskData, _continuous_task, _counts, _get, register_task
from modeling_mrconv.data.sources import (
    HFSourceConfig,
    _fill_validation,
    _hf_labelled_splits,
    _id2label,
    _is_plain_folder,
)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
BAR_CLASSES = ("horizontal", "rising", "vertical", "falling")  # generate: bar orientation 0, 45, 90, 135 degrees


@dataclass
class ImageConfig(HFSourceConfig):
    """image / scifar. local: root = an image folder `root/<split>/<class>/*.png` (splits train,
    validation|val|valid (else carved), test) or a `save_to_disk` DatasetDict; or train_file / ... (parquet, ...).
    generate: `num_train` / `num_validation` / `num_test` images of one oriented bar, `num_classes` orientations."""

    SOURCES = ("hub", "local", "generate")
    SOURCE_KEYS = {
        "generate": ("num_train", "num_validation", "num_test", "num_classes"),
        "hub": ("dataset_name", "dataset_config", "load_kwargs"),
        "local": ("root", "train_file", "validation_file", "test_file"),
    }

    dataset_name: str | None = "uoft-cs/cifar10"
    image_column: str = "img"
    normalize: bool = False  # per-channel mean/std of the train split
    # resize (short side, bicubic) and centre-crop every image to image_size x image_size; null = keep the sizes,
    # which must then all be equal. generate: the side of the generated images (null = 32)
    image_size: int | None = None
    num_train: int | None = None  # generate: null = 1024
    num_validation: int | None = None  # generate: null = 256
    num_test: int | None = None  # generate: null = 512
    num_classes: int | None = None  # generate: 2..4 orientations of BAR_CLASSES; null = 4


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


@functools.cache
def _resizer(image_size: int) -> Any:
    from transformers import ConvNextImageProcessorPil

    return ConvNextImageProcessorPil(size={"shortest_edge": image_size}, crop_pct=1.0)


def resize_square(pixels: np.ndarray, image_size: int) -> np.ndarray:
    """(H, W, C) uint8 -> (S, S, C) uint8, S = image_size: `ConvNextImageProcessorPil.resize` with crop_pct=1, i.e.
    the short side to S (PIL bicubic) and a centre crop, the identity on S x S images (S >= 384: warped to S x S,
    as ConvNeXt's processor does)."""
    from transformers.image_utils import PILImageResampling, SizeDict

    resized = _resizer(image_size).resize(
        np.ascontiguousarray(pixels.transpose(2, 0, 1)),  # (C H W)
        SizeDict(shortest_edge=image_size),
        PILImageResampling.BICUBIC,
        crop_pct=1.0,
    )
    return resized.transpose(1, 2, 0)  # (S S C)


def image_to_sequence(value: Any, channels: int, image_size: int | None = None) -> np.ndarray:
    """An image (PIL, file, undecoded dict or (H, W[, C]) uint8 array) as a raster-scan (H*W, C) uint8 array.

    Row-major: position h * W + w holds pixel (h, w). `channels=1` uses PIL's `convert("L")`: ITU-R 601-2 luma,
    0.299 R + 0.587 G + 0.114 B. `image_size` resizes to a square first (`resize_square`).
    """
    with _open_image(value) as image:
        pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)  # (H W) or (H W 3)
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], channels)  # (H W C)
    if image_size is not None:
        pixels = resize_square(pixels, image_size)
    return pixels.reshape(-1, channels)  # (H*W C)


def _read(value: Any, channels: int, image_size: int | None, where: str) -> np.ndarray:
    """`image_to_sequence`, with `where` (file, or split and row) in the error of an unreadable image."""
    try:
        return image_to_sequence(value, channels, image_size)
    except (OSError, ValueError, TypeError) as err:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"{where}: not a readable image ({err})") from err


def _stack(arrays: list[np.ndarray], what: str, hint: str = "") -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{what}: all sequences must share one shape, got {sorted(shapes)[:4]}{hint}")
    return np.stack(arrays)


def _image_folder(root: Path, channels: int, image_size: int | None) -> tuple[dict, list[str]]:
    """`root/<split>/<class>/*.png` -> ({split: (arrays, labels) or None}, sorted class names of train).

    The classes are train's sub-folders; another split may lack a class but not add one. An empty class folder,
    a split without images or an unreadable image file is a ValueError naming the folder or file.
    """
    aliases = {"train": ["train"], "validation": ["validation", "val", "valid"], "test": ["test"]}
    folders = {s: next((root / a for a in aliases[s] if (root / a).is_dir()), None) for s in SPLITS}
    if folders["train"] is None or folders["test"] is None:
        raise ValueError(f"{root}: expected train/ and test/ sub-folders (root/<split>/<class>/*.png)")
    classes = sorted(p.name for p in folders["train"].iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{folders['train']}: no class sub-folders (expected root/<split>/<class>/*.png)")
    out = {}
    for split, folder in folders.items():
        if folder is None:
            out[split] = None
            continue
        extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
        if extra:
            raise ValueError(
                f"{folder}: class folder(s) {extra} of the {split} split are not classes of the train split {classes}"
            )
        files = []
        for c, name in enumerate(classes):
            if not (folder / name).is_dir():
                continue
            images = [f for f in sorted((folder / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
            if not images:
                raise ValueError(f"{folder / name}: empty class folder (no {'/'.join(IMAGE_SUFFIXES)} files)")
            files += [(f, c) for f in images]
        if not files:
            raise ValueError(f"{folder}: the {split} split has no images (expected {folder}/<class>/*.png)")
        arrays = [_read(f, channels, image_size, str(f)) for f, _ in files]
        out[split] = (arrays, np.array([c for _, c in files], dtype=np.int64))
    return out, classes


def generate_bars(count: int, num_classes: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` RGB images (N, size, size, 3) uint8 of a patch of parallel bars; label = their orientation.

    Class k of `BAR_CLASSES` has angle 45k degrees (+-8 jitter, image y pointing down): bars of period 4-8 pixels
    and half that width, of a random bright colour, fill a disc of radius 0.25-0.45 x size at a random position, over
    a dark random colour with Gaussian noise (std 20). The label is a property of the texture at any position.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, count)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)  # (S S)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        angle = np.deg2rad(45.0 * label + rng.uniform(-8, 8))
        period = rng.uniform(4, 8)
        radius = rng.uniform(0.25, 0.45) * size
        cy, cx = rng.uniform(0.35, 0.65, 2) * size
        across = (xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)  # (S S): distance across the bars
        bars = (np.mod(across + rng.uniform(0, period), period) < period / 2) & (
            (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
        )  # (S S)
        image = rng.uniform(0, 80, 3) + rng.normal(0, 20, (size, size, 3))  # (S S 3)
        image[bars] = rng.uniform(160, 255, 3)
        images[i] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return images, labels


def _generated(cfg: dict, seed: int, channels: int) -> tuple[dict, list[str], str]:
    num_classes = int(_get(cfg, "num_classes", len(BAR_CLASSES)))
    if not 2 <= num_classes <= len(BAR_CLASSES):
        raise ValueError(f"data.num_classes: the generated bars have 2..{len(BAR_CLASSES)} classes, got {num_classes}")
    size = int(_get(cfg, "image_size", 32))
    counts = _counts(cfg, (1024, 256, 512))
    out = {}
    for offset, (split, count) in enumerate(zip(SPLITS, counts, strict=True)):
        images, labels = generate_bars(count, num_classes, size, seed * len(SPLITS) + offset)
        out[split] = ([image_to_sequence(x, channels) for x in images], labels)
    return out, list(BAR_CLASSES[:num_classes]), f"generated oriented bars {size}x{size} (seed {seed})"


def _build_image_task(cfg: dict, seed: int, channels: int) -> TaskData:
    task = cfg["task"]
    image_size = cfg.get("image_size")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"data.image_size: expected a positive integer (the square side) or null, got {image_size!r}")
    if cfg["source"] == "generate":
        out, names, where = _generated(cfg, seed, channels)
    elif _is_plain_folder(cfg):
        out, names = _image_folder(Path(cfg["root"]).expanduser(), channels, image_size)
        out, where = _fill_validation(out, _get(cfg, "validation_fraction", 0.1), seed), f"image folder {cfg['root']}"
    else:
        column = _get(cfg, "image_column", "img")

        def convert(ds: Any) -> list:
            if type(ds.features.get(column)).__name__ == "Image":
                from datasets import Image

                ds = ds.cast_column(column, Image(decode=False))  # decode with PIL here, one image at a time
            split = f"split {ds.split}" if ds.split is not None else "data"
            return [_read(v, channels, image_size, f"{split} row {i}") for i, v in enumerate(list(ds[column]))]

        out, names, where = _hf_labelled_splits(cfg, seed, convert, "uoft-cs/cifar10", input_columns=(column,))
    hint = "; set data.image_size to resize and centre-crop every image to one square"
    values = {s: _stack(out[s][0], f"{task} {s} split", hint) for s in SPLITS}  # (N H*W C) uint8
    mean = std = None
    if _get(cfg, "normalize", False):
        train = values["train"].astype(np.float64) / 255.0
        mean, std = train.mean(axis=(0, 1)), train.std(axis=(0, 1)) + 1e-8  # (C)
    splits = {s: ArrayDataset(values[s], out[s][1], 1 / 255, mean, std) for s in SPLITS}
    kind = "grayscale" if channels == 1 else "RGB"
    return _continuous_task(splits, _id2label(names, out["train"][1]), f"{task} ({kind}) {where}")


@register_task("image", ImageConfig)
def _build_image(cfg: dict, seed: int) -> TaskData:
    return _build_image_task(cfg, seed, channels=1)


@register_task("scifar", ImageConfig)
def _build_scifar(cfg: dict, seed: int) -> TaskData:
    return _build_image_task(cfg, seed, channels=3)
