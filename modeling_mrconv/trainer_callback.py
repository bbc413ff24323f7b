"""A `transformers.TrainerCallback` that makes Trainer's evaluations and saves use recalibrated BatchNorm statistics.

MRConv's BatchNorms (per branch, paper Section 3.1, and per block) start their running statistics at mean 0 and
variance 1, which still weighs 0.9^t after t steps at momentum 0.1; at init the first layer's branch outputs have
variances around 1e-4, so for about 100 steps the running variances overstate them many times over, and they trail
the weights. Eval mode and the merged export use them: a run can reach a train loss near 0 while its evaluations stay
at the majority class (README, "Early in training, eval lags train"). This callback calls
`MRConvPreTrainedModel.recalibrate_batch_norm` whenever Trainer is about to evaluate or save. Not copied next to
checkpoints: only training needs it.
"""

import contextlib
import random
from collections.abc import Iterable, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, RandomSampler
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.modeling_utils import unwrap_model
from transformers.utils import logging

from .batchnorm import MRConvBatchNorm


logger = logging.get_logger(__name__)


class BatchNormRecalibrationCallback(TrainerCallback):
    """Recalibrate the BatchNorm running statistics before each evaluation and save, and when training ends.

    `Trainer(..., callbacks=[BatchNormRecalibrationCallback()])`, after any callback of yours that sets
    `should_evaluate` or `should_save`: in `on_step_end` / `on_epoch_end` (after Trainer's `DefaultFlowCallback`)
    the evaluation, the `checkpoint-<step>` folder and the best-checkpoint metric all see the recalibrated model; so
    do `on_train_begin` with `args.eval_on_start` and `on_train_end` (after the best model is loaded, so
    `trainer.evaluate()` and `trainer.save_model(dir)` after `train()` are exact too).

    - Batches: a fresh `DataLoader` over the training loader's dataset and collator at its per-device batch size,
      shuffled by `seed`: the statistics depend on the weights only. Trainer's loader and the global RNG stay
      untouched (the same weights as a run without the callback). An `IterableDataset` is read from its start.
    - Cost: `num_batches` forward passes without gradients per evaluation or save (none twice at one step).
    - Distributed: every rank uses the same batches (the whole training set), so the ranks agree without
      communication; `set_sync_batch_norm(True)` all-reduces each pass, as every rank runs the same number. DDP and
      FSDP2 (`fully_shard`, configuration/accelerate_fsdp.yaml) work; an FSDP1 wrapper raises in `on_train_begin`.
    - A merged model (branch BatchNorms folded) is skipped with one warning, one without BatchNorms silently;
      anything without `recalibrate_batch_norm` raises a `TypeError` in `on_train_begin`.
    - Not covered: `trainer.evaluate()` before `train()`; call `model.recalibrate_batch_norm` yourself there.

    Args:
        num_batches: training batches per recalibration (`None`: one pass over the training set).
        seed: seed of the batch order; defaults to `args.data_seed`, else `args.seed`.
    """

    def __init__(self, num_batches: int | None = 50, seed: int | None = None):
        if num_batches is not None and (isinstance(num_batches, bool) or not isinstance(num_batches, int)):
            raise TypeError(f"num_batches must be a positive int or None, got {num_batches!r}")
        if num_batches is not None and num_batches < 1:
            raise ValueError(f"num_batches must be a positive int or None, got {num_batches}")
        self.num_batches = num_batches
        self.seed = seed
        self._calibrated_step: int | None = None
        self._warned_merged = False

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        self._calibrated_step = None
        self._warned_merged = False
        self._target(kwargs.get("model"))  # a wrong model fails here, not at the first evaluation
        if args.eval_on_start:
            self._recalibrate(args, state, kwargs)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if control.should_evaluate or control.should_save:
            self._recalibrate(args, state, kwargs)

    on_epoch_end = on_step_end

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if args.load_best_model_at_end and state.best_model_checkpoint is not None:
            self._calibrated_step = None  # other weights at the same step
        self._recalibrate(args, state, kwargs)

    def _target(self, model: torch.nn.Module | None) -> torch.nn.Module | None:
        """The MRConv model to recalibrate (unwrapped), or None to skip; raises for unsupported models."""
        if model is None:
            return None
        if dist.is_available():
            from torch.distributed.fsdp import FullyShardedDataParallel

            if isinstance(model, FullyShardedDataParallel):
                raise NotImplementedError(
                    f"{type(self).__name__} does not support FSDP1 (FullyShardedDataParallel): its parameters are "
                    "sharded outside the wrapper's forward. Use FSDP2 (`fsdp_version: 2`, as "
                    "configuration/accelerate_fsdp.yaml)."
                )
        unwrapped = unwrap_model(model)
        if not callable(getattr(unwrapped, "recalibrate_batch_norm", None)):
            raise TypeError(
                f"{type(self).__name__} needs an MRConv model (with `recalibrate_batch_norm`), got "
                f"{type(unwrapped).__name__}"
            )
        if getattr(unwrapped.config, "reparameterized", False):
            if not self._warned_merged:
                logger.warning(
                    f"{type(self).__name__}: the model is merged (config.reparameterized=True), its branch BatchNorms "
                    "are folded into the kernels and recalibrate_batch_norm needs the training form, so the "
                    "BatchNorm statistics are not recalibrated; evaluations and saves use the running statistics "
                    "as they are. Fine-tune the training form (README, 'Merged or training form') to recalibrate."
                )
                self._warned_merged = True
            return None
        if not any(isinstance(module, MRConvBatchNorm) for module in unwrapped.modules()):
            return None
        return unwrapped

    def _recalibrate(self, args: TrainingArguments, state: TrainerState, kwargs: dict) -> None:
        """Recalibrate unless already done at this step; global RNG states are restored afterwards."""
        if self._calibrated_step == state.global_step:
            return
        model = self._target(kwargs.get("model"))
        train_dataloader = kwargs.get("train_dataloader")
        if model is None or train_dataloader is None:
            return
        seed = self.seed if self.seed is not None else (args.data_seed if args.data_seed is not None else args.seed)
        batches = recalibration_batches(train_dataloader, args.per_device_train_batch_size, seed)
        with random_states_restored():  # a dataset's random transforms must not move the training RNG
            model.recalibrate_batch_norm(batches, num_batches=self.num_batches)
        self._calibrated_step = state.global_step
        logger.info(f"Recalibrated the BatchNorm statistics at step {state.global_step}")


def recalibration_batches(train_dataloader: Iterable, batch_size: int, seed: int) -> Iterable:
    """A new loader over `train_dataloader`'s dataset and collator, shuffled by `seed`, else the loader itself; at the
    loader's per-device batch size (else `batch_size`), the last partial batch dropped when there is a full one."""
    dataset = getattr(train_dataloader, "dataset", None)
    collate_fn = getattr(train_dataloader, "collate_fn", None)
    if dataset is None or collate_fn is None:
        return train_dataloader
    batch_size = (
        getattr(train_dataloader, "batch_size", None)
        or getattr(getattr(train_dataloader, "batch_sampler", None), "batch_size", None)
        or batch_size
    )
    generator = torch.Generator().manual_seed(seed)
    sampler, drop_last = None, False
    if not isinstance(dataset, IterableDataset):
        sampler = RandomSampler(dataset, generator=generator)
        drop_last = len(dataset) >= batch_size
    num_workers = getattr(train_dataloader, "num_workers", 0)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        drop_last=drop_last,
        num_workers=num_workers,
        worker_init_fn=getattr(train_dataloader, "worker_init_fn", None) if num_workers else None,
        generator=generator,
    )


@contextlib.contextmanager
def random_states_restored() -> Iterator[None]:
    """Restore the global RNGs of torch (CPU), Python and numpy on exit."""
    import numpy as np  # a dependency of transformers

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


__all__ = ["BatchNormRecalibrationCallback", "recalibration_batches"]
