"""transformers' own common model tests (`ModelTesterMixin`) run against `VidLAForVideoClassification`.

The common tests and their tiny testers come from `test_transformers_common.py` (which fetches them and skips this
module the same way when they cannot be had); this file only adds the classifier, as transformers' VideoMAE test
adds `VideoMAEForVideoClassification` beside its base model.
"""

import unittest

import test_transformers_common as common
import torch

from vidla_hf import VidLAConfig, VidLAForVideoClassification


class VidLAForVideoClassificationTester:
    def __init__(self, parent, num_labels=3, projection_dim=16):
        self.parent = parent
        self.vision_model_tester = common.VidLAVisionModelTester(parent)
        self.text_model_tester = common.VidLATextModelTester(parent)
        self.batch_size = self.vision_model_tester.batch_size
        self.num_labels = num_labels
        self.projection_dim = projection_dim
        self.is_training = True
        # what the hidden-state tests read: the video tower's sequence ([CLS] + U·V [MST] + T·N patches)
        self.num_hidden_layers = self.vision_model_tester.num_hidden_layers
        self.seq_length = self.vision_model_tester.seq_length
        self.hidden_size = self.vision_model_tester.hidden_size

    def get_config(self):
        return VidLAConfig(
            text_config=self.text_model_tester.get_config().to_dict(),
            vision_config=self.vision_model_tester.get_config().to_dict(),
            projection_dim=self.projection_dim,
            num_labels=self.num_labels,
        )

    def prepare_config_and_inputs_for_common(self):
        _, pixel_values_videos = self.vision_model_tester.prepare_config_and_inputs()
        return self.get_config(), {"pixel_values_videos": pixel_values_videos}


class VidLAForVideoClassificationTest(
    common.HiddenStatesWithoutAttentionMaps, common.ModelTesterMixin, unittest.TestCase
):
    all_model_classes = (VidLAForVideoClassification,)
    test_resize_embeddings = False  # the input embedding is the video tower's patch convolution
    test_can_init_all_missing_weights_before_2023 = True  # run it (our files carry no copyright year)

    def setUp(self):
        self.model_tester = VidLAForVideoClassificationTester(self)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        # transformers adds `labels` only for the classifiers named in its own mappings
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        if return_labels:
            inputs_dict["labels"] = torch.zeros(self.model_tester.batch_size, dtype=torch.long)
        return inputs_dict

    def test_model(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model = VidLAForVideoClassification(config).eval()
        with torch.no_grad():
            logits = model(**inputs).logits
        self.assertEqual(logits.shape, (self.model_tester.batch_size, self.model_tester.num_labels))

    def test_model_get_set_embeddings(self):
        # as the video tower's test: the input embedding is the patch convolution, not an nn.Embedding
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        model = VidLAForVideoClassification(config)
        self.assertIsInstance(model.get_input_embeddings(), torch.nn.Conv2d)
        self.assertIsNone(model.get_output_embeddings())
