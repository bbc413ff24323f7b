"""Image tasks: image (grayscale, C=1) and scifar (RGB, C=3), raster scan (H*W, C) in [0, 1], decoded with Pillow.

`image_size` resizes (short side) and centre-crops every image to a square, as the processor shipped with MRConvNeXt
exports does (`training.models.export_image_processor`); without it all images must share one size.
"""

import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeling_mrconv.data.base import SPLITS, register_task, value_features
from modeling_mrconv.data.caching import generated_dataset, split_by_counts
from modeling_mrconv.data.sources import (
    HFSourceConfig,
    carve_validation,
    describe_source,
    encode_class_ids,
    is_plain_folder,
    labelled_splits,
    refuse_streaming,
)
from modeling_mrconv.data.task import TaskData, sequence_lengths
from modeling_mrconv.data.values import scale_values


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
BAR_CLASSES = ("horizontal", "rising", "vertical", "falling")  # generate: bar orientation 0, 45, 90, 135 degrees
GENERATED_SIZE = 32  # generate: the side of the images when image_size is null


@dataclass
class ImageConfig(HFSourceConfig):
    """image / scifar. hub: default CIFAR-10. local: root = an image folder `root/<split>/<class>/*.png` (splits
    train, validation|val|valid (else carved), test) or a `save_to_disk` DatasetDict; or train_file / ... (parquet,
    ...). generate: oriented bars (`generate_bars`) in `num_classes` orientations."""

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
    # which must then all be equal (generate: GENERATED_SIZE)
    image_size: int | None = None
    num_train: int = 1024
    num_validation: int = 256
    num_test: int = 512
    num_classes: int = len(BAR_CLASSES)  # generate: 2..4 orientations of BAR_CLASSES


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
    """An image (PIL, file, undecoded dict or (H, W[, C]) uint8 array) as a raster-scan (H*W, C) uint8 array: position
    h * W + w holds pixel (h, w). `channels=1` uses PIL's `convert("L")` (ITU-R 601-2 luma, 0.299 R + 0.587 G +
    0.114 B). `image_size` resizes to a square first (`resize_square`)."""
    from PIL import Image  # Pillow comes with the train extra, as datasets does

    if isinstance(value, dict):  # undecoded `datasets.Image`: {"bytes", "path"}
        value = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
    if isinstance(value, str | Path | io.BytesIO):
        value = Image.open(value)
    elif not isinstance(value, Image.Image):
        value = Image.fromarray(np.asarray(value, dtype=np.uint8))
    with value as image:
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


def _folder_files(root: Path) -> tuple[dict[str, list[tuple[str, int]]], list[str]]:
    """`root/<split>/<class>/*.png` -> ({split found: [(file, class index), ...]}, sorted class names of train).
    Another split may lack a class but not add one; an empty class folder or split is a ValueError naming it."""
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
            files += [(str(f), c) for f in images]
        if not files:
            raise ValueError(f"{folder}: the {split} split has no images (expected {folder}/<class>/*.png)")
        out[split] = files
    return out, classes


def _folder_rows(files: tuple[tuple[str, int], ...], channels: int, image_size: int | None) -> Iterator[dict]:
    for path, label in files:
        yield {"pixels": _read(path, channels, image_size, path), "labels": label}


def generate_bars(count: int, num_classes: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` RGB images (N, size, size, 3) uint8 of a patch of parallel bars; label = their orientation. Class k of
    `BAR_CLASSES` has angle 45k degrees (+-8 jitter, y pointing down): bars of period 4-8 pixels and half that width,
    of a random bright colour, fill a disc of radius 0.25-0.45 x size at a random position, over a dark random colour
    with Gaussian noise (std 20). The label is a property of the texture at any position."""
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


def _bar_rows(counts: tuple, seed: int, num_classes: int, size: int, channels: int) -> Iterator[dict]:
    for offset, count in enumerate(counts):
        images, labels = generate_bars(count, num_classes, size, seed * len(SPLITS) + offset)
        for image, label in zip(images, labels, strict=True):
            yield {"pixels": image_to_sequence(image, channels), "labels": int(label)}


def _decode_images(batch: dict, indices, names, split, where, label_column, column, channels, image_size) -> dict:
    labels = encode_class_ids(batch[label_column], names, split, where, indices[0])
    pixels = [_read(v, channels, image_size, f"{where} row {i}") for i, v in zip(indices, batch[column], strict=True)]
    return {"pixels": pixels, "labels": labels}


def _pixel_splits(config: ImageConfig, seed: int, channels: int) -> tuple[Any, dict[str, str], str]:
    """The splits with uint8 `pixels` (H*W, C) and ClassLabel `labels`, where each came from, a description."""
    from datasets import DatasetDict

    features = functools.partial(value_features, channels, dtype="uint8", column="pixels")
    if config.source == "generate":
        if not 2 <= config.num_classes <= len(BAR_CLASSES):
            raise ValueError(
                f"data.num_classes: the generated bars have 2..{len(BAR_CLASSES)} classes, got {config.num_classes}"
            )
        size, counts = config.image_size or GENERATED_SIZE, (config.num_train, config.num_validation, config.num_test)
        kwargs = {"counts": counts, "seed": seed, "num_classes": config.num_classes, "size": size}
        raw = features(BAR_CLASSES[: config.num_classes])
        pool = generated_dataset("bars", _bar_rows, {**kwargs, "channels": channels}, raw, config)
        where = {s: f"{config.task} generated {s} split" for s in SPLITS}
        return split_by_counts(pool, counts), where, f"generated oriented bars {size}x{size} (seed {seed})"
    if is_plain_folder(config):
        refuse_streaming(config, "image folders")
        files, classes = _folder_files(Path(config.root).expanduser())
        splits, where, raw = dict.fromkeys(SPLITS), {}, features(classes)
        for split, rows in files.items():
            kwargs = {"files": tuple(rows), "channels": channels, "image_size": config.image_size}
            paths = [p for p, _ in rows]
            splits[split] = generated_dataset("image-folder", _folder_rows, kwargs, raw, config, files=paths)
            where[split] = f"{config.task} {split} split"
        carve_validation(splits, config, seed, where)
        return DatasetDict(splits), where, f"image folder {config.root}"
    column = config.image_column
    kwargs = {"column": column, "channels": channels, "image_size": config.image_size}
    splits, where = labelled_splits(config, seed, _decode_images, features, (column,), kwargs)
    return splits, where, describe_source(config)


@register_task("scifar", ImageConfig)
@register_task("image", ImageConfig)
def _build_image(config: ImageConfig, seed: int) -> TaskData:
    channels = 1 if config.task == "image" else 3  # grayscale or RGB
    size = config.image_size
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"data.image_size: expected a positive integer (the square side) or null, got {size!r}")
    splits, where, origin = _pixel_splits(config, seed, channels)
    for split in SPLITS:  # every image of a split has one number of pixels (read whole unless streamed)
        sizes = [] if config.streaming else sorted({int(n) for n in sequence_lengths(splits[split], "pixels")})
        if len(sizes) > 1:
            raise ValueError(
                f"{config.task} {split} split: all sequences must share one shape, got "
                f"{[(n, channels) for n in sizes[:4]]}; set data.image_size to resize and centre-crop every image "
                "to one square"
            )
    splits, mean, std = scale_values(splits, config, "pixels", 1 / 255, config.normalize)
    description = f"{config.task} ({'grayscale' if channels == 1 else 'RGB'}) {origin}"
    return TaskData(splits, None, description, where, input_scale=1 / 255, input_mean=mean, input_std=std)
