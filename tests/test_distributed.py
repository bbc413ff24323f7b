"""Two CPU processes (torchrun, gloo) with the plain Trainer; the merged export equals rank 0's model."""

import json
from pathlib import Path

import pytest
import torch
from mrconv_testing import ToyDataset, run_two_processes

from modeling_mrconv import MRConvForSequenceClassification


@pytest.mark.slow
def test_two_process_trainer_with_synced_batch_norm(tmp_path):
    run_two_processes(Path(__file__).parent / "ddp_trainer_script.py", str(tmp_path), "sync")
    info = json.loads((tmp_path / "info.json").read_text())
    assert info == {"world_size": 2, "distributed_type": "DistributedType.MULTI_CPU"}
    # synced statistics: both ranks tracked the same global batch statistics
    torch.testing.assert_close(
        torch.load(tmp_path / "running_var_rank0.pt"), torch.load(tmp_path / "running_var_rank1.pt")
    )
    export = MRConvForSequenceClassification.from_pretrained(tmp_path / "export")
    assert export.config.reparameterized
    inputs = ToyDataset(16, seed=5)[:]
    with torch.no_grad():
        logits = export(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    torch.testing.assert_close(logits, torch.load(tmp_path / "eval_logits.pt"), rtol=1e-5, atol=1e-6)
