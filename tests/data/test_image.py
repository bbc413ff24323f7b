"""Tests for modeling_mrconv/data/image.py: image folders and save_to_disk sets with an Image feature."""

import numpy as np
import pytest
import torch
from task_checks import check_task, labels_of, write_png

from modeling_mrconv.data import load_task


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
    task_data = load_task(cfg)
    check_task(task_data, (4, 2, 2))
    channels = 1 if task == "image" else 3
    assert task_data.input_dim == channels and task_data.max_length == 20
    assert task_data.id2label == {0: "cat", 1: "dog"}
    rgb = pictures[("test", "cat", 0)].astype(np.int64)
    luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16  # PIL's ITU-R 601-2
    expected = luma if channels == 1 else rgb
    got = torch.round(task_data.test[0]["input_values"] * 255).long().numpy()
    assert np.array_equal(got, expected.reshape(20, channels))
    normalized = load_task({**cfg, "normalize": True})
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
    task_data = load_task(
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
    task_data = load_task(
        {"task": "image", "source": "local", "root": str(tmp_path / "dd"), "validation_fraction": 0.2}
    )
    assert task_data.id2label == {i: str(i) for i in range(10)}


def _folder(root, sizes: dict, seed: int = 3) -> dict:
    """root/<split>/<class>/<i>.png of random RGB images; sizes: {(split, class): [(H, W), ...]}."""
    rng = np.random.default_rng(seed)
    pictures = {}
    for (split, name), shapes in sizes.items():
        for i, (h, w) in enumerate(shapes):
            rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            write_png(root / split / name / f"{i}.png", rgb)
            pictures[(split, name, i)] = rgb
    return pictures


def _reference_resize(rgb: np.ndarray, side: int) -> np.ndarray:
    """Short side to `side` (PIL bicubic, long side int(side * long / short)), then the centre side x side crop."""
    from PIL import Image

    h, w = rgb.shape[:2]
    new_h, new_w = (side, int(side * w / h)) if h <= w else (int(side * h / w), side)
    resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BICUBIC))
    top, left = (new_h - side) // 2, (new_w - side) // 2
    return resized[top : top + side, left : left + side]


def test_image_size_resizes_and_centre_crops_images_of_any_size(tmp_path):
    sizes = {
        ("train", "a"): [(12, 20), (9, 9)],
        ("train", "b"): [(30, 10)],
        ("test", "a"): [(8, 8)],
        ("test", "b"): [(15, 11)],
    }
    pictures = _folder(tmp_path, sizes)
    cfg = {"task": "scifar", "source": "local", "root": str(tmp_path), "validation_fraction": 1 / 3}
    with pytest.raises(ValueError, match=r"all sequences must share one shape, .*; set data.image_size to resize"):
        load_task(cfg)
    task_data = load_task({**cfg, "image_size": 8})
    assert task_data.max_length == 64 and task_data.input_dim == 3
    for i, key in enumerate([("test", "a", 0), ("test", "b", 0)]):
        expected = _reference_resize(pictures[key], 8)  # (8 8 3); test items in class order
        got = torch.round(task_data.test[i]["input_values"] * 255).long().numpy().reshape(8, 8, 3)
        assert np.array_equal(got, expected), key
    assert np.array_equal(_reference_resize(pictures[("test", "a", 0)], 8), pictures[("test", "a", 0)])  # identity


@pytest.mark.parametrize("task", ["image", "scifar"])
def test_generated_bars_offline(task):
    cfg = {"task": task, "source": "generate", "num_train": 40, "num_validation": 8, "num_test": 12}
    task_data = load_task(cfg)
    check_task(task_data, (40, 8, 12))
    assert task_data.id2label == {0: "horizontal", 1: "rising", 2: "vertical", 3: "falling"}
    assert task_data.max_length == 32 * 32 and task_data.input_dim == (1 if task == "image" else 3)
    again = load_task(cfg)
    assert torch.equal(again.test[5]["input_values"], task_data.test[5]["input_values"])
    assert sorted(set(labels_of(task_data.train))) == [0, 1, 2, 3]
    small = load_task({**cfg, "num_classes": 2, "image_size": 16, "data_seed": 1})
    assert small.id2label == {0: "horizontal", 1: "rising"} and small.max_length == 256
    assert not torch.equal(small.test[0]["input_values"][:256], task_data.test[0]["input_values"][:256])
    with pytest.raises(ValueError, match=r"data.num_classes: the generated bars have 2..4 classes, got 5"):
        load_task({**cfg, "num_classes": 5})
    with pytest.raises(ValueError, match=r"data.image_size: expected a positive integer \(the square side\) or null"):
        load_task({**cfg, "image_size": 0})
    with pytest.raises(ValueError, match=r"key\(s\) \['root'\] do not apply to task 'scifar' with source: generate"):
        load_task({**cfg, "task": "scifar", "root": "/data"})


def test_image_folder_errors_name_the_folder_or_file(tmp_path):
    base = {("train", "cat"): [(4, 4)], ("train", "dog"): [(4, 4)], ("test", "cat"): [(4, 4)]}
    cfg = {"task": "scifar", "source": "local", "validation_fraction": 0.5}

    def build(name: str, extra: dict) -> None:
        root = tmp_path / name
        _folder(root, {**base, **extra})
        load_task({**cfg, "root": str(root)})

    build("ok", {})  # a split may lack a class
    with pytest.raises(
        ValueError,
        match=r"test: class folder\(s\) \['bird'\] of the test split are not classes of the train split \['cat', 'dog'\]",
    ):
        build("unknown", {("test", "bird"): [(4, 4)]})
    (tmp_path / "empty" / "train" / "cow").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"empty/train/cow: empty class folder"):
        build("empty", {})
    no_test = tmp_path / "no_test"
    _folder(no_test, {k: v for k, v in base.items() if k[0] == "train"})
    (no_test / "test").mkdir()
    with pytest.raises(ValueError, match=r"no_test/test: the test split has no images"):
        load_task({**cfg, "root": str(no_test)})
    bad = tmp_path / "broken"
    _folder(bad, base)
    (bad / "test" / "cat" / "1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken/test/cat/1.png: not a readable image"):
        load_task({**cfg, "root": str(bad)})


def _parquet_split(path, labels: list, column: str = "img", seed: int = 4) -> list[np.ndarray]:
    """A parquet file of 4x4 RGB images (datasets.Image) and `labels`; returns the pixel arrays."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8) for _ in labels]
    label_type = datasets.Value("string") if isinstance(labels[0], str) else datasets.Value("int64")
    features = datasets.Features({column: datasets.Image(), "label": label_type})
    rows = {column: [Image.fromarray(a) for a in arrays], "label": labels}
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return arrays


def test_parquet_image_splits_and_their_label_errors(tmp_path):
    arrays = _parquet_split(tmp_path / "train.parquet", ["cat", "dog", "cat", "dog"])
    test_arrays = _parquet_split(tmp_path / "test.parquet", ["dog", "cat"], seed=5)
    cfg = {
        "task": "scifar",
        "source": "local",
        "train_file": str(tmp_path / "train.parquet"),
        "test_file": str(tmp_path / "test.parquet"),
        "validation_fraction": 0.25,
        "cache_dir": str(tmp_path / "hf"),
    }
    task_data = load_task(cfg)
    check_task(task_data, (3, 1, 2))
    assert task_data.id2label == {0: "cat", 1: "dog"} and labels_of(task_data.test) == [1, 0]
    assert np.array_equal(torch.round(task_data.test[0]["input_values"] * 255).numpy(), test_arrays[0].reshape(16, 3))
    assert len(arrays) == 4
    _parquet_split(tmp_path / "bad_test.parquet", ["dog", "cow", "cat"])
    with pytest.raises(
        ValueError, match=r"bad_test.parquet: test split row 1: label 'cow' is not among the label names"
    ):
        load_task({**cfg, "test_file": str(tmp_path / "bad_test.parquet")})
    _parquet_split(tmp_path / "int_train.parquet", [0, 1, 0, 1])
    _parquet_split(tmp_path / "int_test.parquet", [1, 2])
    ints = {**cfg, "train_file": str(tmp_path / "int_train.parquet"), "test_file": str(tmp_path / "int_test.parquet")}
    with pytest.raises(ValueError, match=r"int_test.parquet: test split row 1: label 2 is outside the 2 classes 0..1"):
        load_task(ints)
    with pytest.raises(ValueError, match=r"int_test.parquet: test split row 1: label 2 is outside the 2 classes 0..1"):
        load_task({**ints, "label_names": ["no", "yes"]})
    with pytest.raises(ValueError, match=r"train.parquet: the train split has no column\(s\) \['image'\]"):
        load_task({**cfg, "image_column": "image"})


def test_hub_source_offline_names_the_data_set(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = {"task": "scifar", "source": "hub", "dataset_name": "someone/imagenet-like", "cache_dir": str(tmp_path)}
    with pytest.raises(
        RuntimeError, match=r"Could not load Hub dataset 'someone/imagenet-like' .* use `source: local`"
    ):
        load_task(cfg)
