"""Video decoding: frames at given indices plus metadata, from a path, bytes or a binary file-like object.

Backends, in `auto` order: `torchcodec` (transformers' default decoder; usable when it finds FFmpeg 4-8 system
libraries), `decord` (when installed) and `pyav` (always: bundled FFmpeg). Every failure is a `VideoDecodeError`
(a `ValueError`) naming the source.

Decord is unmaintained and crashes or hangs on some corrupt files (dmlc/decord issues 25, 229, 269, 318);
a segfault in a DataLoader worker takes training down. So every source that decord or PyAV decodes is first
validated with PyAV, which reports damage as Python exceptions: the container must open, hold a video stream,
and every frame its header declares must be present as a packet (a truncated file fails here). PyAV then
decodes from the container it checked, rewound. Torchcodec needs no second pass: its exact-mode scan reads
every packet through FFmpeg's demuxer just as that check does, and it reports damage as exceptions too. A file
it cannot open goes to PyAV's check, which names what is wrong; a scan that finds fewer frames than the header
declares is a truncated file, as with PyAV.
"""

import contextlib
import io
import os
from collections.abc import Callable, Sequence
from functools import cache, partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
from transformers.video_utils import VideoMetadata

AUTO_ORDER = ("torchcodec", "decord", "pyav")
BACKENDS = ("auto", *AUTO_ORDER)
VideoSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


class VideoDecodeError(ValueError):
    """A video could not be decoded; the message names the source and the reason."""


def describe_source(source: VideoSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return f"<file object {getattr(source, 'name', type(source).__name__)!r}>"


def _torchcodec_usable() -> bool:
    try:
        import torchcodec
        import torchcodec.decoders  # noqa: F401
    except Exception:  # e.g. a build that does not match the installed torch
        return False
    # torchcodec imports without FFmpeg (its image decoders do not need it) and then has no FFmpeg version.
    return torchcodec.ffmpeg_major_version is not None


def _importable(module: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            __import__(module)
        except Exception:
            return False
        return True

    return check


_USABLE = {"torchcodec": _torchcodec_usable, "decord": _importable("decord"), "pyav": _importable("av")}


@cache
def _usable_backends() -> tuple[str, ...]:
    return tuple(name for name in AUTO_ORDER if _USABLE[name]())


def available_backends() -> list[str]:
    """Usable backends, in `auto` preference order (checked once per process)."""
    return list(_usable_backends())


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


def _check_frame_count(name: str, present: int, declared: int | None) -> None:
    if present == 0:
        raise VideoDecodeError(f"Video {name} has zero frames.")
    if declared and present < declared:
        raise VideoDecodeError(
            f"Video {name} is truncated: its header declares {declared} frames, {present} are present."
        )


def _metadata(frames: int, fps: float | None, width: int, height: int, backend: str) -> VideoMetadata:
    fps = float(fps) if fps else None
    duration = frames / fps if fps else None
    return VideoMetadata(
        total_num_frames=frames, fps=fps, width=width, height=height, duration=duration, video_backend=backend
    )


@contextlib.contextmanager
def _reading(name: str):
    """PyAV's errors while opening or demuxing, as the `VideoDecodeError` naming the source."""
    import av

    try:
        yield
    except VideoDecodeError:
        raise
    except av.EOFError as error:
        raise VideoDecodeError(
            f"Video {name} ends before its first frame (zero frames, or cut short)."
        ) from error
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        raise VideoDecodeError(f"Video {name} could not be read: {error}") from error


def _check(container, name: str) -> tuple[VideoMetadata, int | None]:
    """PyAV's check of an open container (a demux of every packet, no decoding): its metadata, and the first
    presentation timestamp (where decoding starts)."""
    import av

    if not container.streams.video:
        raise VideoDecodeError(f"Video {name} has no video stream.")
    stream = container.streams.video[0]
    present, first_pts = 0, None
    try:
        for packet in container.demux(stream):
            if packet.size:
                present += 1
                if packet.pts is not None and (first_pts is None or packet.pts < first_pts):
                    first_pts = packet.pts
    except av.EOFError:  # an early end of file ends the count
        pass
    _check_frame_count(name, present, stream.frames)
    fps = stream.average_rate or stream.guessed_rate
    width, height = stream.codec_context.width, stream.codec_context.height
    return _metadata(present, fps, width, height, "pyav"), first_pts


@contextlib.contextmanager
def _checked_container(data: str | bytes, name: str):
    """An open PyAV container of a video that passed the check, its metadata and first timestamp."""
    with _reading(name):
        container = _open_av(data)
    with container:
        with _reading(name):
            metadata, first_pts = _check(container, name)
        yield container, metadata, first_pts


def _probe(data: str | bytes, name: str) -> VideoMetadata:
    with _checked_container(data, name) as (_, metadata, _):
        return metadata


def _decode_frames(container, indices: np.ndarray) -> tuple[np.ndarray, int | None]:
    """The frames at `indices` of a container positioned at its start, and the timestamp of its first frame."""
    wanted = set(indices.tolist())
    last = int(indices.max())
    frames, first_pts = {}, None
    stream = container.streams.video[0]  # single-threaded, like the other backends: scale with workers
    for position, frame in enumerate(container.decode(stream)):
        first_pts = frame.pts if position == 0 else first_pts
        if position in wanted:
            frames[position] = frame.to_ndarray(format="rgb24")
        if position >= last:
            break
    return np.stack([frames[i] for i in indices.tolist()]), first_pts


def _decode_pyav(data: str | bytes, indices: np.ndarray) -> np.ndarray:
    with _open_av(data) as container:
        return _decode_frames(container, indices)[0]


def _decode_checked_pyav(container, first_pts: int | None, data: str | bytes, indices: np.ndarray):
    """Decodes from the container the check just read to its end, rewound: one open instead of two. Were it
    not back at the first frame (a container that cannot seek to its start), it decodes from a fresh open."""
    try:
        container.seek(0)
        frames, decoded_first_pts = _decode_frames(container, indices)
        if decoded_first_pts == first_pts:
            return frames
    except Exception:
        pass
    return _decode_pyav(data, indices)


def _decode_decord(data: str | bytes, indices: np.ndarray) -> np.ndarray:
    import decord

    reader = decord.VideoReader(data if isinstance(data, str) else io.BytesIO(data), num_threads=1)
    return reader.get_batch(indices.tolist()).asnumpy()


def _open_torchcodec(data: str | bytes, name: str) -> tuple[Callable, VideoMetadata]:
    """A decoding function and the metadata of torchcodec's exact-mode scan.

    Damage raises `VideoDecodeError` (named by PyAV's check when torchcodec cannot open the file); when
    torchcodec fails on a file PyAV reads, the decoding function raises its error.
    """
    from torchcodec.decoders import VideoDecoder

    try:
        decoder = VideoDecoder(data, dimension_order="NHWC", seek_mode="exact", num_ffmpeg_threads=1)
    except Exception as error:
        metadata = _probe(data, name)  # raises the VideoDecodeError that names the damage, if there is any
        failure = error

        def failed(indices):
            raise failure

        return failed, metadata
    stream = decoder.metadata
    frames = stream.num_frames_from_content or 0
    _check_frame_count(name, frames, stream.num_frames_from_header)
    fps = stream.average_fps_from_header or stream.average_fps
    metadata = _metadata(frames, fps, stream.width, stream.height, "torchcodec")
    return lambda indices: decoder.get_frames_at(indices.tolist()).data.numpy(), metadata


def _check_indices(indices, metadata: VideoMetadata, name: str) -> np.ndarray:
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
    return indices


def read_video(
    source: VideoSource,
    indices: Sequence[int] | np.ndarray | Callable[[VideoMetadata], Sequence[int]] | None = None,
    backend: str = "auto",
) -> tuple[np.ndarray, VideoMetadata]:
    """Decodes the frames at `indices` (all frames if `None`) as `(T, H, W, 3)` uint8 RGB, plus metadata.

    `indices` may also be a callable `metadata -> indices` (e.g. a frame sampler), so that sampling sees
    the validated frame count. `metadata.frames_indices` records what was decoded and
    `metadata.video_backend` which backend decoded it: with `backend="auto"` a valid video that the
    preferred backend fails on is decoded again with PyAV; a named backend never falls back.

    Example:

    ```python
    >>> import numpy as np
    >>> from vidla_hf.data.mp4 import encode_mp4
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
        raise ValueError(f"Video backend {backend!r} is not installed or not usable (usable: {installed}).")
    name = describe_source(source)
    data = _read_source(source)
    with contextlib.ExitStack() as stack:
        if backend == "torchcodec":
            decode, metadata = _open_torchcodec(data, name)
        elif backend == "decord":
            metadata = _probe(data, name)
            decode = partial(_decode_decord, data)
        else:
            container, metadata, first_pts = stack.enter_context(_checked_container(data, name))
            decode = partial(_decode_checked_pyav, container, first_pts, data)
        indices = _check_indices(indices, metadata, name)
        try:
            frames = decode(indices)
        except Exception as error:  # a decoder-specific error on a valid file
            if not fallback or backend == "pyav":
                raise VideoDecodeError(
                    f"Video {name} could not be decoded with {backend}: {error}"
                ) from error
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
