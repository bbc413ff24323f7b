"""The numerical core on every available device: CPU always, CUDA when `torch.cuda.is_available()`.

Each test is parametrized over `DEVICES` with ids `cpu` and `cuda`. On a machine without CUDA the `cuda` cases are
not generated at all (nothing is skipped), so the same file runs unchanged on CPU-only CI and on a GPU machine.
References (the direct O(L^2) convolution, `reference_multires_forward`, the unpadded sequence) run in float64 on
the CPU, so a device case checks the device's kernels against an oracle that does not share them.
"""

import copy

import pytest
import torch
from mrconv_testing import tiny_config

from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification, MRConvModel
from modeling_mrconv.branch_conv import MultiResConvFunction, fast_multires_forward, reference_multires_forward
from modeling_mrconv.fftconv import direct_conv_reference, fft_conv, kernel_spectrum
from modeling_mrconv.modeling_mrconv import MRConvMultiResConv


def available_devices() -> list[str]:
    """The device names to test: cpu, then cuda when a CUDA device is usable."""
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


DEVICES = [pytest.param(torch.device(name), id=name) for name in available_devices()]
# unit roundoff of the autocast dtypes (half an ulp at 1): bfloat16 keeps 8 significant bits, float16 11
AUTOCAST_DTYPES = [pytest.param(torch.bfloat16, 2.0**-8, id="bf16"), pytest.param(torch.float16, 2.0**-11, id="fp16")]
KERNEL_TYPES = ["dilated", "fourier", "sparse", "fourier_sparse"]


def config(**overrides) -> MRConvConfig:
    """A tiny model: hidden 8, 2 layers, kernel_size 4, N = 5 branches at max_sequence_length 64."""
    return tiny_config(**{"hidden_size": 8, **overrides})


def warmed(model: torch.nn.Module, device: torch.device, length: int = 48) -> torch.nn.Module:
    """Move the BatchNorm running statistics away from their init (train-mode forwards without grad); eval."""
    model.to(device).train()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(3):
            model(input_ids=torch.randint(1, 20, (6, length), generator=generator).to(device))
    return model.eval()


def ids_and_mask(device: torch.device, B: int = 3, L: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, L) with right padding (id 0) in rows 1 and 2, and the matching attention mask."""
    ids = torch.randint(1, 20, (B, L), generator=torch.Generator().manual_seed(2))
    ids[1, L - 9 :] = 0
    ids[2, 7:] = 0
    return ids.to(device), (ids != 0).long().to(device)


@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize(("L", "Lk"), [(37, 37), (64, 13), (20, 40)])
@pytest.mark.parametrize("device", DEVICES)
def test_fft_conv_matches_direct_convolution(device, L, Lk, directions):
    """float64 FFT convolution on the device against the direct convolution on the CPU; float32 within 1e-5."""
    u = torch.randn(3, 4, L, dtype=torch.float64)
    k = torch.randn(directions, 4, Lk, dtype=torch.float64)
    expected = direct_conv_reference(u, k)
    y = fft_conv(u.to(device), kernel_spectrum(k.to(device), L))
    assert y.device.type == device.type and y.dtype == torch.float64
    torch.testing.assert_close(y.cpu(), expected, rtol=1e-10, atol=1e-10)
    y32 = fft_conv(u.float().to(device), kernel_spectrum(k.float().to(device), L))
    assert y32.dtype == torch.float32
    scale = expected.abs().max()
    torch.testing.assert_close(y32.cpu().double() / scale, expected / scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("device", DEVICES)
def test_training_function_gradcheck(device, masked):
    """float64 gradcheck of the fast training Function, kernels shorter than, equal to and longer than L."""
    B, H, L, N = 3, 2, 8, 3
    generator = torch.Generator().manual_seed(0)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=torch.float64, generator=generator).to(device).requires_grad_()

    u = leaf(B, H, L)
    mask = None
    if masked:
        mask = (torch.arange(L)[None] < torch.tensor([L, 5, 2])[:, None]).double().to(device)  # (B L)
        u = (u.detach() * mask[:, None]).requires_grad_()
    alpha, weight, bias = leaf(N, H), leaf(N, H), leaf(N, H)
    skip = leaf(H)
    kernels = [leaf(2, H, n) for n in (2, L, 11)]

    def function(*args):
        u, alpha, weight, bias, skip, *kernels = args
        return MultiResConvFunction.apply(u, alpha, weight, bias, skip, mask, 1e-5, *kernels)[0]

    assert function(u, alpha, weight, bias, skip, *kernels).device.type == device.type
    assert torch.autograd.gradcheck(function, (u, alpha, weight, bias, skip, *kernels), fast_mode=True)


@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_training_fast_path_matches_reference(device, kernel_type):
    """A float64 layer on the device: output, input and parameter gradients, running statistics vs the CPU
    reference (`reference_multires_forward`), with padding."""
    layer = MRConvMultiResConv(config(kernel_type=kernel_type, max_sequence_length=40, hidden_size=4), layer_idx=1)
    for module in layer.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    with torch.no_grad():
        layer.batch_norm.weight.uniform_(0.5, 1.5)
        layer.batch_norm.bias.normal_()
        layer.alpha.normal_()
    slow = copy.deepcopy(layer).double().train()
    fast = layer.double().to(device).train()
    mask = (torch.arange(37)[None] < torch.tensor([37, 30, 3])[:, None]).double()  # (B L)
    x = (torch.randn(3, 4, 37, dtype=torch.float64) + 0.5) * mask[:, None]
    x_slow, x_fast = x.clone().requires_grad_(), x.to(device).requires_grad_()
    y_slow = reference_multires_forward(x_slow, slow.kernel(), slow.batch_norm, slow.alpha, slow.skip, mask)
    y_fast = fast_multires_forward(x_fast, fast.kernel(), fast.batch_norm, fast.alpha, fast.skip, mask.to(device))
    torch.testing.assert_close(y_fast.cpu(), y_slow, rtol=1e-10, atol=1e-10)
    weight = torch.randn(y_slow.shape, dtype=torch.float64)
    slow_params = [x_slow, *slow.parameters()]
    fast_params = [x_fast, *fast.parameters()]
    expected = torch.autograd.grad((y_slow * weight).sum(), slow_params)
    actual = torch.autograd.grad((y_fast * weight.to(device)).sum(), fast_params)
    for g_fast, g_slow in zip(actual, expected, strict=True):
        assert g_slow.abs().max() > 0
        torch.testing.assert_close(g_fast.cpu(), g_slow, rtol=1e-9, atol=1e-10)
    for name, buffer in slow.batch_norm.named_buffers():
        torch.testing.assert_close(dict(fast.batch_norm.named_buffers())[name].cpu(), buffer, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_merged_equals_unmerged(device, kernel_type):
    """Eval mode: the reparameterized model gives the unmerged model's logits on the device (float32)."""
    torch.manual_seed(0)
    model = warmed(MRConvForSequenceClassification(config(kernel_type=kernel_type)), device)
    ids, mask = ids_and_mask(device)
    with torch.no_grad():
        unmerged = model(input_ids=ids, attention_mask=mask).logits
        merged_model = copy.deepcopy(model).reparameterize()
        merged = merged_model(input_ids=ids, attention_mask=mask).logits
    assert merged_model.config.reparameterized and merged.device.type == device.type
    scale = unmerged.abs().max()
    torch.testing.assert_close(merged / scale, unmerged / scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("dtype", "roundoff"), AUTOCAST_DTYPES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("device", DEVICES)
def test_autocast_close_to_float32(device, training, dtype, roundoff):
    """bf16 / fp16 autocast: finite hidden states and parameter gradients within 32 unit roundoffs of float32
    (relative to the largest value).

    Under autocast only the linear layers (and the embedding's consumers) round to `dtype`; the FFT convolutions and
    BatchNorm statistics stay in float32 (`fftconv.compute_dtype`). Two blocks with two linear layers each round
    the activations about four times, each within one roundoff relative to its scale, and the errors add up over
    the 8-dimensional matmuls and the normalisations; 32 roundoffs (0.12 for bf16, 0.016 for fp16) bound that with a
    margin, while an FFT done in the low precision (errors growing with L) or a dropped term would exceed it.
    """
    torch.manual_seed(0)
    model = MRConvModel(config(kernel_type="fourier_sparse"))
    model = warmed(model, device) if not training else model.to(device).train()
    low = copy.deepcopy(model)
    ids, mask = ids_and_mask(device)
    expected = model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B L H) float32
    with torch.autocast(device.type, dtype=dtype):
        actual = low(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.isfinite(actual).all()
    scale = expected.abs().max()
    torch.testing.assert_close(actual.float() / scale, expected / scale, rtol=0, atol=32 * roundoff)
    weight = torch.randn(expected.shape, generator=torch.Generator().manual_seed(3)).to(device)
    (expected * weight).sum().backward()
    (actual.float() * weight).sum().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    low_grads = torch.cat([p.grad.flatten() for p in low.parameters()])
    assert low_grads.dtype == torch.float32 and torch.isfinite(low_grads).all()
    # one scale for all parameters: a bias feeding a BatchNorm has an exactly zero gradient, left only with noise
    grad_scale = grads.abs().max()
    torch.testing.assert_close(low_grads / grad_scale, grads / grad_scale, rtol=0, atol=32 * roundoff)


@pytest.mark.parametrize("merged", [False, True], ids=["unmerged", "merged"])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("device", DEVICES)
def test_padding_invariance(device, bidirectional, merged):
    """A padded row of a batch gets the logits of the same sequence alone without padding (float64, eval)."""
    torch.manual_seed(0)
    model = warmed(MRConvForSequenceClassification(config(bidirectional=bidirectional)).double(), device)
    if merged:
        model.reparameterize()
    ids, mask = ids_and_mask(device)
    with torch.no_grad():
        batch = model(input_ids=ids, attention_mask=mask).logits  # (B C)
        for row in range(ids.shape[0]):
            length = int(mask[row].sum())
            alone = model(input_ids=ids[row : row + 1, :length]).logits[0]
            torch.testing.assert_close(batch[row], alone, rtol=1e-9, atol=1e-12)
