"""transformers' `ModelTesterMixin` and `ConfigTester` on MRConvNeXt, laid out as an in-tree model's test file.

The mixins come from the installed transformers release's source distribution (`transformers_common.py`).
"""

import unittest
from unittest import mock

import torch
from mrconv_testing import check_merged_round_trip
from transformers_common import load

from modeling_mrconv import MRConvNextConfig, MRConvNextForImageClassification, MRConvNextModel


common = load("test_modeling_common")
ConfigTester = load("test_configuration_common").ConfigTester
# an in-tree model is listed in transformers' auto mappings; the mixin reads these names (base models have no loss
# in test_training, image classifiers get labels in _prepare_for_class)
IN_TREE_NAMES = {
    "MODEL_MAPPING_NAMES": ("MRConvNextModel",),
    "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES": ("MRConvNextForImageClassification",),
}


class MRConvNextModelTester:
    def __init__(self, parent, batch_size=3, image_size=16, num_channels=3, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.image_size = image_size
        self.num_channels = num_channels
        self.is_training = is_training
        self.hidden_sizes = [8, 16]
        self.depths = [1, 1]
        self.num_labels = 3
        self.num_hidden_layers = len(self.depths)

    def get_config(self) -> MRConvNextConfig:
        return MRConvNextConfig(
            # the mixin's save/load tests compare state-dict keys; merge-on-save changes them by design, so they run
            # on the training form and test_merged_round_trip_is_exact checks the merged export
            reparameterize_on_save=False,
            num_channels=self.num_channels,
            image_size=self.image_size,
            patch_size=2,
            num_stages=len(self.depths),
            depths=self.depths,
            hidden_sizes=self.hidden_sizes,
            kernel_size=[4, 2],
            layer_scale_init_value=1.0,
            num_labels=self.num_labels,
        )

    def prepare_config_and_inputs(self):
        pixel_values = common.floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        labels = common.ids_tensor([self.batch_size], self.num_labels)
        return self.get_config(), pixel_values, labels

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values, _ = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values}


class MRConvNextModelTest(common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (MRConvNextModel, MRConvNextForImageClassification)
    has_attentions = False  # a convolution model: no attention weights to return
    test_resize_embeddings = False  # image patches through a Conv2d stem: no token embeddings to resize
    test_torch_exportable = False  # the torch.export tests live in the stand-in ExportTesterMixin (not in the sdist)

    def setUp(self):
        for name, classes in IN_TREE_NAMES.items():
            patcher = mock.patch.dict(getattr(common, name), {"mrconvnext": classes})
            patcher.start()
            self.addCleanup(patcher.stop)
        self.model_tester = MRConvNextModelTester(self)
        self.config_tester = ConfigTester(
            self,
            config_class=MRConvNextConfig,
            has_text_modality=False,
            num_stages=2,
            depths=[1, 1],
            hidden_sizes=[8, 16],
            common_properties=[],
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_image_classification(self):
        config, pixel_values, labels = self.model_tester.prepare_config_and_inputs()
        model = MRConvNextForImageClassification(config).eval()
        result = model(pixel_values, labels=labels)
        self.assertEqual(result.logits.shape, (self.model_tester.batch_size, self.model_tester.num_labels))
        self.assertTrue(torch.isfinite(result.loss))

    def test_merged_round_trip_is_exact(self):
        """The merge-on-save round trip, which the mixin's save/load tests run with the training form kept."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            check_merged_round_trip(model_class(config), inputs)

    @unittest.skip(reason="an image model: the Conv2d patch stem is not a token embedding (as ConvNeXt's tests say)")
    def test_model_get_set_embeddings(self):
        pass

    def test_hidden_states_output(self):
        """Overridden as ConvNeXt's test does: hidden states are (B, C, H, W) feature maps, the stem's and one per
        stage, not the (B, L, H) sequences the mixin's version expects."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        side = self.model_tester.image_size // config.patch_size
        for model_class in self.all_model_classes:
            for flag in ("argument", "config"):
                model = model_class(config).eval()
                with torch.no_grad():
                    if flag == "argument":
                        outputs = model(**inputs, output_hidden_states=True)
                    else:
                        model.config.output_hidden_states = True
                        outputs = model(**inputs)
                states = outputs.hidden_states
                self.assertEqual(len(states), len(config.depths) + 1)
                self.assertEqual(states[0].shape, (self.model_tester.batch_size, config.hidden_sizes[0], side, side))
                self.assertEqual(states[-1].shape[:2], (self.model_tester.batch_size, config.hidden_sizes[-1]))
