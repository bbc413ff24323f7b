"""Shared pytest setup: keep every test offline and seeded (`scripts/` is importable via setup.cfg's pythonpath)."""

import os

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
