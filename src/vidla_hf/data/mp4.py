"""The one MP4 writer: frames in, an MP4 file (or its bytes) out, with PyAV's bundled FFmpeg.

Used by the synthetic dataset, the curation pipeline's clip writer, the tests' fixtures and the benchmarks,
so every video this project makes is encoded the same way.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np


def _check_frames(frames: np.ndarray, fps: float) -> None:
    if (
        not isinstance(frames, np.ndarray)
        or frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[-1] != 3
    ):
        raise TypeError(
            "`frames` must be a uint8 numpy array of shape (num_frames, height, width, 3), got "
            f"{type(frames).__name__} {getattr(frames, 'dtype', '')} {getattr(frames, 'shape', '')}."
        )
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise ValueError(f"`fps` must be a positive number, got {fps!r}.")
    if frames.shape[0] == 0:
        raise ValueError("`frames` holds no frame; an MP4 needs at least one.")


def encode_mp4(
    frames: np.ndarray,
    fps: float = 10,
    *,
    crf: int = 18,
    preset: str = "ultrafast",
    keyframe_interval: int | None = None,
    faststart: bool = False,
    threads: int | None = None,
) -> bytes:
    """Encodes `(T, H, W, 3)` uint8 RGB frames as an MP4 and returns its bytes.

    Even sizes are encoded as H.264 (libx264, yuv420p, constant quality `crf`); odd sizes, which yuv420p
    H.264 cannot hold, as MPEG-4 Part 2 at high quality. `keyframe_interval` defaults to one per second;
    `faststart` moves the index to the front (as streaming sites serve files). `threads` fixes the encoder's
    thread count (x264 otherwise picks one from the CPUs it sees, and its output bytes depend on it): 1 gives
    the same bytes on any machine, and suits work already spread over cores (a Ray task holds one CPU).

    Example:

    ```python
    >>> import numpy as np
    >>> from vidla_hf.data.mp4 import encode_mp4
    >>> data = encode_mp4(np.zeros((4, 32, 32, 3), np.uint8), fps=4)
    >>> data[4:8]
    b'ftyp'

    ```
    """
    _check_frames(frames, fps)
    if faststart:  # FFmpeg's faststart re-reads the finished file by name: encode through a temporary file
        with tempfile.TemporaryDirectory() as folder:
            return write_mp4(
                Path(folder) / "clip.mp4",
                frames,
                fps,
                crf=crf,
                preset=preset,
                keyframe_interval=keyframe_interval,
                faststart=True,
                threads=threads,
            ).read_bytes()
    buffer = io.BytesIO()
    _encode_into(buffer, frames, fps, crf, preset, keyframe_interval, {}, threads)
    return buffer.getvalue()


def _encode_into(
    target,
    frames: np.ndarray,
    fps: float,
    crf: int,
    preset: str,
    keyframe_interval,
    options,
    threads: int | None = None,
) -> None:
    import av

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"`threads` must be a positive integer or None, got {threads!r}.")
    height, width = frames.shape[1:3]
    h264 = height % 2 == 0 and width % 2 == 0
    rate = int(fps) if float(fps).is_integer() else Fraction(fps).limit_denominator(1001)
    gop = str(keyframe_interval or max(int(round(fps)), 1))
    with av.open(target, mode="w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264" if h264 else "mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if h264:
            stream.options = {"crf": str(crf), "preset": preset, "g": gop}
        else:
            stream.options = {"qscale": "2", "g": gop}
            stream.codec_context.bit_rate = 4_000_000
        if threads is not None:
            stream.options = {**stream.options, "threads": str(threads)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_mp4(
    path: str | os.PathLike, frames: np.ndarray | Iterable[np.ndarray], fps: float = 10, **options
) -> Path:
    """Writes frames (see `encode_mp4` for `options`) to `path` atomically: a temporary file renamed when complete.

    Example:

    ```python
    >>> import tempfile, numpy as np
    >>> from vidla_hf.data.mp4 import write_mp4
    >>> path = write_mp4(tempfile.mkdtemp() + "/clip.mp4", np.zeros((4, 32, 32, 3), np.uint8), fps=4)
    >>> path.stat().st_size > 0
    True

    ```
    """
    path = Path(path)
    frames = frames if isinstance(frames, np.ndarray) else np.stack(list(frames))
    _check_frames(frames, fps)
    faststart = options.pop("faststart", False)
    settings = {"crf": 18, "preset": "ultrafast", "keyframe_interval": None, **options}
    partial = path.with_name(f".{path.name}.partial")
    try:
        _encode_into(
            str(partial), frames, fps, **settings, options={"movflags": "faststart"} if faststart else {}
        )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


__all__ = ["encode_mp4", "write_mp4"]
