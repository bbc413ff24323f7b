"""Branch kernel parameterizations: lengths, structure, determinism and gradients."""

import pytest
import torch

from modeling_mrconv import MRConvConfig
from modeling_mrconv.kernels import KERNEL_CLASSES


def make_kernel(kernel_type: str, bidirectional: bool = True, **overrides):
    config = MRConvConfig(
        hidden_size=6,
        max_sequence_length=100,
        kernel_size=8,
        kernel_type=kernel_type,
        bidirectional=bidirectional,
        **overrides,
    )
    module = KERNEL_CLASSES[kernel_type](config, layer_idx=1)
    for sub in module.modules():
        sub.reset_parameters()
    return config, module


@pytest.mark.parametrize("kernel_type", list(KERNEL_CLASSES))
@pytest.mark.parametrize("bidirectional", [True, False])
def test_shapes_lengths_and_gradients(kernel_type, bidirectional):
    config, module = make_kernel(kernel_type, bidirectional)
    assert config.num_branches == 5 and config.branch_lengths == [8, 16, 32, 64, 100]  # last one truncated
    kernels = module()
    S = 2 if bidirectional else 1
    assert [tuple(k.shape) for k in kernels] == [(S, 6, length) for length in config.branch_lengths]
    sum(k.square().sum() for k in kernels).backward()
    for name, param in module.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_equal_parameter_count_per_branch():
    for kernel_type in KERNEL_CLASSES:
        _, module = make_kernel(kernel_type)
        per_branch = sum(p.numel() for p in module.parameters()) / 5
        assert per_branch == int(per_branch)


def test_dilated_taps_at_dilation_positions():
    _, module = make_kernel("dilated")
    for i, kernel in enumerate(module()):
        nonzero = kernel.abs().sum((0, 1)).nonzero().flatten()
        expected = torch.arange(0, kernel.shape[-1], 2**i)[: module.kernel_size]
        assert torch.equal(nonzero, expected)
        torch.testing.assert_close(kernel[..., expected], module.weight[i, ..., : len(expected)])


def test_sparse_positions_distinct_deterministic_and_in_range():
    config, module = make_kernel("sparse")
    _, again = make_kernel("sparse")
    assert torch.equal(module.positions, again.positions)
    for i, length in enumerate(config.branch_lengths):
        positions = module.positions[i]
        assert positions.max() < length and positions.min() >= 0
        assert (positions.diff(dim=-1) > 0).all()  # sorted, without replacement
        assert (module()[i] != 0).sum(-1).eq(config.sparse_taps).all()
    _, other_seed = make_kernel("sparse", sparse_seed=1)
    assert not torch.equal(module.positions, other_seed.positions)


def test_fourier_longer_branches_are_smoother():
    """Same m modes over a longer length: the relative first-difference energy falls with the branch index."""
    _, module = make_kernel("fourier")
    kernels = module()[:4]
    roughness = [(k.diff(dim=-1).square().sum() / k.square().sum()).item() for k in kernels]
    assert roughness == sorted(roughness, reverse=True)
    spectrum = torch.fft.rfft(kernels[3].double(), norm="ortho")
    assert spectrum[..., module.modes :].abs().max() < 1e-6  # band-limited to the m modes


def test_fourier_sparse_is_mix_of_both():
    _, module = make_kernel("fourier_sparse")
    with torch.no_grad():
        module.mix[:, 1] = 0.0
    for mixed, fourier in zip(module(), module.fourier(), strict=False):
        torch.testing.assert_close(mixed, fourier)
