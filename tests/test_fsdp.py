"""FSDP2 on two CPU processes (gloo): bare `fully_shard` training, and scripts/train.py under the FSDP config."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fsdp_script import reference
from mrconv_testing import ToyDataset, run_two_processes

from modeling_mrconv import MRConvForSequenceClassification


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fully_shard_export_equals_single_process_training(tmp_path):
    run_two_processes(Path(__file__).parent / "fsdp_script.py", str(tmp_path))
    assert (
        tmp_path / "classes.txt"
    ).read_text() == "FSDPMRConvForSequenceClassification MRConvForSequenceClassification"
    assert int((tmp_path / "sharded_count.txt").read_text()) > 0  # the parameters were DTensor shards
    export_dir = tmp_path / "export"
    assert not list(export_dir.glob("_fsdp*.py"))  # the export ships this repository's code, not torch's
    assert json.loads((export_dir / "config.json").read_text())["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_mrconv.MRConvForSequenceClassification"
    )
    reference(tmp_path)  # the same training on this process, without FSDP
    export = MRConvForSequenceClassification.from_pretrained(export_dir)
    expected = MRConvForSequenceClassification.from_pretrained(tmp_path / "reference")
    assert export.config.reparameterized and expected.config.reparameterized
    exported, reference_state = export.state_dict(), expected.state_dict()
    assert exported.keys() == reference_state.keys()
    for key in exported:  # float32 training of 4 steps; only the reduction order differs
        torch.testing.assert_close(exported[key], reference_state[key], rtol=1e-4, atol=1e-5, msg=key)
    inputs = ToyDataset(16, seed=5)[:]
    inputs.pop("labels")
    with torch.no_grad():
        torch.testing.assert_close(export(**inputs).logits, expected(**inputs).logits, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_accelerate_launch_fsdp_config_exports_a_loadable_model(tmp_path):
    # on CPU, Accelerate 1.15 runs the FSDP config as multi-CPU DDP (its FSDP plugin needs a GPU-type backend); on
    # GPUs the same command shards with fully_shard and train.py's export gathers the full state dict
    command = [
        *(sys.executable, "-m", "accelerate.commands.launch"),
        *("--config_file", str(ROOT / "configuration" / "accelerate_fsdp.yaml"), "--num_processes", "2"),
        str(ROOT / "scripts" / "train.py"),
        *("--config", str(ROOT / "configuration" / "tiny.yaml"), "--output_dir", str(tmp_path)),
        *("--set", "train.max_steps=4"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"accelerate launch timed out; stderr tail:\n{str(error.stderr or '')[-4000:]}"
        ) from error
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((tmp_path / "all_results.json").read_text())
    assert results["num_processes"] == 2 and results["train_steps"] == 4
    export = MRConvForSequenceClassification.from_pretrained(tmp_path)
    assert export.config.reparameterized
    assert not list(tmp_path.glob("_fsdp*.py"))
    preset_length = export.config.max_sequence_length
    input_ids = torch.randint(1, export.config.vocab_size, (4, preset_length))
    with torch.no_grad():
        logits = export.eval()(input_ids=input_ids).logits
    assert logits.shape == (4, export.config.num_labels) and torch.isfinite(logits).all()
