"""Hugging Face conformance of the model API: outputs, inputs, loading, masking, export, BatchNorm, training form."""

import copy
import json
import logging
import shutil
from types import SimpleNamespace

import pytest
import torch
from mrconv_testing import random_inputs, run_without_package, tiny_config, warmed_model
from transformers import AutoModelForSequenceClassification, pipeline
from transformers.modeling_outputs import BaseModelOutput
from transformers.testing_utils import CaptureLogger

from modeling_mrconv import (
    MRConvConfig,
    MRConvForDocumentPairClassification,
    MRConvForSequenceClassification,
    MRConvModel,
    build_byte_tokenizer,
)
from modeling_mrconv import modeling_mrconv as modeling
from modeling_mrconv.batchnorm import MRConvBatchNorm
from modeling_mrconv.fftconv import direct_conv_reference, fft_conv, kernel_spectrum
from modeling_mrconv.kernels import MRConvSparseKernel
from modeling_mrconv.modeling_mrconv import MRConvMultiResConv


def warmed_pair_model(config: MRConvConfig, steps: int = 3) -> MRConvForDocumentPairClassification:
    model = MRConvForDocumentPairClassification(config).train()
    with torch.no_grad():
        for _ in range(steps):
            model(input_ids=torch.randint(1, config.vocab_size, (3, 2, 40)))
    return model.eval()


def batch_norms(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{buffer}": getattr(module, buffer).clone()
        for name, module in model.named_modules()
        if isinstance(module, MRConvBatchNorm)
        for buffer in ("running_mean", "running_var", "num_batches_tracked")
    }


# 1. return_dict, 2. hidden states


@pytest.mark.parametrize("head", [MRConvForSequenceClassification, MRConvForDocumentPairClassification])
def test_config_return_dict_false_gives_tuples(head):
    model = head(tiny_config(return_dict=False)).eval()
    ids = torch.randint(1, 20, (2, 2, 30) if head is MRConvForDocumentPairClassification else (2, 30))
    out = model(input_ids=ids, labels=torch.tensor([0, 2]), output_hidden_states=True)
    assert isinstance(out, tuple) and len(out) == 3  # loss, logits, hidden_states
    assert out[1].shape == (2, 3) and len(out[2]) == 3
    assert isinstance(model(input_ids=ids, return_dict=True).logits, torch.Tensor)
    backbone = MRConvModel(tiny_config(return_dict=False)).eval()
    assert isinstance(backbone(input_ids=torch.randint(1, 20, (2, 30))), tuple)


@pytest.mark.parametrize("from_config", [False, True])
def test_document_pair_hidden_states(from_config):
    config = tiny_config(output_hidden_states=from_config)
    model = warmed_pair_model(config)
    ids = torch.randint(1, 20, (2, 2, 30))
    ids[1, 0, 20:] = 0
    mask = (ids != 0).long()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, **({} if from_config else {"output_hidden_states": True}))
        assert len(out.hidden_states) == config.num_hidden_layers + 1
        assert all(h.shape == (2, 2, 30, 16) for h in out.hidden_states)
        for doc in (0, 1):
            alone = model.mrconv(input_ids=ids[:, doc], attention_mask=mask[:, doc], output_hidden_states=True)
            for pair_hidden, hidden in zip(out.hidden_states, alone.hidden_states, strict=True):
                torch.testing.assert_close(pair_hidden[:, doc], hidden, rtol=1e-5, atol=1e-6)
        assert model(input_ids=ids, output_hidden_states=False).hidden_states is None


# 3. a checkpoint comes back as the class that wrote it


def test_document_pair_export_loads_as_its_class_library_route(tmp_path):
    tokenizer = build_byte_tokenizer(64)
    model = warmed_pair_model(tiny_config(vocab_size=len(tokenizer)))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    ids = torch.randint(1, len(tokenizer), (2, 2, 30))
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert type(loaded) is MRConvForDocumentPairClassification
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-5, atol=1e-6)
    classify = pipeline("text-classification", model=str(tmp_path))
    assert type(classify.model) is MRConvForDocumentPairClassification
    with pytest.raises(ValueError, match="two documents stacked on dim 1"):
        classify("a single text is not a document pair")
    with pytest.raises(ValueError, match="written by MRConvForDocumentPairClassification"):
        MRConvForSequenceClassification.from_pretrained(tmp_path)
    # the single-sequence head keeps loading as itself, and a backbone loads from either head's checkpoint
    assert type(AutoModelForSequenceClassification.from_config(tiny_config())) is MRConvForSequenceClassification
    assert type(MRConvModel.from_pretrained(tmp_path)) is MRConvModel


def test_document_pair_export_loads_as_its_class_remote_code(tmp_path):
    tokenizer = build_byte_tokenizer(64)
    model = warmed_pair_model(tiny_config(vocab_size=len(tokenizer)))
    folder = tmp_path / "export"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    script = (
        "from transformers import AutoModelForSequenceClassification, pipeline\n"
        f"model = AutoModelForSequenceClassification.from_pretrained({str(folder)!r}, trust_remote_code=True)\n"
        "assert type(model).__module__.startswith('transformers_modules'), type(model).__module__\n"
        f"pipe = pipeline('text-classification', model={str(folder)!r}, trust_remote_code=True)\n"
        "print(type(model).__name__, type(pipe.model).__name__)\n"
    )
    last = run_without_package(script, tmp_path)
    assert last == "MRConvForDocumentPairClassification MRConvForDocumentPairClassification"


# 4. the merged-kernel spectrum cache follows every weight change


def weight_edits():
    def data_inplace(layer):
        layer.merged_kernel.data.mul_(0.5)  # invisible to the version counter

    def data_assign(layer):
        layer.merged_kernel.data = torch.randn_like(layer.merged_kernel)

    def copy_no_grad(layer):
        with torch.no_grad():
            layer.merged_kernel.copy_(torch.randn_like(layer.merged_kernel))

    def load_state(layer):
        layer.load_state_dict({**layer.state_dict(), "merged_kernel": torch.randn_like(layer.merged_kernel)})

    def optimizer_step(layer):
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
        layer(torch.randn(2, 16, 40)).square().sum().backward()
        optimizer.step()

    def to_float64(layer):
        layer.to(torch.float64)

    return [data_inplace, data_assign, copy_no_grad, load_state, optimizer_step, to_float64]


@pytest.mark.parametrize("edit", weight_edits(), ids=lambda f: f.__name__)
@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_merged_spectrum_cache_follows_every_weight_change(edit, context):
    layer = MRConvMultiResConv(tiny_config(reparameterized=True))
    layer.reset_parameters()
    x = torch.randn(2, 16, 40)

    def run():
        manager = torch.no_grad() if context == "no_grad" else torch.inference_mode()
        with manager:
            return layer(x.to(layer.merged_kernel.dtype))

    def oracle():
        kernel, bias = layer.merged_kernel.detach().double(), layer.merged_bias.detach().double()
        return direct_conv_reference(x.double(), kernel) + bias[:, None]

    def check():  # float32 FFT rounding scales with the output's size, not per element (the SGD step grows it)
        expected = oracle()
        atol = 1e-5 * float(expected.abs().amax().clamp_min(1.0))
        torch.testing.assert_close(run().double(), expected, rtol=1e-5, atol=atol)

    for _ in range(2):  # the second call is served from the cache
        check()
    edit(layer)
    for _ in range(2):
        check()


def test_merged_spectrum_cache_is_reused_while_the_kernel_is_unchanged(monkeypatch):
    layer = MRConvMultiResConv(tiny_config(reparameterized=True))
    layer.reset_parameters()
    calls = []
    original = modeling.kernel_spectrum
    monkeypatch.setattr(modeling, "kernel_spectrum", lambda k, L: calls.append(L) or original(k, L))
    with torch.no_grad():
        for _ in range(3):
            layer(torch.randn(2, 16, 40))
        layer(torch.randn(2, 16, 30))
    assert calls == [40, 30]


# 5. inputs_embeds, conflicting and unknown inputs, positional order


def test_inputs_embeds_equal_input_ids():
    model = warmed_model(tiny_config())
    ids = torch.randint(1, 20, (2, 30))
    ids[0, 20:] = 0
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        embeds = model.get_input_embeddings()(ids)
        torch.testing.assert_close(model(inputs_embeds=embeds, attention_mask=mask).logits, expected)
        hidden = model.mrconv(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True).hidden_states
        torch.testing.assert_close(hidden[0][1], embeds[1])
        torch.testing.assert_close(model(ids, mask).logits, expected)  # HF text order: input_ids, attention_mask


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inputs_embeds": torch.randn(2, 10, 16)}, r"got \['input_ids', 'inputs_embeds'\]"),
        ({"input_values": torch.randn(2, 10, 1)}, r"got \['input_ids', 'input_values'\]"),
        ({"token_type_ids": torch.zeros(2, 10, dtype=torch.long)}, r"unexpected inputs \['token_type_ids'\]"),
        ({"output_attentions": True}, r"unexpected inputs \['output_attentions'\]"),
    ],
)
def test_conflicting_and_unknown_inputs_are_named(kwargs, message):
    model = MRConvForSequenceClassification(tiny_config())
    with pytest.raises(ValueError, match=message):
        model(input_ids=torch.ones(2, 10, dtype=torch.long), **kwargs)


def test_inputs_embeds_shape_is_checked():
    model = MRConvModel(tiny_config())
    with pytest.raises(ValueError, match=r"inputs_embeds must have shape \(batch, length, hidden_size=16\), got"):
        model(inputs_embeds=torch.randn(2, 10, 8))
    with pytest.raises(ValueError, match="reads continuous input_values"):
        MRConvModel(tiny_config(input_dim=3))(torch.randn(2, 10, 3))


# 6. sparse positions exist from construction


def test_sparse_positions_are_computed_in_init():
    config = tiny_config(kernel_type="sparse")
    kernel = MRConvSparseKernel(config, layer_idx=1)
    torch.testing.assert_close(kernel.positions, kernel.sample_positions(), rtol=0, atol=0)
    for i, length in enumerate(config.branch_lengths):
        positions = kernel.positions[i]  # (S H T)
        assert positions.max() < length and (positions.diff(dim=-1) > 0).all()
    assert kernel.positions[-1].max() > config.kernel_size  # not all zeros: spread over the longest branch
    assert not torch.equal(kernel.positions, MRConvSparseKernel(config, layer_idx=0).positions)


# 7. the checkpoint's form and the requested form


def test_reparameterized_override_on_load(tmp_path):
    model = warmed_model(tiny_config())
    inputs = random_inputs(model.config)
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(tmp_path / "merged")
    model.save_pretrained(tmp_path / "training", reparameterize=False)
    with pytest.raises(ValueError, match=r"cannot be loaded with reparameterized=False.*reparameterize=False"):
        MRConvForSequenceClassification.from_pretrained(tmp_path / "merged", reparameterized=False)
    with pytest.raises(ValueError, match="merged MRConv checkpoint"):
        MRConvForSequenceClassification.from_pretrained(tmp_path / "merged", config=tiny_config())
    merged = MRConvForSequenceClassification.from_pretrained(tmp_path / "training", reparameterized=True)
    assert merged.config.reparameterized and merged.mrconv.layers[0].conv.is_reparameterized
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, expected, rtol=1e-5, atol=1e-6)
    same = MRConvForSequenceClassification.from_pretrained(tmp_path / "merged", reparameterized=True)
    assert same.config.reparameterized
    # the Auto classes apply the override to the config they pass down: same rules
    with pytest.raises(ValueError, match="cannot be loaded with reparameterized=False"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged", reparameterized=False)
    auto = AutoModelForSequenceClassification.from_pretrained(tmp_path / "training", reparameterized=True)
    with torch.no_grad():
        torch.testing.assert_close(auto(**inputs).logits, expected, rtol=1e-5, atol=1e-6)


# 8. config overrides are validated


def test_from_pretrained_overrides_are_validated(tmp_path):
    warmed_model(tiny_config()).save_pretrained(tmp_path, reparameterize=False)
    with pytest.raises(ValueError, match="kernel_type must be one of .* got 'bogus'"):
        MRConvForSequenceClassification.from_pretrained(tmp_path, kernel_type="bogus")
    with pytest.raises(ValueError, match="kernel_type must be one of .* got 'bogus'"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path, kernel_type="bogus")
    with pytest.raises(ValueError, match="kernel_size \\(128\\) must not exceed max_sequence_length \\(64\\)"):
        MRConvConfig.from_pretrained(tmp_path, kernel_size=128)
    saved = MRConvConfig.from_pretrained(tmp_path)
    assert saved.num_branches == 5  # 1 + log2(64 / 4)
    longer = MRConvConfig.from_pretrained(tmp_path, max_sequence_length=256)
    assert (
        longer.num_branches
        == MRConvConfig(**{**saved.to_dict(), "max_sequence_length": 256, "num_branches": None}).num_branches
        == 7
    )
    assert MRConvConfig.from_pretrained(tmp_path, max_sequence_length=256, num_branches=3).num_branches == 3
    explicit = tmp_path / "explicit"
    MRConvForSequenceClassification(tiny_config(num_branches=3)).save_pretrained(explicit, reparameterize=False)
    assert MRConvConfig.from_pretrained(explicit, max_sequence_length=256).num_branches == 3  # chosen, not derived
    edited = tiny_config()
    edited.norm_type = "group"
    with pytest.raises(ValueError, match="norm_type must be one of"):
        MRConvForSequenceClassification(edited)


# 9. out-of-range ids, empty batches and sequences


@pytest.mark.parametrize("bad", [20, 57, -1])
def test_out_of_range_input_ids(bad):
    model = MRConvForSequenceClassification(tiny_config())
    ids = torch.randint(1, 20, (2, 10))
    ids[1, 3] = bad
    with pytest.raises(ValueError, match=rf"input_ids must be in \[0, vocab_size=20\), got a token id {bad}\."):
        model(input_ids=ids)
    with pytest.raises(ValueError, match="integer token ids"):
        model(input_ids=ids.float())


@pytest.mark.parametrize("training", [False, True])
def test_empty_batch_gives_empty_outputs(training):
    model = warmed_model(tiny_config()).train(training)
    before = batch_norms(model)
    out = model(input_ids=torch.zeros(0, 12, dtype=torch.long), output_hidden_states=True)
    assert out.logits.shape == (0, 3) and len(out.hidden_states) == 3
    assert all(h.shape == (0, 12, 16) for h in out.hidden_states)
    values = MRConvModel(tiny_config(input_dim=2))(input_values=torch.zeros(0, 12, 2))
    assert isinstance(values, BaseModelOutput) and values.last_hidden_state.shape == (0, 12, 16)
    assert all(torch.equal(before[k], v) for k, v in batch_norms(model).items())


def test_zero_length_raises():
    with pytest.raises(ValueError, match="length 0"):
        MRConvForSequenceClassification(tiny_config())(input_ids=torch.zeros(2, 0, dtype=torch.long))


# 10. non-finite values at padded positions, batches without valid positions


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("prenorm", [False, True])
def test_nan_at_padded_positions_never_reaches_a_convolution(training, prenorm):
    config = tiny_config(input_dim=2, prenorm=prenorm)
    model = warmed_model(config)
    clean = torch.randn(2, 30, 2)
    mask = torch.ones(2, 30)
    mask[0, 18:] = 0
    clean[0, 18:] = 0
    dirty = clean.clone()
    dirty[0, 18:, 0] = float("nan")
    dirty[0, 20:, 1] = float("inf")
    results = []
    for x in (clean, dirty):
        run = copy.deepcopy(model).train(training)
        out = run(input_values=x, attention_mask=mask, labels=torch.tensor([0, 1]))
        out.loss.backward()
        grads = [p.grad for p in run.parameters() if p.grad is not None]
        assert all(torch.isfinite(g).all() for g in grads)
        results.append((out.logits.detach(), grads, batch_norms(run)))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=0)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for key, value in results[0][2].items():
        torch.testing.assert_close(results[1][2][key], value, rtol=0, atol=0)


@pytest.mark.parametrize("norm_type", ["batch", "layer"])
def test_batch_without_valid_positions_keeps_running_statistics(norm_type):
    model = warmed_model(tiny_config(norm_type=norm_type)).train()
    before = batch_norms(model)
    ids = torch.randint(1, 20, (3, 30))
    out = model(input_ids=ids, attention_mask=torch.zeros(3, 30), labels=torch.tensor([0, 1, 2]))
    out.loss.backward()
    assert torch.isfinite(out.logits).all()
    for key, value in batch_norms(model).items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)


# 11. torch.export


@pytest.mark.parametrize("reparameterized", [False, True])
def test_torch_export_with_and_without_mask(reparameterized):
    model = warmed_model(tiny_config())
    if reparameterized:
        model.reparameterize()
    ids = torch.randint(1, 20, (2, 30))
    ids[0, 22:] = 0
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        alone = torch.export.export(model, (), {"input_ids": ids})
        torch.testing.assert_close(alone.module()(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)
        masked = torch.export.export(model, (), {"input_ids": ids, "attention_mask": mask})
        out = masked.module()(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


# 12. BatchNorm recalibration


def recalibration_batches(config: MRConvConfig) -> list[dict[str, torch.Tensor]]:
    batches = []
    for size, length in ((4, 40), (3, 25), (5, 33)):
        ids = torch.randint(1, config.vocab_size, (size, length))
        mask = torch.ones(size, length, dtype=torch.long)
        mask[0, length // 2 :] = 0
        batches.append({"input_ids": ids, "attention_mask": mask, "labels": torch.zeros(size, dtype=torch.long)})
    return batches


def test_recalibrate_batch_norm_takes_the_average_of_the_batch_statistics():
    config = tiny_config(hidden_dropout_prob=0.2)
    model = warmed_model(config, steps=2)
    batches = recalibration_batches(config)
    empty = {"input_ids": torch.randint(1, 20, (2, 10)), "attention_mask": torch.zeros(2, 10, dtype=torch.long)}
    model.recalibrate_batch_norm([*batches, empty])
    assert not model.training and all(m.momentum == 0.1 for m in model.modules() if isinstance(m, MRConvBatchNorm))
    stats = batch_norms(model)

    # oracle for the first layer's branch BatchNorms, float64: masked statistics of k_i * embeddings per batch
    conv = model.mrconv.layers[0].conv
    kernels = [k.detach().double() for k in conv.kernel()]
    means, variances = [], []
    for batch in batches:
        mask = batch["attention_mask"].double()
        x = (model.mrconv.embeddings(batch["input_ids"]).detach().double() * mask[..., None]).transpose(1, 2)
        z = torch.stack([fft_conv(x, kernel_spectrum(k, x.shape[-1])) for k in kernels], 1)  # (B N H L)
        n = mask.sum()
        mean = (z * mask[:, None, None]).sum((0, 3)) / n  # (N H)
        means.append(mean)
        variances.append(((z - mean[..., None]).square() * mask[:, None, None]).sum((0, 3)) / (n - 1))
    prefix = "mrconv.layers.0.conv.batch_norm."
    torch.testing.assert_close(
        stats[prefix + "running_mean"].double(), torch.stack(means).mean(0), rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(
        stats[prefix + "running_var"].double(), torch.stack(variances).mean(0), rtol=1e-4, atol=1e-5
    )
    assert int(stats[prefix + "num_batches_tracked"]) == 3  # the batch without a valid position is skipped

    # every BatchNorm (block norms of later layers included): the average of one-batch recalibrations
    singles = [batch_norms(copy.deepcopy(model).recalibrate_batch_norm([b])) for b in batches]
    for key, value in stats.items():
        if key.endswith("num_batches_tracked"):
            continue
        torch.testing.assert_close(value, torch.stack([s[key] for s in singles]).mean(0), rtol=1e-5, atol=1e-6)

    # the merged export reproduces the recalibrated eval-mode model
    inputs = random_inputs(config)
    with torch.no_grad():
        expected = model(**inputs).logits
        merged = copy.deepcopy(model).reparameterize()
        torch.testing.assert_close(merged(**inputs).logits, expected, rtol=1e-5, atol=1e-6)


def test_recalibrate_batch_norm_errors_keep_the_statistics():
    model = warmed_model(tiny_config())
    before = batch_norms(model)
    with pytest.raises(ValueError, match="got no batches"):
        model.recalibrate_batch_norm([])
    with pytest.raises(TypeError, match=r"mappings of model inputs \(a dict or BatchEncoding\) or tensors, got list"):
        model.recalibrate_batch_norm([[1, 2, 3]])
    assert all(torch.equal(before[k], v) for k, v in batch_norms(model).items())
    model.recalibrate_batch_norm([torch.randint(1, 20, (4, 30))] * 3, num_batches=2)
    assert int(model.mrconv.layers[0].conv.batch_norm.num_batches_tracked) == 2
    with pytest.raises(ValueError, match="needs the training form"):
        copy.deepcopy(model).reparameterize().recalibrate_batch_norm([torch.randint(1, 20, (4, 30))])


# 13. publishing the training form next to the merged export


def test_include_training_form(tmp_path):
    model = warmed_model(tiny_config())
    inputs = random_inputs(model.config)
    model.save_pretrained(tmp_path, include_training_form=True)
    assert json.loads((tmp_path / "config.json").read_text())["reparameterized"] is True
    assert json.loads((tmp_path / "training_form" / "config.json").read_text())["reparameterized"] is False
    assert (tmp_path / "training_form" / "modeling_mrconv.py").exists()
    training = MRConvForSequenceClassification.from_pretrained(tmp_path, subfolder="training_form")
    assert not training.config.reparameterized
    for key, value in model.state_dict().items():
        torch.testing.assert_close(training.state_dict()[key], value, rtol=0, atol=0)
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, model(**inputs).logits, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="subfolder='training_form'"):
        MRConvForSequenceClassification.from_pretrained(tmp_path, reparameterized=False)
    with pytest.raises(ValueError, match="needs the training form"):
        merged.save_pretrained(tmp_path / "again", include_training_form=True)
    with pytest.raises(ValueError, match="holds the training form already"):
        model.save_pretrained(tmp_path / "again", include_training_form=True, reparameterize=False)


def test_push_to_hub_uploads_the_training_form(tmp_path, monkeypatch):
    uploaded = tmp_path / "uploaded"

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            return SimpleNamespace(repo_id=repo_id)

        def create_commit(self, repo_id, operations, **kwargs):
            for op in operations:
                target = uploaded / op.path_in_repo
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(op.path_or_fileobj, target)
            return SimpleNamespace(commit_url="local", pr_url=None)

    import transformers.utils.hub as hub

    monkeypatch.setattr(hub, "hf_api", lambda: FakeApi())
    monkeypatch.setattr(hub, "create_and_tag_model_card", lambda *a, **k: SimpleNamespace(save=lambda path: None))
    model = warmed_model(tiny_config())
    model.push_to_hub("user/mrconv-tiny", include_training_form=True)
    assert json.loads((uploaded / "config.json").read_text())["reparameterized"] is True
    training = MRConvForSequenceClassification.from_pretrained(uploaded, subfolder="training_form")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(training.state_dict()[key], value, rtol=0, atol=0)
    shutil.rmtree(uploaded)
    model.push_to_hub("user/mrconv-tiny")  # default: the merged export only
    assert (uploaded / "model.safetensors").exists() and not (uploaded / "training_form").exists()


def test_merged_model_warns_once_when_put_into_training_mode():
    logging.Logger.warning_once.cache_clear()
    merged = warmed_model(tiny_config()).reparameterize()
    with CaptureLogger(modeling.logger) as captured:
        merged.train()
        merged.eval()
        merged.train()
    assert captured.out.count("merged (reparameterized) form") == 1
    logging.Logger.warning_once.cache_clear()
    with CaptureLogger(modeling.logger) as captured:
        warmed_model(tiny_config()).train()
    assert captured.out == ""
