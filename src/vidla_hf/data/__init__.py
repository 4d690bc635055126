"""Everything about samples: streamed video-text datasets with resumable state (`streams`), and the embedded
synthetic dataset (`synthetic`)."""

from .streams import (
    CorruptStreamError,
    VideoTextStream,
    collate_video_text,
    load_video_text_stream,
    resolve_tar_shards,
    source_fingerprint,
)

__all__ = [
    "CorruptStreamError",
    "VideoTextStream",
    "collate_video_text",
    "load_video_text_stream",
    "resolve_tar_shards",
    "source_fingerprint",
]
