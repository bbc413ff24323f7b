"""Run by tests/test_fsdp.py under `torchrun --nproc_per_node 2`: bare FSDP2 `fully_shard` training on CPU (gloo).

Every rank trains on the same batches, so the averaged sharded gradients equal one process's gradients and the
BatchNorm running statistics agree across ranks: the run must reproduce a plain single-process training exactly
(up to float32 reduction order). Rank 0 writes the merged export made from the gathered full state dict.
"""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from mrconv_testing import ToyDataset, tiny_config  # tests/ is on the path: it is this script's folder
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard

from modeling_mrconv import MRConvForSequenceClassification
from modeling_mrconv.modeling_mrconv import MRConvBlock


STEPS, BATCH_SIZE = 4, 8


def train_steps(model: torch.nn.Module) -> None:
    """STEPS AdamW steps over fixed batches of ToyDataset (identical on every rank)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = ToyDataset(STEPS * BATCH_SIZE)
    model.train()
    for step in range(STEPS):
        batch = data[step * BATCH_SIZE : (step + 1) * BATCH_SIZE]
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def reference(output_dir: Path) -> None:
    """The same training on one process without FSDP (called by the test); its merged export is the reference."""
    torch.manual_seed(0)
    model = MRConvForSequenceClassification(tiny_config(num_labels=2, max_sequence_length=32))
    train_steps(model)
    model.save_pretrained(output_dir / "reference")


def main(output_dir: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = MRConvForSequenceClassification(tiny_config(num_labels=2, max_sequence_length=32))
    for module in model.modules():
        if isinstance(module, MRConvBlock):
            fully_shard(module)
    fully_shard(model)
    train_steps(model)
    # DTensor shards -> full tensors (collective: every rank calls it), on CPU, kept on rank 0 only
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state_dict = get_model_state_dict(model, options=options)
    if rank == 0:
        sharded = [k for k, v in model.state_dict().items() if hasattr(v, "full_tensor")]
        (output_dir / "sharded_count.txt").write_text(str(len(sharded)))
        # fully_shard swapped in a generated subclass (torch's FSDP module): saving through it would copy torch's
        # FSDP sources as the remote code; the plain class merges the gathered state dict and ships its own code
        plain_class = type(model).__bases__[-1]  # (FSDPModule, the model class), as scripts/train.py exports
        (output_dir / "classes.txt").write_text(f"{type(model).__name__} {plain_class.__name__}")
        plain = plain_class(model.config)
        plain.save_pretrained(output_dir / "export", state_dict=state_dict)
    dist.barrier()
    # free the FSDP module (and its communication state) while the process group is alive, then tear the group
    # down explicitly: gloo worker threads left to interpreter exit can abort it (as DDP does, pytorch/pytorch#56297)
    del model, state_dict
    dist.destroy_process_group()
    # Interpreter teardown can still abort here ("terminate called without an active exception" from a gloo worker
    # thread, about 1 run in 5 on this machine) after everything above has finished and been written: leave without
    # it. A failure before this line still exits non-zero.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
