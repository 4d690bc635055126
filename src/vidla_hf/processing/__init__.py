"""Turning video files, bytes, frames and text into VidLA inputs."""

from .frame_sampling import random_frame_indices, sample_frame_indices, uniform_frame_indices
from .processing_vidla import VidLAProcessor
from .tokenization import build_clip_tokenizer
from .video_decoding import VideoDecodeError, available_backends, probe_video, read_video
from .video_processing_vidla import VidLAVideoProcessor

__all__ = [
    "VidLAProcessor",
    "VidLAVideoProcessor",
    "VideoDecodeError",
    "available_backends",
    "build_clip_tokenizer",
    "probe_video",
    "random_frame_indices",
    "read_video",
    "sample_frame_indices",
    "uniform_frame_indices",
]
