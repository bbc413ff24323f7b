"""MRConvNeXt configuration: ConvNeXt with every 7x7 depthwise convolution replaced by one 1D MRConv layer.

Field names follow transformers' `ConvNextConfig`; the MRConv fields (`kernel_type`, `kernel_size`, ...) take one
value for all stages or a list with one value per stage, and are turned into one `MRConvConfig` per stage by
`stage_config`, which also validates them.
"""

from transformers import PreTrainedConfig

from .configuration_mrconv import MRConvConfig, _check_positive_int


FLATTEN_ORDERS = ("raster", "snake")
# ConvNeXt-T/S/B depths and widths (Liu et al. 2022, Table 9)
PRESETS = {
    "tiny": {"depths": [3, 3, 9, 3], "hidden_sizes": [96, 192, 384, 768], "drop_path_rate": 0.1},
    "small": {"depths": [3, 3, 27, 3], "hidden_sizes": [96, 192, 384, 768], "drop_path_rate": 0.4},
    "base": {"depths": [3, 3, 27, 3], "hidden_sizes": [128, 256, 512, 1024], "drop_path_rate": 0.5},
}
PER_STAGE_FIELDS = ("kernel_type", "kernel_size", "fourier_modes", "sparse_taps")


class MRConvNextConfig(PreTrainedConfig):
    r"""
    Configuration of an MRConvNeXt image classifier (Cunningham et al., NeurIPS 2024, the ImageNet model): ConvNeXt
    (Liu et al. 2022) with one MRConv layer over the flattened feature map per block; `.tiny()`, `.small()`, `.base()`.

    Args:
        num_channels (`int`, *optional*, defaults to 3):
            Channels of the input images.
        patch_size (`int`, *optional*, defaults to 4):
            Patch size (and stride) of the stem convolution.
        num_stages (`int`, *optional*, defaults to 4):
            Number of stages; every stage after the first halves the resolution.
        hidden_sizes (`list[int]`, *optional*, defaults to `[96, 192, 384, 768]`):
            Channels of each stage.
        depths (`list[int]`, *optional*, defaults to `[3, 3, 9, 3]`):
            Blocks per stage.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the block MLP.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal init of linear and convolution weights.
        layer_norm_eps (`float`, *optional*, defaults to 1e-12):
            Epsilon of the final LayerNorm (the block LayerNorms use 1e-6, as ConvNeXt).
        layer_scale_init_value (`float`, *optional*, defaults to 1e-6):
            Initial layer scale of every block; 0 disables layer scale.
        drop_path_rate (`float`, *optional*, defaults to 0.0):
            Stochastic depth rate of the last block (linearly increasing from 0 over the blocks).
        image_size (`int`, *optional*, defaults to 224):
            Training size: stage s has (image_size / (patch_size 2^s))^2 tokens (max_sequence_length); any size runs.
        kernel_type (`str` or `list[str]`, *optional*, defaults to `"fourier"`):
            MRConv kernel type, one or one per stage; smooth Fourier kernels suit images (model_card.md, MRConvNeXt).
        kernel_size (`int` or `list[int]`, *optional*):
            l0 per stage; defaults to the stage's map width (56, ..., 7 at 224): in raster order one row each side.
        fourier_modes (`int` or `list[int]`, *optional*):
            Fourier modes per branch; defaults to `kernel_size // 2` per stage.
        sparse_taps (`int` or `list[int]`, *optional*):
            Free taps per sparse branch; defaults to `kernel_size` per stage.
        bidirectional (`bool`, *optional*, defaults to `True`):
            Two-sided kernels: a token sees the whole image, as the 7x7 window sees both sides.
        flatten_order (`str`, *optional*, defaults to `"raster"`):
            `"raster"` (row-major) or `"snake"` (odd rows reversed: consecutive tokens are always neighbours).
        batch_norm_momentum (`float`, *optional*, defaults to 0.1):
            Momentum of the branch BatchNorms.
        batch_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the branch BatchNorms.
        sparse_seed (`int`, *optional*, defaults to 0):
            Seed of the sparse tap positions.
        reparameterized (`bool`, *optional*, defaults to `False`):
            Build the merged inference form (one kernel + bias per MRConv layer).
        conv_implementation (`str`, *optional*, defaults to `"auto"`):
            How the multi-branch MRConv layers are computed (`MRConvConfig.conv_implementation`).
        reparameterize_on_save (`bool`, *optional*, defaults to `True`):
            `save_pretrained` writes the merged form (Trainer `checkpoint-<step>` folders keep the branches).

    Example:

    ```python
    >>> from modeling_mrconv import MRConvNextConfig, MRConvNextForImageClassification

    >>> config = MRConvNextConfig.tiny(num_labels=1000)
    >>> [config.stage_config(s).max_sequence_length for s in range(4)]
    [3136, 784, 196, 49]
    >>> model = MRConvNextForImageClassification(config)
    ```"""

    model_type = "mrconvnext"
    attribute_map = {"num_hidden_layers": "num_stages"}

    def __init__(
        self,
        num_channels: int = 3,
        patch_size: int = 4,
        num_stages: int = 4,
        hidden_sizes: list[int] | None = None,
        depths: list[int] | None = None,
        hidden_act: str = "gelu",
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        layer_scale_init_value: float = 1e-6,
        drop_path_rate: float = 0.0,
        image_size: int = 224,
        kernel_type: str | list[str] = "fourier",
        kernel_size: int | list[int] | None = None,
        fourier_modes: int | list[int] | None = None,
        sparse_taps: int | list[int] | None = None,
        bidirectional: bool = True,
        flatten_order: str = "raster",
        batch_norm_momentum: float = 0.1,
        batch_norm_eps: float = 1e-5,
        sparse_seed: int = 0,
        reparameterized: bool = False,
        conv_implementation: str = "auto",
        reparameterize_on_save: bool = True,
        **kwargs,
    ):
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.num_stages = num_stages
        self.hidden_sizes = list(hidden_sizes) if hidden_sizes is not None else [96, 192, 384, 768]
        self.depths = list(depths) if depths is not None else [3, 3, 9, 3]
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.layer_scale_init_value = layer_scale_init_value
        self.drop_path_rate = drop_path_rate
        self.image_size = image_size
        self.kernel_type = kernel_type
        self.kernel_size = kernel_size
        self.fourier_modes = fourier_modes
        self.sparse_taps = sparse_taps
        self.bidirectional = bidirectional
        self.flatten_order = flatten_order
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_eps = batch_norm_eps
        self.sparse_seed = sparse_seed
        self.reparameterized = reparameterized
        self.conv_implementation = conv_implementation
        self.reparameterize_on_save = reparameterize_on_save
        super().__init__(**kwargs)
        self._validate()

    @classmethod
    def tiny(cls, **kwargs) -> "MRConvNextConfig":
        """MRConvNeXt-T: ConvNeXt-T depths (3, 3, 9, 3) and widths (96, ..., 768), drop path 0.1."""
        return cls(**{**PRESETS["tiny"], **kwargs})

    @classmethod
    def small(cls, **kwargs) -> "MRConvNextConfig":
        """MRConvNeXt-S: ConvNeXt-S depths (3, 3, 27, 3) and widths (96, ..., 768), drop path 0.4."""
        return cls(**{**PRESETS["small"], **kwargs})

    @classmethod
    def base(cls, **kwargs) -> "MRConvNextConfig":
        """MRConvNeXt-B: ConvNeXt-B depths (3, 3, 27, 3) and widths (128, ..., 1024), drop path 0.5."""
        return cls(**{**PRESETS["base"], **kwargs})

    def _validate(self) -> None:
        for name in ("num_channels", "patch_size", "num_stages", "image_size"):
            _check_positive_int(name, getattr(self, name))
        for name in ("hidden_sizes", "depths"):
            if len(getattr(self, name)) != self.num_stages:
                raise ValueError(
                    f"{name} must have num_stages={self.num_stages} entries, got {len(getattr(self, name))}"
                )
        for name in PER_STAGE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, (list, tuple)) and len(value) != self.num_stages:
                raise ValueError(f"{name} must be one value or num_stages={self.num_stages} values, got {value!r}")
        if self.flatten_order not in FLATTEN_ORDERS:
            raise ValueError(f"flatten_order must be one of {FLATTEN_ORDERS}, got {self.flatten_order!r}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        for stage in range(self.num_stages):
            self.stage_config(stage)

    def stage_value(self, name: str, stage: int):
        value = getattr(self, name)
        return value[stage] if isinstance(value, (list, tuple)) else value

    def stage_config(self, stage: int, reparameterized: bool | None = None) -> MRConvConfig:
        """The `MRConvConfig` of the MRConv layers of `stage` (validated; errors name the stage)."""
        side = self.image_size // (self.patch_size * 2**stage)  # the feature map's side at image_size
        if side < 1:
            raise ValueError(
                f"image_size={self.image_size} is too small for {self.num_stages} stages with patch_size="
                f"{self.patch_size}: stage {stage} would have no token"
            )
        kernel_size = self.stage_value("kernel_size", stage)
        try:
            return MRConvConfig(
                hidden_size=self.hidden_sizes[stage],
                num_hidden_layers=1,
                max_sequence_length=side * side,
                kernel_type=self.stage_value("kernel_type", stage),
                kernel_size=kernel_size if kernel_size is not None else side,
                fourier_modes=self.stage_value("fourier_modes", stage),
                sparse_taps=self.stage_value("sparse_taps", stage),
                bidirectional=self.bidirectional,
                batch_norm_momentum=self.batch_norm_momentum,
                norm_eps=self.batch_norm_eps,
                sparse_seed=self.sparse_seed,
                reparameterized=self.reparameterized if reparameterized is None else reparameterized,
                conv_implementation=self.conv_implementation,
            )
        except ValueError as error:
            raise ValueError(f"stage {stage}: {error}") from None


__all__ = ["MRConvNextConfig"]
