"""BatchNormRecalibrationCallback: README's Trainer snippet end to end, honest evaluations and exports, the triggers.

Issue 19: run as the README showed it, Trainer reached a train loss near 0 while every evaluation stayed at the
majority class, because the BatchNorm running variances still carried their initial value 1 (weight 0.9^step) far
above the true variances (about 1e-4 in the first layer's branches); see modeling_mrconv/trainer_callback.py.
"""

import copy
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from mrconv_testing import ToyDataset, run_two_processes, tiny_config
from test_trainer import training_args
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.testing_utils import CaptureLogger
from transformers.tokenization_utils_base import BatchEncoding

from modeling_mrconv import (
    BatchNormRecalibrationCallback,
    MRConvConfig,
    MRConvForSequenceClassification,
    build_byte_tokenizer,
    compute_metrics,
)
from modeling_mrconv import trainer_callback as callback_module


EPOCHS = 3
LETTERS = "abcdefghijklmnoprstuvwxyz"  # no "q"


def byte_texts(size: int, seed: int) -> tuple[list[str], list[int]]:
    """Random lowercase texts of 16-48 bytes; label 1 (40%) iff one "q" was written in (learnable, padded)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(size):
        chars = [rng.choice(LETTERS) for _ in range(rng.randint(16, 48))]
        label = int(rng.random() < 0.4)
        if label:
            chars[rng.randrange(len(chars))] = "q"
        texts.append("".join(chars))
        labels.append(label)
    return texts, labels


def readme_trainer(output_dir, callbacks: list | None) -> Trainer:
    """README's "From scratch, with the Hugging Face `Trainer`" code; TrainingArguments adds CPU and speed settings."""
    tokenizer = build_byte_tokenizer(max_sequence_length=4096)  # ByT5 bytes, no download
    config = MRConvConfig(vocab_size=len(tokenizer), max_sequence_length=4096, kernel_size=16, num_labels=2)
    torch.manual_seed(0)
    model = MRConvForSequenceClassification(config)
    train = [{**tokenizer(t, truncation=True), "labels": y} for t, y in zip(*byte_texts(320, seed=0), strict=True)]
    test = [{**tokenizer(t, truncation=True), "labels": y} for t, y in zip(*byte_texts(200, seed=1), strict=True)]
    args = TrainingArguments(
        str(output_dir),
        eval_strategy="epoch",
        logging_strategy="epoch",
        num_train_epochs=EPOCHS,
        learning_rate=5e-3,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        save_strategy="no",
        use_cpu=True,
        report_to=[],
        seed=0,
        disable_tqdm=True,
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=test,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=callbacks,
    )


def evaluator(model: MRConvForSequenceClassification, like: Trainer) -> Trainer:
    """A Trainer that only evaluates `model` as `like` does (same collator, batch size and metrics)."""
    args = TrainingArguments(
        like.args.output_dir, per_device_eval_batch_size=64, use_cpu=True, report_to=[], disable_tqdm=True
    )
    return Trainer(model=model, args=args, data_collator=like.data_collator, compute_metrics=compute_metrics)


def eval_accuracies(trainer: Trainer) -> list[float]:
    """The accuracies of the evaluations during `train()` (one per epoch; later `evaluate()` calls are not counted)."""
    return [h["eval_accuracy"] for h in trainer.state.log_history if "eval_accuracy" in h][:EPOCHS]


@pytest.fixture(scope="module")
def readme_runs(tmp_path_factory) -> dict[str, Trainer]:
    """The README snippet trained without and with the callback (about 10 s each on one thread)."""
    runs = {}
    for name, callbacks in (("plain", None), ("callback", [BatchNormRecalibrationCallback(num_batches=50)])):
        trainer = readme_trainer(tmp_path_factory.mktemp(name), callbacks)
        trainer.train()
        runs[name] = trainer
    return runs


def majority_accuracy(trainer: Trainer) -> float:
    labels = np.array([example["labels"] for example in trainer.eval_dataset])
    return max(labels.mean(), 1 - labels.mean())


def test_readme_trainer_with_the_callback_evaluates_and_exports_honestly(readme_runs, tmp_path):
    trainer = readme_runs["callback"]
    accuracies = eval_accuracies(trainer)
    assert len(accuracies) == EPOCHS
    assert majority_accuracy(trainer) == pytest.approx(0.61)
    assert min(accuracies) >= 0.9  # learnable: clearly above the majority class from the first epoch on
    # after train(): the statistics of the last evaluation, and those of an explicit recalibration
    final = trainer.evaluate()
    assert final["eval_accuracy"] == accuracies[-1]
    recalibrated = copy.deepcopy(trainer.model).recalibrate_batch_norm(trainer.get_train_dataloader(), num_batches=50)
    assert evaluator(recalibrated, trainer).evaluate(trainer.eval_dataset)["eval_accuracy"] == final["eval_accuracy"]
    # the merged export is the evaluated model
    trainer.save_model(str(tmp_path / "export"))
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "export")
    assert merged.config.reparameterized
    expected = trainer.predict(trainer.eval_dataset)
    got = evaluator(merged, trainer).predict(trainer.eval_dataset)
    np.testing.assert_allclose(got.predictions, expected.predictions, rtol=1e-4, atol=1e-4)
    assert got.metrics["test_accuracy"] == final["eval_accuracy"]


def test_without_the_callback_the_same_weights_evaluate_at_the_majority_class(readme_runs):
    plain, calibrated = readme_runs["plain"], readme_runs["callback"]
    # the callback reads its own loader and restores the global RNG: training is unchanged, bit for bit
    calibrated_state = calibrated.model.state_dict()
    for name, parameter in plain.model.named_parameters():
        assert torch.equal(parameter, calibrated_state[name]), name
    # so each evaluation of the plain run is of the same weights as the callback's, minus the recalibration;
    # after 20 steps the initial variance still weighs 0.9^20 = 0.12: every prediction is the majority class
    plain_accuracies, calibrated_accuracies = eval_accuracies(plain), eval_accuracies(calibrated)
    assert plain_accuracies[0] == majority_accuracy(plain)
    assert all(p < c for p, c in zip(plain_accuracies, calibrated_accuracies, strict=True))
    last_epoch_loss = [h["loss"] for h in plain.state.log_history if "loss" in h][-1]
    assert last_epoch_loss < 0.01  # train mode has learnt the task


def test_recalibrate_batch_norm_takes_the_trainer_dataloader(readme_runs):
    plain = readme_runs["plain"]
    loader = plain.get_train_dataloader()
    assert isinstance(next(iter(loader)), BatchEncoding)
    model = copy.deepcopy(plain.model).recalibrate_batch_norm(loader, num_batches=50)
    accuracy = evaluator(model, plain).evaluate(plain.eval_dataset)["eval_accuracy"]
    assert accuracy == eval_accuracies(readme_runs["callback"])[-1] > majority_accuracy(plain)


def recalibration_steps(trainer: Trainer) -> list[int]:
    """Wrap `trainer.model.recalibrate_batch_norm` to record the global step of each call; returns the record."""
    steps, model = [], trainer.model
    recalibrate = model.recalibrate_batch_norm

    def recording(batches, num_batches=None):
        steps.append(trainer.state.global_step)
        return recalibrate(batches, num_batches=num_batches)

    model.recalibrate_batch_norm = recording
    return steps


def test_recalibrates_before_each_evaluation_and_save_once_per_step(tmp_path):
    torch.manual_seed(7)
    model = MRConvForSequenceClassification(tiny_config(num_labels=2, max_sequence_length=32))
    args = training_args(tmp_path / "run", eval_strategy="steps", eval_steps=3, eval_on_start=True)  # saves: 4, 8
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ToyDataset(96),
        eval_dataset=ToyDataset(32, seed=1),
        callbacks=[BatchNormRecalibrationCallback(num_batches=2)],
    )
    steps = recalibration_steps(trainer)
    trainer.train()
    # 0: eval_on_start; 3, 6: evaluations; 4: a save; 8: the last evaluation and save, then train end (same step)
    assert steps == [0, 3, 4, 6, 8]


def test_best_model_at_end_is_recalibrated_after_loading(tmp_path):
    torch.manual_seed(7)
    model = MRConvForSequenceClassification(tiny_config(num_labels=2, max_sequence_length=32))
    args = training_args(
        tmp_path / "run",
        eval_strategy="steps",
        eval_steps=4,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ToyDataset(96),
        eval_dataset=ToyDataset(32, seed=1),
        callbacks=[BatchNormRecalibrationCallback(num_batches=3)],
    )
    steps = recalibration_steps(trainer)
    trainer.train()
    assert steps == [4, 8, 8]  # the loaded checkpoint is recalibrated again at train end
    # the same batches at every call: the best checkpoint's evaluation is reproduced exactly
    assert trainer.evaluate()["eval_loss"] == trainer.state.best_metric


def test_merged_model_is_skipped_with_one_warning(tmp_path):
    torch.manual_seed(7)
    model = MRConvForSequenceClassification(tiny_config(num_labels=2, max_sequence_length=32)).reparameterize()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    trainer = Trainer(
        model=model,
        args=training_args(tmp_path / "run", max_steps=4, save_steps=2, eval_strategy="steps", eval_steps=2),
        train_dataset=ToyDataset(64),
        eval_dataset=ToyDataset(16, seed=1),
        callbacks=[BatchNormRecalibrationCallback()],
    )
    steps = recalibration_steps(trainer)
    with CaptureLogger(callback_module.logger) as captured:
        trainer.train()
    assert captured.out.count("the model is merged (config.reparameterized=True)") == 1
    assert steps == []
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # block BatchNorms: momentum


def test_wrong_models_and_arguments_raise():
    args = TrainingArguments("unused", use_cpu=True, report_to=[])
    with pytest.raises(TypeError, match="needs an MRConv model"):
        BatchNormRecalibrationCallback().on_train_begin(
            args, TrainerState(), TrainerControl(), model=torch.nn.Linear(2, 2)
        )
    with pytest.raises(ValueError, match="positive int or None"):
        BatchNormRecalibrationCallback(num_batches=0)
    with pytest.raises(TypeError, match="positive int or None"):
        BatchNormRecalibrationCallback(num_batches=2.5)


@pytest.mark.slow
def test_ranks_recalibrate_to_identical_statistics_under_ddp(tmp_path):
    run_two_processes(Path(__file__), str(tmp_path))  # ddp_main below, on two CPU processes
    for sync in (0, 1):
        rank0, rank1 = (torch.load(tmp_path / f"sync{sync}_rank{rank}.pt") for rank in (0, 1))
        assert rank0["steps"] == rank1["steps"] == [3, 6]  # the evaluations; the last one is also train end
        for key, value in rank0["stats"].items():  # same batches on every rank, with or without all-reduce
            assert torch.equal(value, rank1["stats"][key]), (sync, key)


def ddp_main(output_dir: Path) -> None:
    """Under torchrun: Trainer (DDP, gloo) with the callback, BatchNorm statistics unsynced and synced."""
    for sync in (False, True):
        torch.manual_seed(0)
        model = MRConvForSequenceClassification(tiny_config(num_labels=2, max_sequence_length=32))
        model.set_sync_batch_norm(sync)
        args = training_args(
            output_dir / f"sync{int(sync)}",
            max_steps=6,
            eval_strategy="steps",
            eval_steps=3,
            save_strategy="no",
            ddp_find_unused_parameters=False,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=ToyDataset(96),
            eval_dataset=ToyDataset(32, seed=1),
            callbacks=[BatchNormRecalibrationCallback(num_batches=4)],
        )
        steps = recalibration_steps(trainer)
        trainer.train()
        stats = {k: v for k, v in model.state_dict().items() if "running" in k}
        torch.save({"stats": stats, "steps": steps}, output_dir / f"sync{int(sync)}_rank{dist.get_rank()}.pt")
        accelerator = trainer.accelerator
        del trainer
        accelerator.free_memory()  # free DDP's Reducer before the process group (tests/ddp_trainer_script.py)
    dist.destroy_process_group()


if __name__ == "__main__":
    ddp_main(Path(sys.argv[1]))
