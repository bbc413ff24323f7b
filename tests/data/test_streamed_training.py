"""`data.streaming: true`: the splits are `IterableDataset`s read batch by batch, the train stream shuffled with a
buffer, the schedule counted in `train.max_steps`; the training loop never holds a whole split (peak RSS measured in
a subprocess on parquet files three times the asserted budget)."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from modeling_mrconv.data import load_task


ROW_BYTES = 1 << 17  # 128 KiB of text per row
# peak RSS increase allowed for the whole streamed run: measured 300-460 MiB on 2-core machines (it grows slowly with
# the data read, about 150-240 MiB at 0.5 GB), far below the 1.5 GiB train split
BUDGET_BYTES = 576 << 20
ROWS = {"train": 12500, "validation": 1000, "test": 1000}  # 14500 rows x 128 KiB = 1.77 GiB > 3 x the budget


def write_text_parquet(folder: Path, rows: dict[str, int], row_bytes: int, seed: int = 0) -> dict[str, str]:
    """Parquet files of `rows[split]` random lowercase texts (label: whether "q" comes before "z"), 16-row groups."""
    rng = np.random.default_rng(seed)
    pool = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ", np.uint8)[rng.integers(0, 27, row_bytes * 8)]
    schema = pa.schema([("text", pa.string()), ("label", pa.int64())])
    files = {}
    for split, count in rows.items():
        files[f"{split}_file"] = str(folder / f"{split}.parquet")
        with pq.ParquetWriter(files[f"{split}_file"], schema, compression="NONE") as writer:
            for start in range(0, count, 16):
                offsets = rng.integers(0, row_bytes * 7, min(16, count - start))
                texts = [pool[o : o + row_bytes].tobytes().decode() for o in offsets]
                labels = [int(t.find("q") < t.find("z")) for t in texts]
                writer.write_table(pa.table({"text": texts, "label": labels}, schema=schema))
    return files


def preset(files: dict[str, str], max_steps: int | None = 20) -> dict:
    return {
        "model": {"max_sequence_length": 128, "hidden_size": 8, "num_hidden_layers": 1, "kernel_size": 8},
        "data": {"task": "text", "source": "local", "streaming": True, "label_names": ["no", "yes"], **files},
        "train": {"batch_size": 16, "max_steps": max_steps, "log_every": 10, "num_threads": 1},
    }


def test_streamed_splits_are_iterable_shuffled_and_cut(tmp_path):
    files = write_text_parquet(tmp_path, {"train": 40, "validation": 8, "test": 8}, 300)
    cfg = preset(files)["data"]
    task = load_task(cfg, seed=0, max_sequence_length=64)
    assert isinstance(task.splits, datasets.IterableDatasetDict) and task.streaming
    assert task.id2label == {0: "no", 1: "yes"} and task.max_length == 64 and "streamed" in task.description
    rows = list(task.train)
    assert len(rows) == 40 and all(len(r["input_ids"]) == 64 and r["input_ids"][-1] == 1 for r in rows)
    texts = pq.read_table(files["train_file"])["text"].to_pylist()
    in_file_order = [[b + 3 for b in t.encode()[:63]] + [1] for t in texts]  # bytes + 3, cut to 63 and the EOS
    got = [list(r["input_ids"]) for r in rows]
    assert sorted(got) == sorted(in_file_order) and got != in_file_order  # every row once, shuffled
    reread = [list(r["input_ids"]) for r in load_task(cfg, seed=0, max_sequence_length=64).train]
    assert reread == got  # seeded
    batch = task.collate_fn(rows[:3])
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (3, 64)


def test_streamed_series_are_checked_as_read(tmp_path):
    from modeling_mrconv.data.generators.timeseries import generate_timeseries, write_parquet

    files = {}
    for split, count in (("train", 24), ("validation", 8), ("test", 8)):
        x, y = generate_timeseries(count, length=48, num_channels=2, burst_length=8, seed=len(files))
        files[f"{split}_file"] = str(tmp_path / f"{split}.parquet")
        write_parquet(files[f"{split}_file"], x, y)
    cfg = {"task": "sequence", "source": "local", "streaming": True, "label_names": ["a", "b", "c", "d"], **files}
    task = load_task(cfg, seed=0, max_sequence_length=48)
    rows = list(task.train)
    assert len(rows) == 24 and task.input_dim == 2 and np.asarray(rows[0]["input_values"]).shape == (48, 2)
    assert task.collate_fn(rows[:3])["input_values"].shape == (3, 48, 2)
    too_short = load_task(cfg, seed=0, max_sequence_length=40)
    with pytest.raises(ValueError, match=re.escape(f"{files['train_file']} row 0: sequence of length 48 exceeds")):
        next(iter(too_short.train))


def test_streaming_errors_name_the_keys(tmp_path):
    from modeling_mrconv.training import train

    files = write_text_parquet(tmp_path, {"train": 8, "validation": 4, "test": 4}, 100)
    with pytest.raises(ValueError, match=re.escape("train.max_steps: data.streaming: true reads the train split")):
        train(preset(files, max_steps=None), tmp_path / "run", cpu=True)
    cfg = preset(files)["data"]
    with pytest.raises(
        ValueError, match=re.escape("data.streaming: a stream's longest sequence is unknown; set model")
    ):
        load_task(cfg)
    with pytest.raises(ValueError, match=re.escape("data.label_names: a stream cannot be scanned for its classes")):
        load_task({**cfg, "label_names": None}, max_sequence_length=32)
    no_validation = {k: v for k, v in cfg.items() if k != "validation_file"}
    with pytest.raises(ValueError, match=re.escape("data.streaming: a stream has no length to carve validation_fr")):
        load_task(no_validation, max_sequence_length=32)
    (tmp_path / "a.ts").write_text("@classLabel true a\n@data\n1,2:a\n")
    ts = {"train_file": str(tmp_path / "a.ts"), "test_file": str(tmp_path / "a.ts")}
    with pytest.raises(ValueError, match=re.escape("data.streaming: .ts, .npz and UCR .tsv files are read whole")):
        load_task({"task": "sequence", "source": "local", "streaming": True, **ts})


def test_a_stream_shorter_than_one_batch_is_an_error_not_an_endless_loop(tmp_path):
    from accelerate.state import AcceleratorState

    from modeling_mrconv.training import train

    files = write_text_parquet(tmp_path, {"train": 8, "validation": 4, "test": 4}, 100)  # 8 rows < batch 16
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        with pytest.raises(
            ValueError,
            match=re.escape("train split: the stream holds fewer than the 16 examples of one optimizer step"),
        ):
            train(preset(files, max_steps=5), tmp_path / "run", cpu=True)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


MEASURE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from accelerate.state import AcceleratorState
    from modeling_mrconv.training import load_preset, train

    def status(key):
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key + ":"))
        return int(line.split()[1]) * 1024

    warm, measured, out = sys.argv[1:]
    train(load_preset(Path(warm), []), out + "_warm", cpu=True)  # imports, kernels and caches of a whole run
    AcceleratorState._reset_state(reset_partial_state=True)
    baseline = status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current RSS
    results = train(load_preset(Path(measured), []), out, cpu=True)
    print(json.dumps({"increase": status("VmHWM") - baseline, "results": results}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc/self/clear_refs")
def test_streamed_training_never_holds_a_split(tmp_path):
    """1.77 GiB of parquet (a 1.5 GiB train split) streamed through a whole run: 20 training steps, evaluations and
    the final pass over the train labels read every byte; the peak RSS grows by less than a third of the data."""
    paths = {}
    for name, rows, row_bytes in (
        ("warm", {"train": 64, "validation": 16, "test": 16}, 4096),
        ("big", ROWS, ROW_BYTES),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / f"{name}.yaml").write_text(
            yaml.safe_dump(preset(write_text_parquet(tmp_path / name, rows, row_bytes)))
        )
        paths[name] = tmp_path / f"{name}.yaml"
    data_bytes = sum(f.stat().st_size for f in (tmp_path / "big").glob("*.parquet"))
    assert data_bytes >= 3 * BUDGET_BYTES
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, str(paths["warm"]), str(paths["big"]), str(tmp_path / "run")],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
    finally:
        for parquet in (tmp_path / "big").glob("*.parquet"):
            parquet.unlink()  # 1.77 GiB: not left to pytest's kept temporary folders
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    results = measured["results"]
    assert results["train_steps"] == 20 and results["num_train_examples"] == ROWS["train"]
    assert results["num_test_examples"] == ROWS["test"] and "streamed" in results["data"]
    assert measured["increase"] < BUDGET_BYTES, f"peak RSS grew by {measured['increase'] / 2**20:.0f} MiB"
