"""Branch kernel parameterizations of the MRConv layer (paper eqs. 8-10).

Every module holds the parameters of all N branches of one layer and `forward()` returns the dense kernels, one
(S, H, l_i) tensor per branch with l_i = l0 * 2^i (truncated to the maximum sequence length), S = 2 when
bidirectional. All branches have the same number of free parameters whatever their length.

Choices where the paper is silent (documented in model_card.md):
- Fourier kernels use an orthonormal inverse FFT, so kernel energy does not grow with the branch length.
- Sparse tap positions are sampled per branch, direction and channel without replacement in [0, l_i) from a
  generator seeded by `config.sparse_seed` and the layer index; they are a persistent buffer, saved in checkpoints.
- Fourier+Sparse mixes the two same-length kernels with learnable per-branch, per-channel weights (poster eq. 3).
"""

import math

import torch
from torch import nn
from transformers import initialization as init

from .configuration_mrconv import MRConvConfig


class MRConvKernel(nn.Module):
    """Base class: the shapes every parameterization shares; subclasses define `forward()` and `reset_parameters()`."""

    def __init__(self, config: MRConvConfig, layer_idx: int = 0):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_directions = 2 if config.bidirectional else 1
        self.hidden_size = config.hidden_size
        self.branch_lengths = config.branch_lengths


class MRConvDilatedKernel(MRConvKernel):
    """l0 free taps per branch, spread with dilation 2^i: k_i[2^i * tau] = w_i[tau] (paper eq. 8)."""

    def __init__(self, config: MRConvConfig, layer_idx: int = 0):
        super().__init__(config, layer_idx)
        self.kernel_size = config.kernel_size
        N, S, H = len(self.branch_lengths), self.num_directions, self.hidden_size
        self.weight = nn.Parameter(torch.empty(N, S, H, self.kernel_size))  # (N S H l0)

    def reset_parameters(self) -> None:
        # unit kernel energy: the branch output has the input's variance before its BatchNorm
        init.normal_(self.weight, std=1.0 / math.sqrt(self.kernel_size))

    def forward(self) -> list[torch.Tensor]:
        kernels = []
        for i, length in enumerate(self.branch_lengths):
            dilation = 2**i
            taps = min(self.kernel_size, (length - 1) // dilation + 1)  # the truncated last branch keeps fewer
            dense = self.weight.new_zeros(self.num_directions, self.hidden_size, taps, dilation)  # (S H l0 p)
            dense[..., 0] = self.weight[i, ..., :taps]
            kernels.append(dense.flatten(-2)[..., :length])  # (S H l_i)
        return kernels


class MRConvFourierKernel(MRConvKernel):
    """m complex low-frequency modes per branch, zero-padded and inverse-transformed to length l_i (paper eq. 9)."""

    def __init__(self, config: MRConvConfig, layer_idx: int = 0):
        super().__init__(config, layer_idx)
        self.modes = config.fourier_modes
        N, S, H = len(self.branch_lengths), self.num_directions, self.hidden_size
        self.weight = nn.Parameter(torch.empty(N, S, H, self.modes, 2))  # (N S H m 2): real and imaginary parts

    def reset_parameters(self) -> None:
        init.normal_(self.weight, std=1.0 / math.sqrt(2 * self.modes))

    def forward(self) -> list[torch.Tensor]:
        modes = torch.view_as_complex(self.weight.float())  # (N S H m)
        kernels = []
        for i, length in enumerate(self.branch_lengths):
            full_length = self.branch_lengths[0] * 2**i  # the last branch may be truncated after the transform
            kernel = torch.fft.irfft(modes[i], n=full_length, norm="ortho")  # (S H l_i)
            kernels.append(kernel[..., :length].to(self.weight.dtype))
        return kernels


class MRConvSparseKernel(MRConvKernel):
    """`sparse_taps` free taps per branch at fixed random positions in [0, l_i) (paper eq. 10)."""

    def __init__(self, config: MRConvConfig, layer_idx: int = 0):
        super().__init__(config, layer_idx)
        self.taps = config.sparse_taps
        self.seed = config.sparse_seed
        N, S, H = len(self.branch_lengths), self.num_directions, self.hidden_size
        self.weight = nn.Parameter(torch.empty(N, S, H, self.taps))  # (N S H T)
        # (N S H T), saved in training checkpoints; sampled on CPU, then placed with the weight (meta included)
        self.register_buffer("positions", self.sample_positions().to(self.weight.device))

    def sample_positions(self) -> torch.Tensor:
        """Deterministic positions from (sparse_seed, layer_idx): (N, S, H, T) on CPU, distinct within a channel."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.layer_idx)
        S, H = self.num_directions, self.hidden_size
        positions = []
        for length in self.branch_lengths:
            scores = torch.rand(S, H, length, generator=generator, device="cpu")
            positions.append(scores.topk(self.taps, dim=-1).indices.sort(dim=-1).values)  # (S H T)
        return torch.stack(positions)

    def reset_parameters(self) -> None:
        init.normal_(self.weight, std=1.0 / math.sqrt(self.taps))
        init.copy_(self.positions, self.sample_positions())

    def forward(self) -> list[torch.Tensor]:
        kernels = []
        for i, length in enumerate(self.branch_lengths):
            dense = self.weight.new_zeros(self.num_directions, self.hidden_size, length)  # (S H l_i)
            kernels.append(dense.scatter(-1, self.positions[i], self.weight[i]))
        return kernels


class MRConvFourierSparseKernel(MRConvKernel):
    """k_i = beta_F * fourier_i + beta_S * sparse_i: two same-length kernels merged before the convolution."""

    def __init__(self, config: MRConvConfig, layer_idx: int = 0):
        super().__init__(config, layer_idx)
        self.fourier = MRConvFourierKernel(config, layer_idx)
        self.sparse = MRConvSparseKernel(config, layer_idx)
        self.mix = nn.Parameter(torch.empty(len(self.branch_lengths), 2, self.hidden_size))  # (N 2 H)

    def reset_parameters(self) -> None:
        init.ones_(self.mix)

    def forward(self) -> list[torch.Tensor]:
        pairs = zip(self.fourier(), self.sparse(), self.mix, strict=False)
        return [mix[0, :, None] * k_f + mix[1, :, None] * k_s for k_f, k_s, mix in pairs]


KERNEL_CLASSES: dict[str, type[MRConvKernel]] = {
    "dilated": MRConvDilatedKernel,
    "fourier": MRConvFourierKernel,
    "sparse": MRConvSparseKernel,
    "fourier_sparse": MRConvFourierSparseKernel,
}


__all__ = [
    "KERNEL_CLASSES",
    "MRConvDilatedKernel",
    "MRConvFourierKernel",
    "MRConvFourierSparseKernel",
    "MRConvKernel",
    "MRConvSparseKernel",
]
