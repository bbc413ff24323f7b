"""PyTorch MRConv model (Cunningham et al., NeurIPS 2024: reparameterized multi-resolution convolutions)."""

import copy
import math
import os
import re

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput
from transformers.utils import can_return_tuple, logging

from .batchnorm import MRConvBatchNorm
from .branch_conv import multires_forward
from .configuration_mrconv import MRConvConfig
from .fftconv import fft_conv_bias, kernel_spectrum
from .kernels import KERNEL_CLASSES, MRConvKernel
from .reparam import merge_branches


logger = logging.get_logger(__name__)

TRAINER_CHECKPOINT_RE = re.compile(r"checkpoint-\d+")


def resolve_attention_mask(
    input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, pad_token_id: int | None
) -> torch.Tensor | None:
    """The given mask, or one derived from `pad_token_id` when token ids contain padding and no mask was passed."""
    if attention_mask is not None or input_ids is None or pad_token_id is None:
        return attention_mask
    padding = input_ids == pad_token_id
    if not padding.any():
        return None
    logger.warning_once("No attention_mask given: positions equal to pad_token_id are treated as padding.")
    return ~padding


def masked_mean(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the valid positions of (B, H, L) hidden states: (B, H)."""
    if mask is None:
        return hidden_states.mean(-1)
    mask = mask.to(hidden_states.dtype)[:, None, :]  # (B 1 L)
    return (hidden_states * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


class MRConvMultiResConv(nn.Module):
    """The MRConv layer: N depthwise branch convolutions, a BatchNorm per branch, per-channel weights alpha.

    Training form (spec section 1.3): y = sum_i alpha_i * BN_i(k_i * u) + D * u, computed by
    `branch_conv.multires_forward` (one FFT of u shared by all branches, one convolution with the BN-folded combined
    kernel, branch outputs recomputed for backward; `branch_conv.reference_multires_forward` is the plain form). In
    eval mode the branches are folded on the fly with the running statistics (exact).
    Merged form (after `reparameterize()` or from a config with `reparameterized=True`): y = k_rep * u + b_rep, one
    FFT convolution whose kernel spectrum is cached while the kernel is unchanged.
    """

    def __init__(self, config: MRConvConfig, layer_idx: int = 0):
        super().__init__()
        self.layer_idx = layer_idx
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
        self.register_buffer("kernel_spectrum", None, persistent=False)
        self._spectrum_key: tuple | None = None
        if config.reparameterized:
            self.merged_kernel = nn.Parameter(torch.empty(self.num_directions, H, self.max_length))  # (S H L)
            self.merged_bias = nn.Parameter(torch.empty(H))
        else:
            self.kernel = KERNEL_CLASSES[config.kernel_type](config, layer_idx)
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
            return fft_conv_bias(x, self.merged_spectrum(x.shape[-1]), self.merged_bias).to(x.dtype)  # (B H L)
        return multires_forward(x, self.kernel(), self.batch_norm, self.alpha, self.skip, mask)  # (B H L)

    def merged_spectrum(self, L: int) -> torch.Tensor:
        """Spectrum of the merged kernel for length L, cached until the kernel changes (in place or by moving)."""
        kernel = self.merged_kernel
        if torch.is_grad_enabled() and kernel.requires_grad:
            return kernel_spectrum(kernel, L)  # fine-tuning the merged kernel: gradients must flow
        key = (L, kernel._version, kernel.data_ptr(), kernel.device, kernel.dtype)
        cached = self.kernel_spectrum
        # a spectrum made under inference_mode could not be saved for backward outside it
        stale = cached is None or (cached.is_inference() and not torch.is_inference_mode_enabled())
        if self._spectrum_key != key or stale:
            with torch.no_grad():
                self.kernel_spectrum = kernel_spectrum(kernel, L)  # (H L+1)
            self._spectrum_key = key
        return self.kernel_spectrum

    @torch.no_grad()
    def merged_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode equivalent single kernel (S, H, max_length) and bias (H), float64 (spec section 2.1)."""
        return merge_branches(self.kernel(), self.alpha, self.batch_norm, self.skip, self.max_length)  # (S H L), (H)

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

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states: (B, H, L); mask: (B, L) or None. Returns (B, H, L)."""
        residual = hidden_states
        if self.prenorm:
            hidden_states = self.norm(hidden_states, mask)
        if mask is not None:
            hidden_states = hidden_states * mask[:, None, :].to(hidden_states.dtype)  # padding never reaches the conv
        hidden_states = self.dropout(self.activation(self.conv(hidden_states, mask)))  # (B H L)
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
    # the losses are plain means and never use num_items_in_batch (hf_notes.md section 0.6)
    accepts_loss_kwargs = False

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (MRConvKernel, MRConvBatchNorm, MRConvMultiResConv)):
            module.reset_parameters()
        else:
            super()._init_weights(module)

    def reparameterize(self) -> "MRConvPreTrainedModel":
        """Merge every MRConv layer into one kernel + bias in place (eval-mode semantics); idempotent, returns self."""
        for module in self.modules():
            if isinstance(module, MRConvMultiResConv):
                module.reparameterize()
        self.config.reparameterized = True
        return self

    def merge_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The merged-architecture state dict equivalent to a training-form `state_dict` of this model.

        A pure function of `(state_dict, config)`: the live model's weights are not read or changed.
        """
        merged = dict(state_dict)
        branch_config = copy.deepcopy(self.config)
        branch_config.reparameterized = False
        for name, module in self.named_modules():
            if not isinstance(module, MRConvMultiResConv):
                continue
            prefix = f"{name}."
            own = {k[len(prefix) :]: merged.pop(k) for k in list(merged) if k.startswith(prefix)}
            if "merged_kernel" in own:  # this layer is merged already
                merged.update({prefix + k: v for k, v in own.items()})
                continue
            layer = MRConvMultiResConv(branch_config, module.layer_idx)
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
        state_dict: dict[str, torch.Tensor] | None = None,
        **kwargs,
    ):
        """`PreTrainedModel.save_pretrained` that ships the merged kernel (one kernel + bias per layer).

        Args:
            reparameterize: merge before writing. Defaults to `config.reparameterize_on_save`, except for Trainer's
                resumable `checkpoint-<step>` folders, which keep the training form. `False` keeps the branches.
            state_dict: merged from when given (Trainer passes one), else `self.state_dict()`.
        """
        self._prepare_config_for_save()
        if reparameterize is None:
            folder = os.path.basename(os.path.normpath(str(save_directory)))
            reparameterize = self.config.reparameterize_on_save and not TRAINER_CHECKPOINT_RE.fullmatch(folder)
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

    def _prepare_config_for_save(self) -> None:
        """Expose every auto class in `auto_map` and, for continuous inputs, the `sequence-classification` pipeline."""
        if self._auto_class is not None:
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map.setdefault("AutoModel", f"{MRConvModel.__module__.split('.')[-1]}.{MRConvModel.__name__}")
            self.config.auto_map = auto_map
        if self.config.input_dim is not None:
            from .pipeline_mrconv import custom_pipelines_entry  # relative import: copied next to checkpoints

            self.config.custom_pipelines = custom_pipelines_entry()

    def set_sync_batch_norm(self, enabled: bool = True) -> "MRConvPreTrainedModel":
        """Reduce BatchNorm statistics over all `torch.distributed` ranks (gloo or NCCL); returns self.

        `torch.nn.SyncBatchNorm.convert_sync_batchnorm` does not apply to the masked `MRConvBatchNorm`. Without
        syncing, each rank normalises with its local batch and the saved running statistics are rank 0's.
        """
        for module in self.modules():
            if isinstance(module, MRConvBatchNorm):
                module.sync_batch_norm = enabled
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """`nn.Module.load_state_dict` that refuses any key mismatch, even when asked for `strict=False`.

        Trainer resumes `checkpoint-<step>` folders and loads the best model non-strictly; a merged checkpoint loaded
        into the branch layout (or the reverse) would otherwise leave weights silently at their initial values.
        """
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        if result.missing_keys or result.unexpected_keys:
            layout = "merged" if self.config.reparameterized else "multi-branch (training)"
            raise RuntimeError(
                f"State dict does not match this {layout} MRConv model: missing keys {result.missing_keys[:5]}, "
                f"unexpected keys {result.unexpected_keys[:5]}. Merged checkpoints load only through "
                "`from_pretrained`, which builds the merged architecture from `config.reparameterized`."
            )
        return result


class MRConvModel(MRConvPreTrainedModel):
    """Embedding (tokens) or linear projection (continuous inputs) followed by the MRConv blocks."""

    def __init__(self, config: MRConvConfig):
        super().__init__(config)
        self.main_input_name = "input_ids" if config.input_dim is None else "input_values"
        if config.input_dim is None:
            self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        else:
            self.embeddings = nn.Linear(config.input_dim, config.hidden_size)
        self.layers = nn.ModuleList([MRConvBlock(config, i) for i in range(config.num_hidden_layers)])
        self.final_norm = MRConvNorm(config) if config.prenorm else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embeddings = value

    def embed(
        self,
        input_ids: torch.Tensor | None,
        input_values: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate the inputs; return embeddings (B, L, H) and the (B, L) float mask (None when all valid)."""
        if (input_ids is None) == (input_values is None):
            raise ValueError("Pass exactly one of input_ids or input_values.")
        if input_ids is not None:
            if self.config.input_dim is not None:
                raise ValueError(f"This model reads continuous input_values (input_dim={self.config.input_dim}).")
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
            attention_mask = resolve_attention_mask(input_ids, attention_mask, self.config.pad_token_id)
            embeddings = self.embeddings(input_ids)
        else:
            if self.config.input_dim is None:
                raise ValueError("This model reads token input_ids (config.input_dim is None), not input_values.")
            if input_values.dim() == 2 and self.config.input_dim == 1:
                input_values = input_values[..., None]
            if input_values.dim() != 3 or input_values.shape[-1] != self.config.input_dim:
                raise ValueError(
                    f"input_values must have shape (batch, length, {self.config.input_dim}), "
                    f"got {tuple(input_values.shape)}"
                )
            embeddings = self.embeddings(input_values.to(self.embeddings.weight.dtype))
        B, L, _ = embeddings.shape
        if self.config.max_sequence_length < L:
            raise ValueError(
                f"Sequence length {L} exceeds max_sequence_length={self.config.max_sequence_length}; "
                "truncate the input (e.g. tokenizer(..., truncation=True))."
            )
        if attention_mask is not None:
            if attention_mask.shape != (B, L):
                raise ValueError(f"attention_mask must have shape {(B, L)}, got {tuple(attention_mask.shape)}")
            attention_mask = attention_mask.to(embeddings.dtype)
        return embeddings, attention_mask

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        """Returns `last_hidden_state` (B, L, H); padded positions of it are not meaningful."""
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        embeddings, mask = self.embed(input_ids, input_values, attention_mask)
        hidden_states = embeddings.transpose(1, 2)  # (B H L)
        all_hidden_states = (embeddings,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(hidden_states, mask)
            if output_hidden_states:
                all_hidden_states += (hidden_states.transpose(1, 2),)
        if self.final_norm is not None:
            hidden_states = self.final_norm(hidden_states, mask)
        return BaseModelOutput(last_hidden_state=hidden_states.transpose(1, 2), hidden_states=all_hidden_states)


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
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """`labels`: (B,) class ids, (B,) or (B, num_labels) floats for regression, (B, num_labels) multi-hot."""
        mask = resolve_attention_mask(input_ids, attention_mask, self.config.pad_token_id)  # used again for pooling
        outputs = self.mrconv(
            input_ids=input_ids,
            input_values=input_values,
            attention_mask=mask,
            output_hidden_states=output_hidden_states,
        )
        pooled = masked_mean(outputs.last_hidden_state.transpose(1, 2), mask)  # (B H)
        logits = self.classifier(pooled)  # (B num_labels)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class MRConvForDocumentPairClassification(MRConvPreTrainedModel):
    """Two documents through one shared backbone, then an MLP on [x1, x2, x1 * x2, x1 - x2] (LRA Retrieval, S4's head).

    Inputs stack the pair on dim 1: `input_ids` (B, 2, L) and `attention_mask` (B, 2, L).
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
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        pair = input_ids if input_ids is not None else input_values
        if pair is None or pair.dim() < 3 or pair.shape[1] != 2:
            raise ValueError("Pass the two documents stacked on dim 1: input_ids of shape (batch, 2, length).")
        B = pair.shape[0]
        flat = pair.flatten(0, 1)  # (2B L ...): both documents in one backbone pass
        mask = attention_mask.flatten(0, 1) if attention_mask is not None else None
        ids, values = (flat, None) if input_ids is not None else (None, flat)
        mask = resolve_attention_mask(ids, mask, self.config.pad_token_id)  # used again for pooling
        hidden = self.mrconv(input_ids=ids, input_values=values, attention_mask=mask).last_hidden_state
        pooled = masked_mean(hidden.transpose(1, 2), mask).view(B, 2, -1)  # (B 2 H)
        x1, x2 = pooled[:, 0], pooled[:, 1]
        logits = self.classifier(torch.cat([x1, x2, x1 * x2, x1 - x2], dim=-1))  # (B num_labels)
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


__all__ = [
    "MRConvForDocumentPairClassification",
    "MRConvForSequenceClassification",
    "MRConvModel",
    "MRConvPreTrainedModel",
]
