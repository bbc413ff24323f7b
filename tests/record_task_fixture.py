"""Record what the generated tasks give for fixed configs and seeds: split sizes, label names and a digest of the
first items of every split. `tests/fixtures/generated_tasks.json` was written by this file from the data layer as it
was before the move onto `datasets` (issue 18); `tests/modeling_mrconv/data/test_task_fixture.py` asserts that the
current data layer gives the same. Re-record only on purpose: `python tests/record_task_fixture.py`.
"""

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import torch


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "generated_tasks.json"
SMALL = {"num_train": 12, "num_validation": 4, "num_test": 4}
CONFIGS = {  # name: data config (generate sources only: no files, no downloads)
    "listops": {"task": "listops", **SMALL, "max_depth": 4, "max_args": 5, "min_length": 10, "max_length": 60},
    "pathfinder": {"task": "pathfinder", "num_train": 4, "num_validation": 2, "num_test": 2},
    "pathx": {"task": "pathx", "num_train": 1, "num_validation": 1, "num_test": 1},
    "digits": {"task": "digits"},
    "synthetic_text": {"task": "synthetic_text", **SMALL, "min_length": 60, "max_length": 150, "max_marker_count": 4},
    "synthetic_retrieval": {"task": "synthetic_retrieval", **SMALL, "min_length": 10, "max_length": 50},
    "synthetic_audio": {"task": "synthetic_audio", **SMALL, "num_classes": 4, "length": 400},
    "sequence": {"task": "sequence", "source": "generate", **SMALL, "length": 64, "num_channels": 2},
    "image": {"task": "image", "source": "generate", **SMALL, "image_size": 16, "num_classes": 3},
    "scifar": {"task": "scifar", "source": "generate", **SMALL, "image_size": 16},
}
SEED = 3
ITEMS_PER_SPLIT = 3


def digest(item: dict) -> dict:
    """The item's input name, shape and a sha256 of its values (int64 ids or float32 values, rounded to 1e-5)."""
    name = "input_ids" if "input_ids" in item else "input_values"
    value = torch.as_tensor(item[name])
    array = value.long().numpy() if name == "input_ids" else np.round(value.float().numpy().astype(np.float64), 5)
    return {
        "input": name,
        "shape": list(value.shape),
        "sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest(),
        "label": int(item["labels"]),
    }


def record(build_task) -> dict:
    """`{task: {"sizes", "id2label", "items": {split: [digest, ...]}}}` from `build_task(config, seed, cache_dir)`,
    which returns `(splits: dict of split -> sequence of items, id2label)`."""
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, config in CONFIGS.items():
            splits, id2label = build_task(dict(config), SEED, cache)
            result[name] = {
                "sizes": {split: len(items) for split, items in splits.items()},
                "id2label": {str(k): v for k, v in sorted(id2label.items())},
                "items": {
                    split: [digest(items[i]) for i in range(min(ITEMS_PER_SPLIT, len(items)))]
                    for split, items in splits.items()
                },
            }
    return result


def build_with_task_data(config: dict, seed: int, cache: str):
    """The data layer of issue 18: `load_task` (a DatasetDict of Arrow splits), its datasets cache under `cache`."""
    from modeling_mrconv.data import load_task

    data = load_task({**config, "cache_dir": cache}, seed=seed)
    return dict(data.splits), data.id2label


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(record(build_with_task_data), indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}")
