"""Tests for modeling_mrconv/data/task.py, collate.py and caching.py: every offline task builds and is seeded; the
collators; the one length check; the datasets cache; batches run through the model; registry and source errors."""

import re

import datasets
import pytest
import torch
from task_checks import EXPECTED, TINY, check_task, items_of, same_items, tiny

from modeling_mrconv.data import TASKS, ContinuousCollator, PairCollator, load_task
from modeling_mrconv.data import caching as caching_module
from modeling_mrconv.data.base import SPLITS
from modeling_mrconv.data.generators import listops, pathfinder


@pytest.mark.parametrize("task", sorted(TINY))
def test_offline_task_builds(task, tmp_path):
    task_data = load_task(tiny(task, tmp_path), seed=0)
    name, input_dim, max_length, num_labels, pair = EXPECTED[task]
    assert (task_data.input_dim, task_data.num_labels, task_data.pair) == (input_dim, num_labels, pair)
    longest = max(len(item[name][0] if pair else item[name]) for s in SPLITS for item in task_data.splits[s])
    assert task_data.max_length == (max_length or longest) == longest
    sizes = (1257, 270, 270) if task == "digits" else tuple(TINY[task][f"num_{s}"] for s in SPLITS)
    check_task(task_data, sizes)
    assert isinstance(task_data.splits, datasets.DatasetDict) and name in task_data.train[0]
    assert task_data.id2label == dict(enumerate(task_data.train.features["labels"].names))
    assert all(task_data.splits[s].cache_files for s in SPLITS)  # Arrow files in the datasets cache, memory-mapped
    if input_dim is None:
        assert task_data.pad_token_id == 0 and task_data.vocab_size in (len(listops.LISTOPS_VOCAB), 259)
    else:
        values = torch.cat([task_data.train[i]["input_values"] for i in range(len(task_data.train))])
        assert values.min() >= -1.0 and values.max() <= 1.0


@pytest.mark.parametrize("task", sorted(TINY))
def test_deterministic_by_seed(task, tmp_path):
    first = load_task(tiny(task, tmp_path, cache=False), seed=3)  # in memory
    again = load_task(tiny(task, tmp_path), seed=3)  # written to the cache
    cached = load_task(tiny(task, tmp_path), seed=3)  # read back from it
    other = load_task(tiny(task, tmp_path, cache=False), seed=4)
    assert not first.train.cache_files and again.train.cache_files == cached.train.cache_files
    for split in SPLITS:
        assert same_items(first.splits[split], again.splits[split])
        assert same_items(first.splits[split], cached.splits[split])
    assert not same_items(first.train, other.train)
    # data_seed overrides the seed argument
    pinned = load_task(tiny(task, tmp_path, data_seed=3), seed=4)
    assert same_items(first.train, pinned.train)


def test_the_cache_is_keyed_by_every_parameter_and_the_generator_code(tmp_path, monkeypatch):
    calls = []
    generate = pathfinder.generate_pathfinder

    def counting(*args, **kwargs):
        calls.append(args)
        return generate(*args, **kwargs)

    monkeypatch.setattr(pathfinder, "generate_pathfinder", counting)
    cfg = tiny("pathfinder", tmp_path)
    first = load_task(cfg, seed=0)
    second = load_task(cfg, seed=0)
    assert len(calls) == 1 and same_items(first.train, second.train)
    load_task({**cfg, "num_train": 5}, seed=0)  # another generation key: another entry
    load_task(cfg, seed=1)  # another seed
    assert len(calls) == 3
    real_hash = caching_module._file_hash
    monkeypatch.setattr(caching_module, "_file_hash", lambda path: real_hash(path) + ("x" * ("pathfinder" in path)))
    third = load_task(cfg, seed=0)  # the generator's code changed: generated again, never served from the cache
    assert len(calls) == 4 and same_items(first.train, third.train)
    fourth = load_task({**cfg, "cache": False}, seed=0)
    assert len(calls) == 5 and not fourth.train.cache_files


def test_collators_pad_and_mask():
    values = ContinuousCollator()
    batch = values([{"input_values": torch.ones(2, 3), "labels": 0}, {"input_values": torch.ones(3, 3), "labels": 2}])
    assert batch["input_values"].shape == (2, 3, 3) and batch["input_values"][0, 2].abs().sum() == 0
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]] and batch["labels"].tolist() == [0, 2]
    pairs = PairCollator(pad_token_id=0)
    batch = pairs(
        [
            {"input_ids": torch.tensor([[4, 1, 0], [4, 5, 1]]), "labels": 1},
            {"input_ids": torch.tensor([[7], [1]]), "labels": 0},
        ]
    )
    assert batch["input_ids"].tolist() == [[[4, 1, 0], [4, 5, 1]], [[7, 0, 0], [1, 0, 0]]]
    assert batch["attention_mask"].tolist() == [[[1, 1, 0], [1, 1, 1]], [[1, 0, 0], [1, 0, 0]]]


def test_token_batches_are_padded_by_the_tokenizer(tmp_path):
    from transformers import DataCollatorWithPadding

    task_data = load_task(tiny("listops", tmp_path), seed=0)
    assert (
        isinstance(task_data.collate_fn, DataCollatorWithPadding)
        and task_data.collate_fn.tokenizer is task_data.tokenizer
    )
    items = [task_data.train[i] for i in range(3)]
    batch = task_data.collate_fn(items)
    L = max(len(it["input_ids"]) for it in items)
    assert (
        batch["input_ids"].shape == batch["attention_mask"].shape == (3, L) and batch["input_ids"].dtype == torch.long
    )
    for row, item in zip(batch["attention_mask"], items, strict=True):
        assert row.tolist() == [1] * len(item["input_ids"]) + [0] * (L - len(item["input_ids"]))


def test_max_sequence_length_cuts_tokens_and_refuses_longer_continuous_inputs(tmp_path):
    full = load_task(tiny("synthetic_retrieval", tmp_path), seed=0)
    cut = load_task(tiny("synthetic_retrieval", tmp_path), seed=0, max_sequence_length=12)
    assert cut.max_length == 12 and cut.tokenizer.model_max_length == 12
    for (short, _), (long, _) in zip(items_of(cut.train), items_of(full.train), strict=True):
        for doc in range(2):  # each document: its first 11 ids and its EOS, re-padded to the longer of the two
            real = long[doc][long[doc] != 0].tolist()
            expected = real if len(real) <= 12 else [*real[:11], 1]
            assert short[doc, : len(expected)].tolist() == expected and (short[doc, len(expected) :] == 0).all()
    assert load_task(tiny("synthetic_audio", tmp_path), seed=0, max_sequence_length=512).max_length == 512
    message = "synthetic_audio generated train split row 0: sequence of length 400 exceeds max_sequence_length=300"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_task(tiny("synthetic_audio", tmp_path), seed=0, max_sequence_length=300)
    with pytest.raises(ValueError, match=re.escape("max_sequence_length: expected an integer >= 2 or null, got 1.5")):
        load_task(tiny("listops", tmp_path), max_sequence_length=1.5)


def test_batches_run_through_the_model(tmp_path):
    from modeling_mrconv import MRConvConfig, MRConvForDocumentPairClassification, MRConvForSequenceClassification

    for task in ("listops", "synthetic_retrieval", "synthetic_audio"):
        task_data = load_task(tiny(task, tmp_path), seed=0)
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
        loader = torch.utils.data.DataLoader(task_data.train, batch_size=3, collate_fn=task_data.collate_fn)
        output = model_class(config)(**next(iter(loader)))
        assert output.logits.shape == (3, task_data.num_labels) and torch.isfinite(output.loss)


@pytest.mark.parametrize("task", ["text", "scifar"])
def test_hub_source_offline_names_the_dataset(task, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    name = "mrconv-tests/not-a-cached-dataset"
    with pytest.raises(RuntimeError, match=name):
        load_task({"task": task, "source": "hub", "dataset_name": name, "cache_dir": str(tmp_path)})


def test_bad_config_errors():
    with pytest.raises(ValueError, match="unknown data task"):
        load_task({"task": "imagenet"})
    with pytest.raises(ValueError, match="source"):
        load_task({"task": "synthetic_text", "source": "hub"})
    with pytest.raises(ValueError, match="dataset_name"):
        load_task({"task": "retrieval", "source": "hub"})
    assert set(TASKS) >= set(TINY)


def test_a_preprocessing_step_is_keyed_by_the_code_it_calls(tmp_path, monkeypatch):
    """The sequence task's normalization runs the feature extractor's `normalize_series`: a change there re-runs the
    step instead of serving it from the cache."""
    cfg = {"task": "sequence", "source": "generate", "num_train": 6, "num_validation": 2, "num_test": 2, "length": 64,
           "cache_dir": str(tmp_path / "cache")}  # fmt: skip
    first = load_task(cfg, seed=0)
    assert load_task(cfg, seed=0).train.cache_files == first.train.cache_files
    real_hash = caching_module._file_hash
    monkeypatch.setattr(
        caching_module, "_file_hash", lambda path: real_hash(path) + ("x" * ("feature_extraction" in str(path)))
    )
    again = load_task(cfg, seed=0)
    assert again.train.cache_files != first.train.cache_files and same_items(first.train, again.train)
