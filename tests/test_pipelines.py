"""pipeline() inference, offline, in fresh processes without our package: text and continuous inputs."""

import functools
import json
import re

import numpy as np
import pytest
import torch
from mrconv_testing import run_without_package, tiny_config, warmed_model
from transformers import pipeline

from modeling_mrconv import build_byte_tokenizer


LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def run_blocked(script: str, tmp_path) -> dict:
    return json.loads(run_without_package(script, tmp_path))


def test_text_classification_pipeline_offline_fresh_process(tmp_path):
    tokenizer = build_byte_tokenizer(64)
    config = tiny_config(vocab_size=len(tokenizer), id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    model = warmed_model(config)
    folder = tmp_path / "export"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    texts = ["a short one", "x" * 500, "quite a bit longer text with some words in it"]
    with torch.no_grad():
        expected = [
            model(**tokenizer(t, truncation=True, return_tensors="pt")).logits.softmax(-1)[0].tolist() for t in texts
        ]
    script = (
        "import json\n"
        "from transformers import pipeline\n"
        f"pipe = pipeline('text-classification', model={str(folder)!r}, trust_remote_code=True)\n"
        f"out = pipe({texts!r}, truncation=True, top_k=None, batch_size=2)\n"
        f"top = pipe({texts[0]!r})\n"
        "print(json.dumps({'all': out, 'top': top}))\n"
    )
    result = run_blocked(script, tmp_path)
    for scores, probs in zip(result["all"], expected):
        assert len(scores) == 3
        by_label = {s["label"]: s["score"] for s in scores}
        assert set(by_label) == set(LABELS.values())
        for i, name in LABELS.items():
            assert by_label[name] == pytest.approx(probs[i], abs=1e-5)
    best = max(range(3), key=lambda i: expected[0][i])
    assert result["top"] == [{"label": LABELS[best], "score": pytest.approx(expected[0][best], abs=1e-5)}]


def test_continuous_pipeline_offline_fresh_process(tmp_path):
    model = warmed_model(tiny_config(input_dim=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}))
    folder = tmp_path / "export"
    model.save_pretrained(folder)
    assert "sequence-classification" in json.loads((folder / "config.json").read_text())["custom_pipelines"]
    assert (folder / "pipeline_mrconv.py").exists()
    series = [np.random.default_rng(i).normal(size=(n, 2)).astype(np.float32) for i, n in enumerate((40, 25, 64))]
    np.savez(tmp_path / "series.npz", *series)
    with torch.no_grad():
        expected = [model(input_values=torch.from_numpy(s)[None]).logits.softmax(-1)[0].tolist() for s in series]
    script = (
        "import json, numpy as np\n"
        "from transformers import pipeline\n"
        f"pipe = pipeline(model={str(folder)!r}, trust_remote_code=True)\n"
        f"data = np.load({str(tmp_path / 'series.npz')!r})\n"
        "series = [data[f'arr_{i}'] for i in range(3)]\n"
        "print(json.dumps({'task': pipe.task, 'all': pipe(series, top_k=None, batch_size=2), 'one': pipe(series[0])}))\n"
    )
    result = run_blocked(script, tmp_path)
    assert result["task"] == "sequence-classification"
    for scores, probs in zip(result["all"], expected):
        by_label = {s["label"]: s["score"] for s in scores}
        for i, name in LABELS.items():
            assert by_label[name] == pytest.approx(probs[i], abs=1e-5)
    assert len(result["one"]) == 1 and result["one"][0]["score"] == pytest.approx(max(expected[0]), abs=1e-5)


def test_continuous_pipeline_in_process_errors_and_truncation(tmp_path):
    model = warmed_model(tiny_config(input_dim=1))
    pipe = pipeline("sequence-classification", model=model)
    with pytest.raises(ValueError, match="pass truncation=True"):
        pipe(np.zeros(100, dtype=np.float32))
    assert len(pipe(np.zeros(100, dtype=np.float32), truncation=True, top_k=2)) == 2
    with pytest.raises(
        ValueError, match=re.escape("expected a series of shape (length,) or (length, 1), got shape (10, 3)")
    ):
        pipe(np.zeros((10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="length 0"):
        pipe(np.zeros((0, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="empty list"):
        pipe([])


def probabilities(model, series: np.ndarray) -> list[float]:
    with torch.no_grad():
        return model(input_values=torch.as_tensor(series, dtype=torch.float32)[None]).logits.softmax(-1)[0].tolist()


def scores_by_label(result: list[dict]) -> list[float]:
    return [s["score"] for s in sorted(result, key=lambda s: LABELS_BY_NAME[s["label"]])]


LABELS_BY_NAME = {name: i for i, name in LABELS.items()}


def test_continuous_pipeline_lists_and_batches_match_the_model():
    """Lists (flat, nested, ragged batches), arrays (1-D, 2-D, 3-D) and padded batches give the direct model's scores."""
    rng = np.random.default_rng(0)
    uni = warmed_model(tiny_config(input_dim=1, id2label=LABELS, label2id=LABELS_BY_NAME))
    pipe = functools.partial(pipeline("sequence-classification", model=uni), top_k=None)
    series = [rng.normal(size=n) for n in (30, 17, 45)]
    expected = [probabilities(uni, s[:, None]) for s in series]
    assert scores_by_label(pipe(series[0].tolist())) == pytest.approx(expected[0], abs=1e-5)  # flat list: one series
    assert scores_by_label(pipe(series[1][:, None])) == pytest.approx(expected[1], abs=1e-5)  # (L, 1) array
    for batch_size in (1, 3):  # padded on the right with an attention mask when batched
        as_lists = pipe([s.tolist() for s in series], batch_size=batch_size)
        as_arrays = pipe(series, batch_size=batch_size)
        for got_lists, got_arrays, probs in zip(as_lists, as_arrays, expected):
            assert scores_by_label(got_lists) == pytest.approx(probs, abs=1e-5)
            assert scores_by_label(got_arrays) == pytest.approx(probs, abs=1e-5)

    multi = warmed_model(tiny_config(input_dim=2, id2label=LABELS, label2id=LABELS_BY_NAME))
    pipe = functools.partial(pipeline("sequence-classification", model=multi), top_k=None)
    series = [rng.normal(size=(n, 2)) for n in (20, 33)]
    expected = [probabilities(multi, s) for s in series]
    assert scores_by_label(pipe(series[0].tolist())) == pytest.approx(expected[0], abs=1e-5)  # rows of 2: one series
    for got, probs in zip(pipe([s.tolist() for s in series], batch_size=2), expected):
        assert scores_by_label(got) == pytest.approx(probs, abs=1e-5)
    equal = rng.normal(size=(3, 12, 2))  # (B L C): a batch
    for got, s in zip(pipe(equal), equal):
        assert scores_by_label(got) == pytest.approx(probabilities(multi, s), abs=1e-5)
    with pytest.raises(ValueError, match=re.escape("expected a series of shape (length, 2), got shape (12,)")):
        pipe(np.zeros(12))
    with pytest.raises(ValueError, match="rows of different widths"):
        pipe([[[1.0, 2.0], [1.0]]])


def test_pipeline_without_a_preprocessor_refuses_nan_instead_of_scoring_it():
    """A model saved without preprocessor_config.json: series go in as given, and NaN is an error, not a NaN score."""
    classify = pipeline("sequence-classification", model=warmed_model(tiny_config(input_dim=1)))
    series = np.random.default_rng(0).normal(size=20)
    assert np.isfinite(classify(series)[0]["score"])
    series[5] = np.nan
    with pytest.raises(ValueError, match=r"missing value \(NaN\) at 1 position\(s\), first at step 5"):
        classify(series)
