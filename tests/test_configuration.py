import json

import pytest
from transformers import AutoConfig, CLIPTextConfig, CLIPVisionConfig

from vidla_hf import VidLAConfig, VidLATextConfig, VidLAVisionConfig
from vidla_hf.modeling.configuration_vidla import check_mask_ratio


def test_defaults_are_vidla_b16_on_clip_widths():
    config = VidLAConfig()
    clip_b16_vision = CLIPVisionConfig(patch_size=16)
    for field in (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "image_size",
    ):
        assert getattr(config.vision_config, field) == getattr(clip_b16_vision, field)
    assert config.vision_config.patch_size == 16
    assert config.text_config.to_dict()["hidden_size"] == CLIPTextConfig().hidden_size
    vision = config.vision_config
    assert (vision.num_frames, vision.mst_levels, vision.mst_tokens_per_level, vision.mst_temporal_scale) == (
        12,
        3,
        4,
        2,
    )
    assert vision.use_local_temporal_attention and not vision.patch_attends_cls and vision.mask_ratio == 0.0
    assert config.projection_dim == 512


@pytest.mark.parametrize(("name", "patch_size"), [("vidla-b32", 32), ("vidla-b16", 16)])
def test_presets_by_name(name, patch_size):
    config = VidLAConfig.from_preset(name, num_frames=32, mst_levels=0)
    assert config.vision_config.patch_size == patch_size
    assert config.vision_config.hidden_size == 768
    assert (config.vision_config.num_frames, config.vision_config.mst_levels) == (32, 0)


def test_unknown_preset_and_field_are_named():
    with pytest.raises(ValueError, match="vidla-b99"):
        VidLAConfig.from_preset("vidla-b99")
    with pytest.raises(ValueError, match="num_framez"):
        VidLAConfig.from_preset("vidla-tiny", num_framez=3)
    with pytest.raises(ValueError, match="hidden_size"):
        VidLAConfig.from_preset("vidla-tiny", hidden_size=3)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("num_frames", 0, ValueError),
        ("num_frames", -3, ValueError),
        ("mst_levels", -1, ValueError),
        ("mst_tokens_per_level", 0, ValueError),
        ("mst_temporal_scale", 0, ValueError),
        ("mask_ratio", 1.0, ValueError),
        ("mask_ratio", -0.1, ValueError),
        ("patch_size", 10, ValueError),  # 224 is not a multiple of 10
        ("num_attention_heads", 5, ValueError),  # 768 is not a multiple of 5
        ("num_frames", 2.5, TypeError),
        ("patch_attends_cls", "yes", TypeError),
    ],
)
def test_invalid_values_raise_naming_the_field(field, value, error):
    with pytest.raises(error, match=field):
        VidLAVisionConfig(**{field: value})
    with pytest.raises(error, match=field):
        VidLAConfig(vision_config={field: value})


def test_round_trip_and_auto_config(tmp_path):
    config = VidLAConfig.from_preset("vidla-tiny", num_frames=5, patch_attends_cls=True, mask_ratio=0.5)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, VidLAConfig) and isinstance(loaded.vision_config, VidLAVisionConfig)
    without_path = lambda c: {k: v for k, v in c.to_dict().items() if k != "_name_or_path"}  # noqa: E731
    assert without_path(loaded) == without_path(config)
    assert AutoConfig.for_model("vidla").model_type == "vidla"


def test_token_layout_is_cls_then_mst_then_patches():
    """1 + U·V summary tokens, then T·N patches: written out for the paper's U=3, V=4 and a 14x14 grid."""
    config = VidLAVisionConfig(mst_levels=3, mst_tokens_per_level=4)
    assert (config.num_mst_tokens, config.num_summary_tokens) == (12, 13)
    assert config.patches_per_frame(1 + 12 + 8 * 196, num_frames=8) == 196
    assert config.patches_per_frame(1 + 12 + 8 * 49, num_frames=8) == 49  # tube masking keeps N' < N
    assert VidLAVisionConfig(mst_levels=0).num_summary_tokens == 1
    for length, frames in ((1 + 12 + 8 * 196 + 1, 8), (12, 8), (13 + 8, 0)):
        with pytest.raises(ValueError, match=rf"{length} tokens is not 1 \+ U·V \(13\) \+ T·N"):
            config.patches_per_frame(length, frames)


def test_check_mask_ratio_is_the_one_validator():
    assert check_mask_ratio(0) == 0.0 and isinstance(check_mask_ratio(0), float)
    assert check_mask_ratio(0.75) == 0.75
    for value, error in ((1.0, ValueError), (-0.1, ValueError), ("0.5", TypeError), (True, TypeError)):
        with pytest.raises(error, match=r"`--mask_ratio` must be"):
            check_mask_ratio(value, name="--mask_ratio")
        with pytest.raises(error, match="mask_ratio"):
            VidLAVisionConfig(mask_ratio=value)


# Every size of each tower: a non-positive value (or a non-int) is refused, naming the config, field and value.
TEXT_SIZES = [
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "projection_dim",
]
VISION_SIZES = [
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_channels",
    "image_size",
    "patch_size",
    "num_frames",
    "projection_dim",
]


@pytest.mark.parametrize("value", [0, -4])
@pytest.mark.parametrize(
    ("config_class", "field"),
    [(VidLATextConfig, f) for f in TEXT_SIZES] + [(VidLAVisionConfig, f) for f in VISION_SIZES],
)
def test_non_positive_sizes_are_refused(config_class, field, value):
    message = rf"{config_class.__name__}: `{field}` must be an int >= 1, got {value}\."
    with pytest.raises(ValueError, match=message):
        config_class(**{field: value})
    key = "text_config" if config_class is VidLATextConfig else "vision_config"
    with pytest.raises(ValueError, match=message):
        VidLAConfig(**{key: {field: value}})


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"projection_dim": 0}, ValueError, r"`projection_dim` must be an int >= 1, got 0"),
        (
            {"logit_scale_init_value": float("nan")},
            ValueError,
            r"`logit_scale_init_value` must be .*, got nan",
        ),
        (
            {"logit_scale_init_value": float("inf")},
            ValueError,
            r"`logit_scale_init_value` must be .*, got inf",
        ),
        (
            {"logit_scale_init_value": -float("inf")},
            ValueError,
            r"`logit_scale_init_value` must be .*, got -inf",
        ),
        (
            {"logit_scale_init_value": "2.6"},
            TypeError,
            r"`logit_scale_init_value` must be .*, got '2.6' \(str\)",
        ),
        ({"initializer_factor": float("nan")}, ValueError, r"`initializer_factor` must be .*, got nan"),
        ({"vision_config": None}, ValueError, r"`vision_config` is None \(null in config.json\)"),
        ({"text_config": None}, ValueError, r"`text_config` is None \(null in config.json\)"),
    ],
)
def test_invalid_top_level_values_are_refused(kwargs, error, message):
    with pytest.raises(error, match=rf"VidLAConfig: {message}"):
        VidLAConfig(**kwargs)


@pytest.mark.parametrize("key", ["vision_config", "text_config"])
def test_null_sub_config_in_config_json_is_refused(tmp_path, key):
    VidLAConfig.from_preset("vidla-tiny").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config[key] = None
    (tmp_path / "config.json").write_text(json.dumps(config))
    for load in (VidLAConfig.from_pretrained, AutoConfig.from_pretrained):
        with pytest.raises(ValueError, match=rf"`{key}` is None \(null in config.json\)"):
            load(tmp_path)
    # Left out entirely, a sub-config still takes its defaults (configs saved that way stay loadable).
    del config[key]
    (tmp_path / "config.json").write_text(json.dumps(config))
    defaults = VidLAConfig().to_dict()[key]
    assert VidLAConfig.from_pretrained(tmp_path).to_dict()[key] == defaults
