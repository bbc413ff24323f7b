"""ONNX export of the merged model: onnxruntime equals PyTorch for dynamic batch and length."""

import numpy as np
import onnx
import pytest
import torch
from export_onnx import ExportWrapper, example_inputs, export_onnx, main, onnx_session, run_onnx
from mrconv_testing import tiny_config, warmed_model

from modeling_mrconv import MRConvModel
from modeling_mrconv.export_conv import dft_conv_bias, dft_factors
from modeling_mrconv.fftconv import direct_conv_reference
from modeling_mrconv.modeling_mrconv import MRConvMultiResConv


def scaled_up(model):
    """Larger classifier weights, so the parity check is not vacuous at the init's tiny logit scale."""
    with torch.no_grad():
        model.classifier.weight.mul_(50.0)
    return model


def test_cli_exports_training_checkpoint_bidirectional_tokens(tmp_path, capsys):
    model = scaled_up(warmed_model(tiny_config(bidirectional=True)))
    model.save_pretrained(tmp_path / "model", reparameterize=False)  # training form: the CLI merges it
    result = main(
        ["--model_dir", str(tmp_path / "model"), "--output", str(tmp_path / "m.onnx"), "--batch_size", "2"]
        + ["--repeats", "1"]
    )
    printed = capsys.readouterr().out
    assert "onnxruntime vs PyTorch: max |diff|" in printed and "CPU forward, batch 2 x length 64" in printed
    assert result["scale"] > 0.1 and result["relative"] <= 1e-4
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert "MatMul" in ops and "DFT" not in ops  # the merged layers are real DFT GEMMs (export_conv.py)
    long_convs = [
        n
        for n in graph.node
        if n.op_type == "Conv" and any(a.name == "kernel_shape" and a.ints[0] > 1 for a in n.attribute)
    ]
    assert not long_convs  # only the pointwise output projections remain convolutions
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert all(isinstance(d, str) for d in dims)  # batch and length are symbolic


def test_causal_continuous_backbone_parity_for_every_length(tmp_path):
    config = tiny_config(bidirectional=False, input_dim=3, prenorm=True, max_sequence_length=24)
    model = warmed_model(config, length=20).mrconv.reparameterize()
    assert isinstance(model, MRConvModel)
    path = export_onnx(model, tmp_path / "backbone.onnx")
    session = onnx_session(path)
    wrapper = ExportWrapper(model)
    for batch, length in [(1, 1), (4, 7), (2, 23), (3, 24)]:
        inputs, mask = example_inputs(config, batch, length, seed=length)
        with torch.no_grad():
            expected = wrapper(inputs, mask).numpy()  # PyTorch's FFT path
        got = run_onnx(session, inputs, mask)
        assert got.shape == (batch, length, config.hidden_size)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_pytorch_path_does_not_use_the_export_form(monkeypatch):
    """Outside export the merged layer runs the FFT form: the export form is never called."""
    import modeling_mrconv.modeling_mrconv as modeling

    def fail(*args):
        raise AssertionError("dft_conv_bias called outside export")

    monkeypatch.setattr(modeling, "dft_conv_bias", fail)
    layer = MRConvMultiResConv(tiny_config(reparameterized=True))
    layer.reset_parameters()
    with torch.no_grad():
        assert layer(torch.randn(2, 16, 10)).shape == (2, 16, 10)


@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize("K", [1, 2, 7, 64, 301])
def test_dft_export_form_equals_float64_reference(K, directions):
    """The export form against the plain O(L^2) convolution, float64, every length from 1 to K (sampled)."""
    generator = torch.Generator().manual_seed(K + directions)
    kernel = torch.randn(directions, 3, K, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64)
    for L in sorted({1, min(2, K), max(1, K // 3), max(1, K - 1), K}):  # L <= K, as in the model
        u = torch.randn(2, 3, L, generator=generator, dtype=torch.float64)
        expected = direct_conv_reference(u, kernel) + bias[:, None]
        torch.testing.assert_close(dft_conv_bias(u, kernel, bias), expected, rtol=1e-10, atol=1e-10)
        got32 = dft_conv_bias(u.float(), kernel.float(), bias.float())
        assert got32.dtype == torch.float32
        torch.testing.assert_close(got32.double(), expected, rtol=1e-5, atol=1e-5)


def test_dft_factors_cover_the_circle():
    for n in (2, 3, 128, 2048, 2050, 33282):
        N1, N2 = dft_factors(n)
        assert n <= N1 * N2 and N1 % 2 == 0 and n > N1 * (N2 - 1)
    with pytest.raises(ValueError, match="min_length must be at least 2, got 1"):
        dft_factors(1)


def test_document_pair_models_are_refused(tmp_path):
    from modeling_mrconv import MRConvForDocumentPairClassification

    with pytest.raises(ValueError, match="not document pairs"):
        export_onnx(MRConvForDocumentPairClassification(tiny_config()), tmp_path / "pair.onnx")
