"""Tests for scripts/data.py: every offline task builds; items, batches and masks; determinism; local loaders."""

import io
import json
import wave
from pathlib import Path

import data
import numpy as np
import pytest
import torch
from generators import listops
from transformers import AutoTokenizer

from modeling_mrconv import build_byte_tokenizer


LISTOPS = {"max_depth": 4, "max_args": 5, "min_length": 10, "max_length": 60}
SMALL = {"num_train": 12, "num_validation": 4, "num_test": 4}
TINY = {
    "listops": {"task": "listops", **SMALL, **LISTOPS},
    "pathfinder": {"task": "pathfinder", "num_train": 4, "num_validation": 2, "num_test": 2},
    "pathx": {"task": "pathx", "num_train": 1, "num_validation": 1, "num_test": 1},
    "digits": {"task": "digits"},
    "synthetic_text": {"task": "synthetic_text", **SMALL, "min_length": 60, "max_length": 150, "max_marker_count": 4},
    "synthetic_retrieval": {"task": "synthetic_retrieval", **SMALL, "min_length": 10, "max_length": 50},
    "synthetic_audio": {"task": "synthetic_audio", **SMALL, "num_classes": 4, "length": 400},
}
EXPECTED = {  # task: (input name, input_dim, max_length, num_labels, pair)
    "listops": ("input_ids", None, 64, 10, False),
    "pathfinder": ("input_values", 1, 1024, 2, False),
    "pathx": ("input_values", 1, 16384, 2, False),
    "digits": ("input_values", 1, 64, 10, False),
    "synthetic_text": ("input_ids", None, 150, 2, False),
    "synthetic_retrieval": ("input_ids", None, 50, 2, True),
    "synthetic_audio": ("input_values", 1, 400, 4, False),
}


def tiny(task: str, tmp_path: Path, **overrides) -> dict:
    return {**TINY[task], "cache_dir": str(tmp_path / "cache"), **overrides}


def check_item(task_data: data.TaskData, item: dict) -> None:
    assert set(item) == {"input_ids" if task_data.input_dim is None else "input_values", "labels"}
    assert isinstance(item["labels"], int) and 0 <= item["labels"] < task_data.num_labels
    if task_data.input_dim is None:
        ids = item["input_ids"]
        assert ids.dtype == torch.long and ids.dim() == (2 if task_data.pair else 1)
        assert ids.shape[-1] <= task_data.max_length
        assert int(ids.min()) >= 0 and int(ids.max()) < task_data.vocab_size
    else:
        values = item["input_values"]
        assert values.dtype == torch.float32 and values.dim() == 2 and values.shape[1] == task_data.input_dim
        assert values.shape[0] <= task_data.max_length


def check_batch(task_data: data.TaskData, items: list[dict]) -> dict[str, torch.Tensor]:
    """Collate `items` and check shapes, dtypes, padding values and the attention mask against the items."""
    batch = task_data.collate_fn(items)
    name = "input_ids" if task_data.input_dim is None else "input_values"
    assert set(batch) == {name, "attention_mask", "labels"}
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [it["labels"] for it in items]
    inputs, mask = batch[name], batch["attention_mask"]
    assert mask.dtype == torch.long
    L = max(it[name].shape[-1 if task_data.pair else 0] for it in items)
    if task_data.pair:
        assert inputs.shape == mask.shape == (len(items), 2, L)
        for i, item in enumerate(items):
            for doc in range(2):
                real = item["input_ids"][doc]
                length = int((real != task_data.pad_token_id).nonzero().max()) + 1
                assert mask[i, doc].tolist() == [1] * length + [0] * (L - length)
                assert torch.equal(inputs[i, doc, :length], real[:length])
                assert (inputs[i, doc, length:] == task_data.pad_token_id).all()
        return batch
    assert mask.shape == (len(items), L)
    for i, item in enumerate(items):
        length = item[name].shape[0]
        assert mask[i].tolist() == [1] * length + [0] * (L - length)
        assert torch.equal(inputs[i, :length], item[name])
        pad = task_data.pad_token_id if task_data.input_dim is None else 0.0
        assert (inputs[i, length:] == pad).all()
    if task_data.input_dim is None:
        assert inputs.shape == (len(items), L) and inputs.dtype == torch.long
    else:
        assert inputs.shape == (len(items), L, task_data.input_dim) and inputs.dtype == torch.float32
    return batch


def check_task(task_data: data.TaskData, sizes: tuple[int, int, int] | None = None) -> None:
    splits = (task_data.train, task_data.validation, task_data.test)
    if sizes is not None:
        assert tuple(len(s) for s in splits) == sizes
    assert task_data.num_labels == len(task_data.id2label)
    assert sorted(task_data.id2label) == list(range(task_data.num_labels))
    assert task_data.description and "\n" not in task_data.description
    assert (task_data.tokenizer is None) == (task_data.input_dim is not None)
    for split in splits:
        for i in range(len(split)):
            check_item(task_data, split[i])
    check_batch(task_data, [task_data.train[i] for i in range(min(4, len(task_data.train)))])


def items_of(dataset: torch.utils.data.Dataset) -> list[tuple]:
    return [
        (next(v for k, v in dataset[i].items() if k != "labels"), dataset[i]["labels"]) for i in range(len(dataset))
    ]


def same_items(a: torch.utils.data.Dataset, b: torch.utils.data.Dataset) -> bool:
    return len(a) == len(b) and all(
        x[1] == y[1] and x[0].shape == y[0].shape and torch.equal(x[0], y[0])
        for x, y in zip(items_of(a), items_of(b), strict=True)
    )


# -- generated / shipped tasks


@pytest.mark.parametrize("task", sorted(TINY))
def test_offline_task_builds(task, tmp_path):
    task_data = data.build_task_data(tiny(task, tmp_path), seed=0)
    name, input_dim, max_length, num_labels, pair = EXPECTED[task]
    assert (task_data.input_dim, task_data.max_length, task_data.num_labels, task_data.pair) == (
        input_dim,
        max_length,
        num_labels,
        pair,
    )
    sizes = (1257, 270, 270) if task == "digits" else tuple(TINY[task][f"num_{s}"] for s in data.SPLITS)
    check_task(task_data, sizes)
    assert name in task_data.train[0]
    if input_dim is None:
        assert task_data.pad_token_id == 0 and task_data.vocab_size in (len(listops.LISTOPS_VOCAB), 259)
    else:
        values = torch.stack([task_data.train[i]["input_values"] for i in range(len(task_data.train))])
        assert values.min() >= -1.0 and values.max() <= 1.0


@pytest.mark.parametrize("task", sorted(TINY))
def test_deterministic_by_seed(task, tmp_path):
    first = data.build_task_data(tiny(task, tmp_path, cache=False), seed=3)
    again = data.build_task_data(tiny(task, tmp_path, cache=False), seed=3)
    other = data.build_task_data(tiny(task, tmp_path, cache=False), seed=4)
    for split in data.SPLITS:
        assert same_items(getattr(first, split), getattr(again, split))
    assert not same_items(first.train, other.train)
    # data_seed overrides the seed argument
    pinned = data.build_task_data(tiny(task, tmp_path, cache=False, data_seed=3), seed=4)
    assert same_items(first.train, pinned.train)


def test_digits_split_is_stratified():
    task_data = data.build_task_data({"task": "digits"}, seed=0)
    for split in (task_data.train, task_data.validation, task_data.test):
        assert set(split.labels.tolist()) == set(range(10))
    assert torch.allclose(task_data.train[0]["input_values"] * 16, (task_data.train[0]["input_values"] * 16).round())


def test_listops_splits_unique_and_match_generator(tmp_path):
    task_data = data.build_task_data(tiny("listops", tmp_path), seed=0)
    examples = listops.generate_listops(20, 0, **LISTOPS)
    built = [item for split in (task_data.train, task_data.validation, task_data.test) for item in items_of(split)]
    assert [ids.tolist() for ids, _ in built] == [e["input_ids"] for e in examples]
    assert [label for _, label in built] == [e["label"] for e in examples]
    assert len({tuple(ids.tolist()) for ids, _ in built}) == len(built)  # unique across splits
    assert all(ids[-1] == listops.EOS_ID for ids, _ in built)


def test_listops_tokenizer_matches_dataset_ids(tmp_path):
    examples = listops.generate_listops(20, 0, **LISTOPS)
    task_data = data.build_task_data(tiny("listops", tmp_path), seed=0)
    tokenizer = task_data.tokenizer
    dataset_ids = [
        ids.tolist() for split in ("train", "validation", "test") for ids, _ in items_of(getattr(task_data, split))
    ]
    assert [tokenizer(e["source"])["input_ids"] for e in examples] == dataset_ids
    tokenizer.save_pretrained(tmp_path / "tok")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    batch = reloaded([e["source"] for e in examples[:3]], padding=True, return_tensors="pt")
    collated = task_data.collate_fn([task_data.train[i] for i in range(3)])
    assert torch.equal(batch["input_ids"], collated["input_ids"])
    assert torch.equal(batch["attention_mask"], collated["attention_mask"])
    assert (reloaded.pad_token_id, reloaded.eos_token_id, reloaded.model_max_length) == (0, listops.EOS_ID, 64)
    assert reloaded("( ( [MAX 2 ) foo ) ] )")["input_ids"] == listops.encode_tokens(["[MAX", "2", "<unk>", "]"])


def test_listops_truncation_keeps_eos(tmp_path):
    task_data = data.build_task_data(tiny("listops", tmp_path, max_sequence_length=8), seed=0)
    examples = listops.generate_listops(20, 0, **LISTOPS)
    assert task_data.max_length == 8 and task_data.tokenizer.model_max_length == 8
    for (ids, _), example in zip(items_of(task_data.train), examples, strict=False):
        assert ids.tolist() == task_data.tokenizer(example["source"], truncation=True)["input_ids"]
        assert len(ids) <= 8 and ids[-1] == listops.EOS_ID


def test_pathfinder_cache(tmp_path, monkeypatch):
    calls = []
    generate = data.pathfinder.generate_pathfinder

    def counting(*args, **kwargs):
        calls.append(args)
        return generate(*args, **kwargs)

    monkeypatch.setattr(data.pathfinder, "generate_pathfinder", counting)
    cfg = tiny("pathfinder", tmp_path)
    first = data.build_task_data(cfg, seed=0)
    second = data.build_task_data(cfg, seed=0)
    assert len(calls) == 1 and "cache" in second.description and same_items(first.train, second.train)
    (path,) = (tmp_path / "cache").glob("pathfinder32-*.npz")
    with np.load(path) as stored:
        key = str(stored["key"])
    # a file holding another key (e.g. written by another generator version) is regenerated, never served
    stale = np.zeros((8, 32, 32), np.uint8)
    np.savez(path, key=np.array(key.replace('"seed": 0', '"seed": 99')), images=stale, labels=np.zeros(8, np.int64))
    third = data.build_task_data(cfg, seed=0)
    assert len(calls) == 2 and same_items(first.train, third.train)
    path.write_bytes(b"not an npz")
    fourth = data.build_task_data(cfg, seed=0)
    assert len(calls) == 3 and same_items(first.train, fourth.train)
    data.build_task_data({**cfg, "num_train": 5}, seed=0)  # another generation key: another file
    assert len(calls) == 4 and len(list((tmp_path / "cache").glob("pathfinder32-*.npz"))) == 2
    assert not list((tmp_path / "cache").glob("*.tmp.npz"))


def test_synthetic_text_rule(tmp_path):
    task_data = data.build_task_data(tiny("synthetic_text", tmp_path, num_train=40), seed=0)
    tokenizer = task_data.tokenizer
    labels = []
    for ids, label in items_of(task_data.train):
        words = tokenizer.decode(ids, skip_special_tokens=True).split()
        n_pos, n_neg = words.count(data.POSITIVE_MARKER), words.count(data.NEGATIVE_MARKER)
        assert n_pos != n_neg and min(n_pos, n_neg) >= 1
        assert label == int(n_pos > n_neg)
        assert 60 - 9 <= len(ids) <= 150
        labels.append(label)
    assert 0 < sum(labels) < len(labels)


def test_synthetic_retrieval_rule():
    first, second, labels = data.synthetic_retrieval_examples(30, 0, 20, 80, noise=0.0, chunk_size=4)
    for a, b, label in zip(first, second, labels, strict=True):
        assert len(a) == len(b)
        assert (sorted(a) == sorted(b)) == bool(label)  # noise 0: a positive is a chunk permutation of doc1
    assert 0 < sum(labels) < len(labels)


def test_synthetic_audio_resample(tmp_path):
    full = data.build_task_data(tiny("synthetic_audio", tmp_path), seed=0)
    half = data.build_task_data(tiny("synthetic_audio", tmp_path, resample_to=8000), seed=0)
    assert half.max_length == 400 and half.test[0]["input_values"].shape == (200, 1)
    assert same_items(full.train, half.train)
    x = full.test[0]["input_values"][:, 0] * 32768
    expected = torch.round(x.view(-1, 2).double().mean(1)).float() / 32768
    assert torch.allclose(half.test[0]["input_values"][:, 0], expected)
    assert "SYNTHETIC" in full.description and set(full.id2label.values()) == {f"chirp_{k}" for k in range(4)}


# -- collation


def test_collator_pads_and_truncates():
    tokens = data.PadCollator("input_ids", max_length=4, pad_token_id=0)
    batch = tokens([{"input_ids": torch.tensor([5, 6]), "labels": 1}, {"input_ids": torch.arange(3, 9), "labels": 0}])
    assert batch["input_ids"].tolist() == [[5, 6, 0, 0], [3, 4, 5, 6]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    values = data.PadCollator("input_values", max_length=10)
    batch = values([{"input_values": torch.ones(2, 3), "labels": 0}, {"input_values": torch.ones(3, 3), "labels": 2}])
    assert batch["input_values"].shape == (2, 3, 3) and batch["input_values"][0, 2].abs().sum() == 0
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]] and batch["labels"].tolist() == [0, 2]
    pairs = data.PadCollator("input_ids", max_length=10, pad_token_id=0, pair=True)
    batch = pairs(
        [
            {"input_ids": torch.tensor([[4, 1, 0], [4, 5, 1]]), "labels": 1},
            {"input_ids": torch.tensor([[7], [1]]), "labels": 0},
        ]
    )
    assert batch["input_ids"].shape == (2, 2, 3)
    assert batch["attention_mask"].tolist() == [[[1, 1, 0], [1, 1, 1]], [[1, 0, 0], [1, 0, 0]]]


def test_batches_run_through_the_model(tmp_path):
    from modeling_mrconv import MRConvConfig, MRConvForDocumentPairClassification, MRConvForSequenceClassification

    for task in ("listops", "synthetic_retrieval", "synthetic_audio"):
        task_data = data.build_task_data(tiny(task, tmp_path), seed=0)
        config = MRConvConfig(
            vocab_size=task_data.vocab_size or 1,
            input_dim=task_data.input_dim,
            hidden_size=8,
            num_hidden_layers=1,
            max_sequence_length=task_data.max_length,
            kernel_size=4,
            num_labels=task_data.num_labels,
            pad_token_id=task_data.pad_token_id,
            id2label=task_data.id2label,
        )
        model_class = MRConvForDocumentPairClassification if task_data.pair else MRConvForSequenceClassification
        batch = task_data.collate_fn([task_data.train[i] for i in range(3)])
        output = model_class(config)(**batch)
        assert output.logits.shape == (3, task_data.num_labels) and torch.isfinite(output.loss)


# -- local files


def test_listops_local_tsv(tmp_path):
    examples = listops.generate_listops(9, 5, **LISTOPS)
    for name, part in (("basic_train", examples[:5]), ("basic_val", examples[5:7]), ("basic_test", examples[7:])):
        listops.write_lra_tsv(part, tmp_path / f"{name}.tsv")
    task_data = data.build_task_data({"task": "listops", "source": "local", "root": str(tmp_path)})
    check_task(task_data, (5, 2, 2))
    assert task_data.max_length == 2048
    assert [ids.tolist() for ids, _ in items_of(task_data.train)] == [e["input_ids"] for e in examples[:5]]
    assert [label for _, label in items_of(task_data.test)] == [e["label"] for e in examples[7:]]
    explicit = {
        f"{s}_file": str(tmp_path / f"basic_{n}.tsv")
        for s, n in zip(data.SPLITS, ("train", "val", "test"), strict=True)
    }
    assert same_items(data.build_task_data({"task": "listops", "source": "local", **explicit}).test, task_data.test)


TEXTS = ["a good film", "bad, très bad", "meh </s> ok", "fine" * 20, "great!", "awful", "so so", "loved it", "no"]
LABELS = [1, 0, 0, 1, 1, 0, 0, 1, 0]


def _write_text_files(tmp_path: Path, kind: str, labels: list | None = None) -> dict[str, str]:
    import datasets

    labels = labels or LABELS
    rows = [{"text": t, "label": y} for t, y in zip(TEXTS, labels, strict=True)]
    parts = {"train": rows[:5], "validation": rows[5:7], "test": rows[7:]}
    files = {}
    for split, part in parts.items():
        path = tmp_path / f"{split}.{kind}"
        if kind == "csv":
            datasets.Dataset.from_list(part).to_csv(path, index=False)
        elif kind == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
        else:
            datasets.Dataset.from_list(part).to_parquet(path)
        files[f"{split}_file"] = str(path)
    return files


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_text_local_files(tmp_path, kind):
    files = _write_text_files(tmp_path, kind)
    cfg = {"task": "text", "source": "local", "max_length": 16, "hf_cache_dir": str(tmp_path / "hf"), **files}
    task_data = data.build_task_data(cfg)
    check_task(task_data, (5, 2, 2))
    assert task_data.id2label == {0: "negative", 1: "positive"} and task_data.vocab_size == 259
    tokenizer = build_byte_tokenizer(16)
    for text, (ids, label) in zip(TEXTS[:5], items_of(task_data.train), strict=True):
        assert label == LABELS[TEXTS.index(text)]
        if "</s>" not in text:  # the tokenizer maps the literal "</s>" to EOS; bytes stay bytes here
            assert ids.tolist() == tokenizer(text, truncation=True)["input_ids"]
    assert len(task_data.train[3]["input_ids"]) == 16 and task_data.train[3]["input_ids"][-1] == 1
    # without a validation file, validation is carved from train by data_seed
    no_val = {k: v for k, v in cfg.items() if k != "validation_file"}
    carved = data.build_task_data({**no_val, "validation_fraction": 0.4}, seed=1)
    assert (len(carved.train), len(carved.validation)) == (3, 2)
    assert same_items(
        carved.validation, data.build_task_data({**no_val, "validation_fraction": 0.4}, seed=1).validation
    )


def test_text_local_string_labels_and_save_to_disk(tmp_path):
    import datasets

    names = ["bad" if y == 0 else "good" for y in LABELS]
    rows = [{"review": t, "stars": y} for t, y in zip(TEXTS, names, strict=True)]
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows[:6]), "test": datasets.Dataset.from_list(rows[6:])}
    ).save_to_disk(tmp_path / "dd")
    cfg = {
        "task": "text",
        "source": "local",
        "root": str(tmp_path / "dd"),
        "text_column": "review",
        "label_column": "stars",
        "max_length": 32,
    }
    task_data = data.build_task_data(cfg)
    check_task(task_data, (5, 1, 3))
    assert task_data.id2label == {0: "bad", 1: "good"}
    assert [label for _, label in items_of(task_data.test)] == LABELS[6:]


def test_retrieval_local_tsv(tmp_path):
    rows = [(1, "one two", "one two!"), (0, "alpha", "a much longer second document"), (1, "x" * 50, "y")]
    for name in ("train", "eval", "test"):
        lines = [
            f"{label}{'.0' if i == 1 else ''}\tid{i}a\tid{i}b\t{a}\t{b}\n" for i, (label, a, b) in enumerate(rows)
        ]
        (tmp_path / f"new_aan_pairs.{name}.tsv").write_text("".join(lines), encoding="utf-8")
    task_data = data.build_task_data({"task": "retrieval", "root": str(tmp_path), "max_length": 20})
    check_task(task_data, (3, 3, 3))
    assert task_data.pair and task_data.id2label == {0: "different", 1: "same"}
    for (ids, label), (expected_label, a, b) in zip(items_of(task_data.test), rows, strict=True):
        first, second = data.byte_encode(a, 20), data.byte_encode(b, 20)
        assert label == expected_label and ids.shape == (2, max(len(first), len(second)))
        assert ids[0, : len(first)].tolist() == first.tolist() and ids[1, : len(second)].tolist() == second.tolist()
        assert (ids[0, len(first) :] == 0).all() and (ids[1, len(second) :] == 0).all()


def test_retrieval_local_jsonl_goes_through_datasets(tmp_path):
    rows = [{"a": f"doc {i}", "b": f"other {i}" * (i + 1), "same": i % 2} for i in range(8)]
    files = {}
    for split, part in (("train", rows[:6]), ("test", rows[6:])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        files[f"{split}_file"] = str(tmp_path / f"{split}.jsonl")
    cfg = {"task": "retrieval", "source": "local", "text1_column": "a", "text2_column": "b", "label_column": "same"}
    task_data = data.build_task_data({**cfg, **files, "max_length": 12, "hf_cache_dir": str(tmp_path / "hf")})
    check_task(task_data, (5, 1, 2))
    ids, label = items_of(task_data.test)[1]
    assert label == 1 and ids[0, :6].tolist() == data.byte_encode("doc 7", 12).tolist()
    assert ids[1].tolist() == data.byte_encode("other 7" * 8, 12).tolist()


def _write_png(path: Path, pixels: np.ndarray) -> None:
    import matplotlib.image

    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, pixels)  # (H, W, 3) uint8: stored as is (plus an opaque alpha channel)


def test_pathfinder_local_lra_folder(tmp_path):
    rng = np.random.default_rng(0)
    base = tmp_path / "curv_contour_length_14"
    images, lines = {}, []
    for i in range(12):
        gray = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        _write_png(base / "imgs" / "0" / f"sample_{i}.png", np.repeat(gray[..., None], 3, axis=2))
        images[i] = gray
        lines.append(f"imgs/0 sample_{i}.png {i} {i % 2} 1.0 14 4 2 0.5 1 1")
    lines.append("imgs/0 missing.png 12 1 1.0 14 4 2 0.5 1 1")
    (base / "metadata").mkdir()
    (base / "metadata" / "0.npy").write_text("\n".join(lines[:7]) + "\n")
    (base / "metadata" / "1.npy").write_text("\n".join(lines[7:]) + "\n")
    task_data = data.build_task_data({"task": "pathfinder", "source": "local", "root": str(tmp_path)})
    check_task(task_data, (10, 1, 1))
    assert (task_data.max_length, task_data.input_dim) == (64, 1) and "1 missing" in task_data.description
    order = torch.randperm(12, generator=torch.Generator().manual_seed(42)).tolist()  # S4's random_split
    for index, item in zip(
        order, [task_data.train[i] for i in range(10)] + [task_data.validation[0], task_data.test[0]], strict=True
    ):
        assert torch.equal(
            torch.round(item["input_values"][:, 0] * 255).to(torch.uint8), torch.from_numpy(images[index].ravel())
        )
        assert item["labels"] == index % 2


@pytest.mark.parametrize("task", ["image", "scifar"])
def test_image_folder(tmp_path, task):
    rng = np.random.default_rng(0)
    pictures = {}
    for split, count in (("train", 3), ("test", 1)):
        for name in ("cat", "dog"):
            for i in range(count):
                rgb = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
                _write_png(tmp_path / split / name / f"{i}.png", rgb)
                pictures[(split, name, i)] = rgb
    cfg = {"task": task, "source": "local", "root": str(tmp_path), "validation_fraction": 1 / 3}
    task_data = data.build_task_data(cfg)
    check_task(task_data, (4, 2, 2))
    channels = 1 if task == "image" else 3
    assert task_data.input_dim == channels and task_data.max_length == 20
    assert task_data.id2label == {0: "cat", 1: "dog"}
    rgb = pictures[("test", "cat", 0)].astype(np.int64)
    luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16  # PIL's ITU-R 601-2
    expected = luma if channels == 1 else rgb
    got = torch.round(task_data.test[0]["input_values"] * 255).long().numpy()
    assert np.array_equal(got, expected.reshape(20, channels))
    normalized = data.build_task_data({**cfg, "normalize": True})
    train = torch.stack([normalized.train[i]["input_values"] for i in range(4)])  # (N L C)
    assert torch.allclose(train.mean((0, 1)), torch.zeros(channels), atol=1e-4)
    assert torch.allclose(train.std((0, 1), unbiased=False), torch.ones(channels), atol=1e-3)


def test_image_save_to_disk_with_image_feature(tmp_path):
    import datasets
    from PIL import Image

    rng = np.random.default_rng(1)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=data.CIFAR10_CLASSES)})
    arrays = [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8) for _ in range(12)]
    rows = {"img": [Image.fromarray(a) for a in arrays], "label": [i % 10 for i in range(12)]}
    full = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": full.select(range(10)), "test": full.select(range(10, 12))}).save_to_disk(
        tmp_path / "dd"
    )
    task_data = data.build_task_data(
        {"task": "scifar", "source": "local", "root": str(tmp_path / "dd"), "validation_fraction": 0.2}
    )
    check_task(task_data, (8, 2, 2))
    assert task_data.id2label[0] == "airplane" and task_data.input_dim == 3
    assert np.array_equal(torch.round(task_data.test[1]["input_values"] * 255).numpy(), arrays[11].reshape(16, 3))


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
    task_data = data.build_task_data(cfg)
    check_task(task_data, (6, 2, 1))
    assert task_data.num_labels == 35 and task_data.id2label[task_data.test[0]["labels"]] == "zero"
    assert list(task_data.id2label.values()) == data.SC35_WORDS
    test = task_data.test[0]["input_values"][:, 0] * 32768  # zero/2.wav: 500 samples cropped to 400
    assert torch.equal(test.round().short(), torch.from_numpy(clips["zero/2.wav"][:400]))
    first = task_data.train[0]["input_values"][:, 0] * 32768  # cat/0.wav: 300 samples, zero-padded to 400
    assert task_data.id2label[task_data.train[0]["labels"]] == "cat"
    assert torch.equal(first[:300].round().short(), torch.from_numpy(clips["cat/0.wav"])) and (first[300:] == 0).all()
    half = data.build_task_data({**cfg, "resample_to": 8000})
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
    task_data = data.build_task_data(
        {"task": "speech_commands", "source": "local", "root": str(tmp_path / "dd"), "length": 120}
    )
    check_task(task_data, (2, 1, 1))  # the two `_silence_` rows are dropped
    assert [task_data.id2label[y] for _, y in items_of(task_data.train)] == ["yes", "wow"]
    assert torch.equal(
        (task_data.test[0]["input_values"][:100, 0] * 32768).round().short(), torch.from_numpy(clips[4])
    )


# -- errors


@pytest.mark.parametrize("task", ["text", "scifar"])
def test_hub_source_offline_names_the_dataset(task, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    name = "mrconv-tests/not-a-cached-dataset"
    with pytest.raises(RuntimeError, match=name):
        data.build_task_data({"task": task, "source": "hub", "dataset_name": name, "hf_cache_dir": str(tmp_path)})


def test_bad_config_errors():
    with pytest.raises(ValueError, match="unknown data task"):
        data.build_task_data({"task": "imagenet"})
    with pytest.raises(ValueError, match="source"):
        data.build_task_data({"task": "synthetic_text", "source": "hub"})
    with pytest.raises(ValueError, match="dataset_name"):
        data.build_task_data({"task": "retrieval", "source": "hub"})
