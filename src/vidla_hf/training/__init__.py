"""Training: streamed data, the VidLA objective, and the loop shared by the example scripts."""

from .data import CorruptStreamError, VideoTextStream, collate_video_text, load_video_text_stream
from .losses import VidLALoss, gather_with_grad, info_nce

__all__ = [
    "CorruptStreamError",
    "VidLALoss",
    "VideoTextStream",
    "collate_video_text",
    "gather_with_grad",
    "info_nce",
    "load_video_text_stream",
]
