"""torch.compile(fullgraph=True) of the merged inference path and of the training Function: equal results.

The tests use the `aot_eager` backend (Dynamo's full-graph capture plus AOTAutograd, the parts that graph-break or
fail on unsupported code) to stay fast on small CPUs; Inductor compiles the same graphs (the complex FFT ops run
as ATen fallbacks), see the model card's Deployment section.
"""

import copy

import torch
from mrconv_testing import tiny_config, warmed_model


def test_compiled_merged_inference_equals_eager():
    torch._dynamo.reset()
    model = warmed_model(tiny_config(bidirectional=True)).reparameterize()
    compiled = torch.compile(model, fullgraph=True, dynamic=False, backend="aot_eager")
    input_ids = torch.randint(1, 20, (3, 40))
    attention_mask = torch.ones(3, 40)
    attention_mask[1, 25:] = 0
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
        got = compiled(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_compiled_training_step_equals_eager_outputs_gradients_and_statistics():
    # static shapes keep the suite fast (a dynamic-shape compile of this step takes about a minute on CPU)
    torch._dynamo.reset()
    eager = warmed_model(tiny_config(bidirectional=False, kernel_type="fourier_sparse")).train()
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, fullgraph=True, dynamic=False, backend="aot_eager")
    input_ids = torch.randint(1, 20, (4, 32))
    attention_mask = torch.ones(4, 32)
    attention_mask[2, 20:] = 0
    labels = torch.tensor([0, 1, 2, 1])
    out_eager = eager(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    out_compiled = compiled(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    torch.testing.assert_close(out_compiled.logits, out_eager.logits, rtol=1e-5, atol=1e-6)
    out_eager.loss.backward()
    out_compiled.loss.backward()
    for (name, p_eager), p_compiled in zip(eager.named_parameters(), compiled_model.parameters(), strict=True):
        assert p_compiled.grad is not None, name
        torch.testing.assert_close(p_compiled.grad, p_eager.grad, rtol=1e-4, atol=1e-6, msg=name)
    for (name, b_eager), b_compiled in zip(eager.named_buffers(), compiled_model.buffers(), strict=True):
        torch.testing.assert_close(b_compiled, b_eager, rtol=1e-5, atol=1e-6, msg=name)
