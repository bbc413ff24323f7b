"""BatchNorm whose statistics ignore padded positions.

`torch.nn.BatchNorm1d` would average over padding, so the statistics (and the eval-mode model) would depend on how
much padding a batch had; here they are taken over the valid (batch, position) pairs only. One module can hold
independent BatchNorms stacked along leading channel dims, e.g. (N, H) for the N branches of an MRConv layer, exactly
as N `BatchNorm1d(H)` would. `sync_batch_norm=True` reduces the statistics over all `torch.distributed` ranks (a
differentiable all-reduce of per-rank sums), as `torch.nn.SyncBatchNorm`, which cannot convert this module.
"""

from collections.abc import Iterable, Mapping

import torch
import torch.distributed as dist
from torch import nn

from .fftconv import compute_dtype


class AllReduceSum(torch.autograd.Function):
    """Sum over all ranks; its gradient is the all-reduced sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class MRConvBatchNorm(nn.Module):
    """Masked BatchNorm over inputs (B, *C, L) with parameters of the channel shape C (`num_features`).

    `momentum=None` gives the cumulative average, as `torch.nn.BatchNorm1d(momentum=None)`. A batch without any
    valid position leaves the running statistics and `num_batches_tracked` unchanged.
    """

    def __init__(self, num_features: tuple[int, ...], eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        self.num_features = tuple(num_features)
        self.eps = eps
        self.momentum = momentum
        self.sync_batch_norm = False
        self.weight = nn.Parameter(torch.ones(self.num_features))
        self.bias = nn.Parameter(torch.zeros(self.num_features))
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_var", torch.ones(self.num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, sync={self.sync_batch_norm}"

    def reset_parameters(self) -> None:
        from transformers import initialization as init

        init.ones_(self.weight)
        init.zeros_(self.bias)
        init.zeros_(self.running_mean)
        init.ones_(self.running_var)
        init.zeros_(self.num_batches_tracked)

    @torch.no_grad()
    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batch tracked (as `torch.nn.BatchNorm1d.reset_running_stats`)."""
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def batch_statistics(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked mean and biased variance over batch and length (C-shaped, float32 or float64) and the valid count
        (0 included). Padded values are replaced by 0 (`torch.where`): NaN or inf there never reaches the statistics.
        """
        dims = [0, x.dim() - 1]
        x = x.to(compute_dtype(x.dtype))
        if mask is None:
            valid = None
            count = x.new_tensor(float(x.shape[0] * x.shape[-1]))
        else:
            valid = mask.view(mask.shape[0], *([1] * (x.dim() - 2)), mask.shape[-1]) > 0  # (B 1.. L)
            x = torch.where(valid, x, x.new_zeros(()))
            count = mask.to(x.dtype).sum()
        count = self._all_reduce(count)
        denominator = count.clamp_min(1.0)
        mean = self._all_reduce(x.sum(dims)) / denominator  # (*C)
        # two passes: E[(x - mean)^2] keeps its precision when |mean| >> std, unlike E[x^2] - mean^2
        centered = (x - mean[..., None]).square()
        if valid is not None:
            centered = torch.where(valid, centered, centered.new_zeros(()))
        var = self._all_reduce(centered.sum(dims)) / denominator  # (*C)
        return mean, var, count

    @property
    def synchronized(self) -> bool:
        """Whether the statistics are all-reduced: `sync_batch_norm` in an initialized `torch.distributed` run."""
        return self.sync_batch_norm and dist.is_available() and dist.is_initialized()

    def _all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        return AllReduceSum.apply(t) if self.synchronized else t

    @torch.no_grad()
    def update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        """Move the running averages towards batch statistics (C-shaped biased `var` over `count` valid positions);
        a no-op, without a host sync, when `count` is 0."""
        has_data = count > 0  # () bool tensor
        unbiased = var * count / (count - 1).clamp_min(1.0)
        if self.momentum is None:
            weight = 1.0 / (self.num_batches_tracked + 1).to(self.running_mean.dtype)
        else:
            weight = torch.full((), self.momentum, dtype=self.running_mean.dtype, device=self.running_mean.device)
        weight = torch.where(has_data.to(weight.device), weight, weight.new_zeros(()))
        self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), weight)
        self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), weight)
        self.num_batches_tracked.add_(has_data.to(self.num_batches_tracked))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalize x (B, *C, L); `mask` (B, L) marks valid positions with 1."""
        dtype = compute_dtype(x.dtype)
        if self.training:
            mean, var, count = self.batch_statistics(x, mask)
            self.update_running_stats(mean, var, count)
        else:
            mean, var = self.running_mean.to(dtype), self.running_var.to(dtype)
        scale = self.weight.to(dtype) * torch.rsqrt(var + self.eps)  # (*C)
        shift = self.bias.to(dtype) - mean * scale  # (*C)
        # one fused pass: x * scale + shift
        return torch.addcmul(shift[..., None], x.to(dtype), scale[..., None]).to(x.dtype)


@torch.no_grad()
def recalibrate_batch_norms(
    model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor] | torch.Tensor], num_batches: int | None = None
) -> nn.Module:
    """`MRConvPreTrainedModel.recalibrate_batch_norm`: every `MRConvBatchNorm` of `model` gets the cumulative average
    of its batch statistics over `batches` (momentum None), dropout off; on any error the statistics are restored."""
    norms = [m for m in model.modules() if isinstance(m, MRConvBatchNorm)]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    momenta = [m.momentum for m in norms]
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    used = 0
    try:
        for batch in batches:
            if num_batches is not None and used >= num_batches:
                break
            if isinstance(batch, torch.Tensor):
                inputs = {model.main_input_name: batch.to(device)}
            elif isinstance(batch, Mapping):  # a dict, or a collator's / Trainer's BatchEncoding
                inputs = {k: v.to(device) for k, v in batch.items() if k != "labels" and v is not None}
            else:
                raise TypeError(
                    f"batches must yield mappings of model inputs (a dict or BatchEncoding) or tensors, got "
                    f"{type(batch).__name__}"
                )
            model(**inputs)
            used += 1
        if used == 0:
            raise ValueError("recalibrate_batch_norm got no batches; the running statistics are unchanged.")
    except BaseException:
        for norm, state in zip(norms, saved, strict=True):
            norm.load_state_dict(state)
        raise
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.train(was_training)
    return model


__all__ = ["MRConvBatchNorm", "recalibrate_batch_norms"]
