"""VidLA configuration, model and CLIP conversion (each file loadable as Hub remote code)."""

from .configuration_vidla import PRESETS, VidLAConfig, VidLATextConfig, VidLAVisionConfig
from .convert_clip import convert_clip_state_dict
from .modeling_vidla import (
    VidLAModel,
    VidLAOutput,
    VidLAPreTrainedModel,
    VidLATextModel,
    VidLAVisionModel,
    VidLAVisionModelOutput,
)

__all__ = [
    "PRESETS",
    "VidLAConfig",
    "VidLAModel",
    "VidLAOutput",
    "VidLAPreTrainedModel",
    "VidLATextConfig",
    "VidLATextModel",
    "VidLAVisionConfig",
    "VidLAVisionModel",
    "VidLAVisionModelOutput",
    "convert_clip_state_dict",
]
