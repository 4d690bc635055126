"""VidLA model configuration.

Kept free of `vidla_hf` imports so that it can be copied into a Hub repository as remote code.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import field
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, CLIPVisionConfig, PreTrainedConfig


def _check_int(name: str, value: Any, minimum: int, owner: str = "") -> None:
    where = f"{owner}: " if owner else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{where}`{name}` must be an int >= {minimum}, got {value!r} ({type(value).__name__})."
        )
    if value < minimum:
        raise ValueError(f"{where}`{name}` must be an int >= {minimum}, got {value}.")


def _check_finite(name: str, value: Any, owner: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: `{name}` must be a finite float, got {value!r} ({type(value).__name__}).")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: `{name}` must be a finite float, got {value}.")


def _check_tower(config: PreTrainedConfig, sizes: tuple[str, ...]) -> None:
    """Every size field of a tower (the widths every tower has, and its own `sizes`) is a positive int, and the
    heads divide the width."""
    owner = type(config).__name__
    for name in (*sizes, "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
        _check_int(name, getattr(config, name), 1, owner)
    if getattr(config, "projection_dim", None) is not None:
        _check_int("projection_dim", config.projection_dim, 1, owner)
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(
            f"{owner}: `hidden_size` ({config.hidden_size}) must be a multiple of `num_attention_heads` "
            f"({config.num_attention_heads})."
        )


def check_mask_ratio(value: Any, name: str = "mask_ratio") -> float:
    """Returns the tube masking ratio `value` as a float, or raises if it is not a number in [0, 1).

    The one validator of a masking ratio: the vision config, `VidLAVisionModel.forward` and the training
    arguments all call it. `name` is the argument named in the error (e.g. `--mask_ratio`).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a float in [0, 1), got {value!r}.")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value}.")
    return float(value)


class NoSuchFolderError(FileNotFoundError, ValueError):
    """`from_pretrained` was given a local path (see `check_local_folder`) that does not exist."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


def looks_like_local_path(name: str | os.PathLike) -> bool:
    """Whether `name` can only mean a local folder, never a Hub id.

    Hub ids are `name` or `org/name`: letters, digits, `-`, `_`, `.`, not starting with `.`, at most one `/`.
    So a `pathlib.Path`, or a string that starts with `.`, `/` or `~`, ends with a path separator, contains a
    backslash or a drive letter (`C:`), or has more than one `/`, is a path. `runs/typo` is a valid Hub id and
    is left to the Hub lookup.
    """
    if not isinstance(name, str):
        return True  # an os.PathLike, e.g. pathlib.Path
    return (
        name.startswith((".", "/", "~"))
        or name.endswith(("/", os.sep))
        or "\\" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or name.count("/") > 1
        or os.path.isabs(name)
    )


def check_local_folder(pretrained_model_name_or_path: Any) -> Any:
    """What to hand to transformers' `from_pretrained`: a `~` is expanded (transformers does not), and a name that
    is clearly a local path (`looks_like_local_path`) but does not exist raises `NoSuchFolderError` at once,
    instead of becoming a Hub lookup (retries, then a misleading connection or repo-id error)."""
    if not isinstance(pretrained_model_name_or_path, (str, os.PathLike)):
        return pretrained_model_name_or_path  # None (config + state_dict), a dict, ...
    name = os.fspath(pretrained_model_name_or_path)
    if not isinstance(name, str):
        return pretrained_model_name_or_path
    expanded = os.path.abspath(os.path.expanduser(name))
    if os.path.exists(expanded):
        return os.path.expanduser(name) if name.startswith("~") else pretrained_model_name_or_path
    if looks_like_local_path(pretrained_model_name_or_path):
        raise NoSuchFolderError(
            f"no such folder: {expanded} (from {name!r}). A name that starts with '.', '/' or '~', ends with a "
            "path separator, or contains '\\' or more than one '/' is a local path, not a Hub id "
            "('name' or 'org/name').",
            expanded,
        )
    return pretrained_model_name_or_path


class LocalFolderCheck:
    """Mixin: `from_pretrained` runs `check_local_folder` on its first argument."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        return super().from_pretrained(check_local_folder(pretrained_model_name_or_path), *args, **kwargs)


@strict
class VidLATextConfig(LocalFolderCheck, CLIPTextConfig):
    r"""
    Configuration of the VidLA text tower. It is CLIP's text tower, field for field (see [`CLIPTextConfig`]).

    Example:

    ```python
    >>> from vidla_hf import VidLATextConfig
    >>> VidLATextConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4).hidden_size
    64

    ```"""

    model_type = "vidla_text_model"
    base_config_key = "text_config"

    def __post_init__(self, **kwargs):
        _check_tower(self, ("vocab_size", "max_position_embeddings"))
        super().__post_init__(**kwargs)


@strict
class VidLAVisionConfig(LocalFolderCheck, CLIPVisionConfig):
    r"""
    Configuration of the VidLA video tower: CLIP's vision fields plus the hierarchical temporal attention.

    Args:
        num_frames (`int`, defaults to 12):
            Frames the temporal position table is sized for. Other frame counts are accepted at run time by
            linear interpolation of that table.
        mst_levels (`int`, defaults to 3):
            Temporal hierarchy levels of [MST] tokens (U in the paper). 0 disables [MST] tokens.
        mst_tokens_per_level (`int`, defaults to 4):
            [MST] tokens per level (V).
        mst_temporal_scale (`int`, defaults to 2):
            Temporal scale r: level u sees frames t with t mod r**u == 0. 1 means no hierarchy.
        use_local_temporal_attention (`bool`, defaults to `True`):
            Whether each layer starts with spatially-local temporal attention (paper eq. 1).
        patch_attends_cls (`bool`, defaults to `False`):
            Whether patch tokens attend to [CLS] in the global attention. The paper's text says nobody attends
            to [CLS]; its M^PATCH matrix disagrees. `False` follows the text; `True` is what CLIP's image tower
            does and makes a one-frame model without [MST] tokens equal to CLIP.
        mask_ratio (`float`, defaults to 0.0):
            Fraction of spatial positions dropped in every frame in training mode (tube token masking).

    Example:

    ```python
    >>> from vidla_hf import VidLAVisionConfig
    >>> config = VidLAVisionConfig(num_frames=32, mst_levels=0)
    >>> config.num_frames, config.mst_levels, config.patch_size
    (32, 0, 16)

    ```"""

    model_type = "vidla_vision_model"
    base_config_key = "vision_config"

    patch_size: int | list[int] | tuple[int, int] | None = 16
    num_frames: int = 12
    mst_levels: int = 3
    mst_tokens_per_level: int = 4
    mst_temporal_scale: int = 2
    use_local_temporal_attention: bool = True
    patch_attends_cls: bool = False
    mask_ratio: float | int = 0.0

    def __post_init__(self, **kwargs):
        owner = type(self).__name__
        _check_int("mst_levels", self.mst_levels, 0, owner)
        _check_tower(
            self,
            (
                "num_frames",
                "mst_tokens_per_level",
                "mst_temporal_scale",
                "image_size",
                "patch_size",
                "num_channels",
            ),
        )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"{owner}: `image_size` ({self.image_size}) must be a multiple of `patch_size` ({self.patch_size})."
            )
        for name in ("use_local_temporal_attention", "patch_attends_cls"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{owner}: `{name}` must be a bool, got {getattr(self, name)!r}.")
        check_mask_ratio(self.mask_ratio)
        super().__post_init__(**kwargs)

    @property
    def num_mst_tokens(self) -> int:
        """U·V, the number of [MST] tokens."""
        return self.mst_levels * self.mst_tokens_per_level

    @property
    def num_summary_tokens(self) -> int:
        """1 + U·V: the [CLS] and [MST] tokens in front of the patches in the video tower's sequence."""
        return 1 + self.num_mst_tokens

    def patches_per_frame(self, sequence_length: int, num_frames: int) -> int:
        """N (N' under tube masking) of a video tower sequence of `sequence_length` = 1 + U·V + T·N tokens.

        Example:

        ```python
        >>> from vidla_hf import VidLAVisionConfig
        >>> config = VidLAVisionConfig(mst_levels=3, mst_tokens_per_level=4)  # 1 + 12 summary tokens
        >>> config.patches_per_frame(1 + 12 + 8 * 196, num_frames=8)
        196

        ```"""
        num_patch_tokens = sequence_length - self.num_summary_tokens
        if num_frames < 1 or num_patch_tokens < 0 or num_patch_tokens % num_frames:
            raise ValueError(
                f"a sequence of {sequence_length} tokens is not 1 + U·V ({self.num_summary_tokens}) + T·N with "
                f"T = {num_frames} frames."
            )
        return num_patch_tokens // num_frames


# CLIP ViT-B widths, shared by the /32 and /16 presets (which differ only in `patch_size`).
_VIT_B_VISION = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
}
PRESETS: dict[str, dict[str, Any]] = {
    # The paper's two models: CLIP ViT-B/32 and ViT-B/16 at 224 px with U=3, V=4, r=2.
    "vidla-b32": {"vision_config": {**_VIT_B_VISION, "patch_size": 32}, "text_config": {}},
    "vidla-b16": {"vision_config": {**_VIT_B_VISION, "patch_size": 16}, "text_config": {}},
    # Small enough to train on a laptop CPU; the real CLIP vocabulary so the real tokenizer works.
    "vidla-tiny": {
        "vision_config": {
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 64,
            "patch_size": 16,
            "num_frames": 8,
            "mst_levels": 2,
            "mst_tokens_per_level": 2,
        },
        "text_config": {
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        "projection_dim": 128,
    },
}


def route_overrides(overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Splits flat VidLA config fields into top-level, `vision_config` and `text_config` groups.

    A name that is both a vision and a text field (e.g. `hidden_size`) is ambiguous: pass it inside
    `vision_config={...}` or `text_config={...}` instead. A classifier's label fields are top-level.
    """
    label_fields = ("num_labels", "id2label", "label2id", "problem_type")  # VidLAForVideoClassification's
    vision_fields = set(VidLAVisionConfig.__dataclass_fields__)
    text_fields = set(VidLATextConfig.__dataclass_fields__)
    top_fields = set(VidLAConfig.__dataclass_fields__)
    routed: dict[str, dict[str, Any]] = {"top": {}, "vision_config": {}, "text_config": {}}
    for name, value in overrides.items():
        if name in ("vision_config", "text_config"):
            if not isinstance(value, dict):
                raise TypeError(f"`{name}` override must be a dict of fields, got {type(value).__name__}.")
            routed[name].update(value)
        elif name in ("projection_dim", "logit_scale_init_value", "initializer_factor", *label_fields):
            routed["top"][name] = value
        elif name in vision_fields and name in text_fields:
            raise ValueError(
                f"`{name}` exists in both the vision and the text config; pass it as "
                f"vision_config={{'{name}': ...}} or text_config={{'{name}': ...}}."
            )
        elif name in vision_fields:
            routed["vision_config"][name] = value
        elif name in text_fields:
            routed["text_config"][name] = value
        elif name in top_fields:
            routed["top"][name] = value
        else:
            raise ValueError(f"Unknown VidLA config field `{name}`.")
    return routed


@strict
class VidLAConfig(LocalFolderCheck, PreTrainedConfig):
    r"""
    Configuration of [`VidLAModel`]: a CLIP text tower and a VidLA video tower joined by linear projections.
    The defaults are VidLA-B/16 (CLIP ViT-B/16 widths, 12 frames, U=3, V=4, r=2).

    Args:
        text_config (`dict` or `VidLATextConfig`, *optional*): The text tower (left out: the defaults). `None`
            (`null` in config.json) is refused rather than silently replaced by the defaults.
        vision_config (`dict` or `VidLAVisionConfig`, *optional*): The video tower; as `text_config`.
        projection_dim (`int`, defaults to 512): Width of the shared embedding space.
        logit_scale_init_value (`float`, defaults to 2.6592): Initial log of the inverse temperature (CLIP's).

    Example:

    ```python
    >>> from vidla_hf import VidLAConfig
    >>> config = VidLAConfig.from_preset("vidla-b32", num_frames=32)
    >>> config.vision_config.patch_size, config.vision_config.num_frames
    (32, 32)

    ```"""

    model_type = "vidla"
    sub_configs_defaults = {"text_config": VidLATextConfig, "vision_config": VidLAVisionConfig}

    # Left out, a sub-config is built from its defaults; an explicit None (JSON null) is an error.
    text_config: dict | VidLATextConfig | None = field(default_factory=dict)
    vision_config: dict | VidLAVisionConfig | None = field(default_factory=dict)
    projection_dim: int = 512
    logit_scale_init_value: float | int = 2.6592
    initializer_factor: float | int = 1.0

    def __post_init__(self, **kwargs):
        owner = type(self).__name__
        for name, config_class in self.sub_configs.items():
            if getattr(self, name) is None:
                raise ValueError(
                    f"{owner}: `{name}` is None (null in config.json); pass a {config_class.__name__} or a dict "
                    f"of its fields ({{}} for the defaults), or leave `{name}` out."
                )
        _check_int("projection_dim", self.projection_dim, 1, owner)
        _check_finite("logit_scale_init_value", self.logit_scale_init_value, owner)
        _check_finite("initializer_factor", self.initializer_factor, owner)
        super().__post_init__(**kwargs)

    @property
    def num_frames(self) -> int:
        """`vision_config.num_frames`, where transformers' video-classification pipeline reads it; setting it (also
        `VidLAConfig(num_frames=...)`) sets the video tower's (`model.resize_num_frames` resizes a built model)."""
        return self.vision_config.num_frames

    @num_frames.setter
    def num_frames(self, value: int) -> None:
        _check_int("num_frames", value, 1, type(self).__name__)
        self.vision_config.num_frames = value

    @classmethod
    def from_preset(cls, name: str, **overrides) -> VidLAConfig:
        """Builds a named preset (`vidla-b32`, `vidla-b16`, `vidla-tiny`) with any fields overridden.

        Flat overrides are routed to the sub-config that owns the field (`num_frames` to the vision config).
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown VidLA preset {name!r}; choose one of {sorted(PRESETS)}.")
        preset = PRESETS[name]
        routed = route_overrides(overrides)
        return cls(
            text_config={**preset["text_config"], **routed["text_config"]},
            vision_config={**preset["vision_config"], **routed["vision_config"]},
            **{
                **{k: v for k, v in preset.items() if k not in ("text_config", "vision_config")},
                **routed["top"],
            },
        )


__all__ = [
    "NoSuchFolderError",
    "VidLAConfig",
    "VidLATextConfig",
    "VidLAVisionConfig",
    "PRESETS",
    "route_overrides",
    "check_local_folder",
    "check_mask_ratio",
]
