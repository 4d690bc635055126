"""VidLA configuration, model and CLIP conversion (each file loadable as Hub remote code)."""

from .configuration_vidla import PRESETS, NoSuchFolderError, VidLAConfig, VidLATextConfig, VidLAVisionConfig
from .convert_clip import convert_clip_state_dict
from .modeling_vidla import (
    CheckpointSaveError,
    CorruptCheckpointError,
    VidLAForVideoClassification,
    VidLAModel,
    VidLAOutput,
    VidLAPreTrainedModel,
    VidLATextModel,
    VidLAVisionModel,
    VidLAVisionModelOutput,
    gather_with_grad,
    info_nce,
)

__all__ = [
    "PRESETS",
    "CheckpointSaveError",
    "CorruptCheckpointError",
    "NoSuchFolderError",
    "VidLAConfig",
    "VidLAForVideoClassification",
    "VidLAModel",
    "VidLAOutput",
    "VidLAPreTrainedModel",
    "VidLATextConfig",
    "VidLATextModel",
    "VidLAVisionConfig",
    "VidLAVisionModel",
    "VidLAVisionModelOutput",
    "convert_clip_state_dict",
    "gather_with_grad",
    "info_nce",
]
