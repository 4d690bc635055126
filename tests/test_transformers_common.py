"""transformers' own common model tests (`ModelTesterMixin`, `ConfigTester`) run against the VidLA models.

The test files are not part of the transformers wheel, so the source distribution of the *installed*
transformers version is fetched once with pip (`pip download --no-deps --no-binary :all:`) and its top-level
`tests/*.py` files are unpacked into a cache folder (`$VIDLA_HF_CACHE`, default `~/.cache/vidla_hf`). Nothing
of transformers is copied into this repository. They are imported as the package `transformers_common_tests`
(not `tests`, which would collide with this repository's own `tests/` folder on `sys.path`).

The sdist ships only the top-level test files, not the helper packages they import. Those are provided here as
small stand-ins (see `_install_stand_ins`); the `parameterized` package the common tests use is installed
into the same cache folder when it is missing.

Where the download is impossible (no network) the module is skipped with the reason; `.ci/run` sets
`VIDLA_HF_REQUIRE_TRANSFORMERS_TESTS=1`, which turns that skip into an error.

The tester classes follow transformers' `tests/models/x_clip/test_modeling_x_clip.py`: one tester per tower
plus one for the joint model, tiny configs (image 8, patch 2, hidden 32, 2 layers, 4 heads). Every skipped
common test states why.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
import unittest
import warnings
from pathlib import Path

import pytest
import torch
import transformers

PACKAGE = "transformers_common_tests"
REQUIRE_ENV = "VIDLA_HF_REQUIRE_TRANSFORMERS_TESTS"


def cache_root() -> Path:
    return Path(os.environ.get("VIDLA_HF_CACHE", Path.home() / ".cache" / "vidla_hf")).expanduser()


def _pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        last_lines = " | ".join(result.stderr.strip().splitlines()[-2:])
        raise RuntimeError(f"`pip {' '.join(args)}` failed: {last_lines}")


def fetch_transformers_tests(version: str = transformers.__version__) -> Path:
    """The folder holding the top-level `tests/*.py` of transformers `version`'s sdist, fetched on first use."""
    target = cache_root() / f"transformers-{version}-tests"
    if (target / "__init__.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as staging:
        _pip("download", "--no-deps", "--no-binary", ":all:", f"transformers=={version}", "-d", staging)
        (archive,) = Path(staging).glob("transformers-*.tar.gz")
        unpacked = Path(staging) / "tests"
        unpacked.mkdir()
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts  # ("transformers-X", "tests", "test_*.py")
                if len(parts) == 3 and parts[1] == "tests" and parts[2].endswith(".py") and member.isfile():
                    (unpacked / parts[2]).write_bytes(tar.extractfile(member).read())
        if not (unpacked / "test_modeling_common.py").is_file():
            raise RuntimeError(f"{archive.name} has no tests/test_modeling_common.py")
        # The repository's tests/__init__.py is empty and not in the sdist; `test_configuration_common` executes it.
        (unpacked / "__init__.py").write_text("")
        try:  # atomic: a concurrent fetch either wins or finds the folder complete
            os.replace(unpacked, target)
        except OSError:
            if not (target / "__init__.py").is_file():
                raise
    return target


def ensure_parameterized() -> None:
    """The common tests use `parameterized`, which is not a dependency of this project: installed into the cache
    folder when missing."""
    try:
        importlib.import_module("parameterized")
        return
    except ImportError:
        pass
    site = cache_root() / "site-packages"
    if not (site / "parameterized").is_dir():
        site.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=site.parent, prefix=".site-packages-"))
        try:
            _pip("install", "--quiet", "--no-deps", "--target", str(staging), "parameterized>=0.9")
            os.replace(staging, site)
        except OSError:
            if not (site / "parameterized").is_dir():  # not another process that got there first
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    sys.path.append(str(site))
    importlib.import_module("parameterized")


# Our own list of `PreTrainedConfig`'s common fields set to non-default values, for
# `ConfigTester.check_config_arguments_init` (transformers' list lives in tests/utils/, which the sdist lacks).
CONFIG_COMMON_KWARGS = {
    "output_hidden_states": True,
    "return_dict": False,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["VidLAModel"],
    "problem_type": "regression",
}


def _install_stand_ins(folder: Path) -> None:
    """Registers `folder` as the package `PACKAGE`, plus stand-ins for the helper modules the sdist lacks."""
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(folder)]
    package.__file__ = str(folder / "__init__.py")
    sys.modules[PACKAGE] = package

    def module(name: str, **attributes) -> None:
        stand_in = types.ModuleType(f"{PACKAGE}.{name}")
        stand_in.__dict__.update(attributes)
        sys.modules[stand_in.__name__] = stand_in

    # tests/exporters/test_export.py adds torch.export / ONNX export tests to ModelTesterMixin; not in the sdist,
    # so those tests are not run (VidLA makes no export claims).
    module("exporters", __path__=[])
    module("exporters.test_export", ExportTesterMixin=type("ExportTesterMixin", (), {}))
    # tests/generation/test_utils.py: generation tests; VidLA cannot generate, so its testers would not use them.
    module("generation", __path__=[])
    module("generation.test_utils", GenerationTesterMixin=type("GenerationTesterMixin", (), {}))
    module("utils", __path__=[])
    module("utils.test_configuration_utils", config_common_kwargs=CONFIG_COMMON_KWARGS)


def load_common_tests():
    folder = fetch_transformers_tests()
    ensure_parameterized()
    _install_stand_ins(folder)
    with warnings.catch_warnings():
        # transformers registers its marks (`slow`, `flash_attn_test`, ...) in its own conftest, not here
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        configuration = importlib.import_module(f"{PACKAGE}.test_configuration_common")
        modeling = importlib.import_module(f"{PACKAGE}.test_modeling_common")
    return configuration, modeling


try:
    _configuration_common, _modeling_common = load_common_tests()
except Exception as error:  # no network, no pip: say so, and fail where the suite is required
    if os.environ.get(REQUIRE_ENV) == "1":
        raise
    pytest.skip(
        f"transformers' common tests unavailable ({type(error).__name__}: {error}); set {REQUIRE_ENV}=1 to fail",
        allow_module_level=True,
    )

ConfigTester = _configuration_common.ConfigTester
ModelTesterMixin = _modeling_common.ModelTesterMixin
floats_tensor = _modeling_common.floats_tensor
ids_tensor = _modeling_common.ids_tensor
random_attention_mask = _modeling_common.random_attention_mask

from vidla_hf import (  # noqa: E402
    VidLAConfig,
    VidLAModel,
    VidLATextConfig,
    VidLATextModel,
    VidLAVisionConfig,
    VidLAVisionModel,
)

NO_ATTENTION_MAPS = (
    "not applicable: the video tower's attention is factorised (temporal, then [CLS]/[MST] and per-frame "
    "attention), so it has no single attention map and output_attentions=True raises ValueError (see "
    "tests/test_modeling_vidla.py::test_output_attentions_is_refused_by_the_video_tower)"
)
TOWERS_HAVE_NO_LOSS = (
    "not applicable: a tower returns features, no loss; VidLAModelTest trains the joint model"
)


class HiddenStatesWithoutAttentionMaps:
    """Runs the common tests that check hidden states *and* attention maps with `has_attentions = False` (set on
    the test instance, for that test only): the hidden-state half runs, the attention-map half is left out."""

    def test_retain_grad_hidden_states_attentions(self):
        self.has_attentions = False
        super().test_retain_grad_hidden_states_attentions()

    def test_model_outputs_equivalence(self):
        self.has_attentions = False
        super().test_model_outputs_equivalence()

    @unittest.skip(reason=NO_ATTENTION_MAPS)
    def test_attention_outputs(self):
        pass

    @unittest.skip(reason=NO_ATTENTION_MAPS)
    def test_get_video_features_attentions(self):
        pass


class VidLAVisionModelTester:
    def __init__(
        self,
        parent,
        batch_size=3,
        image_size=8,
        patch_size=2,
        num_channels=3,
        num_frames=4,
        mst_levels=2,
        mst_tokens_per_level=2,
        is_training=True,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        dropout=0.0,
        attention_dropout=0.0,
        initializer_range=0.02,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.num_frames = num_frames
        self.mst_levels = mst_levels
        self.mst_tokens_per_level = mst_tokens_per_level
        self.is_training = is_training
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range
        # [CLS] + U·V [MST] + T·N patches
        num_patches = (image_size // patch_size) ** 2
        self.seq_length = 1 + mst_levels * mst_tokens_per_level + num_frames * num_patches

    def get_config(self):
        return VidLAVisionConfig(
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_channels=self.num_channels,
            num_frames=self.num_frames,
            mst_levels=self.mst_levels,
            mst_tokens_per_level=self.mst_tokens_per_level,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            initializer_range=self.initializer_range,
        )

    def prepare_config_and_inputs(self):
        pixel_values_videos = floats_tensor(
            [self.batch_size, self.num_frames, self.num_channels, self.image_size, self.image_size]
        )
        return self.get_config(), pixel_values_videos

    def create_and_check_model(self, config, pixel_values_videos):
        model = VidLAVisionModel(config).eval()
        with torch.no_grad():
            result = model(pixel_values_videos)
        self.parent.assertEqual(
            result.last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size)
        )
        self.parent.assertEqual(result.pooler_output.shape, (self.batch_size, self.hidden_size))

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values_videos = self.prepare_config_and_inputs()
        return config, {"pixel_values_videos": pixel_values_videos}


class VidLATextModelTester:
    def __init__(
        self,
        parent,
        batch_size=3,
        seq_length=7,
        is_training=True,
        use_input_mask=True,
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        dropout=0.0,
        attention_dropout=0.0,
        max_position_embeddings=64,
        initializer_range=0.02,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.use_input_mask = use_input_mask
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range

    def get_config(self):
        return VidLATextConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            max_position_embeddings=self.max_position_embeddings,
            initializer_range=self.initializer_range,
        )

    def prepare_config_and_inputs(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        input_mask = None
        if self.use_input_mask:
            input_mask = random_attention_mask([self.batch_size, self.seq_length])
            # right padding of random length, as in transformers' CLIP / X-CLIP testers
            generator = torch.Generator().manual_seed(0)
            starts = torch.randint(1, self.seq_length - 1, (self.batch_size,), generator=generator)
            for row, start in enumerate(starts.tolist()):
                input_mask[row, :start] = 1
                input_mask[row, start:] = 0
        return self.get_config(), input_ids, input_mask

    def create_and_check_model(self, config, input_ids, input_mask):
        model = VidLATextModel(config).eval()
        with torch.no_grad():
            result = model(input_ids, attention_mask=input_mask)
        self.parent.assertEqual(
            result.last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size)
        )
        self.parent.assertEqual(result.pooler_output.shape, (self.batch_size, self.hidden_size))

    def prepare_config_and_inputs_for_common(self):
        config, input_ids, input_mask = self.prepare_config_and_inputs()
        return config, {"input_ids": input_ids, "attention_mask": input_mask}


class VidLAModelTester:
    def __init__(self, parent, projection_dim=16, is_training=True):
        self.parent = parent
        self.projection_dim = projection_dim
        self.text_model_tester = VidLATextModelTester(parent)
        self.vision_model_tester = VidLAVisionModelTester(parent)
        self.batch_size = self.text_model_tester.batch_size  # batching-equivalence test
        self.is_training = is_training

    def get_config(self):
        return VidLAConfig(
            text_config=self.text_model_tester.get_config().to_dict(),
            vision_config=self.vision_model_tester.get_config().to_dict(),
            projection_dim=self.projection_dim,
        )

    def prepare_config_and_inputs(self):
        _, input_ids, attention_mask = self.text_model_tester.prepare_config_and_inputs()
        _, pixel_values_videos = self.vision_model_tester.prepare_config_and_inputs()
        return self.get_config(), input_ids, attention_mask, pixel_values_videos

    def create_and_check_model(self, config, input_ids, attention_mask, pixel_values_videos):
        model = VidLAModel(config).eval()
        with torch.no_grad():
            result = model(input_ids, pixel_values_videos, attention_mask)
        videos, texts = self.vision_model_tester.batch_size, self.text_model_tester.batch_size
        self.parent.assertEqual(result.logits_per_video.shape, (videos, texts))
        self.parent.assertEqual(result.logits_per_text.shape, (texts, videos))

    def prepare_config_and_inputs_for_common(self):
        config, input_ids, attention_mask, pixel_values_videos = self.prepare_config_and_inputs()
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values_videos": pixel_values_videos,
            "return_loss": True,
        }
        return config, inputs


class VidLAVisionModelTest(HiddenStatesWithoutAttentionMaps, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (VidLAVisionModel,)
    test_resize_embeddings = False  # the input embedding is the patch convolution
    test_can_init_all_missing_weights_before_2023 = True  # run it (our files carry no copyright year)

    def setUp(self):
        self.model_tester = VidLAVisionModelTester(self)
        self.config_tester = ConfigTester(self, config_class=VidLAVisionConfig, has_text_modality=False)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        self.model_tester.create_and_check_model(*self.model_tester.prepare_config_and_inputs())

    def test_model_get_set_embeddings(self):
        # as X-CLIP's vision test: the input embedding is the patch convolution, not an nn.Embedding
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        model = VidLAVisionModel(config)
        self.assertIsInstance(model.get_input_embeddings(), torch.nn.Conv2d)
        self.assertIsNone(model.get_output_embeddings())

    @unittest.skip(reason=TOWERS_HAVE_NO_LOSS)
    def test_training(self):
        pass

    @unittest.skip(reason=TOWERS_HAVE_NO_LOSS)
    def test_training_gradient_checkpointing(self):
        pass

    @unittest.skip(reason=TOWERS_HAVE_NO_LOSS)
    def test_training_gradient_checkpointing_use_reentrant_false(self):
        pass

    @unittest.skip(reason=TOWERS_HAVE_NO_LOSS)
    def test_training_gradient_checkpointing_use_reentrant_true(self):
        pass

    @unittest.skip(
        reason="not applicable: one tower, not a composite model; see the non-composite dispatch test"
    )
    def test_sdpa_can_dispatch_composite_models(self):
        pass


class VidLATextModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (VidLATextModel,)
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = VidLATextModelTester(self)
        self.config_tester = ConfigTester(self, config_class=VidLATextConfig)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        self.model_tester.create_and_check_model(*self.model_tester.prepare_config_and_inputs())

    @unittest.skip(reason=TOWERS_HAVE_NO_LOSS)
    def test_training(self):
        pass

    @unittest.skip(reason=TOWERS_HAVE_NO_LOSS)
    def test_training_gradient_checkpointing(self):
        pass

    @unittest.skip(reason=TOWERS_HAVE_NO_LOSS)
    def test_training_gradient_checkpointing_use_reentrant_false(self):
        pass

    @unittest.skip(reason=TOWERS_HAVE_NO_LOSS)
    def test_training_gradient_checkpointing_use_reentrant_true(self):
        pass

    @unittest.skip(
        reason="not applicable: one tower, not a composite model; see the non-composite dispatch test"
    )
    def test_sdpa_can_dispatch_composite_models(self):
        pass


class VidLAModelTest(HiddenStatesWithoutAttentionMaps, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (VidLAModel,)
    additional_model_inputs = ["pixel_values_videos"]  # as CLIP's test: eager-vs-SDPA feeds both inputs
    _is_composite = True
    test_resize_embeddings = False
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = VidLAModelTester(self)
        self.config_tester = ConfigTester(
            self, config_class=VidLAConfig, has_text_modality=False, common_properties=["projection_dim"]
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        self.model_tester.create_and_check_model(*self.model_tester.prepare_config_and_inputs())

    @unittest.skip(
        reason="not applicable: VidLAOutput nests hidden states per tower; the tower tests check them"
    )
    def test_hidden_states_output(self):
        pass

    @unittest.skip(
        reason="not applicable: VidLAOutput nests hidden states per tower; the tower tests check them"
    )
    def test_retain_grad_hidden_states_attentions(self):
        pass

    @unittest.skip(
        reason="not applicable: two towers, no single input embedding (as CLIPModel); see tower tests"
    )
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skip(reason="not applicable: composite (two towers); see the composite dispatch test")
    def test_sdpa_can_dispatch_non_composite_models(self):
        pass

    @unittest.skip(
        reason="not applicable: it passes output_attentions=True (the text tower records attentions), which the "
        "video tower refuses; the tower tests run it for each tower"
    )
    def test_capture_outputs_decorator(self):
        pass
