"""Reading source videos for curation: validation, decoding with PyAV, frames at a low rate for captioning,
and giving each frame's caption to the clips that contain it.

The captioner sees each source once (paper §3, "capitalizing on temporal redundancy"): frames are sampled at
`caption_fps` (0.1 by default, one every ten seconds) at times `(k + 0.5) / caption_fps`, the middle of
each interval, and every clip of every scale then takes the captions of the frames inside it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ...processing.video_decoding import VideoDecodeError, probe_video
from .records import Clip, SourceSkipped
from .sources import URL

# Decoding restarts at the keyframe before the next sampled time when it is further ahead than this, so a
# 0.1-FPS pass decodes about one keyframe interval every ten seconds, not every frame.
SEEK_AHEAD_SECONDS = 2.0
# A URL that does not answer within this many seconds (to open, or for any read) skips its source.
URL_TIMEOUT_SECONDS = 60.0


def open_video(video: str):
    """`av.open` of a path or URL; a URL that cannot be opened (refused, not found, silent for
    `URL_TIMEOUT_SECONDS`) raises `SourceSkipped("unreachable_video")`."""
    import av

    if not URL.match(video):
        return av.open(video)
    try:
        return av.open(video, timeout=URL_TIMEOUT_SECONDS)
    except (av.FFmpegError, OSError) as error:
        raise SourceSkipped("unreachable_video", f"{video!r}: {error}") from None


def video_duration(video: str) -> float:
    """The duration in seconds of a decodable video (frames / rate); validates it first.

    Raises `SourceSkipped("missing_video")` for a local file that does not exist,
    `SourceSkipped("unreachable_video")` for a URL that cannot be opened, and
    `SourceSkipped("undecodable_video")` for an empty, unreadable, stream-less or truncated one.
    """
    if URL.match(video):
        return _stream_duration(video)
    try:
        metadata = probe_video(video)
    except VideoDecodeError as error:
        reason = "missing_video" if "does not exist" in str(error) else "undecodable_video"
        raise SourceSkipped(reason, str(error)) from None
    if not metadata.fps or not metadata.total_num_frames:
        raise SourceSkipped("undecodable_video", f"{video!r} declares no frame rate")
    return metadata.total_num_frames / metadata.fps


def _stream_duration(video: str) -> float:
    """A URL is opened by FFmpeg directly; its header's duration is trusted (reading it all would download it)."""
    import av

    container = open_video(video)
    try:
        with container:
            stream = container.streams.video[0]
            if stream.duration is not None:
                return float(stream.duration * stream.time_base)
            return float(container.duration) / av.time_base
    except (av.FFmpegError, OSError, IndexError, TypeError) as error:
        raise SourceSkipped("undecodable_video", f"{video!r}: {error}") from None


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) with the shorter side at `short_side` (never enlarged), both even (for H.264)."""
    scale = 1.0 if short_side is None else min(1.0, short_side / min(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def iter_frames(video: str) -> Iterator[tuple[float, object]]:
    """`(time in seconds, av.VideoFrame)` in decoding order from the first video stream.

    Raises `SourceSkipped("undecodable_video")` if FFmpeg fails mid-file.
    """
    import av

    container = open_video(video)
    try:
        with container:
            stream = container.streams.video[0]
            origin = stream.start_time or 0
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                yield float((frame.pts - origin) * stream.time_base), frame
    except av.FFmpegError as error:
        raise SourceSkipped("undecodable_video", f"{video!r}: {error}") from None


def sample_times(duration: float, caption_fps: float) -> np.ndarray:
    """Times at which frames are captioned: the middle of each `1 / caption_fps` interval, at least one.

    Example:

    ```python
    >>> from vidla_hf.data.curation.frames import sample_times
    >>> sample_times(35.0, 0.1).tolist(), sample_times(3.0, 0.1).tolist()
    ([5.0, 15.0, 25.0], [1.5])

    ```
    """
    if not caption_fps > 0:
        raise ValueError(f"`caption_fps` must be positive, got {caption_fps}.")
    times = (np.arange(int(np.floor(duration * caption_fps + 0.5)) + 1) + 0.5) / caption_fps
    times = times[times < duration]
    return times if len(times) else np.array([duration / 2])


def _to_array(frame, size: tuple[int, int]) -> np.ndarray:
    return frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()


def sample_frames(video: str, times: np.ndarray, short_side: int | None = 224) -> np.ndarray:
    """`(len(times), H, W, 3)` uint8: at each time, the frame on screen then (the last one starting at or
    before it; the first frame for earlier times), resized so the short side is at most `short_side`.

    Decodes one pass, seeking ahead to the keyframe before a time that is far away, so the cost follows
    the number of sampled frames rather than the length of the video.
    """
    import av

    wanted = [float(t) for t in times]
    picked: list[np.ndarray] = []
    container = open_video(video)
    try:
        with container:
            stream = container.streams.video[0]
            origin = stream.start_time or 0
            size = scaled_size(stream.codec_context.width, stream.codec_context.height, short_side)
            previous, position, sought = None, 0.0, None
            decoder = container.decode(stream)
            while len(picked) < len(wanted):
                target = wanted[len(picked)]
                if target - position > SEEK_AHEAD_SECONDS and sought != target:
                    container.seek(origin + int(target / stream.time_base), stream=stream, backward=True)
                    decoder, previous, sought = container.decode(stream), None, target
                frame = next(decoder, None)
                if frame is None:  # end of file: the remaining times show the last frame
                    if previous is None:
                        raise SourceSkipped("undecodable_video", f"{video!r} ends before {target:.1f} s")
                    picked += [_to_array(previous, size)] * (len(wanted) - len(picked))
                    break
                if frame.pts is None:
                    continue
                now = float((frame.pts - origin) * stream.time_base)
                while len(picked) < len(wanted) and wanted[len(picked)] < now:
                    # the previous frame was on screen at this time (or, before the first frame, this one)
                    picked.append(_to_array(previous if previous is not None else frame, size))
                previous, position = frame, now
    except av.FFmpegError as error:
        raise SourceSkipped("undecodable_video", f"{video!r}: {error}") from None
    return np.stack(picked)


def assign_captions(clips: list[Clip], times: np.ndarray, captions: list[str]) -> list[Clip]:
    """Gives each clip the captions of the frames sampled in `[start, end)`, in time order; a clip with no
    sampled frame gets the caption of the nearest one (the earlier one on a tie). Returns `clips`.

    Example:

    ```python
    >>> from vidla_hf.data.curation.frames import assign_captions
    >>> from vidla_hf.data.curation.records import Clip
    >>> clips = [Clip("v", "short", 0, 0.0, 12.0, []), Clip("v", "short", 1, 12.0, 14.0, [])]
    >>> [c.frame_captions for c in assign_captions(clips, [5.0, 15.0], ["a dog", "a cat"])]
    [['a dog'], ['a cat']]

    ```
    """
    times = np.asarray(times, dtype=float)
    if len(times) != len(captions):
        raise ValueError(f"{len(times)} frame times but {len(captions)} captions.")
    for clip in clips:
        inside = [captions[i] for i in np.flatnonzero((times >= clip.start) & (times < clip.end))]
        if not inside and len(times):
            distance = np.maximum(clip.start - times, 0) + np.maximum(times - clip.end, 0)
            inside = [captions[int(np.argmin(distance))]]
        clip.frame_captions = inside
    return clips


__all__ = ["assign_captions", "iter_frames", "sample_frames", "sample_times", "scaled_size", "video_duration"]
