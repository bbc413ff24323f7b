"""ONNX export of the merged model: onnxruntime equals PyTorch for dynamic batch and length."""

import numpy as np
import onnx
import pytest
import torch
from export_onnx import ExportWrapper, example_inputs, export_onnx, main, onnx_session, run_onnx
from mrconv_testing import tiny_config, warmed_model

from modeling_mrconv import MRConvModel
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
    assert "Conv" in ops and "DFT" not in ops
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
    """Outside export the merged layer runs the FFT form: the direct form is never called."""
    import modeling_mrconv.modeling_mrconv as modeling

    def fail(*args):
        raise AssertionError("direct_conv_bias called outside export")

    monkeypatch.setattr(modeling, "direct_conv_bias", fail)
    layer = MRConvMultiResConv(tiny_config(reparameterized=True))
    layer.reset_parameters()
    with torch.no_grad():
        assert layer(torch.randn(2, 16, 10)).shape == (2, 16, 10)


def test_document_pair_models_are_refused(tmp_path):
    from modeling_mrconv import MRConvForDocumentPairClassification

    with pytest.raises(ValueError, match="not document pairs"):
        export_onnx(MRConvForDocumentPairClassification(tiny_config()), tmp_path / "pair.onnx")
