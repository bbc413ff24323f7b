"""Tiny configurations and models shared by the tests (the role of transformers' ModelTester)."""

import torch

from modeling_mrconv import MRConvConfig, MRConvForSequenceClassification


def tiny_config(**overrides) -> MRConvConfig:
    values = {
        "vocab_size": 20,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "max_sequence_length": 64,
        "kernel_size": 4,
        "num_labels": 3,
    }
    values.update(overrides)
    return MRConvConfig(**values)


def warmed_model(config: MRConvConfig, steps: int = 4, length: int = 48) -> MRConvForSequenceClassification:
    """A model whose BatchNorm running statistics have moved away from their init, in eval mode."""
    model = MRConvForSequenceClassification(config)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(**random_inputs(config, batch=6, length=length))
    return model.eval()


def random_inputs(config: MRConvConfig, batch: int = 4, length: int = 40) -> dict[str, torch.Tensor]:
    if config.input_dim is None:
        return {"input_ids": torch.randint(1, config.vocab_size, (batch, length))}
    return {"input_values": torch.randn(batch, length, config.input_dim)}
