"""Two CPU processes (torchrun, gloo) with the plain Trainer; the merged export equals rank 0's model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from utils import ToyDataset

from modeling_mrconv import MRConvForSequenceClassification


@pytest.mark.slow
def test_two_process_trainer_with_synced_batch_norm(tmp_path):
    script = Path(__file__).parent / "ddp_trainer_script.py"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path),
        "sync",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
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
