"""Run by tests/test_distributed.py under `torchrun --nproc_per_node 2`: Trainer on CPU (gloo), then the export."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from mrconv_testing import ToyDataset, tiny_config  # tests/ is on the path: it is this script's folder
from transformers import Trainer, TrainingArguments

from modeling_mrconv import MRConvForSequenceClassification


def main(output_dir: Path, sync: bool) -> None:
    torch.manual_seed(0)
    model = MRConvForSequenceClassification(tiny_config(num_labels=2, max_sequence_length=32))
    model.set_sync_batch_norm(sync)
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        max_steps=6,
        learning_rate=3e-3,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=ToyDataset(96))
    trainer.train()
    rank = dist.get_rank()
    running_var = model.mrconv.layers[0].conv.batch_norm.running_var
    torch.save(running_var, output_dir / f"running_var_rank{rank}.pt")
    trainer.save_model(str(output_dir / "export"))
    if trainer.is_world_process_zero():
        inputs = ToyDataset(16, seed=5)[:]
        with torch.no_grad():
            logits = model.eval()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        torch.save(logits, output_dir / "eval_logits.pt")
        info = {"world_size": args.world_size, "distributed_type": str(trainer.accelerator.distributed_type)}
        (output_dir / "info.json").write_text(json.dumps(info))
    # free DDP's Reducer before the process group, as scripts/train.py does (pytorch/pytorch#56297)
    accelerator = trainer.accelerator
    del trainer, model
    accelerator.free_memory()  # drops its references to the DDP model and runs gc
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] == "sync")
