"""MRConv: reparameterized multi-resolution convolutions for long sequence modelling, as a Transformers model.

Importing the package registers the classes with the Auto classes (library route) and marks them for
`register_for_auto_class`, so `save_pretrained` copies the code and writes `auto_map` (remote-code route).
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
)

from .cache_mrconv import MRConvCache
from .configuration_mrconv import MRConvConfig
from .configuration_mrconvnext import MRConvNextConfig
from .feature_extraction_mrconv import MRConvFeatureExtractor
from .metrics import compute_metrics
from .modeling_mrconv import (
    MRConvForDocumentPairClassification,
    MRConvForSequenceClassification,
    MRConvModel,
    MRConvPreTrainedModel,
)
from .modeling_mrconvnext import MRConvNextForImageClassification, MRConvNextModel
from .optim import param_groups
from .pipeline_mrconv import MRConvSequenceClassificationPipeline, register_pipeline
from .tokenization_mrconv import build_byte_tokenizer
from .trainer_callback import BatchNormRecalibrationCallback


__version__ = "0.1.0"

AutoConfig.register(MRConvConfig.model_type, MRConvConfig, exist_ok=True)
AutoModel.register(MRConvConfig, MRConvModel, exist_ok=True)
# a tuple: the Auto class picks the member named in config.architectures, so a document-pair checkpoint comes back
# as MRConvForDocumentPairClassification (the first member is the default, e.g. for from_config)
AutoModelForSequenceClassification.register(
    MRConvConfig, (MRConvForSequenceClassification, MRConvForDocumentPairClassification), exist_ok=True
)
MRConvConfig.register_for_auto_class()
MRConvModel.register_for_auto_class("AutoModel")
MRConvForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
# no Auto class exists for document pairs: the export's auto_map points AutoModelForSequenceClassification at it
MRConvForDocumentPairClassification.register_for_auto_class("AutoModelForSequenceClassification")
register_pipeline()
# continuous inputs: the task's preprocessing, saved with exports as preprocessor_config.json (with its code)
AutoFeatureExtractor.register(MRConvConfig, MRConvFeatureExtractor, exist_ok=True)
MRConvFeatureExtractor.register_for_auto_class()
AutoConfig.register(MRConvNextConfig.model_type, MRConvNextConfig, exist_ok=True)
AutoModel.register(MRConvNextConfig, MRConvNextModel, exist_ok=True)
AutoModelForImageClassification.register(MRConvNextConfig, MRConvNextForImageClassification, exist_ok=True)
MRConvNextConfig.register_for_auto_class()
MRConvNextModel.register_for_auto_class("AutoModel")
MRConvNextForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__all__ = [
    "BatchNormRecalibrationCallback",
    "MRConvCache",
    "MRConvConfig",
    "MRConvFeatureExtractor",
    "MRConvForDocumentPairClassification",
    "MRConvForSequenceClassification",
    "MRConvModel",
    "MRConvNextConfig",
    "MRConvNextForImageClassification",
    "MRConvNextModel",
    "MRConvPreTrainedModel",
    "MRConvSequenceClassificationPipeline",
    "__version__",
    "build_byte_tokenizer",
    "compute_metrics",
    "param_groups",
]
