"""MRConvNeXt: merged == unmerged (per stage and end to end), save/load, Trainer, pipeline, configs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from mrconv_testing import run_without_package
from PIL import Image
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    ConvNextConfig,
    ConvNextForImageClassification,
    Trainer,
    TrainingArguments,
    pipeline,
)

from modeling_mrconv import MRConvNextConfig, MRConvNextForImageClassification, MRConvNextModel
from modeling_mrconv.modeling_mrconv import MRConvMultiResConv
from modeling_mrconv.modeling_mrconvnext import (
    MRConvNextLayer,
    build_image_processor,
    flatten_feature_map,
    unflatten_feature_map,
)


LABELS = {0: "cat", 1: "dog", 2: "bird"}


def tiny_config(**overrides) -> MRConvNextConfig:
    values = {
        "image_size": 32,
        "patch_size": 2,
        "depths": [1, 2, 1, 1],
        "hidden_sizes": [8, 16, 16, 24],
        "kernel_size": [4, 4, 2, 1],
        "layer_scale_init_value": 1.0,  # the MRConv path must matter in the logits
        "num_labels": 3,
        "id2label": LABELS,
        "label2id": {v: k for k, v in LABELS.items()},
    }
    values.update(overrides)
    return MRConvNextConfig(**values)


def warmed(config: MRConvNextConfig, steps: int = 3) -> MRConvNextForImageClassification:
    model = MRConvNextForImageClassification(config).train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(6, 3, 32, 32) * 2 + 0.5)
    return model.eval()


def images(batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32)


def test_stage_token_counts_and_presets():
    config = MRConvNextConfig.tiny()
    assert [config.stage_config(s).max_sequence_length for s in range(4)] == [3136, 784, 196, 49]
    assert [config.stage_config(s).kernel_size for s in range(4)] == [56, 28, 14, 7]  # one row per side
    assert (MRConvNextConfig.small().depths, MRConvNextConfig.small().hidden_sizes) == (
        [3, 3, 27, 3],
        [96, 192, 384, 768],
    )
    assert (MRConvNextConfig.base().depths, MRConvNextConfig.base().hidden_sizes) == (
        [3, 3, 27, 3],
        [128, 256, 512, 1024],
    )


@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_preset_parameter_count_is_convnext_minus_dwconv_plus_mrconv(size):
    """Counted per block (no full S/B model is built): ConvNeXt's count with each 7x7 dwconv swapped for MRConv."""
    config = getattr(MRConvNextConfig, size)(num_labels=1000)
    reference = ConvNextConfig(depths=config.depths, hidden_sizes=config.hidden_sizes, num_labels=1000)
    stem = 3 * config.hidden_sizes[0] * 16 + 3 * config.hidden_sizes[0]  # patchify conv + bias + LayerNorm
    downsampling = sum(2 * a + a * b * 4 + b for a, b in zip(config.hidden_sizes, config.hidden_sizes[1:]))
    head = 2 * config.hidden_sizes[-1] + config.hidden_sizes[-1] * 1000 + 1000
    ours = stem + downsampling + head
    convnext = stem + downsampling + head
    for stage, (depth, dim) in enumerate(zip(config.depths, config.hidden_sizes)):
        mlp = 2 * dim + 8 * dim * dim + 5 * dim + dim  # LayerNorm, two Linear layers, layer scale
        mrconv = sum(p.numel() for p in MRConvMultiResConv(config.stage_config(stage)).parameters())
        ours += depth * (mlp + mrconv)
        convnext += depth * (mlp + 49 * dim + dim)
    if size == "tiny":  # the full T model is cheap enough to build: check the block-wise count and the reference
        assert sum(p.numel() for p in MRConvNextForImageClassification(config).parameters()) == ours
        assert sum(p.numel() for p in ConvNextForImageClassification(reference).parameters()) == convnext
    assert ours > convnext


@pytest.mark.parametrize("order", ["raster", "snake"])
def test_flatten_round_trip(order):
    features = torch.arange(2 * 3 * 4 * 5.0).view(2, 3, 4, 5)
    tokens = flatten_feature_map(features, order)
    torch.testing.assert_close(unflatten_feature_map(tokens, 4, 5, order), features, rtol=0, atol=0)
    if order == "snake":  # row 1 is read right to left, so token 4 (end of row 0) neighbours token 5
        assert tokens[0, 0, 5:10].tolist() == features[0, 0, 1].flip(0).tolist()


@pytest.mark.parametrize("kernel_type", ["dilated", "fourier", "sparse", "fourier_sparse"])
def test_merged_equals_unmerged_per_stage(kernel_type):
    model = warmed(tiny_config(kernel_type=kernel_type))
    features = model.mrconvnext.embeddings_norm(model.mrconvnext.patch_embeddings(images()))
    with torch.no_grad():
        for stage in model.mrconvnext.stages:
            for layer in stage.downsampling_layer:
                features = layer(features)
            for layer in stage.layers:
                expected = layer(features)
                merged = MRConvNextLayer(model.config, layer.stage, layer.conv.layer_idx)
                merged.load_state_dict(layer.state_dict())
                merged.conv.reparameterize()
                assert merged.conv.is_reparameterized
                torch.testing.assert_close(merged.eval()(features), expected, rtol=1e-5, atol=1e-5)
                features = expected


@pytest.mark.parametrize("order", ["raster", "snake"])
def test_merged_equals_unmerged_end_to_end(order):
    model = warmed(tiny_config(flatten_order=order))
    x = images()
    with torch.no_grad():
        expected = model(x).logits
        merged = MRConvNextForImageClassification(model.config)
        merged.load_state_dict(model.state_dict())
        merged.eval().reparameterize()
        torch.testing.assert_close(merged(x).logits, expected, rtol=1e-5, atol=1e-5)
    assert (expected - model.__class__(tiny_config(flatten_order=order)).eval()(x).logits).abs().max() > 1e-3


def test_save_pretrained_merges_every_layer_and_loads_back(tmp_path):
    model = warmed(tiny_config())
    x = images()
    with torch.no_grad():
        expected = model(x).logits
    model.save_pretrained(tmp_path)
    keys = set(load_file(os.path.join(tmp_path, "model.safetensors")))
    num_layers = sum(model.config.depths)
    assert len([k for k in keys if k.endswith("conv.merged_kernel")]) == num_layers
    assert not any(".conv.kernel." in k or ".conv.batch_norm." in k or ".conv.alpha" in k for k in keys)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "mrconvnext" and config["reparameterized"] is True
    assert config["auto_map"] == {
        "AutoConfig": "configuration_mrconvnext.MRConvNextConfig",
        "AutoModel": "modeling_mrconvnext.MRConvNextModel",
        "AutoModelForImageClassification": "modeling_mrconvnext.MRConvNextForImageClassification",
    }
    assert not model.config.reparameterized
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert isinstance(loaded, MRConvNextForImageClassification) and loaded.config.reparameterized
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, expected, rtol=1e-5, atol=1e-5)
    backbone = MRConvNextModel.from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x).pooler_output, model.mrconvnext(x).pooler_output, rtol=1e-5, atol=1e-5)


def test_training_form_save_round_trip(tmp_path):
    model = warmed(tiny_config(kernel_type=["dilated", "fourier", "sparse", "fourier"]))
    model.save_pretrained(tmp_path, reparameterize=False)
    loaded = MRConvNextForImageClassification.from_pretrained(tmp_path)
    assert not loaded.config.reparameterized
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_config_round_trip_and_validation(tmp_path):
    config = tiny_config(kernel_type=["dilated", "fourier", "sparse", "fourier_sparse"], flatten_order="snake")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, MRConvNextConfig)
    assert {**loaded.to_dict(), "_name_or_path": ""} == config.to_dict()
    with pytest.raises(ValueError, match=r"depths must have num_stages=4 entries, got 3"):
        MRConvNextConfig(depths=[1, 1, 1])
    with pytest.raises(ValueError, match=r"flatten_order must be one of \('raster', 'snake'\), got 'zigzag'"):
        MRConvNextConfig(flatten_order="zigzag")
    with pytest.raises(ValueError, match=r"stage 3: kernel_size \(8\) must not exceed max_sequence_length \(4\)"):
        tiny_config(kernel_size=[4, 4, 2, 8])
    with pytest.raises(ValueError, match=r"kernel_type must be one value or num_stages=4 values"):
        tiny_config(kernel_type=["fourier", "dilated"])


def test_bad_pixel_values_name_the_shape():
    model = MRConvNextForImageClassification(tiny_config()).eval()
    with pytest.raises(
        ValueError, match=r"pixel_values must have shape \(batch, 3, height, width\), got \(2, 1, 32, 32\)"
    ):
        model(torch.randn(2, 1, 32, 32))


class ImageDataset(torch.utils.data.Dataset):
    """Class = which colour channel is brightest: learnable in a few steps."""

    def __init__(self, size: int = 24):
        generator = torch.Generator().manual_seed(0)
        self.labels = torch.randint(0, 3, (size,), generator=generator)
        self.pixels = torch.randn(size, 3, 32, 32, generator=generator) * 0.5
        self.pixels[torch.arange(size), self.labels] += 1.5

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[i], "labels": self.labels[i]}


def test_trainer_fine_tuning_lowers_the_loss(tmp_path):
    model = MRConvNextForImageClassification(tiny_config())
    data = ImageDataset()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_train_epochs=4,
        learning_rate=3e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    trainer.save_model(str(tmp_path / "export"))
    assert json.loads((tmp_path / "export" / "config.json").read_text())["reparameterized"] is True


def pil_images() -> list[Image.Image]:
    generator = np.random.default_rng(0)
    return [Image.fromarray(generator.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((40, 50), (32, 32))]


def test_pipeline_offline_with_the_shipped_processor(tmp_path):
    model = warmed(tiny_config())
    model.save_pretrained(tmp_path)
    processor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert processor["image_processor_type"] == "ConvNextImageProcessor" and processor["size"] == {"shortest_edge": 32}
    classify = pipeline("image-classification", model=str(tmp_path))
    pictures = pil_images()
    results = classify(pictures, top_k=3)
    pixel_values = classify.image_processor(pictures, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (2, 3, 32, 32)
    with torch.no_grad():
        probs = model(pixel_values).logits.softmax(-1)
    for scores, p in zip(results, probs):
        assert {s["label"]: pytest.approx(s["score"], abs=1e-5) for s in scores} == {
            LABELS[i]: pytest.approx(float(p[i]), abs=1e-5) for i in range(3)
        }


def test_fresh_process_remote_code_pipeline_without_the_package(tmp_path):
    model = warmed(tiny_config())
    folder = tmp_path / "export"
    model.save_pretrained(folder)
    for module in ("configuration_mrconvnext", "modeling_mrconvnext", "modeling_mrconv", "configuration_mrconv"):
        assert (folder / f"{module}.py").exists(), module
    pictures = pil_images()
    for i, picture in enumerate(pictures):
        picture.save(tmp_path / f"{i}.png")
    classify = pipeline("image-classification", model=str(folder))
    expected = classify([str(tmp_path / f"{i}.png") for i in range(2)], top_k=3)
    script = (
        "import json\n"
        "from transformers import pipeline\n"
        f"pipe = pipeline('image-classification', model={str(folder)!r}, trust_remote_code=True)\n"
        "assert type(pipe.model).__module__.startswith('transformers_modules'), type(pipe.model).__module__\n"
        f"print(json.dumps(pipe([{str(tmp_path / '0.png')!r}, {str(tmp_path / '1.png')!r}], top_k=3)))\n"
    )
    got = json.loads(run_without_package(script, tmp_path))
    for scores, reference in zip(got, expected):
        assert [s["label"] for s in scores] == [s["label"] for s in reference]
        assert [s["score"] for s in scores] == pytest.approx([s["score"] for s in reference], abs=1e-5)


def test_save_pretrained_needs_only_the_declared_dependencies(tmp_path):
    """Pillow comes with the `train` extra only: saving an MRConvNeXt must work without it, and the processor config
    it writes loads back (with Pillow) as the processor `build_image_processor` builds."""
    script = (
        "import importlib.abc, sys\n"
        "class _BlockPillow(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'PIL':\n"
        "            raise ImportError('Pillow is blocked in this test')\n"
        "sys.meta_path.insert(0, _BlockPillow())\n"
        "from modeling_mrconv import MRConvNextConfig, MRConvNextForImageClassification\n"
        "config = MRConvNextConfig(image_size=32, patch_size=2, depths=[1, 1, 1, 1], hidden_sizes=[8, 8, 8, 8],\n"
        "                          kernel_size=[4, 4, 2, 1], num_labels=3)\n"
        "MRConvNextForImageClassification(config).save_pretrained('export')\n"
        "print('pillow imported' if 'PIL' in sys.modules else 'saved')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "saved"
    loaded = AutoImageProcessor.from_pretrained(tmp_path / "export")
    expected = build_image_processor(MRConvNextConfig.from_pretrained(tmp_path / "export"))
    assert type(loaded) is type(expected)
    assert loaded.to_dict() == expected.to_dict()
