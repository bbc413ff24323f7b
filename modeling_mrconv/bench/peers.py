"""Peer models of the benchmark at MRConv's width and depth: S4D-Lin (written here) and transformers backbones
(BERT with SDPA attention, Mamba) under MRConv's head (mean pooling + linear)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from modeling_mrconv.modeling_mrconv import masked_mean, zero_padding


class S4DKernel(nn.Module):
    """S4D-Lin kernel: diagonal complex A, recomputed for every call by a Vandermonde product (Gu et al., 2022).

    K[h, l] = 2 Re(sum_n C'[h, n] exp(dt_h A[h, n] l)) with C' = C (exp(dt A) - 1) / A (zero-order hold),
    using N/2 complex modes (conjugate pairs give the N real states). One kernel per direction.
    """

    def __init__(self, channels: int, state_size: int = 64, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        N2 = state_size // 2
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)  # (C)
        self.log_dt = nn.Parameter(log_dt)
        self.C = nn.Parameter(torch.view_as_real(torch.randn(channels, N2, dtype=torch.cfloat)))  # (C N2 2)
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(channels, N2)))  # (C N2)
        self.A_imag = nn.Parameter(math.pi * torch.arange(N2).float().repeat(channels, 1))  # (C N2) S4D-Lin

    def forward(self, L: int) -> torch.Tensor:
        dt = self.log_dt.exp()  # (C)
        A = torch.complex(-self.log_A_real.exp(), self.A_imag)  # (C N2)
        dtA = A * dt[:, None]  # (C N2)
        C = torch.view_as_complex(self.C) * (dtA.exp() - 1.0) / A  # (C N2)
        vandermonde = (dtA[..., None] * torch.arange(L, device=A.device)).exp()  # (C N2 L)
        return 2 * torch.einsum("cn,cnl->cl", C, vandermonde).real  # (C L)


class S4DLayer(nn.Module):
    """y = k * u + D u with an S4D kernel; bidirectional kernels are laid out as in S4 (forward + flipped backward)."""

    def __init__(self, hidden_size: int, bidirectional: bool, state_size: int = 64):
        super().__init__()
        self.directions = 2 if bidirectional else 1
        self.kernel = S4DKernel(self.directions * hidden_size, state_size)
        self.D = nn.Parameter(torch.randn(hidden_size))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        B, H, L = u.shape
        with torch.autocast(u.device.type, enabled=False):
            k = self.kernel(L).view(self.directions, H, L)  # (S H L)
            circular = F.pad(k[0], (0, L))  # (H 2L)
            if self.directions == 2:
                circular = circular + F.pad(k[1].flip(-1), (L, 0))  # backward tap j multiplies u[t + 1 + j]
            k_f = torch.fft.rfft(circular, n=2 * L)  # (H L+1)
            u_f = torch.fft.rfft(u.float(), n=2 * L)  # (B H L+1)
            y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]  # (B H L)
            return (y + u.float() * self.D[:, None]).to(u.dtype)


class S4DBlocks(nn.Module):
    """MRConv's block (conv -> GELU -> pointwise linear -> GLU -> residual -> BatchNorm) with an S4D-Lin layer as its
    convolution, `num_layers` deep, on (B, H, L); padded positions are zeroed before every convolution."""

    def __init__(self, hidden_size: int, num_layers: int, bidirectional: bool, state_size: int = 64):
        super().__init__()
        H = hidden_size
        self.convs = nn.ModuleList([S4DLayer(H, bidirectional, state_size) for _ in range(num_layers)])
        self.linears = nn.ModuleList([nn.Conv1d(H, 2 * H, kernel_size=1) for _ in range(num_layers)])
        self.norms = nn.ModuleList([nn.BatchNorm1d(H) for _ in range(num_layers)])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for conv, linear, norm in zip(self.convs, self.linears, self.norms, strict=True):
            y = conv(zero_padding(x, mask))  # (B H L)
            x = norm(x + F.glu(linear(F.gelu(y)), dim=1))  # (B H L)
        return x


class S4DClassifier(nn.Module):
    """Embedding, `S4DBlocks`, mean pooling, linear head."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, num_labels: int, bidirectional: bool):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, hidden_size)
        self.blocks = S4DBlocks(hidden_size, num_layers, bidirectional)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.embeddings(input_ids).transpose(1, 2))  # (B H L)
        return self.classifier(x.mean(-1))  # (B num_labels)


class PooledClassifier(nn.Module):
    """A transformers backbone returning (B, L, H) hidden states, with MRConv's head: masked mean pooling + linear."""

    def __init__(self, backbone: nn.Module, hidden_size: int, num_labels: int, **call_kwargs):
        super().__init__()
        self.backbone = backbone
        self.call_kwargs = call_kwargs
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        inputs = {"input_ids": input_ids} if inputs_embeds is None else {"inputs_embeds": inputs_embeds}
        hidden = self.backbone(**inputs, attention_mask=attention_mask, **self.call_kwargs).last_hidden_state
        return self.classifier(masked_mean(hidden.transpose(1, 2), attention_mask))  # (B num_labels)
