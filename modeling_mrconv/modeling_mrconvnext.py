"""PyTorch MRConvNeXt: ConvNeXt with each 7x7 depthwise convolution replaced by one 1D MRConv layer.

The ImageNet model of Cunningham et al. (NeurIPS 2024): a block's feature map is flattened (`config.flatten_order`),
convolved by the sequence model's `MRConvMultiResConv` and unflattened; ConvNeXt's LayerNorm, MLP, layer scale and
drop path are kept (transformers' `models/convnext/modeling_convnext.py`). Each stage has its own `MRConvConfig`
(`MRConvNextConfig.stage_config`); `save_pretrained` merges as `MRConvPreTrainedModel.save_pretrained` does.
"""

import json
import os

import torch
from torch import nn
from transformers import ConvNextImageProcessorPil
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)
from transformers.models.convnext.modeling_convnext import ConvNextDropPath, ConvNextLayerNorm
from transformers.utils import can_return_tuple

from .configuration_mrconv import MRConvConfig
from .configuration_mrconvnext import MRConvNextConfig
from .modeling_mrconv import MRConvMultiResConv, MRConvPreTrainedModel


def flatten_feature_map(features: torch.Tensor, order: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H*W) in `order`: "raster" (row-major) or "snake" (odd rows reversed)."""
    if order == "snake":
        features = features.clone()
        features[:, :, 1::2] = features[:, :, 1::2].flip(-1)
    return features.flatten(2)


def unflatten_feature_map(tokens: torch.Tensor, height: int, width: int, order: str) -> torch.Tensor:
    """The inverse of `flatten_feature_map`: (B, C, H*W) -> (B, C, H, W)."""
    features = tokens.unflatten(-1, (height, width))
    if order == "snake":
        features = features.clone()
        features[:, :, 1::2] = features[:, :, 1::2].flip(-1)
    return features


def image_processor_dict(config: MRConvNextConfig) -> dict:
    """The `preprocessor_config.json` of ConvNeXt preprocessing for `config.image_size`: resize the short side to
    image_size / 0.875, centre-crop (224 -> 256 -> 224; PIL bicubic), rescale to [0, 1], ImageNet mean and std.

    A plain dict: `save_pretrained` needs no Pillow. It loads back through `AutoImageProcessor` with or without
    torchvision.
    """
    return {
        "image_processor_type": "ConvNextImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": config.image_size},
        "crop_pct": 224 / 256,
        "resample": 3,  # PILImageResampling.BICUBIC
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_DEFAULT_MEAN),
        "image_std": list(IMAGENET_DEFAULT_STD),
    }


def build_image_processor(config: MRConvNextConfig, **kwargs) -> ConvNextImageProcessorPil:
    """The PIL/numpy image processor of `image_processor_dict(config)`, `kwargs` overriding; needs Pillow."""
    values = {k: v for k, v in image_processor_dict(config).items() if k != "image_processor_type"}
    return ConvNextImageProcessorPil(**{**values, **kwargs})


class MRConvNextLayer(nn.Module):
    """ConvNeXt block, MRConv over the flattened map instead of the 7x7 depthwise convolution: MRConv (over H*W
    tokens) -> LayerNorm -> Linear(C, 4C) -> act -> Linear(4C, C) -> layer scale -> drop path -> residual."""

    def __init__(self, config: MRConvNextConfig, stage: int, layer_idx: int, drop_path: float = 0.0):
        super().__init__()
        dim = config.hidden_sizes[stage]
        self.stage = stage
        self.flatten_order = config.flatten_order
        self.conv = MRConvMultiResConv(config.stage_config(stage), layer_idx)
        self.layernorm = ConvNextLayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = ACT2FN[config.hidden_act]
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.layer_scale_parameter = (
            nn.Parameter(config.layer_scale_init_value * torch.ones(dim))
            if config.layer_scale_init_value > 0
            else None
        )
        self.drop_path = ConvNextDropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (B, C, H, W). Returns (B, C, H, W)."""
        residual = features
        _, _, height, width = features.shape
        tokens = flatten_feature_map(features, self.flatten_order)  # (B C HW)
        tokens = self.conv(tokens)  # (B C HW)
        features = unflatten_feature_map(tokens, height, width, self.flatten_order)  # (B C H W)
        features = features.permute(0, 2, 3, 1)  # (B H W C)
        features = self.pwconv2(self.act(self.pwconv1(self.layernorm(features))))
        if self.layer_scale_parameter is not None:
            features = self.layer_scale_parameter * features
        features = features.permute(0, 3, 1, 2)  # (B C H W)
        return residual + self.drop_path(features)


class MRConvNextStage(nn.Module):
    """Optional downsampling (LayerNorm + 2x2 stride-2 convolution) followed by the stage's blocks."""

    def __init__(self, config: MRConvNextConfig, stage: int, first_layer_idx: int, drop_path_rates: list[float]):
        super().__init__()
        downsampling = []
        if stage > 0:
            in_channels, out_channels = config.hidden_sizes[stage - 1], config.hidden_sizes[stage]
            downsampling = [
                ConvNextLayerNorm(in_channels, eps=1e-6, data_format="channels_first"),
                nn.Conv2d(in_channels, out_channels, kernel_size=2, stride=2),
            ]
        self.downsampling_layer = nn.Sequential(*downsampling)
        self.layers = nn.Sequential(
            *(MRConvNextLayer(config, stage, first_layer_idx + j, rate) for j, rate in enumerate(drop_path_rates))
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(self.downsampling_layer(features))  # (B C H W)


class MRConvNextPreTrainedModel(MRConvPreTrainedModel):
    """Shares `MRConvPreTrainedModel`'s merge-on-save (`merge_state_dict`), strict loading and `reparameterize`; each
    layer is merged with its stage's `MRConvConfig` (`_mrconv_layer_config`)."""

    config_class = MRConvNextConfig
    config: MRConvNextConfig
    base_model_prefix = "mrconvnext"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["MRConvNextLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, MRConvNextLayer) and module.layer_scale_parameter is not None:
            init.constant_(module.layer_scale_parameter, self.config.layer_scale_init_value)
        else:  # the MRConv modules, then PreTrainedModel's Linear/Conv2d/LayerNorm init
            super()._init_weights(module)

    def _mrconv_layer_config(self, name: str) -> MRConvConfig:
        """The training-form config of the stage holding layer `name` (`...stages.<s>.layers.<j>.conv`)."""
        block = self.get_submodule(name.rpartition(".")[0])  # the MRConvNextLayer around the MRConv layer
        return self.config.stage_config(block.stage, reparameterized=False)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        """`MRConvPreTrainedModel.save_pretrained`, plus `image_processor_dict` when the folder has no processor config
        (for `pipeline("image-classification")`)."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        processor_file = os.path.join(str(save_directory), "preprocessor_config.json")
        if kwargs.get("is_main_process", True) and not os.path.isfile(processor_file):
            with open(processor_file, "w", encoding="utf-8") as file:
                json.dump(image_processor_dict(self.config), file, indent=2, sort_keys=True)
                file.write("\n")
        return result

    def change_sampling_rate(self, factor: float):
        raise NotImplementedError(
            "change_sampling_rate applies to sequence models; an image model's flattened feature map does not "
            "decimate along the sequence when the image resolution changes."
        )


class MRConvNextModel(MRConvNextPreTrainedModel):
    """Stem (patchify conv + LayerNorm), the MRConvNeXt stages, global average pooling and a final LayerNorm."""

    def __init__(self, config: MRConvNextConfig):
        super().__init__(config)
        self.patch_embeddings = nn.Conv2d(
            config.num_channels, config.hidden_sizes[0], kernel_size=config.patch_size, stride=config.patch_size
        )
        self.embeddings_norm = ConvNextLayerNorm(config.hidden_sizes[0], eps=1e-6, data_format="channels_first")
        rates = torch.linspace(0, config.drop_path_rate, sum(config.depths), device="cpu").tolist()  # also under meta
        self.stages = nn.ModuleList()
        first = 0
        for stage, depth in enumerate(config.depths):
            self.stages.append(MRConvNextStage(config, stage, first, rates[first : first + depth]))
            first += depth
        self.layernorm = nn.LayerNorm(config.hidden_sizes[-1], eps=config.layer_norm_eps)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPoolingAndNoAttention:
        """pixel_values: (B, num_channels, H, W). Returns the last feature map (B, C, H/32, W/32) and the pooled,
        normalized features (B, C)."""
        if pixel_values is None:
            raise ValueError("You have to specify pixel_values")
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must have shape (batch, {self.config.num_channels}, height, width), "
                f"got {tuple(pixel_values.shape)}"
            )
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        features = self.embeddings_norm(self.patch_embeddings(pixel_values.to(self.patch_embeddings.weight.dtype)))
        all_hidden_states = (features,) if output_hidden_states else None
        for stage in self.stages:
            features = stage(features)  # (B C H W)
            if output_hidden_states:
                all_hidden_states += (features,)
        pooled = self.layernorm(features.mean([-2, -1]))  # (B C)
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=features, pooler_output=pooled, hidden_states=all_hidden_states
        )


class MRConvNextForImageClassification(MRConvNextPreTrainedModel):
    """MRConvNeXt backbone with a linear classifier on the pooled features (e.g. for ImageNet)."""

    def __init__(self, config: MRConvNextConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.mrconvnext = MRConvNextModel(config)
        self.classifier = (
            nn.Linear(config.hidden_sizes[-1], config.num_labels) if config.num_labels > 0 else nn.Identity()
        )
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutputWithNoAttention:
        """`labels`: (B,) class ids (cross-entropy), or as `ForImageClassification` losses accept."""
        outputs = self.mrconvnext(pixel_values, output_hidden_states=output_hidden_states)
        logits = self.classifier(outputs.pooler_output)  # (B num_labels)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


__all__ = [
    "build_image_processor",
    "image_processor_dict",
    "MRConvNextForImageClassification",
    "MRConvNextModel",
    "MRConvNextPreTrainedModel",
]
