"""The models of the accuracy study, all `forward(batch) -> logits (B, num_labels)` on a `TaskData` batch.

MRConv variants and ablations are `MRConvForSequenceClassification` built from `MRConvConfig`s:
- `dilated` / `fourier` / `fourier_sparse` at a small and a large l0 (`kernel_size`; the paper, Section 4: small l0
  suits discrete data, large l0 smooth data);
- `no_branch_bn`: the task's base variant with `branch_batch_norm=False` (y = (sum_i alpha_i k_i) * u + D u);
- `single_branch`: one branch spanning the sequence (`num_branches=1`, `kernel_size=max_sequence_length`, Fourier
  modes matched to the base variant's total), i.e. one resolution with BatchNorm;
- `dense_kernel`: `reparameterized=True` trained from scratch, one free kernel of length L per channel.

Peers get MRConv's input layer (token embedding or a linear map of `input_values`) and a masked-mean-pooling linear
head: transformers' BERT (SDPA attention, learned positions), S4D-Lin (`bench.peers.S4DLayer` inside MRConv's block)
and transformers' Mamba. Their width is chosen to match the base MRConv's parameter count (`matched_width`).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import BertConfig, BertModel, MambaConfig, MambaModel

from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification, param_groups
from modeling_mrconv.bench.peers import PooledClassifier, S4DBlocks
from modeling_mrconv.data import TaskData
from modeling_mrconv.modeling_mrconv import masked_mean


KERNEL_TYPES = ("dilated", "fourier", "fourier_sparse")
ABLATIONS = ("no_branch_bn", "single_branch", "dense_kernel")
PEERS = ("bert", "s4d", "mamba")
BERT_HEADS = 4


@dataclass(frozen=True)
class Architecture:
    """Size shared by every model of a task: MRConv width and depth, the two l0 and the base kernel type."""

    hidden_size: int
    num_layers: int
    l0_small: int
    l0_large: int
    base_kernel: str  # the variant the ablations modify (at l0_small)
    dropout: float = 0.0


def model_names() -> list[str]:
    """Every model of the study, in report order."""
    variants = [f"{k}_l0{size}" for k in KERNEL_TYPES for size in ("small", "large")]
    return ["mrconv_" + v for v in variants] + list(ABLATIONS) + list(PEERS)


def family(name: str) -> str:
    """`mrconv`, `ablation` or `peer`."""
    if name.startswith("mrconv_"):
        return "mrconv"
    if name in ABLATIONS:
        return "ablation"
    if name in PEERS:
        return "peer"
    raise ValueError(f"model: unknown name {name!r}; expected one of {model_names()}")


# ---------------------------------------------------------------------------------------------------------------------
# MRConv and its ablations


class MRConvClassifier(nn.Module):
    """`MRConvForSequenceClassification` returning logits from a batch dict (labels ignored)."""

    def __init__(self, config: MRConvConfig):
        super().__init__()
        self.model = MRConvForSequenceClassification(config)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.model(**inputs).logits  # (B num_labels)


def mrconv_config(task: TaskData, arch: Architecture, **overrides: Any) -> MRConvConfig:
    """The MRConv configuration of `task` at `arch`'s size, bidirectional, post-norm BatchNorm blocks."""
    values = {
        "hidden_size": arch.hidden_size,
        "num_hidden_layers": arch.num_layers,
        "max_sequence_length": task.max_length,
        "kernel_type": arch.base_kernel,
        "kernel_size": arch.l0_small,
        "hidden_dropout_prob": arch.dropout,
        **overrides,
    }
    return MRConvConfig(
        **values,
        vocab_size=task.vocab_size or 1,
        input_dim=task.input_dim,
        pad_token_id=task.pad_token_id,
        num_labels=task.num_labels,
        problem_type="single_label_classification",
    )


def mrconv_overrides(name: str, task: TaskData, arch: Architecture) -> dict[str, Any]:
    """`MRConvConfig` fields of an MRConv variant or ablation (relative to `mrconv_config`'s defaults)."""
    if name.startswith("mrconv_"):
        kernel_type, size = name[len("mrconv_") :].rsplit("_l0", 1)
        l0 = arch.l0_small if size == "small" else arch.l0_large
        return {"kernel_type": kernel_type, "kernel_size": min(l0, task.max_length)}
    if name == "no_branch_bn":
        return {"branch_batch_norm": False}
    if name == "single_branch":
        base = mrconv_config(task, arch)
        # the base variant's Fourier budget in one full-length branch (dilated: l0 = L free taps)
        modes = min(base.fourier_modes * base.num_branches, task.max_length // 2 + 1)
        return {"num_branches": 1, "kernel_size": task.max_length, "fourier_modes": modes}
    if name == "dense_kernel":
        return {"reparameterized": True}
    raise ValueError(f"model: {name!r} is not an MRConv variant or ablation")


# ---------------------------------------------------------------------------------------------------------------------
# Peers


class InputLayer(nn.Module):
    """MRConv's input layer: an embedding of `input_ids` or a linear map of `input_values` (B, L, C) -> (B, L, H)."""

    def __init__(self, task: TaskData, hidden_size: int):
        super().__init__()
        self.name = "input_ids" if task.input_dim is None else "input_values"
        if task.input_dim is None:
            self.layer = nn.Embedding(task.vocab_size, hidden_size, padding_idx=task.pad_token_id)
        else:
            self.layer = nn.Linear(task.input_dim, hidden_size)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.layer(batch[self.name])  # (B L H)


class PooledPeer(PooledClassifier):
    """Input layer, a transformers backbone on `inputs_embeds`, masked mean pooling, linear head."""

    def __init__(self, task: TaskData, hidden_size: int, backbone: nn.Module):
        inputs = InputLayer(task, hidden_size)  # made before the head, as the init order of the study's runs
        super().__init__(backbone, hidden_size, task.num_labels)
        self.inputs = inputs

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return super().forward(inputs_embeds=self.inputs(batch), attention_mask=batch.get("attention_mask"))


class S4DPeer(nn.Module):
    """Input layer, `bench.peers.S4DBlocks` (MRConv's block with an S4D-Lin conv), masked mean pooling, linear head."""

    def __init__(self, task: TaskData, hidden_size: int, num_layers: int, state_size: int = 64):
        super().__init__()
        self.inputs = InputLayer(task, hidden_size)
        self.blocks = S4DBlocks(hidden_size, num_layers, bidirectional=True, state_size=state_size)
        self.classifier = nn.Linear(hidden_size, task.num_labels)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch.get("attention_mask")
        x = self.blocks(self.inputs(batch).transpose(1, 2), mask)  # (B H L)
        return self.classifier(masked_mean(x, mask))  # (B num_labels)


def build_bert(task: TaskData, hidden_size: int, num_layers: int) -> nn.Module:
    config = BertConfig(
        vocab_size=1,  # inputs_embeds only: the word embedding is unused (InputLayer embeds)
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=BERT_HEADS,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=task.max_length,  # learned absolute positions
        type_vocab_size=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    backbone = BertModel(config, add_pooling_layer=False)
    backbone.set_attn_implementation("sdpa")
    backbone.embeddings.word_embeddings.weight.requires_grad_(False)
    return PooledPeer(task, hidden_size, backbone)


def build_mamba(task: TaskData, hidden_size: int, num_layers: int) -> nn.Module:
    config = MambaConfig(
        vocab_size=1, hidden_size=hidden_size, state_size=16, num_hidden_layers=num_layers, use_cache=False
    )
    backbone = MambaModel(config)
    backbone.embeddings.weight.requires_grad_(False)  # inputs_embeds only
    return PooledPeer(task, hidden_size, backbone)


def build_s4d(task: TaskData, hidden_size: int, num_layers: int) -> nn.Module:
    return S4DPeer(task, hidden_size, num_layers)


PEER_BUILDERS: dict[str, Callable[[TaskData, int, int], nn.Module]] = {
    "bert": build_bert,
    "s4d": build_s4d,
    "mamba": build_mamba,
}
PEER_WIDTH_STEP = {"bert": 2 * BERT_HEADS, "s4d": 4, "mamba": 4}


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the frozen, unused word embeddings of the transformers peers excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def matched_width(name: str, task: TaskData, arch: Architecture, target: int) -> int:
    """The peer width (a multiple of its step, same depth as MRConv) whose parameter count is closest to `target`."""
    build, step = PEER_BUILDERS[name], PEER_WIDTH_STEP[name]
    counts = {}
    for width in range(step, 4 * arch.hidden_size + 1, step):
        counts[width] = count_parameters(build(task, width, arch.num_layers))
        if counts[width] > target:
            break
    return min(counts, key=lambda w: (abs(math.log(counts[w] / target)), w))


# ---------------------------------------------------------------------------------------------------------------------
# The zoo


def build_model(name: str, task: TaskData, arch: Architecture) -> tuple[nn.Module, dict[str, Any]]:
    """Model `name` for `task` (fresh init from the current torch seed) and a description of its size.

    Returns:
        (module with `forward(batch) -> logits`, {"parameters", "hidden_size", "num_layers", "config"}).
    """
    if family(name) == "peer":
        target = count_parameters(MRConvClassifier(mrconv_config(task, arch)))
        state = torch.random.get_rng_state()
        width = matched_width(name, task, arch, target)
        torch.random.set_rng_state(state)  # the width search must not shift the model's init
        model = PEER_BUILDERS[name](task, width, arch.num_layers)
        return model, {
            "parameters": count_parameters(model),
            "hidden_size": width,
            "num_layers": arch.num_layers,
            "config": {"matched_to": target},
        }
    config = mrconv_config(task, arch, **mrconv_overrides(name, task, arch))
    model = MRConvClassifier(config)
    described = ("kernel_type", "kernel_size", "num_branches", "fourier_modes", "branch_batch_norm", "reparameterized")
    return model, {
        "parameters": count_parameters(model),
        "hidden_size": config.hidden_size,
        "num_layers": config.num_hidden_layers,
        "config": {k: getattr(config, k) for k in described},
    }


def optimizer_groups(model: nn.Module, learning_rate: float, weight_decay: float) -> list[dict]:
    """AdamW groups. MRConv: `param_groups` with kernels at min(lr, 1e-3) (S4 lineage, the presets' choice); S4D:
    the SSM parameters likewise; others: weight decay on matrices only."""
    kernel_lr = min(learning_rate, 1e-3)
    if isinstance(model, MRConvClassifier):
        return param_groups(model, learning_rate, kernel_lr, weight_decay)
    ssm, decay, no_decay = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if ".kernel." in name:
            ssm.append(param)
        elif param.ndim >= 2 and "embeddings" not in name:
            decay.append(param)
        else:
            no_decay.append(param)
    groups = [
        {"params": ssm, "lr": kernel_lr, "weight_decay": 0.0, "name": "kernel"},
        {"params": no_decay, "lr": learning_rate, "weight_decay": 0.0, "name": "no_decay"},
        {"params": decay, "lr": learning_rate, "weight_decay": weight_decay, "name": "decay"},
    ]
    return [g for g in groups if g["params"]]
