"""Tests for modeling_mrconv/data/base.py: every offline task builds and is seeded; the collator; batches run through the
model; registry and source errors."""

import pytest
import torch
from task_checks import EXPECTED, TINY, check_task, same_items, tiny

from modeling_mrconv.data import TASKS, build_task_data
from modeling_mrconv.data.base import SPLITS, PadCollator
from modeling_mrconv.data.generators import listops


@pytest.mark.parametrize("task", sorted(TINY))
def test_offline_task_builds(task, tmp_path):
    task_data = build_task_data(tiny(task, tmp_path), seed=0)
    name, input_dim, max_length, num_labels, pair = EXPECTED[task]
    assert (task_data.input_dim, task_data.max_length, task_data.num_labels, task_data.pair) == (
        input_dim,
        max_length,
        num_labels,
        pair,
    )
    sizes = (1257, 270, 270) if task == "digits" else tuple(TINY[task][f"num_{s}"] for s in SPLITS)
    check_task(task_data, sizes)
    assert name in task_data.train[0]
    if input_dim is None:
        assert task_data.pad_token_id == 0 and task_data.vocab_size in (len(listops.LISTOPS_VOCAB), 259)
    else:
        values = torch.stack([task_data.train[i]["input_values"] for i in range(len(task_data.train))])
        assert values.min() >= -1.0 and values.max() <= 1.0


@pytest.mark.parametrize("task", sorted(TINY))
def test_deterministic_by_seed(task, tmp_path):
    no_cache = {"cache": False} if "cache" in TASKS[task].config_cls.__dataclass_fields__ else {}
    first = build_task_data(tiny(task, tmp_path, **no_cache), seed=3)
    again = build_task_data(tiny(task, tmp_path, **no_cache), seed=3)
    other = build_task_data(tiny(task, tmp_path, **no_cache), seed=4)
    for split in SPLITS:
        assert same_items(getattr(first, split), getattr(again, split))
    assert not same_items(first.train, other.train)
    # data_seed overrides the seed argument
    pinned = build_task_data(tiny(task, tmp_path, **no_cache, data_seed=3), seed=4)
    assert same_items(first.train, pinned.train)


def test_collator_pads_and_truncates():
    tokens = PadCollator("input_ids", max_length=4, pad_token_id=0)
    batch = tokens([{"input_ids": torch.tensor([5, 6]), "labels": 1}, {"input_ids": torch.arange(3, 9), "labels": 0}])
    assert batch["input_ids"].tolist() == [[5, 6, 0, 0], [3, 4, 5, 6]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    values = PadCollator("input_values", max_length=10)
    batch = values([{"input_values": torch.ones(2, 3), "labels": 0}, {"input_values": torch.ones(3, 3), "labels": 2}])
    assert batch["input_values"].shape == (2, 3, 3) and batch["input_values"][0, 2].abs().sum() == 0
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]] and batch["labels"].tolist() == [0, 2]
    pairs = PadCollator("input_ids", max_length=10, pad_token_id=0, pair=True)
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
        task_data = build_task_data(tiny(task, tmp_path), seed=0)
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


@pytest.mark.parametrize("task", ["text", "scifar"])
def test_hub_source_offline_names_the_dataset(task, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    name = "mrconv-tests/not-a-cached-dataset"
    with pytest.raises(RuntimeError, match=name):
        build_task_data({"task": task, "source": "hub", "dataset_name": name, "hf_cache_dir": str(tmp_path)})


def test_bad_config_errors():
    with pytest.raises(ValueError, match="unknown data task"):
        build_task_data({"task": "imagenet"})
    with pytest.raises(ValueError, match="source"):
        build_task_data({"task": "synthetic_text", "source": "hub"})
    with pytest.raises(ValueError, match="dataset_name"):
        build_task_data({"task": "retrieval", "source": "hub"})
