"""`sequence-classification`: a pipeline task for MRConv models that read continuous inputs (pixels, audio, series).

Text models use `text-classification`. This task takes series (length,) (when `input_dim == 1`) or (length,
input_dim) as arrays, tensors or (nested) lists, one or a batch of different lengths (padded on the right with an
attention mask), and returns `config.id2label` labels with scores. One series: a 1-D or 2-D array/tensor, a list of
numbers, a list of rows of `input_dim > 1` numbers; a batch: a 3-D array/tensor or any other list (one series per
item, e.g. a `datasets` column; with `input_dim == 1` a list of lists is a batch: pass one (L, 1) series as an array).

Preprocessing is the model folder's `MRConvFeatureExtractor` (`preprocessor_config.json`, written by the export with
the task's settings), so raw series get the trained model's prediction. Without one, series go to the model as given
and NaN or inf is an error; non-finite logits are an error too, never a NaN score. Continuous-input checkpoints list
it in `config.custom_pipelines` (`pipeline(model=folder, trust_remote_code=True)` works offline without our
package); it imports only torch, numpy, transformers and the standard library.
"""

from numbers import Real
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .feature_extraction_mrconv import MRConvFeatureExtractor


TASK = "sequence-classification"


class MRConvSequenceClassificationPipeline(Pipeline):
    """Classify continuous sequences: `pipe(series | batch, top_k=1, truncation=False, batch_size=None)`."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = None  # the model folder's preprocessor_config.json when there is one
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        input_dim = self.model.config.input_dim
        if self.feature_extractor is None:  # no preprocessing: the series as given, NaN refused
            self.feature_extractor = MRConvFeatureExtractor(feature_size=input_dim)
        elif getattr(self.feature_extractor, "feature_size", input_dim) != input_dim:
            raise ValueError(
                f"feature_extractor: feature_size={self.feature_extractor.feature_size} but the model reads "
                f"input_dim={input_dim} channels"
            )

    def _sanitize_parameters(self, top_k: int | None = 1, truncation: bool = False, **kwargs):
        return {"truncation": truncation}, {}, {"top_k": top_k}

    def __call__(self, inputs: Any, **kwargs):
        if not isinstance(inputs, list | tuple) and getattr(inputs, "ndim", None) == 3:
            inputs = list(inputs)  # an array or tensor (B L C): a batch of equal-length series
        elif isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(inputs, list) and self._is_one_series(inputs):
            inputs = torch.as_tensor(inputs, dtype=torch.float64)  # numbers, or rows of input_dim numbers
        return super().__call__(inputs, **kwargs)

    def _is_one_series(self, inputs: list) -> bool:
        """Whether a list is one series (numbers, or rows of `input_dim > 1` numbers) rather than a batch."""
        if not inputs:
            raise ValueError("inputs: got an empty list; expected a series or a non-empty batch of series")
        first = inputs[0]
        if _is_number(first):
            return True
        input_dim = self.model.config.input_dim
        return (
            input_dim > 1
            and isinstance(first, list | tuple)
            and len(first) == input_dim
            and all(_is_number(v) for v in first)
        )

    def preprocess(self, inputs: Any, truncation: bool = False) -> dict[str, torch.Tensor]:
        input_dim, max_length = self.model.config.input_dim, self.model.config.max_sequence_length
        try:
            values = torch.as_tensor(inputs, dtype=torch.float64)  # arrays, tensors, lists; float64 as the task
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"inputs: could not read a series as a float array of shape (length,) or (length, {input_dim}) "
                f"(rows of different widths or non-numbers?): {error}"
            ) from error
        if values.dim() in (1, 2) and values.shape[0] > max_length:
            if not truncation:
                raise ValueError(
                    f"inputs: series length {values.shape[0]} > max_sequence_length={max_length}; "
                    "pass truncation=True to keep the first max_sequence_length steps."
                )
            values = values[:max_length]
        # the task's preprocessing of one series (it checks the shape): (1 L C), (1 L); the collator pads on the right
        features = self.feature_extractor([values.cpu().numpy()], return_tensors="pt")
        return {"input_values": features["input_values"], "attention_mask": features["attention_mask"]}

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.model(**model_inputs).logits}

    def postprocess(self, model_outputs: dict[str, torch.Tensor], top_k: int | None = 1) -> list[dict[str, Any]]:
        logits = model_outputs["logits"][0].float()
        if not bool(torch.isfinite(logits).all()):
            raise ValueError(f"the model gave non-finite logits {logits.tolist()} for this input (values too large?)")
        config = self.model.config
        if config.problem_type == "regression":
            return [{"label": config.id2label.get(i, f"LABEL_{i}"), "score": v.item()} for i, v in enumerate(logits)]
        if config.problem_type == "multi_label_classification" or config.num_labels == 1:
            scores = logits.sigmoid()
        else:
            scores = logits.softmax(-1)
        order = scores.argsort(descending=True)[: top_k if top_k is not None else None]
        return [{"label": config.id2label[i.item()], "score": scores[i].item()} for i in order]


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)  # numpy registers its scalars as Real


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
