"""Tests for modeling_mrconv/data/text.py: text and retrieval from local files, synthetic_text and synthetic_retrieval."""

import json
from pathlib import Path

import pytest
from task_checks import check_task, items_of, same_items, tiny

from modeling_mrconv import build_byte_tokenizer
from modeling_mrconv.data import load_task
from modeling_mrconv.data.base import byte_ids
from modeling_mrconv.data.text import NEGATIVE_MARKER, POSITIVE_MARKER, synthetic_retrieval_examples


def test_synthetic_text_rule(tmp_path):
    task_data = load_task(tiny("synthetic_text", tmp_path, num_train=40), seed=0)
    tokenizer = task_data.tokenizer
    labels = []
    for ids, label in items_of(task_data.train):
        words = tokenizer.decode(ids, skip_special_tokens=True).split()
        n_pos, n_neg = words.count(POSITIVE_MARKER), words.count(NEGATIVE_MARKER)
        assert n_pos != n_neg and min(n_pos, n_neg) >= 1
        assert label == int(n_pos > n_neg)
        assert 60 - 9 <= len(ids) <= 150
        labels.append(label)
    assert 0 < sum(labels) < len(labels)


def test_synthetic_retrieval_rule():
    rows = synthetic_retrieval_examples(30, 0, 20, 80, noise=0.0, chunk_size=4, alpha=1.0)
    labels = [row["labels"] for row in rows]
    for a, b, label in [(row["text1"], row["text2"], row["labels"]) for row in rows]:
        assert len(a) == len(b)
        assert (sorted(a) == sorted(b)) == bool(label)  # noise 0: a positive is a chunk permutation of doc1
    assert 0 < sum(labels) < len(labels)


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
    cfg = {"task": "text", "source": "local", "cache_dir": str(tmp_path / "hf"), **files}
    task_data = load_task(cfg, max_sequence_length=16)
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
    carved = load_task({**no_val, "validation_fraction": 0.4}, seed=1, max_sequence_length=16)
    assert (len(carved.train), len(carved.validation)) == (3, 2)
    again = load_task({**no_val, "validation_fraction": 0.4}, seed=1, max_sequence_length=16)
    assert same_items(carved.validation, again.validation)
    uncut = load_task(cfg)  # no model length: nothing is cut
    assert uncut.max_length == len(TEXTS[3]) + 1 and len(uncut.train[3]["input_ids"]) == 81


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
    }
    task_data = load_task(cfg)
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
    task_data = load_task({"task": "retrieval", "root": str(tmp_path)}, max_sequence_length=20)
    check_task(task_data, (3, 3, 3))
    assert task_data.pair and task_data.id2label == {0: "different", 1: "same"}
    for (ids, label), (expected_label, a, b) in zip(items_of(task_data.test), rows, strict=True):
        first, second = (
            ids if len(ids) <= 20 else [*ids[:19], 1] for ids in (byte_ids(a).tolist(), byte_ids(b).tolist())
        )
        assert label == expected_label and ids.shape == (2, max(len(first), len(second)))
        assert ids[0, : len(first)].tolist() == first and ids[1, : len(second)].tolist() == second
        assert (ids[0, len(first) :] == 0).all() and (ids[1, len(second) :] == 0).all()


def test_retrieval_local_jsonl_goes_through_datasets(tmp_path):
    rows = [{"a": f"doc {i}", "b": f"other {i}" * (i + 1), "same": i % 2} for i in range(8)]
    files = {}
    for split, part in (("train", rows[:6]), ("test", rows[6:])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        files[f"{split}_file"] = str(tmp_path / f"{split}.jsonl")
    cfg = {"task": "retrieval", "source": "local", "text1_column": "a", "text2_column": "b", "label_column": "same"}
    task_data = load_task({**cfg, **files, "cache_dir": str(tmp_path / "hf")}, max_sequence_length=12)
    check_task(task_data, (5, 1, 2))
    ids, label = items_of(task_data.test)[1]
    assert label == 1 and ids[0, :6].tolist() == byte_ids("doc 7").tolist()
    assert ids[1].tolist() == [*byte_ids("other 7" * 8)[:11].tolist(), 1]
