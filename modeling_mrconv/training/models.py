"""The one model builder: a preset's `model:` section (`architecture`, then its config's keys) and a task's data give
the classifier that `scripts/train.py`, the accuracy study and the benchmark train or time.

- `mrconv` (the default): `MRConvConfig` keys, so also MRConv's ablations (`branch_batch_norm: false`,
  `num_branches: 1`, `reparameterized: true` for the dense long kernel trained from scratch);
- `mrconvnext`: MRConvNeXt on the image tasks' raster sequences (`MRConvNextFlattenedForImageClassification`);
- `bert`, `s4d`, `mamba`: the peers (`bench.peers.PeerConfig` keys), MRConv's input layer and head around another
  sequence mixer.
"""

import math
import os
from typing import Any

import torch
from transformers import ConvNextImageProcessorPil, PreTrainedConfig, PreTrainedModel

from modeling_mrconv import (
    MRConvForDocumentPairClassification,
    MRConvForSequenceClassification,
    MRConvNextConfig,
    MRConvNextForImageClassification,
)
from modeling_mrconv.bench.peers import PEER_ARCHITECTURES, PeerForSequenceClassification
from modeling_mrconv.data import TaskData
from modeling_mrconv.training.schema import config_class


class MRConvNextFlattenedForImageClassification(MRConvNextForImageClassification):
    """`MRConvNextForImageClassification` fed by the image tasks: `input_values` (B, H*W, C) in raster order
    (`data.image.image_to_sequence`) become `pixel_values` (B, C, H, W), H = W = sqrt(H*W).

    `save_pretrained` writes a plain packaged `MRConvNextForImageClassification` export (merged; config, `auto_map`
    and copied code name the package's class) plus `image_processor` when set, so that
    `pipeline("image-classification", model=dir)` gives this model's predictions on the task's inputs.
    """

    image_processor: ConvNextImageProcessorPil | None = None  # shipped with the export; set by build_model

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        **kwargs,
    ):
        """`input_values` (B, H*W, C) with an all-ones `attention_mask` (B, H*W), or `pixel_values` as the parent."""
        if input_values is not None:
            if pixel_values is not None:
                raise ValueError("pass input_values (B, H*W, C) or pixel_values (B, C, H, W), not both")
            pixel_values = sequence_to_pixels(input_values, attention_mask)
        return super().forward(pixel_values=pixel_values, labels=labels, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, state_dict: dict | None = None, **kwargs):
        """The merged export of `MRConvNextForImageClassification` (from `state_dict`, else this model's weights),
        then `image_processor` (replacing the ImageNet default the parent writes)."""
        with torch.device("meta"):  # the export only needs the architecture: the weights come from state_dict
            plain = MRConvNextForImageClassification(self.config)
        weights = state_dict if state_dict is not None else self.state_dict()
        result = plain.save_pretrained(save_directory, *args, state_dict=weights, **kwargs)
        if self.image_processor is not None and kwargs.get("is_main_process", True):
            self.image_processor.save_pretrained(save_directory)
        return result

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`from_pretrained`, keeping a local folder's image processor for the next `save_pretrained`."""
        result = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = result[0] if isinstance(result, tuple) else result  # (model, loading_info) when asked for
        folder = str(pretrained_model_name_or_path)
        if os.path.isfile(os.path.join(folder, "preprocessor_config.json")):
            model.image_processor = ConvNextImageProcessorPil.from_pretrained(folder)
        return result


def sequence_to_pixels(input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Raster sequences (B, H*W, C) -> images (B, C, H, W) with H = W; padded positions are refused."""
    if input_values.dim() != 3:
        raise ValueError(
            f"input_values must have shape (batch, height * width, channels), got {tuple(input_values.shape)}"
        )
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        raise ValueError(
            "MRConvNeXt takes whole images: attention_mask has padded positions (images of different sizes); "
            "set data.image_size to resize every image to one square"
        )
    length = input_values.shape[1]
    side = math.isqrt(length)
    if side * side != length:
        raise ValueError(f"input_values: {length} positions per image is not a square image (H*W with H = W)")
    return input_values.transpose(1, 2).unflatten(-1, (side, side))  # (B C H W): position h * W + w -> (h, w)


def export_image_processor(task: TaskData, image_size: int) -> ConvNextImageProcessorPil:
    """The ConvNeXt processor that turns a PIL image into the task's inputs: the resize of `data.image_size` (short
    side to `image_size`, centre crop), the task's rescale (1/255) and normalization (the train split's per-channel
    mean and std), RGB conversion for C = 3; grayscale tasks (C = 1) take `image.convert("L")` images."""
    mean, std, channels = task.input_mean, task.input_std, task.input_dim
    return ConvNextImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_pct=1.0,
        do_convert_rgb=channels == 3,
        rescale_factor=float(task.input_scale or 1 / 255),
        do_normalize=mean is not None,
        image_mean=[0.0] * channels if mean is None else [float(m) for m in mean],
        image_std=[1.0] * channels if std is None else [float(s) for s in std],
    )


def model_class(task: TaskData, architecture: str | None = None) -> type[torch.nn.Module]:
    """The class `build_model` builds: MRConvNeXt's image wrapper, a peer, the pair head for two-document tasks
    (retrieval), else the sequence head."""
    if (architecture or "mrconv") == "mrconvnext":
        return MRConvNextFlattenedForImageClassification
    if architecture in PEER_ARCHITECTURES:
        return PeerForSequenceClassification
    return MRConvForDocumentPairClassification if task.pair else MRConvForSequenceClassification


def model_config(model_cfg: dict[str, Any], task: TaskData) -> PreTrainedConfig:
    """The config of an `mrconv` or peer `model:` section (MRConvNeXt's is sized from the images: `build_model`),
    sized from the task's data, single-label."""
    model_cfg = dict(model_cfg)
    architecture = model_cfg.pop("architecture", None) or "mrconv"
    if architecture in PEER_ARCHITECTURES:
        if task.pair:
            raise ValueError(f"model.architecture: {architecture} reads one sequence, not a document pair (retrieval)")
        model_cfg["architecture"] = architecture
    config = config_class(architecture)(
        **{"max_sequence_length": task.max_length, **model_cfg},
        vocab_size=task.vocab_size or 1,
        input_dim=task.input_dim,
        pad_token_id=task.pad_token_id,
        **label_fields(task),
    )
    if config.max_sequence_length < task.max_length:
        raise ValueError(f"model.max_sequence_length {config.max_sequence_length} < data length {task.max_length}")
    return config


def label_fields(task: TaskData) -> dict[str, Any]:
    """The config fields of a single-label classifier of the task's labels."""
    return {
        "num_labels": task.num_labels,
        "id2label": task.id2label,
        "label2id": {v: k for k, v in task.id2label.items()},
        "problem_type": "single_label_classification",
    }


def build_model(model_cfg: dict[str, Any], task: TaskData) -> PreTrainedModel:
    """The classifier for a task (`model.architecture`: mrconv | mrconvnext | bert | s4d | mamba | cnn), sized from the
    data, single-label, initialized from the current torch seed."""
    if (model_cfg.get("architecture") or "mrconv") != "mrconvnext":
        return model_class(task, model_cfg.get("architecture"))(model_config(model_cfg, task))
    # MRConvNeXt on square images: num_channels = C and image_size = sqrt(H*W) from the data
    if task.input_dim is None or task.pair:
        raise ValueError(
            "model.architecture: mrconvnext needs an image task (continuous (H*W, C) inputs such as task image or "
            f"scifar), got a token task ({task.description})"
        )
    side = math.isqrt(task.max_length)
    if side * side != task.max_length:
        raise ValueError(
            f"model.architecture: mrconvnext needs square images, but the data's images have {task.max_length} "
            "pixels (not H*W with H = W); set data.image_size to resize them to a square"
        )
    keys = {k: v for k, v in model_cfg.items() if k != "architecture"}
    config = MRConvNextConfig(**keys, num_channels=task.input_dim, image_size=side, **label_fields(task))
    model = MRConvNextFlattenedForImageClassification(config)
    model.image_processor = export_image_processor(task, side)
    return model
