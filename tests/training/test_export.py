"""What the training loop writes next to the merged export (modeling_mrconv/training/export.py): the `sequence` task's
preprocessing as `preprocessor_config.json`, so the pipeline on raw series gives the trained model's prediction on
the task's inputs (NaN interpolated as the task does), in this process and with the package blocked; and the model
card README.md with Hub metadata."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from mrconv_testing import run_without_package
from transformers import AutoFeatureExtractor, pipeline

from modeling_mrconv import MRConvFeatureExtractor, MRConvForSequenceClassification
from modeling_mrconv.data import load_task
from modeling_mrconv.training import load_preset, train
from modeling_mrconv.training.export import CARD_MARKER, model_card, write_model_card


ROOT = Path(__file__).resolve().parents[2]
SEQUENCE_CPU = ROOT / "configuration" / "sequence_cpu.yaml"


def raw_series(n: int, seed: int) -> list[np.ndarray]:
    """Series (L, 2) of lengths 20-39 on a raw scale (x * 100 + 50), with missing values in the first three."""
    rng = np.random.default_rng(seed)
    series = [rng.normal(size=(int(rng.integers(20, 40)), 2)) * 100 + 50 for _ in range(n)]
    series[0][3:6, 0] = np.nan  # inside
    series[1][:2, 1] = np.nan  # at the start: the nearest observed value
    series[2][-1, :] = np.nan  # at the end, both channels
    return series


def write_npz(path: Path, series: list[np.ndarray], labels: np.ndarray) -> None:
    x = np.empty(len(series), dtype=object)
    x[:] = series
    np.savez(path, x=x, y=labels)


@pytest.fixture(scope="module", params=["per_series", "global"])
def run(request, tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """A 2-step run of configuration/sequence_cpu.yaml on local .npz files of raw series; (output folder, test series)."""
    folder = tmp_path_factory.mktemp(f"sequence_{request.param}")
    test = raw_series(6, seed=1)
    write_npz(folder / "train.npz", raw_series(24, seed=0), np.arange(24) % 2)
    write_npz(folder / "test.npz", test, np.arange(6) % 2)
    overrides = [
        "data.source=local",
        f"data.train_file={folder / 'train.npz'}",
        f"data.test_file={folder / 'test.npz'}",
        f"data.normalize={request.param}",
        "model.max_sequence_length=64",
        "model.hidden_size=8",
        "model.num_hidden_layers=1",
        "train.batch_size=8",
        "train.max_steps=2",
    ]
    AcceleratorState._reset_state(reset_partial_state=True)
    train(load_preset(SEQUENCE_CPU, overrides), folder / "run", cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)
    return folder / "run", test


def task_probabilities(output_dir: Path) -> torch.Tensor:
    """The exported model's probabilities on the task's own test inputs (the data layer's preprocessing)."""
    preset = yaml.safe_load((output_dir / "training_preset.yaml").read_text())
    task = load_task(preset["data"], seed=preset["train"]["seed"])
    model = MRConvForSequenceClassification.from_pretrained(output_dir).eval()
    with torch.no_grad():
        return torch.stack(
            [model(input_values=task.test[i]["input_values"][None]).logits.softmax(-1)[0] for i in range(6)]
        )


def by_label(scores: list[dict], names: dict[int, str]) -> list[float]:
    found = {s["label"]: s["score"] for s in scores}
    return [found[names[i]] for i in range(len(names))]


def test_export_ships_the_task_preprocessing(run):
    output_dir, _ = run
    preset = yaml.safe_load((output_dir / "training_preset.yaml").read_text())
    saved = json.loads((output_dir / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "MRConvFeatureExtractor"
    assert saved["auto_map"] == {"AutoFeatureExtractor": "feature_extraction_mrconv.MRConvFeatureExtractor"}
    assert (output_dir / "feature_extraction_mrconv.py").read_text() == (
        ROOT / "modeling_mrconv" / "feature_extraction_mrconv.py"
    ).read_text()
    extractor = AutoFeatureExtractor.from_pretrained(output_dir)
    assert isinstance(extractor, MRConvFeatureExtractor)
    assert (extractor.normalize, extractor.feature_size, extractor.interpolate_missing) == (
        preset["data"]["normalize"],
        2,
        True,
    )
    if extractor.normalize == "global":  # the train split's statistics, raw scale
        assert extractor.mean == pytest.approx([50, 50], abs=15)
        assert extractor.std == pytest.approx([100, 100], rel=0.2)
    else:
        assert extractor.mean is None and extractor.std is None


def test_pipeline_on_raw_series_equals_the_trained_model_on_the_task_inputs(run):
    output_dir, test = run
    expected = task_probabilities(output_dir)  # (6 2)
    names = MRConvForSequenceClassification.from_pretrained(output_dir).config.id2label
    classify = pipeline("sequence-classification", model=str(output_dir), trust_remote_code=True)  # as the README
    for batch_size in (1, 4):  # one at a time, and padded batches
        results = classify(test, top_k=None, batch_size=batch_size)
        for scores, probs in zip(results, expected, strict=True):
            assert by_label(scores, names) == pytest.approx(probs.tolist(), abs=1e-5)
    if classify.feature_extractor.normalize == "per_series":  # the issue: raw and raw * 100 + 50 disagreed
        rescaled = classify([(s - 50) / 100 for s in test], top_k=None)
        for scores, probs in zip(rescaled, expected, strict=True):
            assert by_label(scores, names) == pytest.approx(probs.tolist(), abs=1e-5)


def test_remote_code_pipeline_and_feature_extractor_without_the_package(run, tmp_path):
    output_dir, test = run
    expected = task_probabilities(output_dir)
    names = MRConvForSequenceClassification.from_pretrained(output_dir).config.id2label
    np.savez(tmp_path / "test.npz", *test)
    script = (
        "import json, numpy as np\n"
        "from transformers import AutoFeatureExtractor, pipeline\n"
        f"folder = {str(output_dir)!r}\n"
        "extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)\n"
        "assert type(extractor).__module__.startswith('transformers_modules'), type(extractor).__module__\n"
        f"data = np.load({str(tmp_path / 'test.npz')!r})\n"
        "series = [data[f'arr_{i}'] for i in range(6)]\n"
        "pipe = pipeline(model=folder, trust_remote_code=True)\n"
        "print(json.dumps(pipe(series, top_k=None)))\n"
    )
    for scores, probs in zip(json.loads(run_without_package(script, tmp_path)), expected, strict=True):
        assert by_label(scores, names) == pytest.approx(probs.tolist(), abs=1e-5)


def test_model_card_has_hub_metadata_and_the_measured_results(run):
    output_dir, _ = run
    card = (output_dir / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    metadata = yaml.safe_load(front)
    results = json.loads((output_dir / "all_results.json").read_text())
    assert metadata["library_name"] == "transformers" and "mrconv" in metadata["tags"]
    assert metadata["metrics"] == ["accuracy", "f1"] and "datasets" not in metadata  # local files: no Hub id
    (index,) = metadata["model-index"]
    assert index["name"] == "run"
    metrics = {(r["dataset"]["split"], m["type"]): m["value"] for r in index["results"] for m in r["metrics"]}
    assert metrics == {
        ("test", "accuracy"): round(results["test_accuracy"], 4),
        ("test", "f1"): round(results["test_macro_f1"], 4),
        ("validation", "accuracy"): round(results["validation_accuracy"], 4),
    }
    assert index["results"][0]["task"]["type"] == "sequence-classification"
    assert body.startswith(CARD_MARKER)
    for section in ("## Data", "## Results", "## Intended use and limitations", "## How to use", "## Training preset"):
        assert section in body
    assert results["data"] in body and "normalize" in body and 'pipeline("sequence-classification"' in body


def test_model_card_never_replaces_the_users_readme(tmp_path):
    config = MRConvForSequenceClassification.config_class(vocab_size=20, num_labels=2, architectures=["X"])
    preset = {"model": {}, "data": {"task": "listops", "source": "generate"}, "train": {"seed": 0}}
    results = {"test_accuracy": 0.5, "test_macro_f1": 0.4, "validation_accuracy": 0.6, "data": "generated"}
    assert write_model_card(tmp_path, preset, results, config)
    assert "text-classification" in (tmp_path / "README.md").read_text()
    assert write_model_card(tmp_path, preset, {**results, "test_accuracy": 0.75}, config)  # ours: rewritten
    assert "| test_accuracy | 0.75 |" in (tmp_path / "README.md").read_text()
    (tmp_path / "README.md").write_text("# my notes\n")
    assert not write_model_card(tmp_path, preset, results, config)
    assert (tmp_path / "README.md").read_text() == "# my notes\n"


def test_model_card_names_a_hub_data_set():
    config = MRConvForSequenceClassification.config_class(vocab_size=259, num_labels=2)
    preset = {"model": {}, "data": {"task": "text", "source": "hub", "dataset_name": "stanfordnlp/imdb"}, "train": {}}
    results = {"test_accuracy": 0.8, "test_macro_f1": 0.79, "validation_accuracy": 0.81, "data": "imdb"}
    card = model_card("imdb_run", preset, results, config)
    metadata = yaml.safe_load(card.split("---\n", 2)[1])
    assert metadata["datasets"] == ["stanfordnlp/imdb"] and metadata["pipeline_tag"] == "text-classification"
    dataset = metadata["model-index"][0]["results"][0]["dataset"]
    assert dataset == {"name": "stanfordnlp/imdb", "type": "stanfordnlp/imdb", "split": "test"}
    assert "synthetic" not in card
