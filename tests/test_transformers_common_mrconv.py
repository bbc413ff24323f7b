"""transformers' `ModelTesterMixin` and `ConfigTester` on MRConv, laid out as an in-tree model's test file.

The mixins come from the installed transformers release's source distribution (`transformers_common.py`). Each
test class below sets what MRConv is not (no attentions, no generation) and states why any inherited test is
overridden or skipped.
"""

import unittest
from unittest import mock

import torch
from mrconv_testing import check_merged_round_trip, tiny_config
from transformers_common import load

from modeling_mrconv import (
    MRConvConfig,
    MRConvForDocumentPairClassification,
    MRConvForSequenceClassification,
    MRConvModel,
)


common = load("test_modeling_common")
ModelTesterMixin, ids_tensor, random_attention_mask = (
    common.ModelTesterMixin,
    common.ids_tensor,
    common.random_attention_mask,
)
ConfigTester = load("test_configuration_common").ConfigTester
# an in-tree model is listed in transformers' auto mappings; the mixin reads these names (base models have no loss
# in test_training, heads get labels in _prepare_for_class)
IN_TREE_NAMES = {
    "MODEL_MAPPING_NAMES": ("MRConvModel",),
    "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES": (
        "MRConvForSequenceClassification",
        "MRConvForDocumentPairClassification",
    ),
}


class MRConvModelTester:
    """Tiny MRConv configs and inputs; `pair=True` stacks two documents on dim 1 (document-pair head)."""

    def __init__(self, parent, batch_size=3, seq_length=12, bidirectional=True, pair=False, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.bidirectional = bidirectional
        self.pair = pair
        self.is_training = is_training
        self.vocab_size = 20
        self.hidden_size = 16
        self.num_hidden_layers = 2
        self.num_labels = 3

    def get_config(self) -> MRConvConfig:
        return tiny_config(
            # the mixin's save/load tests compare state-dict keys; merge-on-save changes them by design, so they run
            # on the training form and test_merged_round_trip_is_exact checks the merged export
            reparameterize_on_save=False,
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            max_sequence_length=16,
            num_labels=self.num_labels,
            bidirectional=self.bidirectional,
        )

    def prepare_config_and_inputs(self):
        shape = (self.batch_size, 2, self.seq_length) if self.pair else (self.batch_size, self.seq_length)
        input_ids = ids_tensor(list(shape), self.vocab_size - 1) + 1  # no pad token (0) inside the sequences
        attention_mask = random_attention_mask(list(shape))
        labels = ids_tensor([self.batch_size], self.num_labels)
        return self.get_config(), input_ids, attention_mask, labels

    def prepare_config_and_inputs_for_common(self):
        config, input_ids, attention_mask, _ = self.prepare_config_and_inputs()
        return config, {"input_ids": input_ids, "attention_mask": attention_mask}

    def create_and_check_model(self, config, input_ids, attention_mask, labels):
        model = MRConvModel(config).eval()
        result = model(input_ids, attention_mask=attention_mask)
        self.parent.assertEqual(result.last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size))

    def create_and_check_for_sequence_classification(self, config, input_ids, attention_mask, labels):
        model_class = MRConvForDocumentPairClassification if self.pair else MRConvForSequenceClassification
        model = model_class(config).eval()
        result = model(input_ids, attention_mask=attention_mask, labels=labels)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.num_labels))
        self.parent.assertTrue(torch.isfinite(result.loss))


class MRConvCommonTests(ModelTesterMixin):
    """Flags and overrides shared by every MRConv test class.

    `test_bc_cache_name_forward` skips itself ("Not returning cache or non standard Cache"): a bidirectional model
    ignores `use_cache=True` with a warning, as transformers' encoders do (generic callers pass it; refusing it would
    break them, and a bidirectional model has nothing to stream), and a causal model returns an `MRConvCache`, not
    a `DynamicCache` of attention keys and values. tests/test_streaming.py tests both behaviours.
    """

    has_attentions = False  # a convolution model: no attention weights to return
    test_resize_embeddings = True
    test_torch_exportable = False  # the torch.export tests live in the stand-in ExportTesterMixin (not in the sdist)
    test_missing_keys = True
    test_mismatched_shapes = True

    def setUp(self):
        for name, classes in IN_TREE_NAMES.items():
            patcher = mock.patch.dict(getattr(common, name), {"mrconv": classes})
            patcher.start()
            self.addCleanup(patcher.stop)
        self.model_tester = self.tester()
        self.config_tester = ConfigTester(self, config_class=MRConvConfig, hidden_size=16, common_properties=[])

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        self.model_tester.create_and_check_model(*self.model_tester.prepare_config_and_inputs())

    def test_for_sequence_classification(self):
        self.model_tester.create_and_check_for_sequence_classification(*self.model_tester.prepare_config_and_inputs())

    def test_merged_round_trip_is_exact(self):
        """The merge-on-save round trip, which the mixin's save/load tests run with the training form kept."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            check_merged_round_trip(model_class(config), inputs)


class MRConvModelTest(MRConvCommonTests, unittest.TestCase):
    all_model_classes = (MRConvModel, MRConvForSequenceClassification)

    def tester(self):
        return MRConvModelTester(self)


class MRConvCausalModelTest(MRConvCommonTests, unittest.TestCase):
    all_model_classes = (MRConvModel, MRConvForSequenceClassification)

    def tester(self):
        return MRConvModelTester(self, bidirectional=False)


class MRConvForDocumentPairClassificationTest(MRConvCommonTests, unittest.TestCase):
    all_model_classes = (MRConvForDocumentPairClassification,)

    def tester(self):
        return MRConvModelTester(self, pair=True)

    def test_model(self):  # the backbone reads single sequences; MRConvModelTest covers it
        self.model_tester.create_and_check_for_sequence_classification(*self.model_tester.prepare_config_and_inputs())
