"""ONNX export of the merged model: onnxruntime, fed as a tokenizer feeds it, equals PyTorch for any batch, length."""

import numpy as np
import onnx
import pytest
import torch
from mrconv_testing import load_script, tiny_config, warmed_model

from modeling_mrconv import MRConvModel, build_byte_tokenizer
from modeling_mrconv.export_conv import dft_conv_bias, dft_factors
from modeling_mrconv.fftconv import direct_conv_reference
from modeling_mrconv.modeling_mrconv import MRConvMultiResConv


script = load_script("export_onnx")
ExportWrapper, example_inputs, expected_input_types = (
    script.ExportWrapper,
    script.example_inputs,
    script.expected_input_types,
)
export_onnx, main, onnx_session, run_onnx = script.export_onnx, script.main, script.onnx_session, script.run_onnx


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
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == [
        ("input_ids", onnx.TensorProto.INT64),
        ("attention_mask", onnx.TensorProto.INT64),
    ]  # as a tokenizer returns them
    for graph_input in graph.input:
        dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        assert all(isinstance(d, str) for d in dims)  # batch and length are symbolic


def test_tokenizer_output_runs_unchanged_in_onnxruntime(tmp_path):
    """`session.run(None, dict(tokenizer(texts, padding=True, return_tensors="np")))`: int64 ids and mask."""
    tokenizer = build_byte_tokenizer(24)
    config = tiny_config(vocab_size=len(tokenizer), max_sequence_length=24)
    model = scaled_up(warmed_model(config, length=20))
    session = onnx_session(export_onnx(model, tmp_path / "m.onnx"))
    inputs = session.get_inputs()
    assert {i.name: i.type for i in inputs} == {"input_ids": "tensor(int64)", "attention_mask": "tensor(int64)"}
    assert all(isinstance(d, str) for i in inputs for d in i.shape)  # dynamic batch and length
    assert [o.name for o in session.get_outputs()] == ["logits"]
    batches = [
        ["MRConv", "multi-resolution", "a sentence longer than max_sequence_length, truncated by the tokenizer"],
        ["one"],
        ["byte", "level tokens"],
    ]
    scale = 0.0
    for texts in batches:
        encoding = tokenizer(texts, padding=True, truncation=True, return_tensors="np")
        assert set(encoding) == {"input_ids", "attention_mask"}
        assert encoding["input_ids"].dtype == encoding["attention_mask"].dtype == np.int64
        got = session.run(None, dict(encoding))[0]  # (B num_labels)
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in encoding.items()}).logits.numpy()
        assert got.shape == (len(texts), config.num_labels)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
        scale = max(scale, float(np.abs(expected).max()))
    assert scale > 0.1  # not vacuous
    assert (encoding["attention_mask"] == 0).any()  # padding was exercised


def test_causal_continuous_backbone_parity_for_every_length(tmp_path):
    config = tiny_config(bidirectional=False, input_dim=3, prenorm=True, max_sequence_length=24)
    model = warmed_model(config, length=20).mrconv.reparameterize()
    assert isinstance(model, MRConvModel)
    path = export_onnx(model, tmp_path / "backbone.onnx")
    session = onnx_session(path)
    assert {i.name: i.type for i in session.get_inputs()} == {
        "input_values": "tensor(float)",
        "attention_mask": "tensor(int64)",
    }
    wrapper = ExportWrapper(model)
    for batch, length in [(1, 1), (4, 7), (2, 23), (3, 24)]:
        inputs, mask = example_inputs(config, batch, length, seed=length)
        assert inputs.dtype == torch.float32 and mask.dtype == torch.int64
        with torch.no_grad():
            expected = wrapper(inputs, mask).numpy()  # PyTorch's FFT path
        got = run_onnx(session, inputs, mask)
        assert got.shape == (batch, length, config.hidden_size)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_continuous_classifier_takes_an_integer_mask(tmp_path):
    """float32 `input_values` (B, L, input_dim) and an int64 mask by name, as a feature pipeline would pass them."""
    config = tiny_config(bidirectional=True, input_dim=2, max_sequence_length=16)
    model = scaled_up(warmed_model(config, length=12))
    session = onnx_session(export_onnx(model, tmp_path / "continuous.onnx"))
    assert {i.name: i.type for i in session.get_inputs()} == expected_input_types(config)
    assert expected_input_types(config)["attention_mask"] == "tensor(int64)"
    generator, scale = np.random.default_rng(0), 0.0
    for lengths in ([16, 5, 11], [3], [9, 9]):
        L = max(lengths)
        values = generator.standard_normal((len(lengths), L, config.input_dim)).astype(np.float32)  # (B L D)
        mask = (np.arange(L)[None, :] < np.array(lengths)[:, None]).astype(np.int64)  # (B L)
        got = session.run(None, {"input_values": values, "attention_mask": mask})[0]
        with torch.no_grad():
            expected = model(input_values=torch.from_numpy(values), attention_mask=torch.from_numpy(mask)).logits
        expected = expected.numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
        scale = max(scale, float(np.abs(expected).max()))
    assert scale > 0.01  # far above float32 rounding: the comparison is not vacuous


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
