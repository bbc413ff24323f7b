"""Tests for modeling_mrconv/data/generated.py: listops, pathfinder, pathx, digits (generated and LRA-release files)."""

import numpy as np
import torch
from task_checks import LISTOPS, check_task, items_of, labels_of, same_items, tiny, write_lra_tsv, write_png
from transformers import AutoTokenizer

from modeling_mrconv.data import load_task
from modeling_mrconv.data.base import SPLITS
from modeling_mrconv.data.generators import listops


def test_digits_split_is_stratified():
    task_data = load_task({"task": "digits"}, seed=0)
    for split in (task_data.train, task_data.validation, task_data.test):
        assert set(labels_of(split)) == set(range(10))
    assert torch.allclose(task_data.train[0]["input_values"] * 16, (task_data.train[0]["input_values"] * 16).round())


def test_listops_splits_unique_and_match_generator(tmp_path):
    task_data = load_task(tiny("listops", tmp_path), seed=0)
    examples = listops.generate_listops(20, 0, **LISTOPS)
    built = [item for split in (task_data.train, task_data.validation, task_data.test) for item in items_of(split)]
    assert [ids.tolist() for ids, _ in built] == [e["input_ids"] for e in examples]
    assert [label for _, label in built] == [e["label"] for e in examples]
    assert len({tuple(ids.tolist()) for ids, _ in built}) == len(built)  # unique across splits
    assert all(ids[-1] == listops.EOS_ID for ids, _ in built)


def test_listops_tokenizer_matches_dataset_ids(tmp_path):
    examples = listops.generate_listops(20, 0, **LISTOPS)
    task_data = load_task(tiny("listops", tmp_path), seed=0, max_sequence_length=64)
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
    task_data = load_task(tiny("listops", tmp_path), seed=0, max_sequence_length=8)
    examples = listops.generate_listops(20, 0, **LISTOPS)
    assert task_data.max_length == 8 and task_data.tokenizer.model_max_length == 8
    for (ids, _), example in zip(items_of(task_data.train), examples, strict=False):
        assert ids.tolist() == task_data.tokenizer(example["source"], truncation=True)["input_ids"]
        assert len(ids) <= 8 and ids[-1] == listops.EOS_ID


def test_listops_local_tsv(tmp_path):
    examples = listops.generate_listops(9, 5, **LISTOPS)
    for name, part in (("basic_train", examples[:5]), ("basic_val", examples[5:7]), ("basic_test", examples[7:])):
        write_lra_tsv(part, tmp_path / f"{name}.tsv")
    task_data = load_task({"task": "listops", "source": "local", "root": str(tmp_path)}, max_sequence_length=2048)
    check_task(task_data, (5, 2, 2))
    assert task_data.max_length == 2048 and task_data.splits["test"].cache_files
    assert [ids.tolist() for ids, _ in items_of(task_data.train)] == [e["input_ids"] for e in examples[:5]]
    assert [label for _, label in items_of(task_data.test)] == [e["label"] for e in examples[7:]]
    explicit = {
        f"{s}_file": str(tmp_path / f"basic_{n}.tsv") for s, n in zip(SPLITS, ("train", "val", "test"), strict=True)
    }
    assert same_items(load_task({"task": "listops", "source": "local", **explicit}).test, task_data.test)


def test_pathfinder_local_lra_folder(tmp_path):
    rng = np.random.default_rng(0)
    base = tmp_path / "curv_contour_length_14"
    images, lines = {}, []
    for i in range(12):
        gray = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        write_png(base / "imgs" / "0" / f"sample_{i}.png", np.repeat(gray[..., None], 3, axis=2))
        images[i] = gray
        lines.append(f"imgs/0 sample_{i}.png {i} {i % 2} 1.0 14 4 2 0.5 1 1")
    lines.append("imgs/0 missing.png 12 1 1.0 14 4 2 0.5 1 1")
    (base / "metadata").mkdir()
    (base / "metadata" / "0.npy").write_text("\n".join(lines[:7]) + "\n")
    (base / "metadata" / "1.npy").write_text("\n".join(lines[7:]) + "\n")
    task_data = load_task({"task": "pathfinder", "source": "local", "root": str(tmp_path)})
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
