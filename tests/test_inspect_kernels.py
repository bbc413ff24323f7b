"""Kernel inspection: the library tensors equal the model's parameters and the CLI writes valid PNGs."""

import torch
from mrconv_testing import load_script, tiny_config, warmed_model
from PIL import Image

from modeling_mrconv.inspection import alpha_norms, kernel_spectra, merged_kernels


main = load_script("inspect_kernels").main


def test_library_tensors_equal_model_parameters():
    model = warmed_model(tiny_config(kernel_type="fourier"))
    layers = model.mrconv.layers
    expected = torch.stack([block.conv.alpha.detach().double().pow(2).sum(-1) for block in layers])
    torch.testing.assert_close(alpha_norms(model), expected, rtol=0, atol=0)
    training_kernels = merged_kernels(model)  # eval-mode merge of the branches
    model.reparameterize()
    assert alpha_norms(model) is None
    for kernel, block in zip(merged_kernels(model), layers, strict=True):
        torch.testing.assert_close(kernel, block.conv.merged_kernel.detach().double(), rtol=0, atol=0)
    for before, after in zip(training_kernels, merged_kernels(model), strict=True):
        torch.testing.assert_close(before, after, rtol=1e-6, atol=1e-6)
    k = torch.zeros(1, 1, 8, dtype=torch.float64)
    k[0, 0, 0] = 2.0  # a scaled delta has a flat magnitude response
    torch.testing.assert_close(kernel_spectra(k), torch.full((1, 1, 5), 2.0, dtype=torch.float64))


def test_cli_plots_both_checkpoint_forms(tmp_path, capsys):
    model = warmed_model(tiny_config(num_hidden_layers=3))
    model.save_pretrained(tmp_path / "training", reparameterize=False)
    model.save_pretrained(tmp_path / "merged")
    training = main(["--model_dir", str(tmp_path / "training"), "--output_dir", str(tmp_path / "out_training")])
    merged = main(["--model_dir", str(tmp_path / "merged")])
    assert [p.name for p in training] == ["kernels_time.png", "kernels_frequency.png", "alpha_norms.png"]
    assert [p.name for p in merged] == ["kernels_time.png", "kernels_frequency.png"]
    assert merged[0].parent == tmp_path / "merged" / "kernels"
    for path in training + merged:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 100
    assert capsys.readouterr().out.count("wrote ") == 5
