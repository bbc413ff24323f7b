"""The training loop of `scripts/train.py`, importable: Accelerate, a preset's task and model, checkpoints that
resume exactly, the merged export reloaded from disk and evaluated on the test split. What `train` writes into its
output folder is listed in the docstring of `scripts/train.py`."""

import itertools
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader
from transformers import get_cosine_schedule_with_warmup

from modeling_mrconv import param_groups
from modeling_mrconv.data import load_task
from modeling_mrconv.training.config import TrainConfig, flat_preset, resolve_num_threads, resolve_trackers
from modeling_mrconv.training.evaluation import dataset_labels, evaluate
from modeling_mrconv.training.export import task_feature_extractor, write_model_card
from modeling_mrconv.training.models import build_model
from modeling_mrconv.training.progress import Progress, library_bars
from modeling_mrconv.training.run_dir import mark_run_dir, resolve_resume


def tracker_values(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics.jsonl event for `Accelerator.log`: nested dicts as "lr/kernel", no step, no strings."""
    values = {}
    for key, value in record.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            if key != "step" and isinstance(v, int | float) and not isinstance(v, bool):
                values[key if sub is None else f"{key}/{sub}"] = v
    return values


class MetricsLog:
    """Appends one JSON line per event to output_dir/metrics.jsonl (main process only) and logs its numbers to the
    Accelerate trackers of `train.report_to` at the event's step."""

    def __init__(self, path: Path, accelerator: Accelerator):
        self.path, self.accelerator = path, accelerator

    def truncate_after(self, step: int) -> None:
        """Drop the events of steps after `step` and the final results (a resumed run logs them again)."""
        if self.accelerator.is_main_process and self.path.exists():
            events = [json.loads(line) for line in self.path.read_text().splitlines()]
            kept = [e for e in events if e.get("step", 0) <= step and not any(k.startswith("final_") for k in e)]
            self.path.write_text("".join(json.dumps(event) + "\n" for event in kept))

    def write(self, **record: Any) -> None:
        if self.accelerator.is_main_process:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if self.accelerator.trackers:
            self.accelerator.log(tracker_values(record), step=record.get("step"))  # main process only


def save_checkpoint(accelerator: Accelerator, output_dir: Path, state: dict[str, int], model, keep: int) -> None:
    """A resumable `save_state` folder (training form) plus the counters and the config; `latest` points at it."""
    folder = output_dir / "checkpoints" / f"step_{state['global_step']}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / "trainer_state.json").write_text(json.dumps(state))
        accelerator.unwrap_model(model).config.save_pretrained(folder)
        (output_dir / "checkpoints" / "latest").write_text(folder.name)
        # the folder just written is always kept, whatever step numbers other folders carry
        others = sorted((p for p in folder.parent.glob("step_*") if p != folder), key=lambda p: int(p.name[5:]))
        for old in others[: max(0, len(others) - (keep - 1))]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def train(
    preset: dict[str, Any],
    output_dir: str | Path,
    resume: str | None = None,
    mixed_precision: str | None = None,
    cpu: bool = False,
) -> dict[str, Any]:
    """Train `preset` (`load_preset`'s sections) into `output_dir`; returns the final results (`all_results.json`).

    Args:
        resume: a `checkpoints/step_<N>` folder (or `checkpoints/latest`) of this output directory.
        mixed_precision: "no" | "bf16" | "fp16", overriding `train.mixed_precision`.
        cpu: train on CPU even when an accelerator is present.
    """
    cfg = TrainConfig(**preset["train"])
    trackers = resolve_trackers(cfg.report_to)  # a missing tracker package fails here, before any data is built
    output_dir = Path(output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=mixed_precision or cfg.mixed_precision,
        cpu=cpu,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        log_with=trackers or None,
        project_dir=output_dir,  # TensorBoard events: output_dir/mrconv/
    )
    num_threads = resolve_num_threads(cfg.num_threads, default=torch.get_num_threads())
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    set_seed(cfg.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        mark_run_dir(output_dir)
        (output_dir / "training_preset.yaml").write_text(yaml.safe_dump(preset, sort_keys=False))
        if not resume:
            (output_dir / "metrics.jsonl").unlink(missing_ok=True)
    if trackers:
        run_name = {"name": output_dir.name}
        accelerator.init_trackers(
            "mrconv", config=flat_preset(preset), init_kwargs={"wandb": run_name, "trackio": run_name}
        )
    log = MetricsLog(output_dir / "metrics.jsonl", accelerator)
    accelerator.print(f"effective preset (saved as training_preset.yaml):\n{yaml.safe_dump(preset, sort_keys=False)}")

    if preset["data"].get("streaming") and cfg.max_steps is None:
        raise ValueError(
            "train.max_steps: data.streaming: true reads the train split as a stream of unknown length, so the "
            "schedule is counted in optimizer steps; set train.max_steps"
        )
    with accelerator.main_process_first():  # the model's max_sequence_length is the data's length (data/task.py)
        task = load_task(preset["data"], seed=cfg.seed, max_sequence_length=preset["model"].get("max_sequence_length"))
    accelerator.print(f"data: {task.description}")
    model = build_model(preset["model"], task)
    if cfg.sync_batch_norm:
        model.set_sync_batch_norm(True)
    accelerator.print(f"model: {model.__class__.__name__}, {model.num_parameters():,} parameters")

    eval_batch_size = cfg.eval_batch_size or 2 * cfg.batch_size
    loader_kwargs = {"collate_fn": task.collate_fn, "num_workers": cfg.num_workers}
    # a stream is shuffled by its buffer (data.shuffle_buffer, data/task.py), a memory-mapped split by the sampler
    train_loader = DataLoader(
        task.train, batch_size=cfg.batch_size, shuffle=not task.streaming, drop_last=True, **loader_kwargs
    )
    val_loader = DataLoader(task.validation, batch_size=eval_batch_size, **loader_kwargs)
    test_loader = DataLoader(task.test, batch_size=eval_batch_size, **loader_kwargs)
    groups = param_groups(model, cfg.learning_rate, cfg.kernel_learning_rate, cfg.weight_decay)
    optimizer = torch.optim.AdamW(groups)
    model, optimizer, train_loader, val_loader, test_loader = accelerator.prepare(
        model, optimizer, train_loader, val_loader, test_loader
    )
    if not task.streaming and len(train_loader) < cfg.gradient_accumulation_steps:
        # drop_last: fewer examples than one batch per process would leave epochs without a single optimizer step
        raise ValueError(
            f"train split: {len(task.train)} examples give {len(train_loader)} full batches of "
            f"train.batch_size={cfg.batch_size} per process ({accelerator.num_processes} process(es)), fewer than "
            f"the {cfg.gradient_accumulation_steps} micro-batch(es) of one optimizer step "
            "(train.gradient_accumulation_steps); lower train.batch_size or use more training data."
        )
    needed = cfg.batch_size * cfg.gradient_accumulation_steps * accelerator.num_processes
    if task.streaming and sum(1 for _ in itertools.islice(task.train, needed)) < needed:  # read up to one step
        raise ValueError(
            f"train split: the stream holds fewer than the {needed} examples of one optimizer step (train.batch_size="
            f"{cfg.batch_size} x train.gradient_accumulation_steps={cfg.gradient_accumulation_steps} x "
            f"{accelerator.num_processes} process(es)); lower train.batch_size or use more training data."
        )
    if task.streaming:  # a stream has no length: train.max_steps (checked above) is the schedule
        steps_per_epoch, total_steps = None, cfg.max_steps
        schedule = "streamed, the train stream read again as it ends"
    else:
        steps_per_epoch = len(train_loader) // cfg.gradient_accumulation_steps
        total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
        schedule = f"{math.ceil(total_steps / steps_per_epoch)} epochs of {steps_per_epoch}"
    # the prepared scheduler advances once per process per optimizer step
    scheduler = get_cosine_schedule_with_warmup(
        optimizer,
        num_warmup_steps=int(cfg.warmup_ratio * total_steps) * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    )
    scheduler = accelerator.prepare(scheduler)
    eval_every = cfg.eval_every or steps_per_epoch or total_steps
    save_every = cfg.save_every or steps_per_epoch or total_steps

    # train_runtime_seconds: the training time of the run so far, over every resumed segment
    state = {"global_step": 0, "epoch": 0, "batches_in_epoch": 0, "train_runtime_seconds": 0.0}
    if resume:
        folder = resolve_resume(resume)
        accelerator.load_state(str(folder))
        state = {**state, **json.loads((folder / "trainer_state.json").read_text())}
        log.truncate_after(state["global_step"])  # events logged after this checkpoint are replayed now
        accelerator.print(f"resumed from {folder} at step {state['global_step']}")

    accelerator.print(
        f"training {total_steps} steps ({schedule}) on {accelerator.num_processes} "
        f"process(es), {accelerator.device}, mixed precision {accelerator.mixed_precision}, "
        f"{torch.get_num_threads()} CPU thread(s) per process"
    )
    start, earlier_runtime = time.time(), state["train_runtime_seconds"]
    # a bar on a terminal, plain lines (every 30 s) in a redirected log; messages go through it, never glued to it
    progress = Progress(total_steps, initial=state["global_step"], enabled=accelerator.is_local_main_process)
    running = []  # (loss, correct, examples) of each batch since the last log
    model.train()
    while state["global_step"] < total_steps:
        train_loader.set_epoch(state["epoch"])
        skip = state["batches_in_epoch"]  # a resumed epoch
        loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
        for batch in loader:
            with accelerator.accumulate(model):
                out = model(**batch)
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state["batches_in_epoch"] += 1
            correct = (out.logits.argmax(-1) == batch["labels"]).sum().item()
            running.append((out.loss.item(), correct, len(batch["labels"])))
            if not accelerator.sync_gradients:
                continue
            state["global_step"] += 1
            step = state["global_step"]
            progress.update(step)
            if step % cfg.log_every == 0 or step == total_steps:
                losses, correct, examples = zip(*running, strict=True)
                record = {"train_loss": sum(losses) / len(losses), "train_accuracy": sum(correct) / sum(examples)}
                progress.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['train_accuracy']:.3f}")
                log.write(
                    step=step, epoch=state["epoch"], lr={g["name"]: g["lr"] for g in optimizer.param_groups}, **record
                )
                running = []
            if step % eval_every == 0 or step == total_steps:
                metrics = evaluate(model, val_loader, accelerator, task.num_labels)
                progress.write(f"step {step}: validation accuracy {metrics['accuracy']:.4f}")
                log.write(step=step, epoch=state["epoch"], **{f"validation_{k}": v for k, v in metrics.items()})
            if step % save_every == 0 or step == total_steps:
                state["train_runtime_seconds"] = earlier_runtime + time.time() - start
                save_checkpoint(accelerator, output_dir, dict(state), model, cfg.save_total_limit)
            if step >= total_steps:
                break
        else:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
    progress.close()
    train_runtime = earlier_runtime + time.time() - start

    # the merged export, written from the training weights, reloaded from disk and evaluated on the test split
    unwrapped = accelerator.unwrap_model(model)
    state_dict = accelerator.get_state_dict(model)  # collective: full tensors, also from FSDP shards
    if accelerator.is_fsdp2:  # fully_shard's generated subclass would ship torch's FSDP code as the remote code
        unwrapped = type(unwrapped).__bases__[-1](unwrapped.config)  # bases: (FSDPModule, the model class)
    with library_bars(progress.interactive):  # transformers' own bars too: none in a redirected log
        unwrapped.save_pretrained(output_dir, is_main_process=accelerator.is_main_process, state_dict=state_dict)
    if accelerator.is_main_process:  # the tokenizer; continuous series: the task's preprocessing (feature extractor)
        for processor in (task.tokenizer, task_feature_extractor(preset["data"], task)):
            if processor is not None:
                processor.save_pretrained(output_dir)
    accelerator.wait_for_everyone()
    with library_bars(progress.interactive):
        exported = type(unwrapped).from_pretrained(output_dir).to(accelerator.device)
    test_metrics = evaluate(exported, test_loader, accelerator, task.num_labels)
    validation_metrics = evaluate(exported, val_loader, accelerator, task.num_labels)
    train_labels, test_labels = dataset_labels(task.train), dataset_labels(task.test)
    majority = int(torch.bincount(train_labels, minlength=task.num_labels).argmax())
    results = {
        **{f"test_{key}": test_metrics[key] for key in ("accuracy", "macro_f1", "loss")},
        "validation_accuracy": validation_metrics["accuracy"],
        "majority_baseline_accuracy": (test_labels == majority).float().mean().item(),
        "train_steps": state["global_step"],
        "train_runtime_seconds": round(train_runtime, 1),
        "num_parameters": unwrapped.num_parameters(),
        "num_train_examples": len(train_labels),
        "num_test_examples": len(test_labels),
        "num_processes": accelerator.num_processes,
        "data": task.description,
    }
    if accelerator.is_main_process:
        (output_dir / "all_results.json").write_text(json.dumps(results, indent=2) + "\n")
        log.write(step=state["global_step"], **{f"final_{k}": v for k, v in results.items() if k != "data"})
        if not write_model_card(output_dir, preset, results, unwrapped.config):
            accelerator.print(f"kept your {output_dir / 'README.md'}: no model card written")
    accelerator.print(json.dumps(results, indent=2))
    # Drop the DDP wrapper while the process group is still alive, then destroy the group: freeing DDP's Reducer
    # later (holding the GIL) can deadlock against gloo's worker threads (pytorch/pytorch#56297).
    del model, optimizer, scheduler
    accelerator.free_memory()  # also drops the accelerator's references and runs gc
    accelerator.end_training()
    return results


__all__ = ["MetricsLog", "resolve_resume", "save_checkpoint", "tracker_values", "train"]
