"""The fast multi-branch paths of `branch_conv` against the plain reference, in float64 (forward, gradients, stats)."""

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from mrconv_testing import random_inputs, tiny_config, warmed_model

from modeling_mrconv import MRConvForSequenceClassification, branch_conv
from modeling_mrconv.branch_conv import (
    MultiResConvFunction,
    aligned,
    edge_branches,
    edge_outside,
    edge_signal,
    edge_width,
    fast_multires_forward,
    folded_multires_forward,
    mask_response,
    reference_multires_forward,
    right_padded_lengths,
)
from modeling_mrconv.fftconv import (
    direct_conv_reference,
    fft_conv,
    fft_conv_bias,
    kernel_spectrum,
    kernel_to_circular,
)
from modeling_mrconv.modeling_mrconv import MRConvMultiResConv


KERNEL_TYPES = ["dilated", "fourier", "sparse", "fourier_sparse"]
# spectrum elements per call: one (sample, branch) pair, a few, everything at once
BLOCKS = [1, 1000, 10**9]


def make_layer(kernel_type: str, bidirectional: bool, H: int = 4, max_length: int = 40) -> MRConvMultiResConv:
    """A float64 layer (N = 5 branches, the last one truncated) with non-trivial BatchNorm affine parameters."""
    config = tiny_config(
        kernel_type=kernel_type, bidirectional=bidirectional, hidden_size=H, max_sequence_length=max_length
    )
    layer = MRConvMultiResConv(config, layer_idx=1)
    for module in layer.modules():
        if hasattr(module, "reset_parameters") and module is not layer:
            module.reset_parameters()
    layer.reset_parameters()
    with torch.no_grad():
        layer.batch_norm.weight.uniform_(0.5, 1.5)
        layer.batch_norm.bias.normal_()
        layer.alpha.normal_()
    return layer.double()


def padded_batch(B: int, H: int, L: int, masked: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Input (B, H, L) with a nonzero mean, zeroed at padded positions as `MRConvBlock` does, and its (B, L) mask."""
    x = torch.randn(B, H, L, dtype=torch.float64) + 0.5
    if not masked:
        return x, None
    lengths = torch.tensor([L, L - 7, 3])[:B]
    mask = (torch.arange(L)[None] < lengths[:, None]).double()  # (B L) right padding
    return x * mask[:, None], mask


def reference(layer: MRConvMultiResConv, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return reference_multires_forward(x, layer.kernel(), layer.batch_norm, layer.alpha, layer.skip, mask)


def grads(output: torch.Tensor, inputs: list[torch.Tensor], seed: int = 1) -> list[torch.Tensor]:
    weight = torch.randn(output.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad((output * weight.to(output.dtype)).sum(), inputs)


def trainable(layer: MRConvMultiResConv) -> list[torch.Tensor]:
    return [p for p in layer.parameters() if p.requires_grad]


def assert_step_matches_reference(
    fast: MRConvMultiResConv, slow: MRConvMultiResConv, x: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Training step of `fast` against the reference on `slow` (a copy), on copies of x (B H L): outputs, every
    gradient (each nonzero) and the BatchNorm running statistics agree; returns the fast output."""
    x_fast, x_slow = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_fast, y_slow = fast(x_fast, mask), reference(slow, x_slow, mask)
    torch.testing.assert_close(y_fast, y_slow, rtol=1e-10, atol=1e-10)
    for g_fast, g_slow in zip(
        grads(y_fast, [x_fast, *trainable(fast)]), grads(y_slow, [x_slow, *trainable(slow)]), strict=True
    ):
        assert g_slow.abs().max() > 0
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-9, atol=1e-10)
    for name, buffer in fast.batch_norm.named_buffers():
        torch.testing.assert_close(buffer, dict(slow.batch_norm.named_buffers())[name], rtol=1e-12, atol=1e-14)
    return y_fast


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_training_fast_path_matches_reference(kernel_type, bidirectional, masked, block, monkeypatch):
    """Outputs, gradients of input and every parameter, and running statistics, in float64."""
    monkeypatch.setattr(branch_conv, "CPU_BLOCK_ELEMENTS", block)
    fast = make_layer(kernel_type, bidirectional).train()
    slow = copy.deepcopy(fast)
    x, mask = padded_batch(3, 4, 37, masked)
    y_fast = assert_step_matches_reference(fast, slow, x, mask)
    assert y_fast.dtype == torch.float64 and y_fast.shape == (3, 4, 37)


@pytest.mark.parametrize("block", [3000, branch_conv.CPU_BLOCK_ELEMENTS])
def test_training_fast_path_float32(block, monkeypatch):
    """Realistic precision: float32 at a longer length, both close to the float64 reference."""
    monkeypatch.setattr(branch_conv, "CPU_BLOCK_ELEMENTS", block)
    exact = make_layer("fourier_sparse", True, H=8, max_length=300).train()
    fast = copy.deepcopy(exact).float()
    x, mask = padded_batch(3, 8, 300, True)
    x_exact, x_fast = x.clone().requires_grad_(), x.float().requires_grad_()
    y_exact, y_fast = reference(exact, x_exact, mask), fast(x_fast, mask.float())
    torch.testing.assert_close(y_fast.double(), y_exact, rtol=1e-4, atol=1e-4)
    for g_fast, g_exact in zip(
        grads(y_fast, [x_fast, *trainable(fast)]), grads(y_exact, [x_exact, *trainable(exact)]), strict=True
    ):
        scale = g_exact.abs().max()
        torch.testing.assert_close(g_fast.double() / scale, g_exact / scale, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("directions", [1, 2])
def test_function_gradcheck(directions, masked):
    """The custom autograd Function in float64, kernels shorter than, equal to and longer than L."""
    torch.manual_seed(0)
    B, H, L = 3, 2, 8
    x, mask = padded_batch(B, H, L, masked)
    u = x.requires_grad_()
    alpha, weight, bias = (torch.randn(3, H, dtype=torch.float64, requires_grad=True) for _ in range(3))
    skip = torch.randn(H, dtype=torch.float64, requires_grad=True)
    kernels = [torch.randn(directions, H, n, dtype=torch.float64, requires_grad=True) for n in (2, L, 11)]

    def function(*args):
        u, alpha, weight, bias, skip, *kernels = args
        return MultiResConvFunction.apply(u, alpha, weight, bias, skip, mask, 1e-5, *kernels)[0]

    full = masked and directions == 2  # the other cases check random projections of the Jacobian (faster)
    assert torch.autograd.gradcheck(function, (u, alpha, weight, bias, skip, *kernels), fast_mode=not full)


@pytest.mark.parametrize("directions", [1, 2])
def test_edge_circle_holds_the_outside_part(directions):
    """The 4W edge circle gives the 2L-circular output outside [0, L) and its adjoint on u[:W], u[L-W:], exactly."""
    torch.manual_seed(0)
    B, H, L, l = 2, 3, 24, 5
    W = edge_width(l)
    assert W == 8
    u = torch.randn(B, H, L, dtype=torch.float64)
    kernel = torch.randn(directions, H, l, dtype=torch.float64)
    circular = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * kernel_spectrum(kernel, L), n=2 * L)  # (B H 2L)
    K = torch.fft.rfft(kernel_to_circular(kernel, 2 * W))  # (H 2W+1)
    W_max = 8
    edges = torch.cat([u[..., :W_max], u[..., L - W_max :]], dim=-1)
    outside = edge_outside(edge_signal(edges, W), K, 2 * W)  # (B H 4W)
    torch.testing.assert_close(outside[..., :W], torch.zeros_like(outside[..., :W]))
    torch.testing.assert_close(outside[..., 2 * W : 3 * W], circular[..., L : L + W], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outside[..., 3 * W :], circular[..., 2 * L - W :], rtol=1e-12, atol=1e-12)
    assert circular[..., L + W : 2 * L - W].abs().max() < 1e-12  # nothing else lies outside [0, L)
    torch.testing.assert_close(circular[..., :L], direct_conv_reference(u, kernel), rtol=1e-12, atol=1e-12)
    # adjoint: <k^T o, u> on the small circle equals <o, k * u> on the big one
    o = torch.randn_like(outside)
    o[..., : 2 * W] = 0
    back = torch.fft.irfft(torch.fft.rfft(o) * K.conj(), n=4 * W)
    big = torch.zeros(B, H, 2 * L, dtype=torch.float64)
    big[..., L : L + W], big[..., 2 * L - W :] = o[..., 2 * W : 3 * W], o[..., 3 * W :]
    expected = (big * circular).sum()
    got = (back[..., :W] * u[..., :W]).sum() + (back[..., W : 2 * W] * u[..., L - W :]).sum()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_one_sided_edge_circle_holds_a_causal_tail():
    """A causal kernel's output outside [0, L) is its tail alone: the 2W circle of u[L-W:] gives it and its adjoint."""
    torch.manual_seed(0)
    B, H, L, l = 2, 3, 24, 5
    W = edge_width(l)
    u = torch.randn(B, H, L, dtype=torch.float64)
    kernel = torch.randn(1, H, l, dtype=torch.float64)
    circular = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * kernel_spectrum(kernel, L), n=2 * L)  # (B H 2L)
    assert circular[..., L + W :].abs().max() < 1e-12  # no head before t = 0
    K = torch.fft.rfft(kernel_to_circular(kernel, W))  # (H W+1)
    edges = torch.cat([u[..., :W], u[..., L - W :]], dim=-1)
    E = edge_signal(edges, W, sides=1)  # (B H W+1)
    torch.testing.assert_close(E, torch.fft.rfft(F.pad(u[..., L - W :], (0, W))), rtol=1e-12, atol=1e-12)
    outside = edge_outside(E, K, W)  # (B H 2W)
    assert outside.shape == (B, H, 2 * W) and not outside[..., :W].any()
    torch.testing.assert_close(outside[..., W:], circular[..., L : L + W], rtol=1e-12, atol=1e-12)
    o = torch.randn_like(outside)
    o[..., :W] = 0
    back = torch.fft.irfft(torch.fft.rfft(o) * K.conj(), n=2 * W)
    big = torch.zeros(B, H, 2 * L, dtype=torch.float64)
    big[..., L : L + W] = o[..., W:]
    torch.testing.assert_close((back[..., :W] * u[..., L - W :]).sum(), (big * circular).sum(), rtol=1e-12, atol=1e-12)


def test_edge_branch_selection():
    kernels = [torch.zeros(2, 1, n) for n in (4, 8, 10, 40, 50)]
    assert edge_branches(kernels, 39, masked=False) == [0, 1]  # l_i <= L / 4
    assert edge_branches(kernels, 40, masked=False) == [0, 1, 2]
    assert edge_branches(kernels, 37, masked=True) == []  # a mask takes the second pass for every branch
    assert edge_branches(kernels, 3, masked=False) == []
    # right padding: W_i = edge_width(2 l_i) <= L / 8 (W = 8, 16, 32, 128 for l = 4, 8, 10, 40)
    assert branch_conv.RIGHT_PADDED_EDGE_RATIO == 8
    assert edge_branches(kernels, 127, masked=False, right_padded=True) == [0]
    assert edge_branches(kernels, 128, masked=False, right_padded=True) == [0, 1]
    assert edge_branches(kernels, 256, masked=False, right_padded=True) == [0, 1, 2]
    assert edge_branches(kernels, 1024, masked=False, right_padded=True) == [0, 1, 2, 3, 4]
    # every n_b >= S W_i (W_i = edge_width(l_i)): aligned, l_i <= L / 4 as without a mask
    causal = [torch.zeros(1, 1, n) for n in (4, 8, 10, 40, 50)]
    assert edge_branches(causal, 160, masked=False, right_padded=True, shortest=64) == [0, 1, 2, 3]
    assert edge_branches(causal, 160, masked=False, right_padded=True, shortest=15) == [0, 1]  # W = 16 for l = 10
    # bidirectional: aligned when 2 W_i <= every n_b, W_i = edge_width(l_i) <= L / 8, else W_i = edge_width(2 l_i)
    assert edge_branches(kernels, 160, masked=False, right_padded=True, shortest=32) == [0, 1, 2]  # W = 16 for l = 10
    assert edge_branches(kernels, 160, masked=False, right_padded=True, shortest=31) == [0, 1]  # 2 l = 20: W = 32
    assert [aligned(k, True, 15) for k in causal] == [True, True, False, False, False]
    assert [aligned(k, True, 16) for k in kernels] == [True, True, False, False, False]
    assert all(aligned(k, False, 0) for k in kernels + causal)  # without a mask, always


def right_padding(lengths: list[int], L: int) -> torch.Tensor:
    return (torch.arange(L)[None] < torch.tensor(lengths)[:, None]).double()  # (B L)


def test_right_padded_lengths():
    """The dispatch: lengths exactly for right padding with u zero beyond n_b; None for anything else."""
    mask = right_padding([6, 1, 0, 4], 6)
    u = torch.randn(4, 2, 6, dtype=torch.float64) * mask[:, None]
    assert right_padded_lengths(u, mask).tolist() == [6, 1, 0, 4]
    assert right_padded_lengths(u, None) is None
    holes = mask.clone()
    holes[0, 2] = 0
    assert right_padded_lengths(u * holes[:, None], holes) is None  # a hole
    left = mask.flip(-1)
    assert right_padded_lengths(u.flip(-1), left) is None  # left padding
    unmasked_u = u.clone()
    unmasked_u[3, 1, 5] = 1.0
    assert right_padded_lengths(unmasked_u, mask) is None  # u not zero at a padded position
    half = mask.clone()
    half[0, 0] = 0.5
    assert right_padded_lengths(u, half) is None  # not a 0/1 mask


@pytest.mark.parametrize("directions", [1, 2])
def test_mask_response(directions):
    """k * m_b on [0, n_b) for right-padding masks, against the direct convolution."""
    kernel = torch.randn(directions, 3, 6, dtype=torch.float64)
    lengths = torch.tensor([20, 1, 4, 9])
    mask = right_padding(lengths.tolist(), 20)
    expected = direct_conv_reference(mask[:, None].expand(-1, 3, -1), kernel)  # (B H L)
    positions = torch.arange(20).expand(4, -1)
    got = mask_response(kernel, lengths, positions) * mask[:, None]
    torch.testing.assert_close(got, expected * mask[:, None], rtol=1e-12, atol=1e-12)


SHORTEST_1, SHORTEST_20 = [260, 1, 200, 37, 250], [260, 20, 200, 37, 250]
UNALIGNED = [(2, W, 4 * W, 3 * W, False) for W in (8, 16, 32, 64, 128)]  # `EdgeCircle`s, W_i = edge_width(2 l_i)
ONE_SIDED = [(1, W, 2 * W, 2 * W, True) for W in (4, 8, 16)]


@pytest.mark.parametrize(
    ("bidirectional", "ratio", "lengths", "block", "circles"),
    [
        *[(bidirectional, 2, SHORTEST_1, 1000, UNALIGNED) for bidirectional in (True, False)],
        *[(bidirectional, 8, SHORTEST_1, 10**9, UNALIGNED[:3]) for bidirectional in (True, False)],
        (False, 8, SHORTEST_20, branch_conv.CPU_BLOCK_ELEMENTS, ONE_SIDED),
        (False, 2, SHORTEST_20, branch_conv.CPU_BLOCK_ELEMENTS, ONE_SIDED + UNALIGNED[3:]),
        (
            True,
            8,
            SHORTEST_20,
            branch_conv.CPU_BLOCK_ELEMENTS,
            [(2, 4, 24, 16, True), (2, 8, 48, 32, True)] + UNALIGNED[2:3],
        ),
        (True, 8, [260, 150, 200, 170, 250], 1000, [(2, W, 6 * W, 4 * W, True) for W in (4, 8, 16, 32)]),
    ],
)
@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_right_padded_edge_path_matches_reference(
    kernel_type, bidirectional, ratio, lengths, block, circles, monkeypatch
):
    """Right padding (a full row and shorter ones): short branches on edge circles, long ones (l up to 300 > L) on the
    second pass; outputs, every gradient and the running statistics against the float64 reference. With a length-1
    row every circle is unaligned (W_i = edge_width(2 l_i) <= L / ratio); with every n_b >= S W_i, W_i = edge_width(l_i)
    (aligned): causal branches on one-sided 2W circles (l_i <= L / 4), bidirectional ones on 6W circles.
    """
    monkeypatch.setattr(branch_conv, "CPU_BLOCK_ELEMENTS", block)
    monkeypatch.setattr(branch_conv, "RIGHT_PADDED_EDGE_RATIO", ratio)
    calls = []
    edge_squares = branch_conv.right_padded_edge_squares
    monkeypatch.setattr(branch_conv, "right_padded_edge_squares", lambda *a: calls.append(a[7]) or edge_squares(*a))
    fast = make_layer(kernel_type, bidirectional, H=3, max_length=300).train()
    slow = copy.deepcopy(fast)
    L = 260
    mask = right_padding(lengths, L)
    x = (padded_batch(5, 3, L, False)[0] * 3 + 2) * mask[:, None]
    assert_step_matches_reference(fast, slow, x, mask)
    assert calls == [circles]


@pytest.mark.parametrize(
    ("bidirectional", "ratio", "lengths", "edges"),
    [(True, 2, [512, 1, 300, 411], 6), (True, 8, [512, 1, 300, 411], 4), (True, 8, [512, 300, 411, 350], 5)]
    + [(False, 8, [512, 300, 411, 350], 6)],
)
@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_right_padded_edge_statistics_float32_with_large_mean(
    offset, bidirectional, ratio, lengths, edges, monkeypatch
):
    """float32 batch statistics under right padding stay accurate when |mean| >> std (centred sums), on unaligned
    circles (a length-1 row) and aligned ones."""
    monkeypatch.setattr(branch_conv, "RIGHT_PADDED_EDGE_RATIO", ratio)
    exact = make_layer("dilated", bidirectional, H=8, max_length=512).train()
    fast = copy.deepcopy(exact).float()
    assert len(edge_branches(fast.kernel(), 512, masked=False, right_padded=True, shortest=min(lengths))) == edges
    mask = right_padding(lengths, 512)
    x = (padded_batch(4, 8, 512, False)[0] + offset) * mask[:, None]
    y_exact, y_fast = reference(exact, x, mask), fast(x.float(), mask.float())
    torch.testing.assert_close(y_fast.double(), y_exact, rtol=1e-4, atol=1e-4)
    bn_exact, bn_fast = exact.batch_norm, fast.batch_norm
    torch.testing.assert_close(bn_fast.running_var.double(), bn_exact.running_var, rtol=2e-5, atol=0)
    torch.testing.assert_close(bn_fast.running_mean.double(), bn_exact.running_mean, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("lengths", "ratio", "aligned_circles"), [([16, 1, 9], 2, False), ([16, 8, 11], 4, True)])
@pytest.mark.parametrize("directions", [1, 2])
def test_function_gradcheck_right_padded_edge_branches(directions, lengths, ratio, aligned_circles, monkeypatch):
    """Right padding with a full row: edge branches (l = 2, 3, 4) around a full one, on unaligned circles (a length-1
    row; W = 4, 8, 8 <= L / 2) or aligned ones (every n_b >= 8; W = 2, 4, 4, one-sided when causal, 6W otherwise)."""
    monkeypatch.setattr(branch_conv, "RIGHT_PADDED_EDGE_RATIO", ratio)
    torch.manual_seed(0)
    B, H, L = 3, 2, 16
    mask = right_padding(lengths, L)
    u = ((torch.randn(B, H, L, dtype=torch.float64) + 1) * mask[:, None]).requires_grad_()
    alpha, weight, bias = (torch.randn(4, H, dtype=torch.float64, requires_grad=True) for _ in range(3))
    skip = torch.randn(H, dtype=torch.float64, requires_grad=True)
    assert right_padded_lengths(u, mask) is not None
    kernels = [torch.randn(directions, H, n, dtype=torch.float64, requires_grad=True) for n in (2, 16, 3, 4)]
    assert edge_branches(kernels, L, masked=False, right_padded=True, shortest=min(lengths)) == [0, 2, 3]
    assert [aligned(kernels[i], True, min(lengths)) for i in (0, 2, 3)] == [aligned_circles] * 3

    def function(*args):
        u, alpha, weight, bias, skip, *kernels = args
        return MultiResConvFunction.apply(u, alpha, weight, bias, skip, mask, 1e-5, *kernels)[0]

    inputs = (u, alpha, weight, bias, skip, *kernels)
    assert torch.autograd.gradcheck(function, inputs, fast_mode=directions == 1)  # bidirectional: full Jacobian


@pytest.mark.parametrize("padding", ["hole", "left"])
def test_other_masks_take_the_second_pass(padding, monkeypatch):
    """A mask with a hole or left padding is not right padding: every branch takes the second pass, exactly."""
    calls = []
    edge_squares = branch_conv.right_padded_edge_squares
    monkeypatch.setattr(branch_conv, "right_padded_edge_squares", lambda *a: calls.append(a) or edge_squares(*a))
    fast = make_layer("dilated", True, H=3, max_length=300).train()
    slow = copy.deepcopy(fast)
    L = 260
    mask = right_padding([L, 100, 200], L)
    if padding == "hole":
        mask[0, 50:60] = 0
    else:
        mask = mask.flip(-1)
    x = (padded_batch(3, 3, L, False)[0] + 2) * mask[:, None]
    assert right_padded_lengths(x, mask) is None
    assert_step_matches_reference(fast, slow, x, mask)
    assert not calls


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_edge_and_full_branches_match_reference(kernel_type, bidirectional):
    """Long L with 8 branches from l = 4 to 300 > L, most of them on the edge path, float64 against the reference."""
    fast = make_layer(kernel_type, bidirectional, H=3, max_length=300).train()
    slow = copy.deepcopy(fast)
    L = 260
    kernels = fast.kernel()
    assert [k.shape[-1] for k in kernels] == [4, 8, 16, 32, 64, 128, 256, 300]
    assert edge_branches(kernels, L, masked=False) == [0, 1, 2, 3, 4]
    x = padded_batch(2, 3, L, False)[0] * 3 + 2
    assert_step_matches_reference(fast, slow, x, None)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_edge_statistics_float32_with_large_mean(offset, bidirectional):
    """float32 batch variances stay accurate when |mean| >> std (centred sums, not E[z^2] - mean^2)."""
    exact = make_layer("dilated", bidirectional, H=8, max_length=512).train()
    fast = copy.deepcopy(exact).float()
    assert len(edge_branches(fast.kernel(), 512, masked=False)) == 6
    x = padded_batch(4, 8, 512, False)[0] + offset
    y_exact, y_fast = reference(exact, x, None), fast(x.float())
    torch.testing.assert_close(y_fast.double(), y_exact, rtol=1e-4, atol=1e-4)
    bn_exact, bn_fast = exact.batch_norm, fast.batch_norm
    torch.testing.assert_close(bn_fast.running_var.double(), bn_exact.running_var, rtol=2e-5, atol=0)
    torch.testing.assert_close(bn_fast.running_mean.double(), bn_exact.running_mean, rtol=1e-5, atol=1e-5)


def test_function_gradcheck_edge_branches():
    """Edge branches of different widths (W = 2, 4) around a full one, causal and bidirectional kernels."""
    torch.manual_seed(0)
    B, H, L = 2, 2, 16
    u = (torch.randn(B, H, L, dtype=torch.float64) + 1).requires_grad_()
    alpha, weight, bias = (torch.randn(4, H, dtype=torch.float64, requires_grad=True) for _ in range(3))
    skip = torch.randn(H, dtype=torch.float64, requires_grad=True)
    for directions in (1, 2):
        kernels = [torch.randn(directions, H, n, dtype=torch.float64, requires_grad=True) for n in (2, 16, 3, 4)]
        assert edge_branches(kernels, L, masked=False) == [0, 2, 3]  # not consecutive: indexed, not sliced

        def function(*args):
            u, alpha, weight, bias, skip, *kernels = args
            return MultiResConvFunction.apply(u, alpha, weight, bias, skip, None, 1e-5, *kernels)[0]

        inputs = (u, alpha, weight, bias, skip, *kernels)
        assert torch.autograd.gradcheck(function, inputs, fast_mode=directions == 1)  # bidirectional: full Jacobian


@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_model_training_step_matches_reference(kernel_type):
    """A whole float64 model with padding: loss, every parameter gradient and BN statistics after a step."""
    config = tiny_config(kernel_type=kernel_type, max_sequence_length=40, prenorm=True)
    torch.manual_seed(0)
    fast = MRConvForSequenceClassification(config).double().train()
    slow = copy.deepcopy(fast)
    ids = torch.randint(1, 20, (3, 40))
    ids[1, 31:] = 0
    ids[2, 5:] = 0
    labels = torch.tensor([0, 2, 1])
    fast_out = fast(input_ids=ids, attention_mask=(ids != 0).long(), labels=labels)
    fast_out.loss.backward()
    slow.set_conv_implementation("reference")
    slow_out = slow(input_ids=ids, attention_mask=(ids != 0).long(), labels=labels)
    slow_out.loss.backward()
    torch.testing.assert_close(fast_out.loss, slow_out.loss, rtol=1e-10, atol=1e-12)
    for (name, p_fast), p_slow in zip(fast.named_parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(p_fast.grad, p_slow.grad, rtol=1e-8, atol=1e-10, msg=name)
    for (name, b_fast), b_slow in zip(fast.named_buffers(), slow.buffers(), strict=True):
        torch.testing.assert_close(b_fast, b_slow, rtol=1e-12, atol=1e-13, msg=name)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_unmerged_eval_folds_exactly(kernel_type, bidirectional):
    """Eval mode folds the branches on the fly; it equals the reference branch computation, gradients included."""
    layer = make_layer(kernel_type, bidirectional).train()
    with torch.no_grad():
        for _ in range(3):
            layer(padded_batch(3, 4, 40, False)[0] * 2 + 1)  # running statistics away from (0, 1)
    layer.eval()
    x = padded_batch(2, 4, 33, False)[0].requires_grad_()
    y = layer(x)
    expected = reference(layer, x, None)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
    params = [x, *trainable(layer)]
    for g_fold, g_ref in zip(grads(y, params), grads(expected, params), strict=True):
        torch.testing.assert_close(g_fold, g_ref, rtol=1e-9, atol=1e-10)
    bn = layer.batch_norm
    assert bn.num_batches_tracked.item() == 3  # eval never touches the running statistics
    y_fn = folded_multires_forward(x, layer.kernel(), bn, layer.alpha, layer.skip)
    torch.testing.assert_close(y_fn, y, rtol=0, atol=0)


def test_unmerged_eval_equals_merged_model():
    config = tiny_config(kernel_type="fourier_sparse")
    model = warmed_model(config)
    inputs = random_inputs(config, length=50)
    with torch.no_grad():
        unmerged = model(**inputs).logits
        merged = copy.deepcopy(model).reparameterize()(**inputs).logits
    torch.testing.assert_close(unmerged, merged, rtol=1e-5, atol=1e-5)


def test_fast_path_saves_no_branch_outputs():
    """Activation memory: the spectrum of u and the branch spectra, not the 2N (B, H, L) tensors of the reference."""
    layer = make_layer("dilated", True, H=8).float().train()  # N = 5 branches
    x, mask = padded_batch(3, 8, 40, True)
    x, mask = x.float().requires_grad_(), mask.float()
    parameters = {p.untyped_storage().data_ptr() for p in layer.parameters()}

    def saved_bytes(forward) -> int:
        saved = {}

        def pack(t):
            if t.untyped_storage().data_ptr() not in parameters:
                saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            forward()
        return sum(saved.values())

    fast = saved_bytes(lambda: layer(x, mask))
    slow = saved_bytes(lambda: reference(layer, x, mask))
    B, H, L, N = 3, 8, 40, 5
    spectra_bytes = 8 * (B + N) * H * (L + 1)  # complex64 U (B H L+1) and branch spectra (N H L+1)
    assert fast <= 1.25 * spectra_bytes + 4 * N * 2 * H * L  # plus what the kernel generator saves
    assert fast < slow / 3


def test_autocast_bfloat16_keeps_fft_in_float32():
    layer = make_layer("fourier", True).float().train()
    reference_layer = copy.deepcopy(layer)
    x = padded_batch(3, 4, 37, False)[0].float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x.bfloat16())
        expected = reference(reference_layer, x.bfloat16(), None)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), expected.float(), rtol=0.02, atol=0.02)
    y.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in trainable(layer))


@pytest.mark.filterwarnings("ignore:torch.distributed.nn.functional.all_reduce is deprecated:FutureWarning")
def test_synchronized_batch_norm_falls_back_to_reference(tmp_path):
    """With `sync_batch_norm` under an initialised process group (gloo, one rank), conv_implementation='auto' takes
    the reference path, exactly; 'fast' refuses, naming the alternatives."""
    import torch.distributed as dist

    layer = make_layer("dilated", True).train()
    expected_layer = copy.deepcopy(layer)
    layer.batch_norm.sync_batch_norm = True
    x, mask = padded_batch(3, 4, 37, True)
    dist.init_process_group("gloo", init_method=f"file://{os.fspath(tmp_path / 'store')}", rank=0, world_size=1)
    try:
        assert layer.batch_norm.synchronized
        y = layer(x, mask)
        layer.conv_implementation = "fast"
        with pytest.raises(ValueError, match="conv_implementation='fast' takes local BatchNorm statistics"):
            layer(x, mask)
    finally:
        dist.destroy_process_group()
    torch.testing.assert_close(y, reference(expected_layer, x, mask), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer.batch_norm.running_var, expected_layer.batch_norm.running_var)


@pytest.mark.parametrize("implementation", ["auto", "fast", "reference"])
def test_conv_implementation_is_the_one_dispatch(implementation):
    """`conv_implementation` picks the path (the Function's or autograd's reference graph in training, the folded
    kernel or the reference in eval) with the same numbers; `set_conv_implementation` reaches every layer."""
    config = tiny_config(max_sequence_length=40)
    model = MRConvForSequenceClassification(config).double().train()
    expected = copy.deepcopy(model).set_conv_implementation("reference")
    model.set_conv_implementation(implementation)
    assert model.config.conv_implementation == implementation
    assert {layer.conv.conv_implementation for layer in model.mrconv.layers} == {implementation}
    ids = torch.randint(1, 20, (3, 40))
    logits = model(input_ids=ids).logits
    names, seen, stack = set(), set(), [logits.grad_fn]
    while stack:  # every node of the backward graph
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            names.add(type(node).__name__)
            stack.extend(next_fn for next_fn, _ in node.next_functions)
    assert any("MultiResConvFunction" in name for name in names) == (implementation != "reference")
    torch.testing.assert_close(logits, expected(input_ids=ids).logits, rtol=1e-10, atol=1e-12)
    model.eval()
    expected.eval()
    torch.testing.assert_close(model(input_ids=ids).logits, expected(input_ids=ids).logits, rtol=1e-10, atol=1e-12)
    with pytest.raises(
        ValueError, match=r"conv_implementation must be one of \('auto', 'fast', 'reference'\), got 'cuda'"
    ):
        model.set_conv_implementation("cuda")
    with pytest.raises(ValueError, match=r"conv_implementation must be one of .*, got 'slow'"):
        tiny_config(conv_implementation="slow")


def test_fast_multires_forward_paths():
    """Training: the custom Function; eval: the folded kernel; both return x's dtype."""
    layer = make_layer("sparse", False)
    x = padded_batch(2, 4, 20, False)[0]
    y = fast_multires_forward(x, layer.kernel(), layer.batch_norm, layer.alpha, layer.skip)
    assert y.grad_fn is not None and "MultiResConvFunction" in type(y.grad_fn).__name__
    layer.eval()
    y = fast_multires_forward(x.float(), layer.kernel(), layer.batch_norm, layer.alpha, layer.skip)
    assert y.dtype == torch.float32 and "MultiResConvFunction" not in type(y.grad_fn).__name__


@pytest.mark.parametrize("implementation", ["fast", "reference"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_batch_without_valid_position_keeps_running_statistics(implementation, bidirectional):
    """Both paths pass the unclamped valid count (0) to the BatchNorm, whose update is then a no-op, bit for bit."""
    layer = make_layer("dilated", bidirectional).train()
    layer.conv_implementation = implementation
    with torch.no_grad():
        layer.batch_norm.running_mean.normal_()
        layer.batch_norm.running_var.uniform_(0.5, 2.0)
    before = copy.deepcopy(layer.batch_norm.state_dict())
    y = layer(torch.zeros(3, 4, 37, dtype=torch.float64), torch.zeros(3, 37, dtype=torch.float64))
    assert bool(torch.isfinite(y).all())
    for name, value in layer.batch_norm.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_all_valid_mask_is_dropped(monkeypatch):
    """An all-ones mask takes the unmasked path in the Function (edge branches without right padding), with the
    numbers of the unmasked call; one padded position takes the right-padded path.
    """
    layer = make_layer("dilated", True).train()
    other = copy.deepcopy(layer)
    x = padded_batch(3, 4, 37, False)[0]
    paths = []
    select = branch_conv.edge_branches
    monkeypatch.setattr(branch_conv, "edge_branches", lambda *args: paths.append(args[2:]) or select(*args))
    y = fast_multires_forward(x, layer.kernel(), layer.batch_norm, layer.alpha, layer.skip, torch.ones(3, 37))
    expected = fast_multires_forward(x, other.kernel(), other.batch_norm, other.alpha, other.skip)
    assert paths == [(False, False, 0), (False, False, 0)]  # (masked, right_padded, shortest)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    torch.testing.assert_close(layer.batch_norm.running_var, other.batch_norm.running_var, rtol=0, atol=0)
    mask = torch.ones(3, 37)
    mask[0, -1] = 0
    fast_multires_forward(x * mask[:, None], layer.kernel(), layer.batch_norm, layer.alpha, layer.skip, mask)
    assert paths[-1] == (False, True, 36)


def test_fft_conv_bias_matches_fft_conv():
    u = torch.randn(2, 3, 21)
    kernel = torch.randn(2, 3, 21, requires_grad=True)
    bias = torch.randn(3, requires_grad=True)
    spectrum = kernel_spectrum(kernel, 21)
    expected = fft_conv(u, spectrum) + bias[:, None]
    torch.testing.assert_close(fft_conv_bias(u, spectrum, bias), expected)  # differentiable path
    with torch.no_grad():
        torch.testing.assert_close(fft_conv_bias(u, spectrum, bias), expected)  # in-place path
    fft_conv_bias(u, spectrum, bias).sum().backward()
    assert kernel.grad is not None and bias.grad is not None


def test_merged_spectrum_cache_survives_inference_mode():
    """A spectrum cached under inference_mode is rebuilt when a later call needs autograd."""
    model = warmed_model(tiny_config()).reparameterize()
    for p in model.parameters():
        p.requires_grad_(False)
    inputs = random_inputs(model.config)
    with torch.inference_mode():
        expected = model(**inputs).logits.clone()
    embeddings = model.mrconv.embeddings
    embeddings.weight.requires_grad_(True)  # gradients flow through the conv into the embedding
    logits = model(**inputs).logits
    logits.sum().backward()
    torch.testing.assert_close(logits.detach(), expected)
    assert embeddings.weight.grad is not None


@pytest.mark.parametrize(
    "overrides", [{}, {"bidirectional": False}, {"prenorm": True}, {"norm_type": "layer", "prenorm": True}]
)
def test_floor_model_runs(overrides):
    from modeling_mrconv.bench.floor_model import build_floor_model

    config = tiny_config(**overrides)
    floor = build_floor_model(config)
    ids = torch.randint(1, 20, (2, 30))
    with torch.no_grad():
        logits = floor(ids)
        masked = floor(ids, attention_mask=torch.ones(2, 30))
    assert logits.shape == (2, 3) and not floor.training
    torch.testing.assert_close(logits, masked)
