"""Video decoding: frames at given indices plus metadata, from a path, bytes or a binary file-like object.

Backends: `decord` (default when installed), `pyav` (always available: bundled FFmpeg) and `torchcodec`
(optional; needs system FFmpeg). Every failure is a `VideoDecodeError` (a `ValueError`) naming the source.

Decord is unmaintained and crashes or hangs on some corrupt files (dmlc/decord issues 25, 229, 269, 318);
a segfault in a DataLoader worker takes training down. So every source is first validated with PyAV,
which reports damage as Python exceptions: the container must open, hold a video stream, and every frame
its header declares must be present as a packet (a truncated file fails here). Only validated sources
reach decord.
"""

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from transformers.video_utils import VideoMetadata

BACKENDS = ("auto", "decord", "pyav", "torchcodec")
VideoSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


class VideoDecodeError(ValueError):
    """A video could not be decoded; the message names the source and the reason."""


def describe_source(source: VideoSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return f"<file object {getattr(source, 'name', type(source).__name__)!r}>"


def available_backends() -> list[str]:
    """Installed backends, in `auto` preference order."""
    found = []
    for name, module in (("decord", "decord"), ("pyav", "av"), ("torchcodec", "torchcodec.decoders")):
        try:
            __import__(module)
        except Exception:  # torchcodec raises RuntimeError/OSError without system FFmpeg
            continue
        found.append(name)
    return found


def check_source(source: VideoSource) -> None:
    """The checks that need no reading: the type, and that a path is a non-empty file and bytes are not empty.

    Lets a batch fail on its fifth video before the first four are decoded.
    """
    name = describe_source(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise VideoDecodeError(f"Video {name} does not exist.")
        if path.stat().st_size == 0:
            raise VideoDecodeError(f"Video {name} is an empty (0-byte) file.")
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise VideoDecodeError(f"Video {name} is empty (0 bytes).")
    elif not hasattr(source, "read"):
        raise TypeError(
            f"A video source must be a path, bytes or a binary file object, got {type(source).__name__}."
        )


def _read_source(source: VideoSource) -> str | bytes:
    """A path (checked) or the bytes of an in-memory source."""
    name = describe_source(source)
    check_source(source)
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = source.read()
        if not isinstance(data, bytes):
            raise TypeError(f"Video file object {name} must be opened in binary mode.")
    if not data:
        raise VideoDecodeError(f"Video {name} is empty (0 bytes).")
    return data


def _open_av(data: str | bytes):
    import av

    return av.open(data if isinstance(data, str) else io.BytesIO(data), mode="r")


def probe_video(source: VideoSource) -> VideoMetadata:
    """Validates a video with PyAV (without decoding) and returns its metadata.

    Raises `VideoDecodeError` for a missing, empty, unreadable, truncated, stream-less or frame-less video.
    """
    return _probe(_read_source(source), describe_source(source))


def _count_packets(container, stream) -> int:
    """Non-empty packets of `stream` (a demux, no decoding); an early end of file ends the count."""
    import av

    count = 0
    try:
        for packet in container.demux(stream):
            count += packet.size > 0
    except av.EOFError:
        pass
    return count


def _probe(data: str | bytes, name: str) -> VideoMetadata:
    import av

    try:
        with _open_av(data) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"Video {name} has no video stream.")
            stream = container.streams.video[0]
            packets = _count_packets(container, stream)
            declared = stream.frames
            fps = float(stream.average_rate or stream.guessed_rate or 0) or None
            width, height = stream.codec_context.width, stream.codec_context.height
    except VideoDecodeError:
        raise
    except av.EOFError as error:
        raise VideoDecodeError(
            f"Video {name} ends before its first frame (zero frames, or cut short)."
        ) from error
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        raise VideoDecodeError(f"Video {name} could not be read: {error}") from error
    if packets == 0:
        raise VideoDecodeError(f"Video {name} has zero frames.")
    if declared and packets < declared:
        raise VideoDecodeError(
            f"Video {name} is truncated: its header declares {declared} frames, {packets} are present."
        )
    return VideoMetadata(
        total_num_frames=packets,
        fps=fps,
        width=width,
        height=height,
        duration=packets / fps if fps else None,
        video_backend="pyav",
    )


def _decode_pyav(data: str | bytes, indices: np.ndarray) -> np.ndarray:
    wanted = set(indices.tolist())
    last = int(indices.max())
    frames = {}
    with _open_av(data) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for position, frame in enumerate(container.decode(stream)):
            if position in wanted:
                frames[position] = frame.to_ndarray(format="rgb24")
            if position >= last:
                break
    return np.stack([frames[i] for i in indices.tolist()])


def _decode_decord(data: str | bytes, indices: np.ndarray) -> np.ndarray:
    import decord

    reader = decord.VideoReader(data if isinstance(data, str) else io.BytesIO(data), num_threads=1)
    return reader.get_batch(indices.tolist()).asnumpy()


def _decode_torchcodec(data: str | bytes, indices: np.ndarray) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder

    frames = VideoDecoder(data, dimension_order="NHWC").get_frames_at(indices.tolist()).data
    return frames.numpy()


_DECODERS = {"pyav": _decode_pyav, "decord": _decode_decord, "torchcodec": _decode_torchcodec}


def read_video(
    source: VideoSource, indices: Sequence[int] | np.ndarray | None = None, backend: str = "auto"
) -> tuple[np.ndarray, VideoMetadata]:
    """Decodes the frames at `indices` (all frames if `None`) as `(T, H, W, 3)` uint8 RGB, plus metadata.

    `indices` may also be a callable `metadata -> indices` (e.g. a frame sampler), so that sampling sees
    the validated frame count. `metadata.frames_indices` records what was decoded and
    `metadata.video_backend` which backend decoded it: with `backend="auto"` a validated video that the
    preferred backend fails on is decoded again with PyAV; a named backend never falls back.

    Example:

    ```python
    >>> import numpy as np
    >>> from vidla_hf.data.synthetic import encode_mp4
    >>> from vidla_hf.processing import read_video, sample_frame_indices
    >>> video = encode_mp4(np.zeros((30, 64, 64, 3), np.uint8))  # 30 frames as MP4 bytes; or a path, a file
    >>> frames, meta = read_video(video, lambda m: sample_frame_indices(m.total_num_frames, 6))
    >>> frames.shape, frames.dtype, meta.total_num_frames, meta.frames_indices.tolist()
    ((6, 64, 64, 3), dtype('uint8'), 30, [2, 7, 12, 17, 22, 27])
    >>> read_video(video, [0, 30])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: Frame indices [0, 30] are out of range for <...> (30 frames).

    ```
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown video backend {backend!r}; choose one of {BACKENDS}.")
    installed = available_backends()
    fallback = backend == "auto"
    if fallback:
        backend = installed[0]
    elif backend not in installed:
        raise ValueError(f"Video backend {backend!r} is not installed (installed: {installed}).")
    name = describe_source(source)
    data = _read_source(source)
    metadata = _probe(data, name)
    if callable(indices):
        indices = indices(metadata)
    indices = np.arange(metadata.total_num_frames) if indices is None else np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1 or indices.size == 0:
        raise ValueError(f"Frame `indices` must be a non-empty 1-D sequence, got shape {indices.shape}.")
    if indices.min() < 0 or indices.max() >= metadata.total_num_frames:
        raise ValueError(
            f"Frame indices {indices.tolist()} are out of range for {name} "
            f"({metadata.total_num_frames} frames)."
        )
    try:
        frames = _DECODERS[backend](data, indices)
    except Exception as error:  # a decoder-specific error on a file PyAV validated
        if not fallback or backend == "pyav":
            raise VideoDecodeError(f"Video {name} could not be decoded with {backend}: {error}") from error
        # e.g. decord fails on H.264 frames whose width is not a multiple of its 32-pixel row alignment
        backend = "pyav"
        try:
            frames = _decode_pyav(data, indices)
        except Exception as pyav_error:
            raise VideoDecodeError(
                f"Video {name} could not be decoded: {error}; with pyav: {pyav_error}"
            ) from error
    metadata.video_backend = backend
    metadata.frames_indices = indices
    return frames, metadata


__all__ = [
    "BACKENDS",
    "VideoDecodeError",
    "available_backends",
    "check_source",
    "describe_source",
    "probe_video",
    "read_video",
]
