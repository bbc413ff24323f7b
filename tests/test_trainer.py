"""The plain transformers.Trainer: exact resume, best-model loading, merged export, fine-tuning merged checkpoints."""

import json

import numpy as np
import pytest
import torch
from mrconv_testing import ToyDataset, tiny_config
from sklearn.metrics import accuracy_score, f1_score
from test_save_load import is_branch_key, saved_keys
from transformers import EvalPrediction, Trainer, TrainingArguments

from modeling_mrconv import MRConvForSequenceClassification
from modeling_mrconv.metrics import compute_metrics


def training_args(output_dir, **overrides) -> TrainingArguments:
    values = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 16,
        "learning_rate": 3e-3,
        "max_steps": 8,
        "save_steps": 4,
        "logging_steps": 1,
        "report_to": [],
        "use_cpu": True,
        "seed": 7,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }
    values.update(overrides)
    return TrainingArguments(**values)


def new_model(seed: int = 7) -> MRConvForSequenceClassification:
    torch.manual_seed(seed)
    return MRConvForSequenceClassification(tiny_config(num_labels=2, max_sequence_length=32))


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    data = ToyDataset(96)
    full = Trainer(model=new_model(), args=training_args(tmp_path / "full"), train_dataset=data)
    full_loss = full.train().training_loss
    ckpt = tmp_path / "full" / "checkpoint-4"
    assert any(is_branch_key(k) for k in saved_keys(ckpt))  # resumable: training form

    resumed = Trainer(model=new_model(seed=99), args=training_args(tmp_path / "resumed"), train_dataset=data)
    resumed_loss = resumed.train(resume_from_checkpoint=str(ckpt)).training_loss
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=1e-6, atol=1e-7, msg=key)
    last = [h["loss"] for h in full.state.log_history if "loss" in h][-1]
    assert last == [h["loss"] for h in resumed.state.log_history if "loss" in h][-1]
    assert np.isfinite(full_loss) and np.isfinite(resumed_loss)


def test_best_model_at_end_and_merged_export(tmp_path):
    data, eval_data = ToyDataset(96), ToyDataset(32, seed=1)
    args = training_args(
        tmp_path / "run",
        eval_strategy="steps",
        eval_steps=4,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        save_total_limit=2,
    )
    trainer = Trainer(
        model=new_model(), args=args, train_dataset=data, eval_dataset=eval_data, compute_metrics=compute_metrics
    )
    trainer.train()
    best = trainer.state.best_model_checkpoint
    assert best is not None
    best_metric = trainer.evaluate()["eval_accuracy"]
    assert best_metric == pytest.approx(trainer.state.best_metric)

    trainer.save_model(str(tmp_path / "export"))
    assert not any(is_branch_key(k) for k in saved_keys(tmp_path / "export"))
    assert json.loads((tmp_path / "export" / "config.json").read_text())["reparameterized"] is True
    merged = MRConvForSequenceClassification.from_pretrained(tmp_path / "export")
    eval_trainer = Trainer(model=merged, args=training_args(tmp_path / "eval"), compute_metrics=compute_metrics)
    assert eval_trainer.evaluate(eval_data)["eval_accuracy"] == pytest.approx(best_metric)


def test_fine_tuning_a_merged_checkpoint_lowers_the_loss(tmp_path):
    model = new_model()
    Trainer(
        model=model,
        args=training_args(tmp_path / "pre", max_steps=4, save_strategy="no"),
        train_dataset=ToyDataset(64),
    ).train()
    model.save_pretrained(tmp_path / "export")
    merged = MRConvForSequenceClassification.from_pretrained(tmp_path / "export")
    assert merged.config.reparameterized and merged.mrconv.layers[0].conv.merged_kernel.requires_grad
    kernel_before = merged.mrconv.layers[0].conv.merged_kernel.detach().clone()
    data = ToyDataset(64, seed=3)
    trainer = Trainer(
        model=merged, args=training_args(tmp_path / "ft", max_steps=30, save_strategy="no"), train_dataset=data
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert not torch.equal(kernel_before, merged.mrconv.layers[0].conv.merged_kernel)


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    labels, logits = rng.integers(0, 4, 200), rng.normal(size=(200, 4))
    predictions = logits.argmax(-1)
    metrics = compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert metrics == pytest.approx(
        {"accuracy": accuracy_score(labels, predictions), "macro_f1": f1_score(labels, predictions, average="macro")}
    )
