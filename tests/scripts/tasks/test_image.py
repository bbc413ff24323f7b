"""Tests for scripts/tasks/image.py: image folders and save_to_disk sets with an Image feature."""

import numpy as np
import pytest
import torch
from task_checks import check_task, write_png
from tasks import build_task_data


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.mark.parametrize("task", ["image", "scifar"])
def test_image_folder(tmp_path, task):
    rng = np.random.default_rng(0)
    pictures = {}
    for split, count in (("train", 3), ("test", 1)):
        for name in ("cat", "dog"):
            for i in range(count):
                rgb = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
                write_png(tmp_path / split / name / f"{i}.png", rgb)
                pictures[(split, name, i)] = rgb
    cfg = {"task": task, "source": "local", "root": str(tmp_path), "validation_fraction": 1 / 3}
    task_data = build_task_data(cfg)
    check_task(task_data, (4, 2, 2))
    channels = 1 if task == "image" else 3
    assert task_data.input_dim == channels and task_data.max_length == 20
    assert task_data.id2label == {0: "cat", 1: "dog"}
    rgb = pictures[("test", "cat", 0)].astype(np.int64)
    luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16  # PIL's ITU-R 601-2
    expected = luma if channels == 1 else rgb
    got = torch.round(task_data.test[0]["input_values"] * 255).long().numpy()
    assert np.array_equal(got, expected.reshape(20, channels))
    normalized = build_task_data({**cfg, "normalize": True})
    train = torch.stack([normalized.train[i]["input_values"] for i in range(4)])  # (N L C)
    assert torch.allclose(train.mean((0, 1)), torch.zeros(channels), atol=1e-4)
    assert torch.allclose(train.std((0, 1), unbiased=False), torch.ones(channels), atol=1e-3)


def test_image_save_to_disk_with_image_feature(tmp_path):
    import datasets
    from PIL import Image

    rng = np.random.default_rng(1)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CIFAR10_CLASSES)})
    arrays = [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8) for _ in range(12)]
    rows = {"img": [Image.fromarray(a) for a in arrays], "label": [i % 10 for i in range(12)]}
    full = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": full.select(range(10)), "test": full.select(range(10, 12))}).save_to_disk(
        tmp_path / "dd"
    )
    task_data = build_task_data(
        {"task": "scifar", "source": "local", "root": str(tmp_path / "dd"), "validation_fraction": 0.2}
    )
    check_task(task_data, (8, 2, 2))
    assert task_data.id2label[0] == "airplane" and task_data.input_dim == 3
    assert np.array_equal(torch.round(task_data.test[1]["input_values"] * 255).numpy(), arrays[11].reshape(16, 3))


def test_integer_labels_are_named_by_their_values_not_cifar_classes(tmp_path):
    import datasets
    from PIL import Image

    rng = np.random.default_rng(2)
    arrays = [rng.integers(0, 256, (4, 4), dtype=np.uint8) for _ in range(12)]
    rows = {"img": [Image.fromarray(a) for a in arrays], "label": [i % 10 for i in range(12)]}
    features = datasets.Features({"img": datasets.Image(), "label": datasets.Value("int64")})
    full = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": full.select(range(10)), "test": full.select(range(10, 12))}).save_to_disk(
        tmp_path / "dd"
    )
    task_data = build_task_data(
        {"task": "image", "source": "local", "root": str(tmp_path / "dd"), "validation_fraction": 0.2}
    )
    assert task_data.id2label == {i: str(i) for i in range(10)}
