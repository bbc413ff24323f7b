"""`sequence-classification`: a pipeline task for MRConv models that read continuous inputs (pixels, audio, series).

Text models use the built-in `text-classification` pipeline. This task takes numpy arrays (or lists of them) of
shape (length,) or (length, input_dim), pads batches on the right with an attention mask, and returns the labels
of `config.id2label` with their scores. Continuous-input checkpoints list it in `config.custom_pipelines`, so
`pipeline(model=folder, trust_remote_code=True)` finds it offline without our package installed.
"""

from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, Pipeline, SequenceFeatureExtractor
from transformers.pipelines import PIPELINE_REGISTRY


TASK = "sequence-classification"


class MRConvSequenceClassificationPipeline(Pipeline):
    """Classify continuous sequences: `pipe(np.ndarray | list[np.ndarray], top_k=1, truncation=False)`."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.feature_extractor is None:  # only its padding value is used, when batching
            self.feature_extractor = SequenceFeatureExtractor(
                feature_size=self.model.config.input_dim, sampling_rate=1, padding_value=0.0
            )

    def _sanitize_parameters(self, top_k: int | None = 1, truncation: bool = False, **kwargs):
        return {"truncation": truncation}, {}, {"top_k": top_k}

    def __call__(self, inputs: Any, **kwargs):
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], int | float):
            raise TypeError("Pass a numpy array (or a list of arrays for a batch), not a list of numbers.")
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs: Any, truncation: bool = False) -> dict[str, torch.Tensor]:
        values = torch.as_tensor(inputs, dtype=torch.float32)  # numpy arrays and tensors alike
        input_dim, max_length = self.model.config.input_dim, self.model.config.max_sequence_length
        if values.dim() == 1:
            values = values[:, None]
        if values.dim() != 2 or values.shape[-1] != input_dim:
            raise ValueError(
                f"Expected an array of shape (length,) or (length, {input_dim}), got {tuple(values.shape)}"
            )
        if values.shape[0] > max_length:
            if not truncation:
                raise ValueError(
                    f"Input length {values.shape[0]} > max_sequence_length={max_length}; pass truncation=True."
                )
            values = values[:max_length]
        return {"input_values": values[None], "attention_mask": torch.ones(1, values.shape[0], dtype=torch.long)}

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.model(**model_inputs).logits}

    def postprocess(self, model_outputs: dict[str, torch.Tensor], top_k: int | None = 1) -> list[dict[str, Any]]:
        logits = model_outputs["logits"][0].float()
        config = self.model.config
        if config.problem_type == "regression":
            return [{"label": config.id2label.get(i, f"LABEL_{i}"), "score": v.item()} for i, v in enumerate(logits)]
        if config.problem_type == "multi_label_classification" or config.num_labels == 1:
            scores = logits.sigmoid()
        else:
            scores = logits.softmax(-1)
        order = scores.argsort(descending=True)[: top_k if top_k is not None else None]
        return [{"label": config.id2label[i.item()], "score": scores[i].item()} for i in order]


def register_pipeline() -> None:
    """Make `pipeline("sequence-classification", ...)` available in this process."""
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=MRConvSequenceClassificationPipeline,
        pt_model=AutoModelForSequenceClassification,
        type="multimodal",
    )


def custom_pipelines_entry() -> dict[str, dict[str, Any]]:
    """What `config.custom_pipelines` holds for this task once saved (as `Pipeline.save_pretrained` writes it)."""
    impl = f"{__name__.split('.')[-1]}.{MRConvSequenceClassificationPipeline.__name__}"
    return {TASK: {"impl": impl, "pt": ["AutoModelForSequenceClassification"], "type": "multimodal"}}


__all__ = ["MRConvSequenceClassificationPipeline", "custom_pipelines_entry", "register_pipeline"]
