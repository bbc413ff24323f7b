"""The peers of MRConv in the benchmark and the accuracy study: S4D-Lin (written here), BERT (SDPA attention), Mamba
(transformers; its torch path without `mamba_ssm`) and the FCN convolutional baseline, each between MRConv's input
layer and head, as a `PreTrainedModel` that scripts/train.py trains, exports and reloads like MRConv
(`architecture: bert | s4d | mamba | cnn`).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, MambaConfig, MambaModel, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from modeling_mrconv.fftconv import fft_conv, kernel_spectrum
from modeling_mrconv.modeling_mrconv import masked_mean, zero_padding


PEER_ARCHITECTURES = ("bert", "s4d", "mamba", "cnn")
STATE_SIZES = {"s4d": 64, "mamba": 16}  # S4D's N (Gu et al., 2022); Mamba's default d_state


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
            k = self.kernel(L).view(self.directions, H, L)  # (S H L), laid out by fftconv.kernel_to_circular
        y = fft_conv(u, kernel_spectrum(k, L))  # (B H L), float32 (float64 for float64 u)
        return (y + u.to(y.dtype) * self.D[:, None]).to(u.dtype)


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


class FCNBlocks(nn.Module):
    """The fully convolutional baseline of time-series classification (FCN: Wang, Yan & Oates, IJCNN 2017): Conv1d
    blocks of kernel sizes 8, 5, 3 (repeating), each with BatchNorm and ReLU, widths H, 2H, ..., 2H, H ("same"
    padding; padded positions zeroed before every convolution). At H = 128 and 3 layers it is FCN's 128-256-128 on
    the raw input channels."""

    def __init__(self, in_channels: int, hidden_size: int, num_layers: int):
        super().__init__()
        widths = [in_channels, hidden_size, *[2 * hidden_size] * (num_layers - 2), hidden_size][: num_layers + 1]
        self.convs = nn.ModuleList(
            nn.Conv1d(widths[i], widths[i + 1], kernel_size=(8, 5, 3)[i % 3]) for i in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(widths[i + 1]) for i in range(num_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            k = conv.kernel_size[0]
            x = F.pad(zero_padding(x, mask), ((k - 1) // 2, k // 2))  # (B H L+k-1): "same" padding
            x = F.relu(norm(conv(x)))  # (B H' L)
        return x


class PeerConfig(PreTrainedConfig):
    r"""
    Configuration of a peer classifier: MRConv's input layer (token embedding or a linear map of `input_values`), a
    sequence mixer, masked mean pooling and a linear head.

    Args:
        architecture (`str`, *optional*, defaults to `"s4d"`):
            The mixer: `"bert"` (transformers' `BertModel`, SDPA attention, learned positions, 4x wide MLP),
            `"s4d"` (`S4DBlocks`: MRConv's block around an S4D-Lin convolution), `"mamba"` (`MambaModel`) or `"cnn"`
            (`FCNBlocks`, reading `input_values` directly: no input layer).
        vocab_size (`int`, *optional*, defaults to 259): Token ids of `input_ids` (MRConv's default).
        input_dim (`int`, *optional*): Channels of `input_values`; `None` means the model reads token ids.
        hidden_size (`int`, *optional*, defaults to 128): Width of every layer.
        num_hidden_layers (`int`, *optional*, defaults to 4): Depth.
        max_sequence_length (`int`, *optional*, defaults to 1024): BERT's learned positions.
        num_attention_heads (`int`, *optional*, defaults to 4): BERT's heads.
        state_size (`int`, *optional*): S4D's N (defaults to 64) or Mamba's state (defaults to 16).
        bidirectional (`bool`, *optional*, defaults to `True`): S4D's kernels run both ways (BERT always does,
            Mamba never).
        pad_token_id (`int`, *optional*, defaults to 0): The embedding row kept at zero.
    """

    model_type = "mrconv_peer"

    def __init__(
        self,
        architecture: str = "s4d",
        vocab_size: int = 259,
        input_dim: int | None = None,
        hidden_size: int = 128,
        num_hidden_layers: int = 4,
        max_sequence_length: int = 1024,
        num_attention_heads: int = 4,
        state_size: int | None = None,
        bidirectional: bool = True,
        pad_token_id: int | None = 0,
        **kwargs,
    ):
        if architecture not in PEER_ARCHITECTURES:
            raise ValueError(f"architecture: expected one of {PEER_ARCHITECTURES}, got {architecture!r}")
        if architecture == "bert" and hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}"
            )
        self.architecture = architecture
        self.vocab_size = vocab_size
        self.input_dim = input_dim
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.max_sequence_length = max_sequence_length
        self.num_attention_heads = num_attention_heads
        self.state_size = state_size if state_size is not None else STATE_SIZES.get(architecture)
        self.bidirectional = bidirectional
        super().__init__(pad_token_id=pad_token_id, **kwargs)


def build_mixer(config: PeerConfig) -> nn.Module:
    """The sequence mixer of `config.architecture`; the transformers ones read `inputs_embeds` only, so their own
    (one-row) word embedding is frozen."""
    H, layers = config.hidden_size, config.num_hidden_layers
    if config.architecture == "s4d":
        return S4DBlocks(H, layers, config.bidirectional, config.state_size)
    if config.architecture == "cnn":
        return FCNBlocks(config.input_dim or H, H, layers)
    if config.architecture == "bert":
        bert = BertConfig(
            vocab_size=1,
            hidden_size=H,
            num_hidden_layers=layers,
            num_attention_heads=config.num_attention_heads,
            intermediate_size=4 * H,
            max_position_embeddings=config.max_sequence_length,
            type_vocab_size=1,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        mixer = BertModel(bert, add_pooling_layer=False)
        mixer.set_attn_implementation("sdpa")
    else:
        mixer = MambaModel(
            MambaConfig(
                vocab_size=1, hidden_size=H, state_size=config.state_size, num_hidden_layers=layers, use_cache=False
            )
        )
    mixer.get_input_embeddings().weight.requires_grad_(False)
    return mixer


class PeerForSequenceClassification(PreTrainedModel):
    """Input layer, the mixer of `config.architecture`, masked mean pooling, linear head (MRConv's, so that only the
    mixer differs); `forward` takes MRConv's inputs and returns a `SequenceClassifierOutput`."""

    config_class = PeerConfig
    config: PeerConfig
    base_model_prefix = "peer"
    main_input_name = "input_ids"

    def __init__(self, config: PeerConfig):
        super().__init__(config)
        if config.input_dim is None:
            self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        elif config.architecture == "cnn":
            self.embeddings = nn.Identity()  # FCN's first convolution reads the input channels
        else:
            self.embeddings = nn.Linear(config.input_dim, config.hidden_size)
        self.mixer = build_mixer(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        x = self.embeddings(input_ids if self.config.input_dim is None else input_values)  # (B L H)
        if self.config.architecture in ("s4d", "cnn"):
            x = self.mixer(x.transpose(1, 2), attention_mask)  # (B H L)
        else:
            x = self.mixer(inputs_embeds=x, attention_mask=attention_mask).last_hidden_state.transpose(1, 2)  # (B H L)
        logits = self.classifier(masked_mean(x, attention_mask))  # (B num_labels)
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


__all__ = [
    "PEER_ARCHITECTURES",
    "FCNBlocks",
    "PeerConfig",
    "PeerForSequenceClassification",
    "S4DBlocks",
    "S4DKernel",
    "S4DLayer",
]
