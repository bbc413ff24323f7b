"""MRConvNeXt through scripts/train.py: `model.architecture` in the preset schema, the model built from an image task,
the raster-sequence wrapper, and the export (plain MRConvNextForImageClassification + the task's image processor)
loaded by `pipeline("image-classification")`, in this process and with the package blocked."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mrconv_testing import run_without_package
from PIL import Image
from transformers import pipeline

from modeling_mrconv import MRConvNextForImageClassification
from modeling_mrconv.data import load_task
from modeling_mrconv.data.image import generate_bars
from modeling_mrconv.training import build_model, load_preset
from modeling_mrconv.training.models import MRConvNextFlattenedForImageClassification, sequence_to_pixels


ROOT = Path(__file__).resolve().parents[2]
PRESET = ROOT / "configuration" / "mrconvnext_cpu.yaml"
TEXT_CPU = ROOT / "configuration" / "text_cpu.yaml"
TINY_MODEL = {"architecture": "mrconvnext", "patch_size": 2, "depths": [1, 1, 1, 1], "hidden_sizes": [8, 8, 16, 16]}
BARS = {"task": "scifar", "source": "generate", "num_train": 8, "num_validation": 4, "num_test": 6}


@pytest.mark.parametrize(
    ("path", "overrides", "message"),
    [
        (  # a sequence-model key under mrconvnext
            PRESET,
            ["model.hidden_size=16"],
            "model.hidden_size: unknown model key (architecture 'mrconvnext'); did you mean 'hidden_sizes'?",
        ),
        (  # and the reverse
            TEXT_CPU,
            ["model.hidden_sizes=[16, 32]"],
            "model.hidden_sizes: unknown model key; did you mean 'hidden_size'?",
        ),
        (PRESET, ["model.depths=3"], "model.depths: expected a list or null, got 3"),
        (PRESET, ["model.image_size=64"], "model.image_size: set from the task's data, not a preset key"),
        (PRESET, ["model.num_channels=1"], "model.num_channels: set from the task's data, not a preset key"),
        (
            PRESET,
            ["model.architecture=convnext"],
            "model.architecture: expected one of ['bert', 'cnn', 'mamba', 'mrconv', 'mrconvnext', 's4d'], got 'convnext'",
        ),
    ],
)
def test_architecture_picks_the_config_the_model_keys_are_checked_against(path, overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_preset(path, overrides)


def test_preset_switches_to_a_local_image_folder_with_one_override():
    preset = load_preset(PRESET, ["data.source=local", "data.root=/data/imagenet", "data.image_size=224"])
    assert preset["data"] == {"task": "scifar", "source": "local", "root": "/data/imagenet", "image_size": 224}
    assert preset["model"]["architecture"] == "mrconvnext"


def test_preset_keys_reach_the_mrconvnext_config():
    preset = load_preset(PRESET, ["model.kernel_type=[fourier, fourier, dilated, dilated]"])
    task = load_task({**preset["data"], **BARS})
    model = build_model(preset["model"], task)
    assert type(model) is MRConvNextFlattenedForImageClassification
    config = model.config
    assert (config.num_channels, config.image_size, config.patch_size) == (3, 32, 2)
    assert config.depths == [1, 1, 1, 1] and config.hidden_sizes == [16, 32, 48, 64]
    assert config.kernel_type == ["fourier", "fourier", "dilated", "dilated"]
    assert config.id2label == {0: "horizontal", 1: "rising", 2: "vertical", 3: "falling"}
    assert config.problem_type == "single_label_classification"


def test_wrapper_reads_the_raster_order_and_refuses_padding():
    task = load_task(BARS)
    model = build_model(TINY_MODEL, task).eval()
    batch = task.collate_fn([task.test[i] for i in range(3)])
    pixels = sequence_to_pixels(batch["input_values"])  # (B C H W)
    values = batch["input_values"].numpy()  # (B H*W C)
    b, h, w = 2, 5, 17
    assert torch.equal(pixels[b, :, h, w], torch.from_numpy(values[b, h * 32 + w]))
    plain = MRConvNextForImageClassification(model.config)
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        out = model(**batch)
        reference = plain.eval()(pixel_values=pixels, labels=batch["labels"])
    assert torch.equal(out.logits, reference.logits) and torch.equal(out.loss, reference.loss)
    batch["attention_mask"][0, -1] = 0
    with pytest.raises(ValueError, match="attention_mask has padded positions .* set data.image_size"):
        model(**batch)


def test_non_square_or_token_data_is_refused(tmp_path):
    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.fromarray(np.zeros((4, 5, 3), dtype=np.uint8)).save(tmp_path / split / name / "0.png")
    folder = load_task({"task": "scifar", "source": "local", "root": str(tmp_path), "validation_fraction": 0.5})
    with pytest.raises(
        ValueError, match=r"needs square images, but the data's images have 20 pixels .* data.image_size"
    ):
        build_model(TINY_MODEL, folder)
    tokens = load_task({"task": "listops", "num_train": 4, "num_validation": 2, "num_test": 2, "cache": False})
    with pytest.raises(ValueError, match="mrconvnext needs an image task"):
        build_model(TINY_MODEL, tokens)


@pytest.mark.parametrize(("task", "normalize"), [("scifar", False), ("scifar", True), ("image", True)])
def test_export_processor_turns_a_pil_image_into_the_task_inputs(task, normalize):
    """The shipped processor on the PIL image equals the task's input_values of that image (resize is the identity
    at 32x32; rescale and normalization as the task's, up to float32 rounding). Grayscale tasks take "L" images."""
    data = load_task({**BARS, "task": task, "normalize": normalize})
    model = build_model(TINY_MODEL, data)
    images, _ = generate_bars(6, 4, 32, 2)  # the test split: seed data_seed * 3 + 2
    pictures = [Image.fromarray(x).convert("L" if task == "image" else "RGB") for x in images]
    got = model.image_processor(pictures, return_tensors="pt")["pixel_values"]
    expected = sequence_to_pixels(torch.stack([data.test[i]["input_values"] for i in range(6)]))
    assert got.shape == expected.shape == (6, 1 if task == "image" else 3, 32, 32)
    assert torch.allclose(got, expected, atol=2e-6, rtol=0)


def test_export_processor_resizes_as_data_image_size(tmp_path):
    """ImageNet-style folders (RGB of any size, data.image_size): the processor on the original file gives the
    task's resized input_values exactly (both are ConvNextImageProcessorPil's resize)."""
    rng = np.random.default_rng(0)
    shapes = {"train": [(20, 13), (9, 30)], "test": [(17, 17), (12, 25)]}
    for split, sizes in shapes.items():
        for i, (h, w) in enumerate(sizes):
            (tmp_path / split / f"c{i}").mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / split / f"c{i}" / "0.png")
    cfg = {"task": "scifar", "source": "local", "root": str(tmp_path), "image_size": 8, "validation_fraction": 0.5}
    data = load_task(cfg)
    model = build_model({**TINY_MODEL, "patch_size": 1}, data)
    assert model.config.image_size == 8
    files = [Image.open(tmp_path / "test" / f"c{i}" / "0.png") for i in range(2)]
    got = model.image_processor(files, return_tensors="pt")["pixel_values"]
    expected = sequence_to_pixels(torch.stack([data.test[i]["input_values"] for i in range(2)]))
    assert torch.allclose(got, expected, atol=1e-7, rtol=0)


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory) -> Path:
    """`python scripts/train.py --config configuration/mrconvnext_cpu.yaml --max_steps 3` in a subprocess."""
    output_dir = tmp_path_factory.mktemp("mrconvnext") / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "scripts")}
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", str(PRESET), "--max_steps", "3"]
    result = subprocess.run(
        [*command, "--output_dir", str(output_dir)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return output_dir


def test_train_script_exports_a_plain_packaged_model(trained_export):
    config = json.loads((trained_export / "config.json").read_text())
    assert config["architectures"] == ["MRConvNextForImageClassification"]
    assert (
        config["auto_map"]["AutoModelForImageClassification"] == "modeling_mrconvnext.MRConvNextForImageClassification"
    )
    assert config["reparameterized"] is True and config["model_type"] == "mrconvnext"
    assert (trained_export / "modeling_mrconvnext.py").read_text() == (
        ROOT / "modeling_mrconv" / "modeling_mrconvnext.py"
    ).read_text()
    assert not (trained_export / "models.py").exists()
    processor = json.loads((trained_export / "preprocessor_config.json").read_text())
    assert processor["size"] == {"shortest_edge": 32} and processor["crop_pct"] == 1.0
    assert processor["do_normalize"] is False and processor["rescale_factor"] == pytest.approx(1 / 255)
    results = json.loads((trained_export / "all_results.json").read_text())
    assert results["train_steps"] == 3 and results["num_test_examples"] == 512


def test_pipeline_on_pil_images_equals_the_trained_model_on_the_task_inputs(trained_export, tmp_path):
    preset = load_preset(trained_export / "training_preset.yaml", [])
    task = load_task(preset["data"])
    model = MRConvNextFlattenedForImageClassification.from_pretrained(trained_export).eval()
    batch = task.collate_fn([task.test[i] for i in range(4)])
    with torch.no_grad():
        probs = model(**batch).logits.softmax(-1)  # (4 num_labels)
    images, labels = generate_bars(512, 4, 32, 2)  # data_seed 0: the test split
    assert labels[:4].tolist() == batch["labels"].tolist()
    classify = pipeline("image-classification", model=str(trained_export))
    results = classify([Image.fromarray(x) for x in images[:4]], top_k=4)
    names = model.config.id2label
    for scores, p in zip(results, probs, strict=True):
        assert {s["label"]: s["score"] for s in scores} == pytest.approx(
            {names[i]: float(p[i]) for i in range(4)}, abs=1e-5
        )
    # a fresh process where `import modeling_mrconv` fails: the export's copied code alone
    for i in range(4):
        Image.fromarray(images[i]).save(tmp_path / f"{i}.png")
    files = [str(tmp_path / f"{i}.png") for i in range(4)]
    script = (
        "import json, torch\n"
        "from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline\n"
        f"folder = {str(trained_export)!r}\n"
        "model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()\n"
        "assert type(model).__module__.startswith('transformers_modules'), type(model).__module__\n"
        "pipe = pipeline('image-classification', model=folder, trust_remote_code=True)\n"
        f"print(json.dumps(pipe({files!r}, top_k=4)))\n"
    )
    got = json.loads(run_without_package(script, tmp_path))
    for scores, p in zip(got, probs, strict=True):
        assert {s["label"]: s["score"] for s in scores} == pytest.approx(
            {names[i]: float(p[i]) for i in range(4)}, abs=1e-5
        )


def test_evaluate_model_scores_the_export_and_the_checkpoint_alike(trained_export, tmp_path):
    """scripts/evaluate_model.py picks the MRConvNeXt classes from the run's preset, for an export and a save_state."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "scripts")}
    results = {}
    for name, model_dir in (("export", trained_export), ("checkpoint", trained_export / "checkpoints" / "step_3")):
        command = [sys.executable, str(ROOT / "scripts" / "evaluate_model.py"), "--model_dir", str(model_dir)]
        result = subprocess.run(
            [*command, "--output_dir", str(tmp_path / name)], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-4000:]
        results[name] = json.loads((tmp_path / name / "eval_results.json").read_text())
    expected = json.loads((trained_export / "all_results.json").read_text())["test_accuracy"]
    assert results["export"]["test_accuracy"] == pytest.approx(expected, abs=1e-6)
    assert results["checkpoint"]["test_accuracy"] == pytest.approx(expected, abs=1e-6)
