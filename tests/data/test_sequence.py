"""Tests for modeling_mrconv/data/sequence.py: generated series, every file format read back, `.ts` parsing, missing values,
normalization, labels, every error message, and training from a parquet file."""

import json
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from task_checks import check_batch, check_task, same_items

from modeling_mrconv.data import load_task
from modeling_mrconv.data.generators.timeseries import generate_timeseries, write_parquet
from modeling_mrconv.data.series_files import read_ts, read_ucr_tsv


ROOT = Path(__file__).resolve().parents[2]
GEN = {
    "task": "sequence",
    "num_classes": 4,
    "num_train": 12,
    "num_validation": 4,
    "num_test": 8,
    "length": 64,
    "burst_length": 8,
}


def series_of(dataset) -> list[np.ndarray]:
    return [dataset[i]["input_values"].numpy() for i in range(len(dataset))]


def labels_of(dataset) -> list[int]:
    return [dataset[i]["labels"] for i in range(len(dataset))]


def local(tmp_path: Path, train: str, test: str, **keys) -> dict:
    return {
        "task": "sequence",
        "source": "local",
        "train_file": str(tmp_path / train),
        "test_file": str(tmp_path / test),
        "normalize": "none",
        **keys,
    }


@pytest.fixture(scope="module")
def arrays():
    """Train (16, 32, 2) and test (6, 32, 2) float32 series with integer labels 0..3."""
    train = generate_timeseries(16, length=32, num_channels=2, burst_length=8, seed=0)
    test = generate_timeseries(6, length=32, num_channels=2, burst_length=8, seed=1)
    return train, test


def test_generated_task(tmp_path):
    task = load_task(GEN, seed=3)
    check_task(task, (12, 4, 8))
    assert task.input_dim == 1 and task.max_length == 64 and task.num_labels == 4 and task.tokenizer is None
    assert task.id2label == {k: f"class_{k}" for k in range(4)} and "SYNTHETIC" in task.description
    assert same_items(task.train, load_task(GEN, seed=3).train)
    assert not same_items(task.train, load_task(GEN, seed=4).train)
    x, y = generate_timeseries(12, length=64, burst_length=8, seed=[3, 0])
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)  # per_series (default)
    assert labels_of(task.train) == y.tolist()
    np.testing.assert_allclose(np.stack(series_of(task.train)), x, atol=1e-5)
    raw = load_task({**GEN, "normalize": "none"}, seed=3)
    np.testing.assert_array_equal(
        np.stack(series_of(raw.train)), generate_timeseries(12, 64, burst_length=8, seed=[3, 0])[0]
    )


def _write(fmt: str, path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    rows = [s.tolist() for s in x]
    if fmt == "parquet":
        write_parquet(path, x, y, input_column="series")
    elif fmt in ("jsonl", "json"):
        path.write_text("".join(json.dumps({"series": r, "label": int(v)}) + "\n" for r, v in zip(rows, y)))
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        lines = [f"series{sep}label"] + [f'"{json.dumps(r)}"{sep}{int(v)}' for r, v in zip(rows, y)]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "arrow":
        ds = datasets.Dataset.from_dict({"series": rows, "label": y.tolist()})
        ds.save_to_disk(str(path.parent / "tmp_disk"))
        arrow = next((path.parent / "tmp_disk").glob("*.arrow"))
        arrow.rename(path)
    elif fmt == "disk":
        datasets.Dataset.from_dict({"series": rows, "label": y.tolist()}).save_to_disk(str(path))
    elif fmt == "npz":
        np.savez(path, x=x, y=y)
    elif fmt == "ts":
        lines = [
            "@problemName gen",
            "@univariate false",
            f"@dimensions {x.shape[2]}",
            "@equalLength true",
            "@classLabel true 0 1 2 3",
            "@data",
        ]
        lines += [
            ":".join(",".join(repr(float(v)) for v in s[:, c]) for c in range(s.shape[1])) + f":{int(v)}"
            for s, v in zip(x, y)
        ]
        path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv", "tsv", "arrow", "disk", "npz", "ts"])
def test_each_format_reads_back_the_arrays(tmp_path, arrays, fmt):
    (x, y), (tx, ty) = arrays
    suffix = "" if fmt == "disk" else f".{fmt}"
    _write(fmt, tmp_path / f"train{suffix}", x, y)
    _write(fmt, tmp_path / f"test{suffix}", tx, ty)
    task = load_task(local(tmp_path, f"train{suffix}", f"test{suffix}", validation_fraction=0.25), seed=0)
    check_task(task, (12, 4, 6))
    assert task.input_dim == 2 and task.max_length == 32 and task.num_labels == 4
    assert task.id2label == {k: str(k) for k in range(4)}
    np.testing.assert_array_equal(np.stack(series_of(task.test)), tx)
    assert labels_of(task.test) == ty.tolist()
    got = {
        tuple(s.ravel()): lab
        for s, lab in zip(
            series_of(task.train) + series_of(task.validation), labels_of(task.train) + labels_of(task.validation)
        )
    }
    assert got == {tuple(s.ravel()): int(v) for s, v in zip(x, y)}  # the carved split partitions train


def test_column_kinds_channels_first_and_list_of_columns(tmp_path, arrays):
    (x, y), _ = arrays
    ds = datasets.Dataset.from_dict(
        {"a": x[..., 0].tolist(), "b": x[..., 1].tolist(), "cl": x.transpose(0, 2, 1).tolist(), "label": y.tolist()}
    )
    ds.to_parquet(str(tmp_path / "d.parquet"))
    base = local(tmp_path, "d.parquet", "d.parquet", validation_file=str(tmp_path / "d.parquet"))
    two = load_task({**base, "input_column": ["a", "b"]})
    np.testing.assert_array_equal(np.stack(series_of(two.test)), x)
    first = load_task({**base, "input_column": "cl", "channels_first": True})
    np.testing.assert_array_equal(np.stack(series_of(first.test)), x)
    one = load_task({**base, "input_column": "b"})
    assert one.input_dim == 1
    np.testing.assert_array_equal(np.stack(series_of(one.test)), x[..., 1:])


def test_ts_variable_length_missing_values_and_labels(tmp_path):
    path = tmp_path / "v.ts"
    path.write_text(
        "# a comment\n@problemName demo\n@timeStamps false\n@missing true\n@univariate false\n@dimensions 2\n"
        "@equalLength false\n@classLabel true up down\n@data\n"
        "1,?,3,4:5,6,NaN,8:down\n"
        "0.5,1.5:2,?:up\n"
        "?,2,?:1,1,1:down\n"
    )
    series, labels, names = read_ts(path)
    assert names == ["up", "down"] and labels == ["down", "up", "down"]
    assert [s.shape for s in series] == [(4, 2), (2, 2), (3, 2)]
    assert np.isnan(series[0][1, 0]) and np.isnan(series[0][2, 1]) and series[0][3, 1] == 8.0
    task = load_task(local(tmp_path, "v.ts", "v.ts", validation_file=str(path)))
    assert task.id2label == {0: "up", 1: "down"} and labels_of(task.test) == [1, 0, 1]
    got = series_of(task.test)
    np.testing.assert_array_equal(got[0], [[1, 5], [2, 6], [3, 7], [4, 8]])  # linear interpolation
    np.testing.assert_array_equal(got[1], [[0.5, 2], [1.5, 2]])  # trailing gap: nearest value
    np.testing.assert_array_equal(got[2], [[2, 1], [2, 1], [2, 1]])
    assert task.max_length == 4
    batch = check_batch(task, [task.test[i] for i in range(3)])
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]


MALFORMED_TS = [
    ("@classLabel true a b\n@data\n1,2:c\n", "line 3: label 'c' is not among @classLabel ['a', 'b']"),
    ("@dimensions 2\n@classLabel true a\n@data\n1,2:a\n", "line 4: expected 2 dimension(s), got 1"),
    ("@classLabel true a\n@data\n1,x,2:a\n", "line 3: expected a number or '?', got 'x'"),
    ("@classLabel true a\n@data\n1,2,3\n", "line 3: expected 'values:...:label', got '1,2,3'"),
    (
        "@univariate false\n@classLabel true a\n@data\n1,2:1:a\n",
        "line 4: dimensions have different lengths [1, 2]",
    ),
    ("@classLabel true a\n@bogus 1\n@data\n", "line 2: unknown header '@bogus'"),
    ("@classLabel false\n@data\n1:a\n", "line 1: @classLabel false (no labels) cannot be trained"),
    ("@classLabel\n@data\n", "line 1: expected '@classLabel true <labels...>'"),
    ("@data\n1:a\n", "line 1: @data before @classLabel"),
    ("@classLabel true a\n", "no @data line"),
    ("@classLabel true a\n@data\n", "no series after @data"),
    ("@dimensions two\n", "line 1: @dimensions expects an integer, got 'two'"),
]
MALFORMED_UCR_TSV = [
    ("1\t1.0\tx\n", "line 1: expected a numeric label and values"),
    ("1\t1.0\n2\tNaN\tNaN\n", "line 2: the series has no value"),
    ("\n", "no series"),
]


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [("bad.ts", *case) for case in MALFORMED_TS] + [("bad.tsv", *case) for case in MALFORMED_UCR_TSV],
)
def test_malformed_ts_and_ucr_tsv_lines(tmp_path, name, body, message):
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(ValueError, match=re.escape(f"{path}") + ".*" + re.escape(message)):
        (read_ts if name.endswith(".ts") else read_ucr_tsv)(path)


def test_ucr_tsv_layout_variable_length_and_labels(tmp_path):
    """The UCR 2018 archive's headerless .tsv: label first; trailing NaN is the archive's padding (cut), a NaN inside
    a series is missing (interpolated); integer labels sort numerically; a .tsv with a header stays a table."""
    (tmp_path / "X_TRAIN.tsv").write_text("-1\t1.0\t2.0\t3.0\t4.0\n1\t5.0\tNaN\t7.0\tNaN\n10\t0.5\t1.5\tNaN\tNaN\n")
    (tmp_path / "X_TEST.tsv").write_text("1.0\t2\t4\t6\t8\n-1\t1\t1\tnan\tnan\n")
    series, labels = read_ucr_tsv(tmp_path / "X_TRAIN.tsv")
    assert labels == [-1, 1, 10] and [s.shape for s in series] == [(4, 1), (3, 1), (2, 1)]
    assert np.isnan(series[1][1, 0]) and series[1][2, 0] == 7.0
    task = load_task(local(tmp_path, "X_TRAIN.tsv", "X_TEST.tsv", validation_file=str(tmp_path / "X_TEST.tsv")))
    assert task.id2label == {0: "-1", 1: "1", 2: "10"} and labels_of(task.train) == [0, 1, 2]
    got = series_of(task.train)
    np.testing.assert_array_equal(got[1][:, 0], [5, 6, 7])
    np.testing.assert_array_equal(got[2][:, 0], [0.5, 1.5])
    assert labels_of(task.test) == [1, 0] and [len(x) for x in series_of(task.test)] == [4, 2]
    assert task.max_length == 4
    (tmp_path / "table.tsv").write_text("series\tlabel\n1 2 3\t0\n4 5 6\t1\n")
    keys = {"input_column": "series", "label_column": "label", "validation_file": str(tmp_path / "table.tsv")}
    table = load_task(local(tmp_path, "table.tsv", "table.tsv", **keys))
    assert labels_of(table.test) == [0, 1] and series_of(table.test)[1][:, 0].tolist() == [4, 5, 6]


def test_ragged_npz_and_normalization(tmp_path):
    rng = np.random.default_rng(0)
    train = [rng.normal(3.0, 2.0, (n, 2)) for n in (5, 9, 7, 6)]
    train[1][:, 1] = 4.0  # a constant channel: zero std is guarded
    test = [rng.normal(0.0, 1.0, (n, 2)) for n in (3, 8)]
    obj = np.empty(len(train), dtype=object)
    obj[:] = train
    np.savez(tmp_path / "train.npz", x=obj, y=np.array(["b", "a", "b", "a"]))
    obj = np.empty(len(test), dtype=object)
    obj[:] = test
    np.savez(tmp_path / "test.npz", x=obj, y=np.array(["a", "b"]))
    cfg = local(tmp_path, "train.npz", "test.npz", validation_file=str(tmp_path / "train.npz"))
    none = load_task(cfg)
    assert none.id2label == {0: "a", 1: "b"} and labels_of(none.train) == [1, 0, 1, 0] and none.max_length == 9
    for got, want in zip(series_of(none.test), test):
        np.testing.assert_array_equal(got, want.astype(np.float32))
    per = load_task({**cfg, "normalize": "per_series"})
    for got, want in zip(series_of(per.train), train):
        std = want.std(0)
        np.testing.assert_allclose(got, (want - want.mean(0)) / np.where(std > 0, std, 1), atol=1e-6)
    assert np.array_equal(series_of(per.train)[1][:, 1], np.zeros(9, np.float32))
    glob = load_task({**cfg, "normalize": "global"})
    flat = np.concatenate(train)  # float64 reference: train statistics only
    for got, want in zip(series_of(glob.test), test):
        np.testing.assert_allclose(got, (want - flat.mean(0)) / flat.std(0), atol=1e-6)
    constant = [np.ones((4, 1)), np.ones((3, 1))]
    obj = np.empty(2, dtype=object)
    obj[:] = constant
    np.savez(tmp_path / "c.npz", x=obj, y=np.array([0, 1]))
    c = load_task(
        {**local(tmp_path, "c.npz", "c.npz", validation_file=str(tmp_path / "c.npz")), "normalize": "global"}
    )
    assert all((s == 0).all() for s in series_of(c.train))
    batch = check_batch(none, [none.train[i] for i in range(4)])
    assert batch["input_values"].shape == (4, 9, 2) and batch["attention_mask"].sum(1).tolist() == [5, 9, 7, 6]


def test_labels_classlabel_integers_and_label_names(tmp_path, arrays):
    (x, y), _ = arrays
    features = datasets.Features(
        {
            "series": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
            "label": datasets.ClassLabel(names=["w", "x", "y", "z"]),
        }
    )
    datasets.Dataset.from_dict({"series": x.tolist(), "label": y.tolist()}, features=features).save_to_disk(
        str(tmp_path / "cl")
    )
    task = load_task(local(tmp_path, "cl", "cl"))
    assert task.id2label == {0: "w", 1: "x", 2: "y", 3: "z"} and labels_of(task.test) == y.tolist()
    write_parquet(tmp_path / "pm.parquet", x[:4], [-1, 1, 1, -1])
    write_parquet(tmp_path / "pm_test.parquet", x[4:6], [1.0, -1.0])
    pm = load_task(local(tmp_path, "pm.parquet", "pm_test.parquet", validation_file=str(tmp_path / "pm.parquet")))
    assert pm.id2label == {0: "-1", 1: "1"} and labels_of(pm.test) == [1, 0] and labels_of(pm.train) == [0, 1, 1, 0]
    write_parquet(tmp_path / "01.parquet", x[:2], [1, 0])
    named = load_task(
        {
            **local(tmp_path, "01.parquet", "01.parquet", validation_file=str(tmp_path / "01.parquet")),
            "label_names": ["no", "yes"],
        }
    )
    assert named.id2label == {0: "no", 1: "yes"} and labels_of(named.test) == [1, 0]
    with pytest.raises(
        ValueError,
        match=re.escape("test split row 1: label -1.0 is not among the labels ['no', 'yes'] (indices 0..1)"),
    ):
        load_task(
            {
                **local(tmp_path, "01.parquet", "pm_test.parquet", validation_file=str(tmp_path / "01.parquet")),
                "label_names": ["no", "yes"],
            }
        )
    write_parquet(tmp_path / "bad.parquet", x[:2], [1, 5])
    with pytest.raises(
        ValueError,
        match=re.escape(f"{tmp_path / 'bad.parquet'}: test split row 1: label 5 is not among the labels ['-1', '1']"),
    ):
        load_task(local(tmp_path, "pm.parquet", "bad.parquet", validation_file=str(tmp_path / "pm.parquet")))
    with pytest.raises(
        ValueError, match=re.escape("test split row 1: label 5 is not among the labels ['no', 'yes'] (indices 0..1)")
    ):
        load_task(
            {
                **local(tmp_path, "01.parquet", "bad.parquet", validation_file=str(tmp_path / "01.parquet")),
                "label_names": ["no", "yes"],
            }
        )


def test_error_messages(tmp_path, arrays):
    (x, y), _ = arrays
    write_parquet(tmp_path / "t.parquet", x, y)
    ok = local(tmp_path, "t.parquet", "t.parquet", validation_file=str(tmp_path / "t.parquet"))
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{tmp_path / 't.parquet'}: the train split has no column(s) ['values']; columns: ['series', 'label']"
        ),
    ):
        load_task({**ok, "input_column": "values"})
    with pytest.raises(ValueError, match=re.escape("split has no column(s) ['target']; columns: ['series', 'label']")):
        load_task({**ok, "label_column": "target"})
    with pytest.raises(
        ValueError,
        match=re.escape(f"{tmp_path / 't.parquet'} row 0: sequence of length 32 exceeds max_sequence_length=16"),
    ):
        load_task(ok, max_sequence_length=16)
    assert load_task(ok, max_sequence_length=40).max_length == 40
    with pytest.raises(
        ValueError, match=re.escape("normalize: expected one of per_series | global | none, got 'zscore'")
    ):
        load_task({**ok, "normalize": "zscore"})
    with pytest.raises(ValueError, match=re.escape("source: local needs `test_file` (or `root`)")):
        load_task({**ok, "test_file": None})
    with pytest.raises(FileNotFoundError, match=re.escape(f"test_file {tmp_path / 'nope.parquet'} does not exist")):
        load_task({**ok, "test_file": str(tmp_path / "nope.parquet")})
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'empty.jsonl'}: empty test file (no rows)")):
        load_task({**ok, "test_file": str(tmp_path / "empty.jsonl")})
    (tmp_path / "bad.csv").write_text('series,label\n"1, 2, 3",0\n"1, oops",1\n')
    with pytest.raises(
        ValueError, match=re.escape(f"{tmp_path / 'bad.csv'} row 1 column 'series': expected numbers, got '1, oops'")
    ):
        load_task({**ok, "test_file": str(tmp_path / "bad.csv")})
    (tmp_path / "nan.jsonl").write_text('{"series": [null, null], "label": 0}\n')
    with pytest.raises(
        ValueError, match=re.escape(f"{tmp_path / 'nan.jsonl'} row 0: channel 0 has no observed value")
    ):
        load_task({**ok, "test_file": str(tmp_path / "nan.jsonl")})
    (tmp_path / "c3.jsonl").write_text('{"series": [[1, 2, 3]], "label": 0}\n')
    with pytest.raises(
        ValueError, match=re.escape("splits have different channel counts {'train': 2, 'validation': 2, 'test': 3}")
    ):
        load_task({**ok, "test_file": str(tmp_path / "c3.jsonl")})
    np.savez(tmp_path / "noy.npz", x=x)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'noy.npz'}: missing array(s) ['y']; arrays: ['x']")):
        load_task({**ok, "test_file": str(tmp_path / "noy.npz")})
    np.savez(tmp_path / "short.npz", x=x, y=y[:3])
    with pytest.raises(ValueError, match=re.escape("16 series in x but 3 labels in y")):
        load_task({**ok, "test_file": str(tmp_path / "short.npz")})


@pytest.fixture
def _fresh_accelerator_state():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_train_from_parquet_with_set_overrides(tmp_path, _fresh_accelerator_state):
    """The command line of the README: the CPU preset pointed at parquet files with a float-array column."""
    from modeling_mrconv.training import load_preset, train

    x, y = generate_timeseries(40, length=48, num_channels=2, burst_length=8, seed=0)
    write_parquet(tmp_path / "train.parquet", x[:32], y[:32], input_column="signal", label_column="target")
    write_parquet(tmp_path / "test.parquet", x[32:], y[32:], input_column="signal", label_column="target")
    config = ROOT / "configuration" / "sequence_cpu.yaml"
    overrides = [
        "data.task=sequence",
        "data.source=local",
        f"data.train_file={tmp_path / 'train.parquet'}",
        f"data.test_file={tmp_path / 'test.parquet'}",
        "data.input_column=signal",
        "data.label_column=target",
        "model.max_sequence_length=48",
        "model.hidden_size=8",
        "model.num_hidden_layers=1",
        "train.batch_size=8",
        "train.max_steps=3",
        "train.log_every=1",
        "train.eval_every=3",
    ]
    preset = load_preset(config, overrides)
    results = train(preset, tmp_path / "run", cpu=True)
    assert results["train_steps"] == 3 and results["num_test_examples"] == 8
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["input_dim"] == 2 and saved["id2label"] == {str(k): str(k) for k in range(4)}
    assert json.loads((tmp_path / "run" / "all_results.json").read_text())["test_accuracy"] == results["test_accuracy"]
    assert torch.isfinite(torch.tensor(results["test_loss"]))
