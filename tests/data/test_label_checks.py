"""Every split's labels and rows are checked when the data is built (`tasks.base.check_labels` and the readers), and
`load_task` rejects unknown keys and keys of another source: exact messages naming split, file and row/line."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from task_checks import write_lra_tsv

from modeling_mrconv.data import load_task
from modeling_mrconv.data.base import SPLITS, check_labels
from modeling_mrconv.data.generators import listops
from modeling_mrconv.data.generators.timeseries import generate_timeseries, write_parquet


def test_check_labels_messages():
    check_labels("test", np.array([0, 4, 2]), 5, "f.csv")
    with pytest.raises(
        ValueError, match=re.escape("f.csv: test split row 2: label 7 is outside the 5 classes 0..4 (1 such row(s))")
    ):
        check_labels("test", np.array([0, 4, 7]), 5, "f.csv")
    with pytest.raises(
        ValueError, match=re.escape("f.tsv: train split line 9: label -1 is outside the 2 classes 0..1 (2 such")
    ):
        check_labels("train", [1, -1, 3], 2, "f.tsv", lines=[5, 9, 10])
    with pytest.raises(ValueError, match=re.escape("f.csv: the validation split is empty (no rows)")):
        check_labels("validation", [], 2, "f.csv")
    with pytest.raises(ValueError, match=re.escape("f.csv: test labels must be integer class ids, got dtype float64")):
        check_labels("test", [0.5], 2, "f.csv")


# ---------------------------------------------------------------------------------------------------------------------
# ListOps (LRA TSVs)


def _listops_files(tmp_path: Path, test_lines: list[str] | None = None) -> dict:
    examples = listops.generate_listops(12, 0, max_depth=2, max_args=3, min_length=3, max_length=40)
    for name, part in (("train", examples[:8]), ("val", examples[8:10]), ("test", examples[10:])):
        write_lra_tsv(part, tmp_path / f"{name}.tsv")
    if test_lines is not None:
        (tmp_path / "test.tsv").write_text("".join(test_lines))
    files = {f"{s}_file": str(tmp_path / f"{n}.tsv") for s, n in zip(SPLITS, ("train", "val", "test"), strict=True)}
    return {"task": "listops", "source": "local", **files}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ["Source\tTarget\n", "[MAX 1 2 ]\t2\n", "[MIN 3 4 ]\n"],
            "line 3: expected 2 tab-separated fields (Source, Target), got 1",
        ),
        (
            ["Source\tTarget\n", "[MAX 1 2 ]\t2\n", "[MIN 3 4 ]\t12\n"],
            ": test split line 3: label 12 is outside the 10 classes 0..9",
        ),
        (["Source\tTarget\n", "[MAX 1 2 ]\tx\n"], "line 2: Target must be an integer 0..9, got 'x'"),
        (["Source\tTarget\n"], ": empty test file (no rows after the header)"),
        ([], ": empty test file (no rows after the header)"),
        (["Src\tTgt\n"], "line 1: expected the header 'Source<TAB>Target', got 'Src\\tTgt\\n'"),
    ],
)
def test_listops_tsv_rows_are_checked(tmp_path, lines, message):
    cfg = _listops_files(tmp_path, lines)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "test.tsv")) + ".*" + re.escape(message)):
        load_task(cfg)


def test_listops_local_reads_as_before(tmp_path):
    task = load_task(_listops_files(tmp_path))
    expected = listops.read_lra_tsv(tmp_path / "test.tsv")
    assert [task.test[i]["labels"] for i in range(2)] == [e["label"] for e in expected]
    assert [task.test[i]["input_ids"].tolist() for i in range(2)] == [e["input_ids"] for e in expected]


def test_pathfinder_metadata_rows_are_checked(tmp_path):
    base = tmp_path / "curv_contour_length_14" / "metadata"
    base.mkdir(parents=True)
    (base / "0.npy").write_text("imgs/0 sample_0.png 0 1 14\nimgs/0 sample_1.png 1\n")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{base / '0.npy'} row 2: expected 'folder file_name index label(0|1) ...', got 'imgs/0 sample_1.png 1'"
        ),
    ):
        load_task({"task": "pathfinder", "source": "local", "root": str(tmp_path)})


# ---------------------------------------------------------------------------------------------------------------------
# text, retrieval (datasets files and AAN TSVs)


def _text_files(tmp_path: Path, test_rows: list[dict], kind: str = "jsonl") -> dict:
    train = [{"text": f"doc {i}", "label": i % 5} for i in range(10)]
    files = {}
    for split, rows in (("train", train), ("validation", train[:5]), ("test", test_rows)):
        path = tmp_path / f"{split}.{kind}"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files[f"{split}_file"] = str(path)
    return {"task": "text", "source": "local", "cache_dir": str(tmp_path / "hf"), **files}


def test_text_test_label_outside_the_classes_fails_when_built(tmp_path):
    cfg = _text_files(tmp_path, [{"text": "a", "label": 1}, {"text": "b", "label": 7}])
    with pytest.raises(
        ValueError,
        match=re.escape(f"{tmp_path / 'test.jsonl'}: test split row 1: label 7 is outside the 5 classes 0..4"),
    ):
        load_task(cfg)


def test_text_label_that_is_not_a_class_id(tmp_path):
    cfg = _text_files(tmp_path, [{"text": "a", "label": 1}, {"text": "b", "label": 2.5}])
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{tmp_path / 'test.jsonl'}: test split row 1: label 2.5 is not an integer class id or a name"
        ),
    ):
        load_task(cfg)
    cfg = _text_files(tmp_path, [{"text": "a", "label": 1}, {"text": "b", "label": None}])
    with pytest.raises(
        ValueError, match=re.escape("test split row 1: label None is not an integer class id or a name")
    ):
        load_task(cfg)


def test_text_unknown_label_string_missing_column_and_empty_file(tmp_path):
    words = ["bad", "good"]
    rows = [{"text": f"t{i}", "label": words[i % 2]} for i in range(6)]
    cfg = _text_files(tmp_path, [{"text": "a", "label": "good"}, {"text": "b", "label": "meh"}])
    for split in ("train", "validation"):
        Path(cfg[f"{split}_file"]).write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_task({**cfg, "test_file": cfg["train_file"]}).id2label == {0: "bad", 1: "good"}
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{tmp_path / 'test.jsonl'}: test split row 1: label 'meh' is not among the label names ['bad', 'good']"
        ),
    ):
        load_task(cfg)
    (tmp_path / "test.jsonl").write_text(json.dumps({"body": "a", "label": "good"}) + "\n")
    with pytest.raises(
        ValueError,
        match=re.escape(f"{tmp_path / 'test.jsonl'}: the test split has no column(s) ['text'] (data.label_column"),
    ):
        load_task(cfg)
    with pytest.raises(ValueError, match=re.escape("the train split has no column(s) ['target']")):
        load_task({**cfg, "label_column": "target"})
    (tmp_path / "test.jsonl").write_text("")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'test.jsonl'}: empty test file (no rows)")):
        load_task(cfg)


def test_retrieval_tsv_lines_are_checked(tmp_path):
    good = "1\ta\tb\tsome text\tother text\n0\tc\td\tmore\tless\n"
    for name in ("train", "eval"):
        (tmp_path / f"new_aan_pairs.{name}.tsv").write_text(good)
    cfg = {"task": "retrieval", "source": "local", "root": str(tmp_path), "cache_dir": str(tmp_path / "hf")}
    test = tmp_path / "new_aan_pairs.test.tsv"
    for text, message in [
        (good + "1\ta\tb\tonly four\n", "line 3: expected 5 tab-separated fields, got 4"),
        (good + "2\ta\tb\tx\ty\n", ": test split line 3: label 2 is outside the 2 classes 0..1"),
        ("yes\ta\tb\tx\ty\n", "line 1: label must be 0 or 1, got 'yes'"),
        ("", ": empty test file (no rows)"),
    ]:
        test.write_text(text)
        with pytest.raises(ValueError, match=re.escape(str(test)) + ".*" + re.escape(message)):
            load_task(cfg)


# ---------------------------------------------------------------------------------------------------------------------
# strict keys


def test_unknown_keys_fail_in_load_task():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "data.num_trian: unknown data key (not a key of task 'listops'); did you mean 'num_train'? valid keys: ['cache',"
        ),
    ):
        load_task({"task": "listops", "num_trian": 16})
    with pytest.raises(
        ValueError, match=re.escape("data.task: unknown data task 'sequense'; did you mean 'sequence'? choose from")
    ):
        load_task({"task": "sequense"})
    with pytest.raises(
        ValueError, match=re.escape("data.source: task 'listops' takes source generate | local, got 'hub'")
    ):
        load_task({"task": "listops", "source": "hub"})


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (
            {"task": "sequence", "source": "local", "train_file": "a.parquet", "num_train": 64, "length": 32},
            "data: key(s) ['num_train', 'length'] do not apply to task 'sequence' with source: local (they belong to "
            "source generate); remove them",
        ),
        (
            {"task": "sequence", "source": "generate", "train_file": "a.parquet", "input_column": "x"},
            "data: key(s) ['train_file', 'input_column'] do not apply to task 'sequence' with source: generate (they "
            "belong to source hub | local)",
        ),
        (
            {"task": "sequence", "source": "local", "dataset_name": "x/y"},
            "data: key(s) ['dataset_name'] do not apply to task 'sequence' with source: local (they belong to source hub)",
        ),
        (
            {"task": "listops", "source": "local", "max_depth": 4},
            "data: key(s) ['max_depth'] do not apply to task 'listops' with source: local (they belong to source generate)",
        ),
        (
            {"task": "pathfinder", "num_train": 8, "root": "lra_release", "split_seed": 1},
            "data: key(s) ['root', 'split_seed'] do not apply to task 'pathfinder' with source: generate",
        ),
    ],
)
def test_keys_of_another_source_are_refused(cfg, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_task(cfg)


def test_preset_schema_refuses_keys_of_another_source(tmp_path):
    """The CPU preset switches to files with file keys alone; a generator key given with them is named."""
    from modeling_mrconv.training import load_preset

    x, y = generate_timeseries(8, length=32, burst_length=8, seed=0)
    write_parquet(tmp_path / "t.parquet", x, y)
    config = Path(__file__).resolve().parents[2] / "configuration" / "sequence_cpu.yaml"
    local = [
        "data.source=local",
        f"data.train_file={tmp_path / 't.parquet'}",
        f"data.test_file={tmp_path / 't.parquet'}",
    ]
    preset = load_preset(config, local)
    assert load_task(preset["data"]).num_labels == 4
    with pytest.raises(
        ValueError, match=re.escape("data: key(s) ['num_classes'] do not apply to task 'sequence' with source: local")
    ):
        load_preset(config, [*local, "data.num_classes=3"])


def test_train_refuses_a_bad_test_label_before_the_first_step(tmp_path):
    """Used to surface as an IndexError in the final evaluation, after the whole training."""

    from accelerate.state import AcceleratorState

    from modeling_mrconv.training import load_preset, train

    x, y = generate_timeseries(20, length=32, burst_length=8, seed=0)
    write_parquet(tmp_path / "train.parquet", x[:16], y[:16])
    write_parquet(tmp_path / "test.parquet", x[16:], [0, 1, 7, 2])
    config = Path(__file__).resolve().parents[2] / "configuration" / "sequence_cpu.yaml"
    files = [f"data.train_file={tmp_path / 'train.parquet'}", f"data.test_file={tmp_path / 'test.parquet'}"]
    preset = load_preset(config, ["data.source=local", *files, "train.batch_size=4"])
    AcceleratorState._reset_state(reset_partial_state=True)  # train() builds its own Accelerator
    try:
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"{tmp_path / 'test.parquet'}: test split row 2: label 7 is not among the labels ['0', '1', '2', '3']"
            ),
        ):
            train(preset, tmp_path / "run", cpu=True)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()
