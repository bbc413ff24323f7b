"""AdamW parameter groups in the S4 lineage: kernels get their own learning rate and no weight decay."""

from torch import nn

from .batchnorm import MRConvBatchNorm
from .kernels import MRConvKernel


NO_DECAY_SUFFIXES = ("bias", "alpha", "skip", "merged_bias", "mix")


def param_groups(
    model: nn.Module, learning_rate: float, kernel_learning_rate: float, weight_decay: float
) -> list[dict]:
    """Three groups for `torch.optim.AdamW`.

    - kernel: branch kernel parameters (and the merged kernel), `kernel_learning_rate`, no weight decay;
    - no_decay: norms, biases, alpha and the D skip term, `learning_rate`, no weight decay;
    - decay: embeddings and linear/pointwise weights, `learning_rate`, `weight_decay`.
    """
    kernel_ids = {id(p) for m in model.modules() if isinstance(m, MRConvKernel) for p in m.parameters()}
    norm_ids = {
        id(p) for m in model.modules() if isinstance(m, MRConvBatchNorm | nn.LayerNorm) for p in m.parameters()
    }
    groups = {"kernel": [], "no_decay": [], "decay": []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) in kernel_ids or name.endswith("merged_kernel"):
            groups["kernel"].append(param)
        elif id(param) in norm_ids or name.endswith(NO_DECAY_SUFFIXES):
            groups["no_decay"].append(param)
        else:
            groups["decay"].append(param)
    settings = {
        "kernel": {"lr": kernel_learning_rate, "weight_decay": 0.0},
        "no_decay": {"lr": learning_rate, "weight_decay": 0.0},
        "decay": {"lr": learning_rate, "weight_decay": weight_decay},
    }
    return [{"params": params, "name": name, **settings[name]} for name, params in groups.items() if params]


__all__ = ["param_groups"]
