"""Tiny configurations and models shared by the tests (the role of transformers' ModelTester).

Importable as `mrconv_testing` from every test folder: pytest puts the folder of `tests/conftest.py` on the path.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import torch

from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """The command-line script `scripts/<name>.py` as a module (loaded by path: `scripts/` is not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def tiny_config(**overrides) -> MRConvConfig:
    values = {
        "vocab_size": 20,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "max_sequence_length": 64,
        "kernel_size": 4,
        "num_labels": 3,
    }
    values.update(overrides)
    return MRConvConfig(**values)


def check_merged_round_trip(model, inputs: dict) -> None:
    """`model` with moved running statistics, saved merged and reloaded, gives its eval-mode outputs (to 1e-5)."""
    model.train()
    model(**inputs)  # running statistics away from their init
    model.eval()
    with torch.no_grad():
        expected = model(**inputs)[0]
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, reparameterize=True)
        merged = type(model).from_pretrained(folder).eval()
    assert merged.config.reparameterized
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs)[0], expected, rtol=1e-5, atol=1e-5)


def warmed_model(config: MRConvConfig, steps: int = 4, length: int = 48) -> MRConvForSequenceClassification:
    """A model whose BatchNorm running statistics have moved away from their init, in eval mode."""
    model = MRConvForSequenceClassification(config)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(**random_inputs(config, batch=6, length=length))
    return model.eval()


def random_inputs(config: MRConvConfig, batch: int = 4, length: int = 40) -> dict[str, torch.Tensor]:
    if config.input_dim is None:
        return {"input_ids": torch.randint(1, config.vocab_size, (batch, length))}
    return {"input_values": torch.randn(batch, length, config.input_dim)}


class ToyDataset(torch.utils.data.Dataset):
    """Label 1 iff token 5 occurs in the sequence; sequences of varying length padded with 0 (learnable, masked)."""

    def __init__(self, size: int, length: int = 32, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(6, 20, (size, length), generator=generator)
        self.labels = torch.randint(0, 2, (size,), generator=generator)
        lengths = torch.randint(length // 2, length + 1, (size,), generator=generator)
        for i in range(size):
            if self.labels[i]:
                self.input_ids[i, torch.randint(0, int(lengths[i]), (1,), generator=generator)] = 5
            self.input_ids[i, lengths[i] :] = 0
        self.attention_mask = (self.input_ids != 0).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i], "labels": self.labels[i]}


def block_package_prelude() -> str:
    """Python source that makes `import modeling_mrconv` fail, to prove a checkpoint's copied code is self-contained."""
    return (
        "import importlib.abc, sys\n"
        "class _Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'modeling_mrconv':\n"
        "            raise ImportError('modeling_mrconv is blocked in this test')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )


def run_without_package(script: str, tmp_path) -> str:
    """Run `script` in a fresh offline process where `import modeling_mrconv` fails; return its last stdout line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", block_package_prelude() + script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def run_two_processes(script, *args: str, env: dict[str, str] | None = None) -> None:
    """`torchrun --standalone --nproc_per_node 2 script args` on CPU threads; fails the test with its stderr."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    try:
        result = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as error:  # show where it stalled
        raise AssertionError(f"torchrun timed out; stderr tail:\n{str(error.stderr or '')[-4000:]}") from error
    assert result.returncode == 0, result.stderr[-4000:]
