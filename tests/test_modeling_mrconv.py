"""MRConvModel / MRConvForSequenceClassification: outputs, masking, causality, losses, errors, learning."""

import pytest
import torch
from mrconv_testing import random_inputs, tiny_config, warmed_model
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

from modeling_mrconv import MRConvForDocumentPairClassification, MRConvForSequenceClassification, MRConvModel


def test_output_types_and_shapes():
    config = tiny_config(num_hidden_layers=3)
    model = MRConvModel(config).eval()
    out = model(**random_inputs(config, batch=2, length=30), output_hidden_states=True)
    assert isinstance(out, BaseModelOutput)
    assert out.last_hidden_state.shape == (2, 30, 16) and len(out.hidden_states) == 4
    head = MRConvForSequenceClassification(config).eval()
    out = head(**random_inputs(config, batch=2, length=30))
    assert isinstance(out, SequenceClassifierOutput) and out.logits.shape == (2, 3)
    as_tuple = head(**random_inputs(config, batch=2, length=30), return_dict=False)
    assert isinstance(as_tuple, tuple) and as_tuple[0].shape == (2, 3)


@pytest.mark.parametrize("kernel_type", ["dilated", "fourier", "sparse", "fourier_sparse"])
@pytest.mark.parametrize("reparameterized", [False, True])
def test_causal_model_never_looks_ahead(kernel_type, reparameterized):
    config = tiny_config(kernel_type=kernel_type, bidirectional=False)
    model = warmed_model(config)
    if reparameterized:
        model.reparameterize()
    x = torch.randint(1, 20, (2, 40))
    changed = x.clone()
    changed[:, 25] = (changed[:, 25] % 19) + 1
    with torch.no_grad():
        a = model.mrconv(input_ids=x).last_hidden_state
        b = model.mrconv(input_ids=changed).last_hidden_state
    torch.testing.assert_close(a[:, :25], b[:, :25], rtol=0, atol=1e-6)
    assert (a[:, 25:] - b[:, 25:]).abs().max() > 1e-3


def test_bidirectional_model_looks_both_ways():
    model = warmed_model(tiny_config())
    x = torch.randint(1, 20, (1, 40))
    changed = x.clone()
    changed[0, 25] = (changed[0, 25] % 19) + 1
    with torch.no_grad():
        diff = model.mrconv(input_ids=x).last_hidden_state - model.mrconv(input_ids=changed).last_hidden_state
    assert diff[0, :25].abs().max() > 1e-4 and diff[0, 26:].abs().max() > 1e-4


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("side", ["right", "left"])
def test_eval_logits_do_not_depend_on_padding(bidirectional, side):
    config = tiny_config(bidirectional=bidirectional, prenorm=True)
    model = warmed_model(config)
    seq = torch.randint(1, 20, (1, 23))
    with torch.no_grad():
        alone = model(input_ids=seq).logits
        for total in (30, 64):
            pad = torch.zeros(1, total - 23, dtype=torch.long)
            ids = torch.cat([seq, pad] if side == "right" else [pad, seq], dim=1)
            mask = (ids != 0).long()
            other = torch.randint(1, 20, (1, total))  # a full-length neighbour in the batch
            logits = model(
                input_ids=torch.cat([ids, other]), attention_mask=torch.cat([mask, torch.ones_like(mask)])
            ).logits
            torch.testing.assert_close(logits[:1], alone, rtol=1e-5, atol=1e-6)


def test_training_statistics_ignore_padding():
    """Same sequences, different padding: identical train-mode outputs, gradients and BN running statistics."""
    config = tiny_config()
    results = []
    for total in (30, 50):
        torch.manual_seed(0)
        model = MRConvForSequenceClassification(config).train()
        ids = torch.zeros(2, total, dtype=torch.long)
        ids[0, :30] = torch.arange(30) % 19 + 1
        ids[1, :17] = torch.arange(17) % 7 + 2
        mask = (ids != 0).long()
        out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 2]))
        out.loss.backward()
        results.append(
            (
                out.logits.detach(),
                model.mrconv.layers[0].conv.kernel.weight.grad.clone(),
                model.mrconv.layers[1].conv.batch_norm.running_var.clone(),
            )
        )
    for a, b in zip(*results, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_attention_mask_derived_from_pad_token():
    model = warmed_model(tiny_config())
    ids = torch.randint(1, 20, (2, 30))
    ids[0, 20:] = 0
    with torch.no_grad():
        explicit = model(input_ids=ids, attention_mask=(ids != 0).long()).logits
        derived = model(input_ids=ids).logits
    torch.testing.assert_close(explicit, derived)


def test_continuous_inputs():
    config = tiny_config(input_dim=3)
    model = warmed_model(config)
    assert model.main_input_name == "input_values"
    x = torch.randn(2, 40, 3)
    out = model(input_values=x, attention_mask=torch.ones(2, 40))
    assert out.logits.shape == (2, 3)
    mono = warmed_model(tiny_config(input_dim=1))
    torch.testing.assert_close(mono(input_values=x[..., 0]).logits, mono(input_values=x[..., :1]).logits)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_ids": torch.ones(2, 65, dtype=torch.long)}, "exceeds max_sequence_length=64"),
        ({}, "exactly one of input_ids, input_values or inputs_embeds, got none"),
        ({"input_values": torch.randn(2, 10, 1)}, "reads token input_ids"),
        ({"input_ids": torch.ones(2, 10, 1, dtype=torch.long)}, "shape \\(batch, length\\)"),
        ({"input_ids": torch.ones(2, 10, dtype=torch.long), "attention_mask": torch.ones(2, 9)}, "attention_mask"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    model = MRConvForSequenceClassification(tiny_config())
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


def test_losses_for_every_problem_type():
    ids = torch.randint(1, 20, (4, 20))
    single = MRConvForSequenceClassification(tiny_config())
    out = single(input_ids=ids, labels=torch.tensor([0, 1, 2, 1]))
    expected = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 1]))
    torch.testing.assert_close(out.loss, expected)
    assert single.config.problem_type == "single_label_classification"

    regression = MRConvForSequenceClassification(tiny_config(num_labels=1))
    target = torch.randn(4)
    out = regression(input_ids=ids, labels=target)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), target))

    multi = MRConvForSequenceClassification(tiny_config(problem_type="multi_label_classification"))
    target = torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]])
    out = multi(input_ids=ids, labels=target)
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, target))


def test_auto_classes_registered():
    config = AutoConfig.for_model("mrconv", hidden_size=8, num_hidden_layers=1, max_sequence_length=16, kernel_size=4)
    assert isinstance(AutoModel.from_config(config), MRConvModel)
    assert isinstance(AutoModelForSequenceClassification.from_config(config), MRConvForSequenceClassification)


def test_tiny_training_run_learns():
    """A 2-layer model learns 'is token 5 present' within a few dozen steps; the merged model keeps the accuracy."""
    torch.manual_seed(0)
    config = tiny_config(num_labels=2, max_sequence_length=32)
    model = MRConvForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def batch(n):
        ids = torch.randint(6, 20, (n, 32))
        labels = torch.randint(0, 2, (n,))
        rows = labels.nonzero().flatten()
        ids[rows, torch.randint(0, 32, (len(rows),))] = 5
        return ids, labels

    losses = []
    for _ in range(150):
        ids, labels = batch(32)
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    ids, labels = batch(256)
    with torch.no_grad():
        accuracy = (model.eval()(input_ids=ids).logits.argmax(-1) == labels).float().mean()
        merged_accuracy = (model.reparameterize()(input_ids=ids).logits.argmax(-1) == labels).float().mean()
    assert accuracy > 0.9 and merged_accuracy == accuracy


@pytest.mark.parametrize("prenorm", [False, True])
@pytest.mark.parametrize("pair", [False, True])
def test_every_returned_hidden_state_gets_a_gradient(prenorm, pair):
    """The hidden states a model returns are the tensors the next block reads (views, no copies), so a backward pass
    from the logits fills `.grad` of each, for the document-pair head's (B, 2, L, H) states too."""
    config = tiny_config(prenorm=prenorm)
    model_class = MRConvForDocumentPairClassification if pair else MRConvForSequenceClassification
    model = model_class(config).train()
    shape = (3, 2, 12) if pair else (3, 12)
    outputs = model(input_ids=torch.randint(1, 20, shape), output_hidden_states=True)
    assert len(outputs.hidden_states) == config.num_hidden_layers + 1
    for state in outputs.hidden_states:
        assert state.shape == (*shape, config.hidden_size)
        state.retain_grad()
    outputs.logits.sum().backward()
    # the last state feeds the output through the final norm (prenorm) or directly
    assert all(state.grad is not None and state.grad.abs().sum() > 0 for state in outputs.hidden_states)


def test_checkpoint_code_calls_no_c_library(tmp_path):
    """The files copied next to a checkpoint (run by users through trust_remote_code) use no ctypes."""
    model = MRConvForSequenceClassification(tiny_config())
    model.save_pretrained(tmp_path)
    copied = sorted(tmp_path.glob("*.py"))
    assert {"modeling_mrconv.py", "configuration_mrconv.py"} <= {path.name for path in copied}
    assert not [path.name for path in copied if "ctypes" in path.read_text()]
