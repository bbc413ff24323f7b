"""PyTorch MRConv model (Cunningham et al., NeurIPS 2024: reparameterized multi-resolution convolutions)."""

import copy
import functools
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput
from transformers.utils import can_return_tuple, logging

from .batchnorm import MRConvBatchNorm, recalibrate_batch_norms
from .branch_conv import fast_multires_forward, reference_multires_forward
from .cache_mrconv import MRConvCache
from .checkpoint_forms import (
    HUB_KWARGS,
    SHAPE_FIELDS,
    TRAINING_FORM_SUBFOLDER,
    check_architecture,
    check_kernel_shapes,
    is_trainer_checkpoint,
    merges_on_load,
)
from .configuration_mrconv import CONV_IMPLEMENTATIONS, MRConvConfig
from .export_conv import dft_conv_bias
from .fftconv import compute_dtype, fft_conv_bias, is_exporting, kernel_spectrum
from .kernels import KERNEL_CLASSES, MRConvKernel
from .reparam import merge_branches, merge_with_skip


logger = logging.get_logger(__name__)

MERGED_TRAIN_WARNING = (
    "This MRConv model is in the merged (reparameterized) form: training it trains one dense kernel per channel, "
    "not the multi-resolution branches, and usually generalizes worse. To fine-tune the training form, export with "
    "`save_pretrained(dir, include_training_form=True)` and load `from_pretrained(dir, subfolder='training_form')`."
)
BIDIRECTIONAL_CACHE_WARNING = (
    "use_cache=True is ignored: this MRConv model is bidirectional (config.bidirectional=True) and reads whole "
    "sequences; only causal models stream. The outputs are the full forward's and `cache` is None."
)


def resolve_attention_mask(
    input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, pad_token_id: int | None
) -> torch.Tensor | None:
    """The given mask, or one derived from `pad_token_id` when token ids contain padding and no mask was passed."""
    if attention_mask is not None or input_ids is None or pad_token_id is None:
        return attention_mask
    padding = input_ids == pad_token_id
    if torch.compiler.is_compiling():
        # torch.compile / torch.export: no data-dependent branch; an all-valid mask gives the same outputs as None
        return ~padding
    if not padding.any():
        return None
    logger.warning_once("No attention_mask given: positions equal to pad_token_id are treated as padding.")
    return ~padding


def zero_padding(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, H, L) hidden states zeroed where the (B, L) mask is 0 (`torch.where`: NaN or inf * 0 would survive)."""
    if mask is None:
        return hidden_states
    return torch.where(mask[:, None, :] > 0, hidden_states, hidden_states.new_zeros(()))


def masked_mean(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the valid positions of (B, H, L) hidden states: (B, H)."""
    if mask is None:
        return hidden_states.mean(-1)
    count = mask.to(hidden_states.dtype).sum(-1, keepdim=True).clamp_min(1.0)  # (B 1)
    return zero_padding(hidden_states, mask).sum(-1) / count


BIT_VIEWS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}  # element size -> integer dtype


def same_bits(a: torch.Tensor, b: torch.Tensor | None) -> bool:
    """True when a and b have the same shape, dtype, device and bits (integer views: NaN == NaN, -0.0 != 0.0)."""
    if b is None or a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    bits = BIT_VIEWS[a.element_size()]
    return torch.equal(a.contiguous().view(bits), b.contiguous().view(bits))


class MRConvMultiResConv(nn.Module):
    """The MRConv layer: N depthwise branch convolutions, a BatchNorm per branch, per-channel weights alpha.

    Training form (paper eqs. 4-6): y = sum_i alpha_i * BN_i(k_i * u) + D * u, computed by `branch_forward` (the one
    dispatch point) with `branch_conv.fast_multires_forward` or `branch_conv.reference_multires_forward`.
    Merged form (`reparameterize()` or `config.reparameterized=True`): y = k_rep * u + b_rep, one FFT convolution.
    Without branch BatchNorm (`config.branch_batch_norm=False`, an ablation; `batch_norm` is None):
    y = (sum_i alpha_i k_i) * u + D * u in both modes, one FFT convolution.
    """

    def __init__(self, config: MRConvConfig, layer_idx: int = 0):
        super().__init__()
        self.layer_idx = layer_idx
        self.conv_implementation = config.conv_implementation
        self.max_length = config.max_sequence_length
        self.num_directions = 2 if config.bidirectional else 1
        H, N = config.hidden_size, config.num_branches
        # every optional attribute is always assigned: exactly one of the two forms is not None
        self.kernel: MRConvKernel | None = None
        self.batch_norm: MRConvBatchNorm | None = None
        self.alpha: nn.Parameter | None = None
        self.skip: nn.Parameter | None = None
        self.merged_kernel: nn.Parameter | None = None
        self.merged_bias: nn.Parameter | None = None
        # merged-kernel spectrum cache (CPU, see `merged_spectrum`): plain attributes, not buffers, so that
        # `.to(dtype)` never casts the complex spectrum
        self._spectrum: torch.Tensor | None = None
        self._spectrum_key: tuple | None = None
        self._spectrum_source: torch.Tensor | None = None  # bitwise copy of the kernel the cached spectrum is of
        if config.reparameterized:
            self.merged_kernel = nn.Parameter(torch.empty(self.num_directions, H, self.max_length))  # (S H L)
            self.merged_bias = nn.Parameter(torch.empty(H))
        else:
            self.kernel = KERNEL_CLASSES[config.kernel_type](config, layer_idx)
            if config.branch_batch_norm:
                self.batch_norm = MRConvBatchNorm((N, H), eps=config.norm_eps, momentum=config.batch_norm_momentum)
            self.alpha = nn.Parameter(torch.empty(N, H))  # (N H)
            self.skip = nn.Parameter(torch.empty(H))  # (H) the S4 "D" term, folded into lag 0 when merging

    @property
    def is_reparameterized(self) -> bool:
        return self.merged_kernel is not None

    def reset_parameters(self) -> None:
        if self.is_reparameterized:
            # a single long-conv layer trained from scratch: unit kernel energy, zero bias
            init.normal_(self.merged_kernel, std=1.0 / math.sqrt(self.merged_kernel.shape[-1]))
            init.zeros_(self.merged_bias)
        else:
            # equal resolutions at init, scaled so the sum of N unit-variance branches has unit variance
            init.constant_(self.alpha, 1.0 / math.sqrt(self.alpha.shape[0]))
            init.normal_(self.skip)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, H, L) with padded positions already zeroed; mask: (B, L) or None. Returns (B, H, L) in x's dtype."""
        if self.merged_kernel is not None:
            if is_exporting():  # ONNX has no complex type: the exact real DFT-by-GEMM form (export_conv.py)
                return dft_conv_bias(x, self.merged_kernel, self.merged_bias).to(x.dtype)  # (B H L)
            return fft_conv_bias(x, self.merged_spectrum(x.shape[-1]), self.merged_bias).to(x.dtype)  # (B H L)
        if self.batch_norm is None:  # no branch BatchNorm: one convolution, kernel (S H L) sum_i alpha_i k_i + D delta
            L, dtype = x.shape[-1], compute_dtype(x.dtype)
            kernel = merge_with_skip(self.kernel(), self.alpha.to(dtype), self.skip, min(L, self.max_length), dtype)
            return fft_conv_bias(x, kernel_spectrum(kernel, L), kernel.new_zeros(kernel.shape[1])).to(x.dtype)
        return self.branch_forward(x, mask)  # (B H L)

    def branch_forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The branches, BatchNorms and alpha-weighted sum, computed as `conv_implementation` says: (B, H, L)."""
        implementation = self.conv_implementation
        synchronized = self.batch_norm.training and self.batch_norm.synchronized
        if implementation == "auto":
            implementation = "reference" if synchronized else "fast"
        args = (x, self.kernel(), self.batch_norm, self.alpha, self.skip, mask)
        if implementation == "reference":
            return reference_multires_forward(*args)
        if synchronized:
            raise ValueError(
                "conv_implementation='fast' takes local BatchNorm statistics; with set_sync_batch_norm(True) in a "
                "distributed run use conv_implementation='auto' or 'reference'."
            )
        return fast_multires_forward(*args)

    def merged_spectrum(self, L: int) -> torch.Tensor:
        """Spectrum (H, L + 1) of the merged kernel for length L; on CPU cached while the kernel's bytes are unchanged.

        Neither the version counter nor `data_ptr` sees an in-place edit through `.data` (EMA, custom loaders), so
        the cache is checked against a bitwise copy (`same_bits`: 0.5 ms against 4.6 ms for the spectrum of a
        (2, 128, 4,096) kernel, one thread). Elsewhere it is recomputed: a check would need a host sync on an
        accelerator, and under torch.compile / torch.export the layer stays a pure function.
        """
        kernel = self.merged_kernel
        if (
            (torch.is_grad_enabled() and kernel.requires_grad)  # fine-tuning the merged kernel: gradients must flow
            or kernel.device.type != "cpu"
            or torch.compiler.is_compiling()
        ):
            return kernel_spectrum(kernel, L)
        # a spectrum made under inference_mode could not be saved for backward outside it
        key = (L, kernel.shape, kernel.dtype, torch.is_inference_mode_enabled())
        source = self._spectrum_source
        if self._spectrum_key != key or self._spectrum is None or not same_bits(kernel, source):
            with torch.no_grad():
                self._spectrum = kernel_spectrum(kernel, L)  # (H L+1)
                self._spectrum_source = kernel.detach().clone(memory_format=torch.contiguous_format)
            self._spectrum_key = key
        return self._spectrum

    @torch.no_grad()
    def merged_parameters(
        self, kernels: list[torch.Tensor] | None = None, length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode equivalent single kernel (S, H, length) and bias (H), float64 (paper eq. 7), of the branch
        `kernels` (default: this layer's; a merged layer's own) at `length` (default: `max_length`)."""
        if self.merged_kernel is not None:
            return self.merged_kernel.detach().double(), self.merged_bias.detach().double()
        kernels, length = self.kernel() if kernels is None else kernels, length or self.max_length
        if self.batch_norm is None:
            kernel = merge_with_skip(kernels, self.alpha, self.skip, length)  # (S H L)
            return kernel, kernel.new_zeros(kernel.shape[1])  # (S H L), (H)
        return merge_branches(kernels, self.alpha, self.batch_norm, self.skip, length)  # (S H L), (H)

    @torch.no_grad()
    def reparameterize(self) -> "MRConvMultiResConv":
        """Fold the branches, BatchNorms, alpha and D into one kernel + bias, in place. A second call is a no-op."""
        if self.merged_kernel is not None:
            return self
        dtype = self.alpha.dtype
        kernel, bias = self.merged_parameters()
        self.merged_kernel = nn.Parameter(kernel.to(dtype))
        self.merged_bias = nn.Parameter(bias.to(dtype))
        self.kernel = self.batch_norm = self.alpha = self.skip = None
        return self


class MRConvBlock(nn.Module):
    """MRConv -> GELU -> dropout -> pointwise linear -> GLU -> dropout -> residual, with pre- or post-norm."""

    def __init__(self, config: MRConvConfig, layer_idx: int = 0):
        super().__init__()
        H = config.hidden_size
        self.prenorm = config.prenorm
        self.conv = MRConvMultiResConv(config, layer_idx)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.output_linear = nn.Conv1d(H, 2 * H, kernel_size=1)  # pointwise D -> 2D, halved by the GLU
        self.glu = nn.GLU(dim=1)
        self.norm = MRConvNorm(config)

    def forward(
        self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None, cache: MRConvCache | None = None
    ) -> torch.Tensor:
        """hidden_states: (B, H, L); mask: (B, L) or None; cache: streaming state (eval only). Returns (B, H, L)."""
        residual = hidden_states
        if self.prenorm:
            hidden_states = self.norm(hidden_states, mask)
        hidden_states = zero_padding(hidden_states, mask)  # padding never reaches the conv
        # streaming: only the convolution reads other positions; everything else in the block is per-position
        conv = self.conv(hidden_states, mask) if cache is None else cache.layer_forward(self.conv, hidden_states)
        hidden_states = self.dropout(self.activation(conv))  # (B H L)
        hidden_states = self.dropout(self.glu(self.output_linear(hidden_states)))  # (B H L)
        hidden_states = residual + hidden_states
        if not self.prenorm:
            hidden_states = self.norm(hidden_states, mask)
        return hidden_states


class MRConvNorm(nn.Module):
    """Channel normalization of (B, H, L) activations: masked BatchNorm or LayerNorm, as `config.norm_type` says."""

    def __init__(self, config: MRConvConfig):
        super().__init__()
        self.batch_norm: MRConvBatchNorm | None = None
        self.layer_norm: nn.LayerNorm | None = None
        if config.norm_type == "batch":
            self.batch_norm = MRConvBatchNorm(
                (config.hidden_size,), eps=config.norm_eps, momentum=config.batch_norm_momentum
            )
        else:
            self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.batch_norm is not None:
            return self.batch_norm(hidden_states, mask)
        return self.layer_norm(hidden_states.transpose(1, 2)).transpose(1, 2)


class MRConvPreTrainedModel(PreTrainedModel):
    config_class = MRConvConfig
    config: MRConvConfig
    base_model_prefix = "mrconv"
    main_input_name = "input_ids"
    _no_split_modules = ["MRConvBlock"]
    # activation checkpointing would update the BatchNorm running statistics twice per step
    supports_gradient_checkpointing = False
    # the losses are plain means: Trainer must not pass num_items_in_batch or rescale them for accumulation
    accepts_loss_kwargs = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained` that returns the form and the class the checkpoint was written for.

        `reparameterized=True` on a training-form checkpoint merges it (exact); the reverse raises. Loading one
        head's checkpoint as the other, or overrides that change the kernels' shapes, raise (`checkpoint_forms.py`).
        """
        requested = kwargs.pop("reparameterized", None)
        config = kwargs.get("config")
        if requested is None and isinstance(config, MRConvConfig):
            requested = config.reparameterized
        if pretrained_model_name_or_path is None:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        hub_kwargs = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
        saved = cls.config_class.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        check_architecture(cls.__name__, pretrained_model_name_or_path, saved)
        if not kwargs.get("ignore_mismatched_sizes"):
            overrides = {k: kwargs[k] for k in SHAPE_FIELDS if k in kwargs}
            requested_config = config
            if overrides and not isinstance(config, PreTrainedConfig):
                requested_config = cls.config_class.from_pretrained(
                    pretrained_model_name_or_path, **hub_kwargs, **overrides
                )
            check_kernel_shapes(pretrained_model_name_or_path, saved, requested_config)
        merge_on_load = merges_on_load(pretrained_model_name_or_path, saved, requested)
        if merge_on_load and isinstance(config, MRConvConfig):  # load the training form it holds, then merge
            config = copy.deepcopy(config)
            config.reparameterized = False
            kwargs["config"] = config
        result = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        if merge_on_load:
            (result[0] if isinstance(result, tuple) else result).reparameterize()
        return result

    def train(self, mode: bool = True) -> "MRConvPreTrainedModel":
        """`nn.Module.train`; warns once per process when a merged model is put into training mode."""
        if mode and self.config.reparameterized and not self.training:
            logger.warning_once(MERGED_TRAIN_WARNING)
        return super().train(mode)

    def recalibrate_batch_norm(
        self, batches: Iterable[Mapping[str, torch.Tensor] | torch.Tensor], num_batches: int | None = None
    ) -> "MRConvPreTrainedModel":
        """Reset every BatchNorm's running statistics to their average over `batches`; returns self.

        Early in training the running averages trail the weights, so eval mode and the merged export lag behind
        train mode. This takes the cumulative average (`momentum=None`, as `torch.optim.swa_utils.update_bn`) of the
        batch statistics with the current weights, dropout off; batches without a valid position are skipped.
        The weights do not change: a later export is exactly the recalibrated eval-mode model.

        Args:
            batches: model-input dicts (`labels` ignored) or tensors of the main input.
            num_batches: use at most this many batches.
        """
        if self.config.reparameterized:
            raise ValueError(
                "recalibrate_batch_norm needs the training form: the branch BatchNorms of a merged model are folded "
                "into its kernels. Recalibrate before reparameterize() / save_pretrained."
            )
        return recalibrate_batch_norms(self, batches, num_batches)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (MRConvKernel, MRConvBatchNorm, MRConvMultiResConv)):
            module.reset_parameters()
        else:
            super()._init_weights(module)

    def change_sampling_rate(self, factor: float) -> "MRConvPreTrainedModel":
        """Prepare the model for inputs at `factor` (= 2^-k) x the training rate; merges every layer in place and
        returns self. What is exact and what is approximated: `sampling_rate.py`."""
        from .sampling_rate import change_sampling_rate  # relative import: copied next to checkpoints

        return change_sampling_rate(self, factor)

    def reparameterize(self) -> "MRConvPreTrainedModel":
        """Merge every MRConv layer into one kernel + bias in place (eval-mode semantics); idempotent, returns self."""
        for module in self.modules():
            if isinstance(module, MRConvMultiResConv):
                module.reparameterize()
        self.config.reparameterized = True
        return self

    def _mrconv_layer_config(self, name: str) -> MRConvConfig:
        """The training-form `MRConvConfig` of the MRConv layer `name` (MRConvNeXt: its stage's)."""
        branch_config = copy.deepcopy(self.config)
        branch_config.reparameterized = False
        return branch_config

    def merge_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The merged state dict equivalent to a training-form `state_dict`: a pure function of it and the config."""
        merged = dict(state_dict)
        for name, module in self.named_modules():
            if not isinstance(module, MRConvMultiResConv):
                continue
            prefix = f"{name}."
            own = {k[len(prefix) :]: merged.pop(k) for k in list(merged) if k.startswith(prefix)}
            if "merged_kernel" in own:  # this layer is merged already
                merged.update({prefix + k: v for k, v in own.items()})
                continue
            layer = MRConvMultiResConv(self._mrconv_layer_config(name), module.layer_idx)
            layer.load_state_dict({k: v.float() for k, v in own.items()})
            kernel, bias = layer.merged_parameters()
            dtype = own["alpha"].dtype
            merged[prefix + "merged_kernel"] = kernel.to(dtype)
            merged[prefix + "merged_bias"] = bias.to(dtype)
        return merged

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *args,
        reparameterize: bool | None = None,
        include_training_form: bool = False,
        state_dict: dict[str, torch.Tensor] | None = None,
        **kwargs,
    ):
        """`PreTrainedModel.save_pretrained` that ships the merged kernel (one kernel + bias per layer).

        Args:
            reparameterize: merge before writing; defaults to `config.reparameterize_on_save`, except in Trainer's
                resumable `checkpoint-<step>` folders, which keep the training form.
            include_training_form: also write the training form, the one to fine-tune, to `training_form/`
                (`from_pretrained(dir, subfolder="training_form")`; `push_to_hub` takes it too).
            state_dict: merged from when given (Trainer passes one), else `self.state_dict()`.
        """
        self._prepare_config_for_save()
        if reparameterize is None:
            reparameterize = self.config.reparameterize_on_save and not is_trainer_checkpoint(save_directory)
        if include_training_form:
            self._save_training_form(save_directory, reparameterize, state_dict, *args, **kwargs)
        skip_merge = (
            not reparameterize
            or self.config.reparameterized
            or state_dict == {}  # DeepSpeed's placeholder save when the weights are not gathered
            or kwargs.get("distributed_checkpoint", False)
        )
        if skip_merge:
            return super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)
        merged = self.merge_state_dict(state_dict if state_dict is not None else self.state_dict())
        self.config.reparameterized = True  # config.json is written from the live config
        try:
            return super().save_pretrained(save_directory, *args, state_dict=merged, **kwargs)
        finally:
            self.config.reparameterized = False

    def _save_training_form(self, save_directory, reparameterize: bool, state_dict, *args, **kwargs) -> None:
        """Write the training form to `save_directory/training_form/`, next to the merged export."""
        if self.config.reparameterized:
            raise ValueError(
                "include_training_form=True needs the training form, but this model is merged "
                "(config.reparameterized=True): its branches no longer exist."
            )
        if not reparameterize:
            raise ValueError(
                "include_training_form=True writes the training form next to a merged export; with "
                "reparameterize=False the folder holds the training form already."
            )
        if kwargs.get("push_to_hub"):
            raise ValueError(
                "save_pretrained(push_to_hub=True) would upload before training_form/ is written; use "
                "model.push_to_hub(repo_id, include_training_form=True)."
            )
        folder = os.path.join(str(save_directory), TRAINING_FORM_SUBFOLDER)
        super().save_pretrained(folder, *args, state_dict=state_dict, **kwargs)

    def push_to_hub(self, repo_id: str, *args, include_training_form: bool = False, **kwargs) -> str:
        """`PushToHubMixin.push_to_hub`; `include_training_form=True` also uploads `training_form/`."""
        if not include_training_form:
            return super().push_to_hub(repo_id, *args, **kwargs)
        # PushToHubMixin calls self.save_pretrained(folder, ...): an instance attribute passes the flag on
        self.save_pretrained = functools.partial(type(self).save_pretrained, self, include_training_form=True)
        try:
            return super().push_to_hub(repo_id, *args, **kwargs)
        finally:
            del self.save_pretrained

    def _prepare_config_for_save(self) -> None:
        """Expose `AutoModel` (the backbone class) in `auto_map` and, for continuous inputs, our pipeline."""
        if self._auto_class is not None:
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            backbone = type(self.base_model)
            auto_map.setdefault("AutoModel", f"{backbone.__module__.split('.')[-1]}.{backbone.__name__}")
            self.config.auto_map = auto_map
        if getattr(self.config, "input_dim", None) is not None:
            from .pipeline_mrconv import custom_pipelines_entry  # relative import: copied next to checkpoints

            self.config.custom_pipelines = custom_pipelines_entry()

    def set_sync_batch_norm(self, enabled: bool = True) -> "MRConvPreTrainedModel":
        """Reduce BatchNorm statistics over all `torch.distributed` ranks (gloo or NCCL); returns self.

        `SyncBatchNorm.convert_sync_batchnorm` cannot convert the masked `MRConvBatchNorm`. Without syncing, each
        rank normalises with its local batch and the saved running statistics are rank 0's.
        """
        for module in self.modules():
            if isinstance(module, MRConvBatchNorm):
                module.sync_batch_norm = enabled
        return self

    def set_conv_implementation(self, conv_implementation: str) -> "MRConvPreTrainedModel":
        """Choose how every multi-branch layer is computed (`MRConvConfig.conv_implementation`); returns self."""
        if conv_implementation not in CONV_IMPLEMENTATIONS:
            raise ValueError(f"conv_implementation must be one of {CONV_IMPLEMENTATIONS}, got {conv_implementation!r}")
        self.config.conv_implementation = conv_implementation
        for module in self.modules():
            if isinstance(module, MRConvMultiResConv):
                module.conv_implementation = conv_implementation
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """`nn.Module.load_state_dict` that refuses any key mismatch, even with `strict=False` (as Trainer loads):
        a merged checkpoint in the branch layout, or the reverse, would leave weights silently at their init."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        if result.missing_keys or result.unexpected_keys:
            layout = "merged" if self.config.reparameterized else "multi-branch (training)"
            raise RuntimeError(
                f"State dict does not match this {layout} MRConv model: missing keys {result.missing_keys[:5]}, "
                f"unexpected keys {result.unexpected_keys[:5]}. Merged checkpoints load only through "
                "`from_pretrained`, which builds the merged architecture from `config.reparameterized`."
            )
        return result


@dataclass
class MRConvModelOutput(BaseModelOutput):
    """`BaseModelOutput` plus `cache`: the updated `MRConvCache` of a streamed call (`use_cache=True`), else None."""

    cache: MRConvCache | None = None


@dataclass
class MRConvSequenceClassifierOutput(SequenceClassifierOutput):
    """`SequenceClassifierOutput` plus `cache`: the updated `MRConvCache` of a streamed call, else None."""

    cache: MRConvCache | None = None


def resolve_streaming(
    model: MRConvPreTrainedModel, use_cache: bool | None, cache: MRConvCache | None
) -> MRConvCache | None:
    """The cache to stream with, or None for the full forward.

    A `cache` turns streaming on when `use_cache` is None; with `use_cache=False` it raises. A bidirectional model
    ignores `use_cache=True` alone with a warning, as transformers' encoders do, but raises on an explicit `cache`.
    """
    if cache is None and not use_cache:
        return None
    if use_cache is False:
        raise ValueError("A cache was passed with use_cache=False: pass use_cache=True (or None) to stream.")
    if cache is not None and not isinstance(cache, MRConvCache):
        raise ValueError(f"cache must be an MRConvCache, got {type(cache).__name__}.")
    if model.config.bidirectional and cache is None:
        logger.warning_once(BIDIRECTIONAL_CACHE_WARNING)
        return None
    if model.config.bidirectional:
        raise ValueError(
            "Streaming (a cache) needs a causal model: config.bidirectional=True kernels read future positions, "
            "which a stream has not seen yet."
        )
    if model.training:
        raise ValueError("Streaming (use_cache=True) needs eval mode: call model.eval() (dropout, BatchNorm).")
    if cache is None:
        return MRConvCache(model.config.num_hidden_layers)
    if len(cache.history) != model.config.num_hidden_layers:
        raise ValueError(
            f"The cache has {len(cache.history)} layers, the model num_hidden_layers="
            f"{model.config.num_hidden_layers}: start a new MRConvCache for this model."
        )
    return cache


class MRConvModel(MRConvPreTrainedModel):
    """Embedding (tokens) or linear projection (continuous inputs) followed by the MRConv blocks."""

    _input_embed_layer = "embeddings"  # `get_input_embeddings` / `set_input_embeddings`

    def __init__(self, config: MRConvConfig):
        config.validate_mrconv()  # catches attributes edited by hand after the config was built
        super().__init__(config)
        self.main_input_name = "input_ids" if config.input_dim is None else "input_values"
        if config.input_dim is None:
            self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        else:
            self.embeddings = nn.Linear(config.input_dim, config.hidden_size)
        self.layers = nn.ModuleList([MRConvBlock(config, i) for i in range(config.num_hidden_layers)])
        self.final_norm = MRConvNorm(config) if config.prenorm else None
        self.post_init()

    def check_input_ids(self, input_ids: torch.Tensor) -> None:
        """ValueError for ids outside [0, vocab_size), instead of an IndexError (CPU) or device-side assert (CUDA).

        One host read: on accelerators only outside autograd (it waits for queued kernels); never under
        torch.compile / torch.export (no data-dependent branch).
        """
        if torch.compiler.is_compiling() or input_ids.numel() == 0:
            return
        if input_ids.device.type != "cpu" and torch.is_grad_enabled():
            return
        low, high = (int(v) for v in torch.aminmax(input_ids))
        vocab_size = self.embeddings.num_embeddings
        if low < 0 or high >= vocab_size:
            value = low if low < 0 else high
            raise ValueError(f"input_ids must be in [0, vocab_size={vocab_size}), got a token id {value}.")

    def embed(
        self,
        input_ids: torch.Tensor | None,
        input_values: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        streaming: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate the inputs; return embeddings (B, L, H), padded positions set to 0, and the (B, L) mask or None.
        A streamed chunk (`streaming=True`) may exceed max_sequence_length."""
        given = [
            n
            for n, v in (("input_ids", input_ids), ("input_values", input_values), ("inputs_embeds", inputs_embeds))
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(f"Pass exactly one of input_ids, input_values or inputs_embeds, got {given or 'none'}.")
        H = self.config.hidden_size
        if input_ids is not None:
            if self.config.input_dim is not None:
                raise ValueError(f"This model reads continuous input_values (input_dim={self.config.input_dim}).")
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
            if input_ids.is_floating_point() or input_ids.is_complex():
                raise ValueError(f"input_ids must be integer token ids, got dtype {input_ids.dtype}")
            self.check_input_ids(input_ids)
            attention_mask = resolve_attention_mask(input_ids, attention_mask, self.config.pad_token_id)
            check_mask(attention_mask, input_ids.shape)
            embeddings = self.embeddings(input_ids)
        elif input_values is not None:
            if self.config.input_dim is None:
                raise ValueError("This model reads token input_ids (config.input_dim is None), not input_values.")
            if input_values.dim() == 2 and self.config.input_dim == 1:
                input_values = input_values[..., None]
            if input_values.dim() != 3 or input_values.shape[-1] != self.config.input_dim:
                raise ValueError(
                    f"input_values must have shape (batch, length, {self.config.input_dim}), "
                    f"got {tuple(input_values.shape)}"
                )
            check_mask(attention_mask, input_values.shape[:2])
            # padding replaced before the projection: NaN there would otherwise reach the weight gradient
            input_values = zero_padding(input_values.transpose(1, 2), attention_mask).transpose(1, 2)
            embeddings = self.embeddings(input_values.to(self.embeddings.weight.dtype))
        else:
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != H:
                raise ValueError(
                    f"inputs_embeds must have shape (batch, length, hidden_size={H}), got {tuple(inputs_embeds.shape)}"
                )
            check_mask(attention_mask, inputs_embeds.shape[:2])
            embeddings = inputs_embeds.to(self.embeddings.weight.dtype)
        B, L, _ = embeddings.shape
        if L == 0:
            raise ValueError("The inputs have length 0: pass at least one position per sequence.")
        if self.config.max_sequence_length < L and not streaming:
            raise ValueError(
                f"Sequence length {L} exceeds max_sequence_length={self.config.max_sequence_length}; "
                "truncate the input (e.g. tokenizer(..., truncation=True))."
            )
        if attention_mask is not None:
            attention_mask = attention_mask.to(embeddings.dtype)
            embeddings = zero_padding(embeddings.transpose(1, 2), attention_mask).transpose(1, 2)
        return embeddings, attention_mask

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        cache: MRConvCache | None = None,
        **kwargs,
    ) -> MRConvModelOutput:
        """Returns `last_hidden_state` (B, L, H); padded positions of it are not meaningful.

        Arguments in the Hugging Face text-model order; `input_values` by keyword. An empty batch gives empty
        outputs and leaves every BatchNorm untouched; length 0 raises. Streaming (causal models, eval mode):
        `use_cache=True` (or a `cache`) treats the inputs as the next chunk, with the full forward's outputs at these
        positions, and returns the updated `MRConvCache` as `cache` (`cache_mrconv.py`).
        """
        reject_unknown_inputs(type(self).__name__, kwargs)
        cache = resolve_streaming(self, use_cache, cache)
        embeddings, mask = self.embed(input_ids, input_values, inputs_embeds, attention_mask, cache is not None)
        last_hidden_state, all_hidden_states = self.encode(embeddings, mask, output_hidden_states, cache)
        return MRConvModelOutput(last_hidden_state=last_hidden_state, hidden_states=all_hidden_states, cache=cache)

    def encode(
        self,
        embeddings: torch.Tensor,
        mask: torch.Tensor | None,
        output_hidden_states: bool | None,
        cache: MRConvCache | None = None,
        group_size: int = 1,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """The blocks over (B, L, H) embeddings: the last hidden state and, if asked, the embeddings and every layer's.

        Each returned state is (a view of) the tensor the next block reads, so a backward pass fills its `.grad`.
        With `group_size` > 1 (document pairs) they come as (B / group_size, group_size, L, H).
        """
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        B, L, H = embeddings.shape

        def publish(state: torch.Tensor) -> torch.Tensor:  # (B L H) -> the returned view
            return state if group_size == 1 else state.view(B // group_size, group_size, L, H)

        state = publish(embeddings)
        all_hidden_states = (state,) if output_hidden_states else None
        if B == 0:  # nothing to convolve; no statistics to take
            return state, (state,) * (len(self.layers) + 1) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(state.reshape(B, L, H).transpose(1, 2), mask, cache)  # (B H L)
            state = publish(hidden_states.transpose(1, 2))
            if output_hidden_states:
                all_hidden_states += (state,)
        if self.final_norm is not None:
            state = publish(self.final_norm(state.reshape(B, L, H).transpose(1, 2), mask).transpose(1, 2))
        if cache is not None:
            cache.seen_tokens += L
        return state, all_hidden_states


def check_mask(attention_mask: torch.Tensor | None, shape: torch.Size) -> None:
    if attention_mask is not None and attention_mask.shape != tuple(shape):
        raise ValueError(f"attention_mask must have shape {tuple(shape)}, got {tuple(attention_mask.shape)}")


def reject_unknown_inputs(model_name: str, kwargs: dict) -> None:
    """ValueError naming the keyword inputs a forward does not know (None and `output_attentions=False` pass)."""
    unknown = sorted(k for k, v in kwargs.items() if v is not None and not (k == "output_attentions" and not v))
    if unknown:
        raise ValueError(
            f"{model_name}.forward got unexpected inputs {unknown}; it takes input_ids, attention_mask, "
            "inputs_embeds, input_values, labels, output_hidden_states, return_dict and, for causal streaming, "
            "use_cache and cache (MRConv has no attention weights and no token_type_ids)."
        )


class MRConvForSequenceClassification(MRConvPreTrainedModel):
    """MRConv backbone, masked mean pooling over the valid positions, linear classifier (S4's pool decoder)."""

    def __init__(self, config: MRConvConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.mrconv = MRConvModel(config)
        self.main_input_name = self.mrconv.main_input_name
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        cache: MRConvCache | None = None,
        **kwargs,
    ) -> MRConvSequenceClassifierOutput:
        """`labels`: (B,) class ids, (B,) or (B, num_labels) floats for regression, (B, num_labels) multi-hot.

        Streaming (as `MRConvModel.forward`): the logits are the prediction from all streamed positions so far.
        """
        reject_unknown_inputs(type(self).__name__, kwargs)
        mask = resolve_attention_mask(input_ids, attention_mask, self.config.pad_token_id)  # used again for pooling
        outputs = self.mrconv(
            input_ids=input_ids,
            attention_mask=mask,
            inputs_embeds=inputs_embeds,
            input_values=input_values,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            use_cache=use_cache,
            cache=cache,
        )
        if outputs.cache is not None:
            pooled = outputs.cache.update_pooling(outputs.last_hidden_state.transpose(1, 2), mask)  # (B H)
        else:
            pooled = masked_mean(outputs.last_hidden_state.transpose(1, 2), mask)  # (B H)
        logits = self.classifier(pooled)  # (B num_labels)
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        return MRConvSequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, cache=outputs.cache
        )


class MRConvForDocumentPairClassification(MRConvPreTrainedModel):
    """Two documents through one shared backbone, then an MLP on [x1, x2, x1 * x2, x1 - x2] (LRA Retrieval, S4's head).

    Inputs stack the pair on dim 1: `input_ids` (B, 2, L) and `attention_mask` (B, 2, L) (or `input_values`
    (B, 2, L, C), `inputs_embeds` (B, 2, L, H)). Hidden states come back as (B, 2, L, H) per layer.
    """

    def __init__(self, config: MRConvConfig):
        super().__init__(config)
        self.loss_type = "ForSequenceClassification"  # not derivable from the class name
        self.num_labels = config.num_labels
        self.mrconv = MRConvModel(config)
        self.main_input_name = self.mrconv.main_input_name
        H = config.hidden_size
        self.classifier = nn.Sequential(nn.Linear(4 * H, H), nn.GELU(), nn.Linear(H, config.num_labels))
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        if kwargs.pop("use_cache", None) or kwargs.get("cache") is not None:
            raise ValueError(
                "MRConvForDocumentPairClassification does not stream (use_cache/cache): both documents are read "
                "whole; stream each document through MRConvModel or MRConvForSequenceClassification instead."
            )
        reject_unknown_inputs(type(self).__name__, kwargs)
        inputs = {"input_ids": input_ids, "input_values": input_values, "inputs_embeds": inputs_embeds}
        given = [name for name, value in inputs.items() if value is not None]
        if len(given) != 1:
            raise ValueError(f"Pass exactly one of input_ids, input_values or inputs_embeds, got {given or 'none'}.")
        pair = inputs[given[0]]
        if pair.dim() < 3 or pair.shape[1] != 2:
            raise ValueError(
                f"Pass the two documents stacked on dim 1: {given[0]} of shape (batch, 2, length, ...), "
                f"got {tuple(pair.shape)}. (A text-classification pipeline passes single sequences.)"
            )
        B = pair.shape[0]
        inputs[given[0]] = pair.flatten(0, 1)  # (2B L ...): both documents in one backbone pass
        mask = attention_mask.flatten(0, 1) if attention_mask is not None else None
        mask = resolve_attention_mask(inputs["input_ids"], mask, self.config.pad_token_id)  # used for pooling
        embeddings, mask = self.mrconv.embed(**inputs, attention_mask=mask)
        # (B 2 L H) views of the states the backbone reads, so their gradients are filled
        last_hidden_state, hidden_states = self.mrconv.encode(embeddings, mask, output_hidden_states, group_size=2)
        pooled = masked_mean(last_hidden_state.flatten(0, 1).transpose(1, 2), mask).view(B, 2, -1)  # (B 2 H)
        x1, x2 = pooled[:, 0], pooled[:, 1]
        logits = self.classifier(torch.cat([x1, x2, x1 * x2, x1 - x2], dim=-1))  # (B num_labels)
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)


__all__ = [
    "MRConvForDocumentPairClassification",
    "MRConvForSequenceClassification",
    "MRConvModel",
    "MRConvModelOutput",
    "MRConvPreTrainedModel",
    "MRConvSequenceClassifierOutput",
]
