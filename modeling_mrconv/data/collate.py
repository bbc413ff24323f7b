"""Batching of what transformers' `DataCollatorWithPadding` does not pad: continuous (L, C) sequences and document
pairs (2, L). Both right-pad to the longest item and add `attention_mask` (1 = real step); classes, not closures, so
DataLoader workers can pickle them."""

from collections.abc import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence


def _labels(items: Sequence[dict]) -> torch.Tensor:
    return torch.tensor([int(item["labels"]) for item in items], dtype=torch.long)  # (B)


class ContinuousCollator:
    """`input_values` (L_i, C) items -> `input_values` (B, L, C) float32 padded with 0.0, `attention_mask` (B, L)."""

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        values = [torch.as_tensor(item["input_values"], dtype=torch.float32) for item in items]  # (L_i C) each
        lengths = torch.tensor([len(v) for v in values])  # (B)
        padded = pad_sequence(values, batch_first=True)  # (B L C)
        mask = (torch.arange(padded.shape[1]) < lengths[:, None]).long()  # (B L)
        return {"input_values": padded, "attention_mask": mask, "labels": _labels(items)}


class PairCollator:
    """Document pairs: `input_ids` (2, L_i) items (the shorter document right-padded with `pad_token_id`) ->
    `input_ids` (B, 2, L) and one mask per document (B, 2, L) ending at its last non-pad id (its EOS)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        docs = [torch.as_tensor(item["input_ids"], dtype=torch.long).T for item in items]  # (L_i 2) each
        ids = pad_sequence(docs, batch_first=True, padding_value=self.pad_token_id).transpose(1, 2)  # (B 2 L)
        positions = torch.arange(1, ids.shape[-1] + 1)  # (L)
        lengths = ((ids != self.pad_token_id) * positions).amax(-1)  # (B 2): last non-pad position
        return {"input_ids": ids, "attention_mask": (positions <= lengths[..., None]).long(), "labels": _labels(items)}
