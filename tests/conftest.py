"""Shared pytest setup: keep every test offline and seeded.

pytest puts this file's folder on the import path (rootdir conftest, prepend import mode), so `mrconv_testing`,
`transformers_common` and `record_task_fixture` import from every test folder; command-line scripts load by path
(`mrconv_testing.load_script`).
"""

import os

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
