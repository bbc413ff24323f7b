"""The two checkpoint forms of an MRConv model and the rules for loading and saving them.

Training form: the branches, their BatchNorms, alpha and D (`config.reparameterized=False`). Merged form: one kernel
and bias per layer (paper eq. 7). `save_pretrained` writes the merged form except into Trainer's resumable
`checkpoint-<step>` folders; `from_pretrained` returns the form asked for, or says why it cannot.
"""

import os
import re

from transformers import PreTrainedConfig
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .configuration_mrconv import MRConvConfig


# Trainer's resumable checkpoint folders, `checkpoint-<step>` (transformers.trainer_utils), keep the training form
TRAINER_CHECKPOINT_RE = re.compile(rf"{re.escape(PREFIX_CHECKPOINT_DIR)}-\d+")
TRAINING_FORM_SUBFOLDER = "training_form"
# heads whose checkpoints must come back as the class that wrote them (config.architectures)
HEAD_ARCHITECTURES = ("MRConvForSequenceClassification", "MRConvForDocumentPairClassification")
# config fields whose overrides in `from_pretrained` change the kernels' shapes
SHAPE_FIELDS = ("max_sequence_length", "kernel_size", "num_branches")
# keyword arguments of `from_pretrained` that locate config.json (read before the model is built)
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")


def is_trainer_checkpoint(save_directory: str | os.PathLike) -> bool:
    """True for Trainer's resumable `checkpoint-<step>` folders, which keep the training form on save."""
    return TRAINER_CHECKPOINT_RE.fullmatch(os.path.basename(os.path.normpath(str(save_directory)))) is not None


def merges_on_load(path, saved: PreTrainedConfig, requested: bool | None) -> bool:
    """True when a training-form checkpoint is asked for merged; raises when a merged one is asked unmerged."""
    saved_merged = bool(getattr(saved, "reparameterized", False))
    if requested is None or bool(requested) == saved_merged:
        return False
    if not saved_merged:
        return True
    training_form = os.path.join(str(path), TRAINING_FORM_SUBFOLDER)
    hint = (
        f" This folder has one: `from_pretrained({str(path)!r}, subfolder={TRAINING_FORM_SUBFOLDER!r})`."
        if os.path.isfile(os.path.join(training_form, "config.json"))
        else ""
    )
    raise ValueError(
        f"{path} holds a merged MRConv checkpoint (config.reparameterized=True): one kernel and bias per layer. "
        "The branch kernels, their BatchNorms and alpha are not in it and cannot be recovered, so it cannot be "
        "loaded with reparameterized=False. Load it as saved to run or fine-tune the merged model. To keep a "
        "training-form checkpoint, save with `save_pretrained(dir, reparameterize=False)` or "
        "`save_pretrained(dir, include_training_form=True)`." + hint
    )


def check_kernel_shapes(path, saved: PreTrainedConfig, config: PreTrainedConfig | None) -> None:
    """Refuse a requested config whose kernels have other shapes than the checkpoint's, naming the values, instead of
    transformers' generic size-mismatch error."""
    if not isinstance(saved, MRConvConfig) or not isinstance(config, MRConvConfig):
        return
    merged = bool(saved.reparameterized)
    same_lengths = merged or config.branch_lengths == saved.branch_lengths
    if config.max_sequence_length == saved.max_sequence_length and same_lengths:
        return
    shapes = (
        "its merged kernels cover max_sequence_length positions"
        if merged
        else f"it has num_branches={saved.num_branches} branch kernels of lengths {saved.branch_lengths}, the "
        f"requested config {config.num_branches} of lengths {config.branch_lengths}"
    )
    raise ValueError(
        f"{path} was saved with max_sequence_length={saved.max_sequence_length}, kernel_size={saved.kernel_size}; "
        f"the requested max_sequence_length={config.max_sequence_length}, kernel_size={config.kernel_size} gives "
        f"kernels of other shapes ({shapes}), so its weights do not load. Load it with its saved values (drop the "
        "override), or pass ignore_mismatched_sizes=True to start the mismatched kernels from their initialization."
    )


def check_architecture(class_name: str, path, saved: PreTrainedConfig) -> None:
    """Refuse to load one head's checkpoint as another head (the classifier would stay random)."""
    written = [a for a in (getattr(saved, "architectures", None) or []) if a in HEAD_ARCHITECTURES]
    if class_name not in HEAD_ARCHITECTURES or not written or class_name in written:
        return
    raise ValueError(
        f"{path} was written by {written[0]} (config.architectures); loading it as {class_name} would leave "
        f"the classifier at random values. Load it with {written[0]}.from_pretrained or "
        "AutoModelForSequenceClassification.from_pretrained, which pick the class from config.architectures. "
        f"To start a new {class_name} from its backbone, build `{class_name}(config)` and load "
        "`MRConvModel.from_pretrained(path)` into its `.mrconv`."
    )


__all__ = ["TRAINING_FORM_SUBFOLDER", "is_trainer_checkpoint"]
