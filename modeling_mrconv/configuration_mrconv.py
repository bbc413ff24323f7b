"""MRConv model configuration."""

import math
from typing import Any

from transformers import PreTrainedConfig


KERNEL_TYPES = ("dilated", "fourier", "sparse", "fourier_sparse")
CONV_IMPLEMENTATIONS = ("auto", "fast", "reference")
NORM_TYPES = ("batch", "layer")


class MRConvConfig(PreTrainedConfig):
    r"""
    Configuration of an MRConv model (Cunningham et al., "Reparameterized Multi-Resolution Convolutions for Long
    Sequence Modelling", NeurIPS 2024). The defaults give a small byte-level text classifier.

    Args:
        vocab_size (`int`, *optional*, defaults to 259):
            Token vocabulary size for `input_ids`; 259 = `len(ByT5Tokenizer(extra_ids=0))`.
        input_dim (`int`, *optional*):
            Features per step of continuous `input_values` (batch, length, input_dim); `None`: the model reads tokens.
        hidden_size (`int`, *optional*, defaults to 128):
            Width D of every layer (channels of the depthwise convolutions).
        num_hidden_layers (`int`, *optional*, defaults to 4):
            Number of MRConv blocks.
        max_sequence_length (`int`, *optional*, defaults to 1024):
            Longest input the kernels cover; longer inputs raise a `ValueError`.
        kernel_type (`str`, *optional*, defaults to `"dilated"`):
            `"dilated"` (l0 taps at dilation 2^i), `"fourier"`, `"sparse"` or `"fourier_sparse"` (per-channel mix).
        kernel_size (`int`, *optional*, defaults to 16):
            l0, the length of the shortest branch; branch i has length l0 * 2^i.
        num_branches (`int`, *optional*):
            Resolutions N; defaults to `1 + ceil(log2(max_sequence_length / kernel_size))`, the fewest covering L.
        fourier_modes (`int`, *optional*):
            Low-frequency complex modes per Fourier kernel; defaults to `kernel_size // 2` (a dilated branch's budget).
        sparse_taps (`int`, *optional*):
            Free taps per sparse kernel (at fixed random positions); defaults to `kernel_size`.
        bidirectional (`bool`, *optional*, defaults to `True`):
            Two-sided kernels; `False` gives a causal model (output t sees inputs <= t only).
        branch_batch_norm (`bool`, *optional*, defaults to `True`):
            BatchNorm per branch (paper Section 3.1); `False` is the ablation y = (sum_i alpha_i k_i) * u + D u.
        norm_type (`str`, *optional*, defaults to `"batch"`):
            Block normalization, `"batch"` (masked BatchNorm) or `"layer"`.
        prenorm (`bool`, *optional*, defaults to `False`):
            Pre-norm blocks `x + f(norm(x))` with a final norm, instead of post-norm `norm(x + f(x))`.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout after the GELU and on the block output before the residual add.
        reparameterized (`bool`, *optional*, defaults to `False`):
            Build the merged inference architecture (one kernel + bias per layer) instead of the N branches.
        conv_implementation (`str`, *optional*, defaults to `"auto"`):
            `"fast"` (`MultiResConvFunction`), `"reference"` (eqs. 4-6) or `"auto"` (reference only under synced BN).
        reparameterize_on_save (`bool`, *optional*, defaults to `True`):
            `save_pretrained` writes the merged kernel (Trainer `checkpoint-<step>` folders keep the training form).
        batch_norm_momentum (`float`, *optional*, defaults to 0.1):
            Momentum of the running statistics of every BatchNorm.
        norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of every BatchNorm and LayerNorm.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal init of embeddings and linear layers.
        sparse_seed (`int`, *optional*, defaults to 0):
            Seed of the random sparse tap positions (positions are also saved in training checkpoints).

    Example:

    ```python
    >>> from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification

    >>> config = MRConvConfig(max_sequence_length=2048, kernel_size=8, num_labels=10)
    >>> model = MRConvForSequenceClassification(config)
    >>> config.num_branches
    9
    ```"""

    model_type = "mrconv"

    def __init__(
        self,
        vocab_size: int = 259,
        input_dim: int | None = None,
        hidden_size: int = 128,
        num_hidden_layers: int = 4,
        max_sequence_length: int = 1024,
        kernel_type: str = "dilated",
        kernel_size: int = 16,
        num_branches: int | None = None,
        fourier_modes: int | None = None,
        sparse_taps: int | None = None,
        bidirectional: bool = True,
        branch_batch_norm: bool = True,
        norm_type: str = "batch",
        prenorm: bool = False,
        hidden_dropout_prob: float = 0.0,
        reparameterized: bool = False,
        conv_implementation: str = "auto",
        reparameterize_on_save: bool = True,
        batch_norm_momentum: float = 0.1,
        norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        sparse_seed: int = 0,
        pad_token_id: int | None = 0,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.input_dim = input_dim
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.max_sequence_length = max_sequence_length
        self.kernel_type = kernel_type
        self.kernel_size = kernel_size
        self.num_branches = num_branches
        self.fourier_modes = fourier_modes
        self.sparse_taps = sparse_taps
        self.bidirectional = bidirectional
        self.branch_batch_norm = branch_batch_norm
        self.norm_type = norm_type
        self.prenorm = prenorm
        self.hidden_dropout_prob = hidden_dropout_prob
        self.reparameterized = reparameterized
        self.conv_implementation = conv_implementation
        self.reparameterize_on_save = reparameterize_on_save
        self.batch_norm_momentum = batch_norm_momentum
        self.norm_eps = norm_eps
        self.initializer_range = initializer_range
        self.sparse_seed = sparse_seed
        self.validate_mrconv()
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        if self.architectures is None:  # the Auto classes' tuple of heads iterates over it (`_get_model_class`)
            self.architectures = []

    def validate_mrconv(self) -> None:
        """Fill the derived fields and raise a `ValueError` naming the first invalid field."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "max_sequence_length", "kernel_size"):
            _check_positive_int(name, getattr(self, name))
        if self.input_dim is not None:
            _check_positive_int("input_dim", self.input_dim)
        if not isinstance(self.branch_batch_norm, bool):
            raise ValueError(f"branch_batch_norm must be a bool, got {self.branch_batch_norm!r}")
        if self.kernel_type not in KERNEL_TYPES:
            raise ValueError(f"kernel_type must be one of {KERNEL_TYPES}, got {self.kernel_type!r}")
        if self.norm_type not in NORM_TYPES:
            raise ValueError(f"norm_type must be one of {NORM_TYPES}, got {self.norm_type!r}")
        if self.conv_implementation not in CONV_IMPLEMENTATIONS:
            raise ValueError(
                f"conv_implementation must be one of {CONV_IMPLEMENTATIONS}, got {self.conv_implementation!r}"
            )
        if self.kernel_size > self.max_sequence_length:
            raise ValueError(
                f"kernel_size ({self.kernel_size}) must not exceed max_sequence_length ({self.max_sequence_length})"
            )
        if not 0.0 <= self.hidden_dropout_prob < 1.0:
            raise ValueError(f"hidden_dropout_prob must be in [0, 1), got {self.hidden_dropout_prob}")
        if not 0.0 < self.batch_norm_momentum <= 1.0:
            raise ValueError(f"batch_norm_momentum must be in (0, 1], got {self.batch_norm_momentum}")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be > 0, got {self.norm_eps}")
        for field in DERIVED_FIELDS:
            if getattr(self, field) is None:
                setattr(self, field, _derived_value(field, vars(self)))
            _check_positive_int(field, getattr(self, field))
        if self.fourier_modes > self.kernel_size // 2 + 1:
            raise ValueError(
                f"fourier_modes ({self.fourier_modes}) must be <= kernel_size // 2 + 1 ({self.kernel_size // 2 + 1}): "
                "the shortest branch has no more frequencies"
            )
        if self.sparse_taps > self.kernel_size:
            raise ValueError(f"sparse_taps ({self.sparse_taps}) must be <= kernel_size ({self.kernel_size})")

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs):
        """`PreTrainedConfig.from_dict`, then validation of the final values (`from_pretrained` overrides included).

        A derived field that equals its derivation from the saved values is derived again from the overridden ones,
        unless it is overridden itself.
        """
        rederive = [
            field
            for field, inputs in DERIVED_FIELDS.items()
            if field not in kwargs
            and any(k in kwargs and kwargs[k] != config_dict.get(k) for k in inputs)
            and config_dict.get(field) == _derived_value(field, {**DERIVATION_DEFAULTS, **config_dict})
        ]
        result = super().from_dict(config_dict, **kwargs)
        config = result[0] if isinstance(result, tuple) else result
        for field in rederive:
            setattr(config, field, None)
        config.validate_mrconv()
        return result

    @property
    def branch_lengths(self) -> list[int]:
        """Kernel length of every branch, l0 * 2^i truncated to `max_sequence_length`."""
        return [min(self.kernel_size * 2**i, self.max_sequence_length) for i in range(self.num_branches)]


# derived field -> the fields it is derived from (see `validate_mrconv`)
DERIVED_FIELDS = {
    "num_branches": ("max_sequence_length", "kernel_size"),
    "fourier_modes": ("kernel_size",),
    "sparse_taps": ("kernel_size",),
}
DERIVATION_DEFAULTS = {"max_sequence_length": 1024, "kernel_size": 16}


def _derived_value(field: str, values: dict[str, Any]) -> int | None:
    """The value `validate_mrconv` gives `field` when it is None, from `values` (None if they are invalid)."""
    try:
        max_length, kernel_size = int(values["max_sequence_length"]), int(values["kernel_size"])
        if field == "num_branches":
            return 1 + math.ceil(math.log2(max_length / kernel_size))
        return max(1, kernel_size // 2) if field == "fourier_modes" else kernel_size
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


__all__ = ["MRConvConfig"]
