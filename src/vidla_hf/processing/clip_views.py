"""Frame indices and crops for action classification (paper App. A.3, Table 7): the two samplings the paper
finetunes with, and the multi-view test that averages N temporal windows × M spatial crops.

* `dense` (SlowFast's, ref. [24] of the paper; Kinetics-400): `num_frames` consecutive frames `stride` apart,
  a window of `(num_frames - 1) * stride + 1` frames placed at random in training; at test, `N` windows
  spread evenly from the first possible start to the last (the centre one for `N = 1`). A video shorter
  than the window repeats its last frame.
* `segment` (TSN's, ref. [84]; Something-Something-v2): the video cut into `num_frames` equal segments,
  one random frame from each in training; at test, view `i` of `N` takes the frame at fraction
  `(i + ½) / N` of every segment (`N = 1`: segment centres, `uniform_frame_indices`).
* Spatial views: frames resized so their shorter side is the crop size, then `M` square crops spread
  evenly along the longer side, both ends included (`M = 1`: the centre crop; `M = 3`: left, centre, right
  of a landscape video), as SlowFast's three-crop test.
"""

import numpy as np

from .frame_sampling import _check, random_frame_indices

CLIP_SAMPLINGS = ("dense", "segment")


def _positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")


def dense_frame_indices(total_frames: int, num_frames: int, stride: int, start: int) -> np.ndarray:
    """`num_frames` frames `stride` apart from `start`, clamped to the last frame.

    Example:

    ```python
    >>> from vidla_hf.processing.clip_views import dense_frame_indices
    >>> dense_frame_indices(20, 4, 3, start=5).tolist(), dense_frame_indices(6, 4, 2, start=0).tolist()
    ([5, 8, 11, 14], [0, 2, 4, 5])

    ```
    """
    _check(total_frames, num_frames)
    _positive("stride", stride)
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start < total_frames:
        raise ValueError(f"`start` must be an int in [0, {total_frames}), got {start!r}.")
    return np.minimum(start + stride * np.arange(num_frames), total_frames - 1).astype(np.int64)


def dense_window_starts(total_frames: int, num_frames: int, stride: int, num_clips: int) -> list[int]:
    """The test windows' first frames: `num_clips` starts evenly spread over `[0, total - window]` (floored),
    both ends included; one clip is the centre window.

    Example:

    ```python
    >>> from vidla_hf.processing.clip_views import dense_window_starts
    >>> dense_window_starts(100, 8, 4, num_clips=5)  # window of 29 frames: starts in [0, 71]
    [0, 17, 35, 53, 71]
    >>> dense_window_starts(100, 8, 4, num_clips=1), dense_window_starts(10, 8, 4, num_clips=3)
    ([35], [0, 0, 0])

    ```
    """
    _check(total_frames, num_frames)
    _positive("stride", stride)
    _positive("num_clips", num_clips)
    slack = max(total_frames - ((num_frames - 1) * stride + 1), 0)
    if num_clips == 1:
        return [slack // 2]
    return [i * slack // (num_clips - 1) for i in range(num_clips)]


def segment_frame_indices(total_frames: int, num_frames: int, fraction: float) -> np.ndarray:
    """The frame at `fraction` ∈ [0, 1) of each of `num_frames` equal segments: `floor((j + fraction) ·
    total / num_frames)` for segment `j`.

    Example:

    ```python
    >>> from vidla_hf.processing.clip_views import segment_frame_indices
    >>> segment_frame_indices(16, 4, 0.25).tolist(), segment_frame_indices(16, 4, 0.75).tolist()
    ([1, 5, 9, 13], [3, 7, 11, 15])

    ```
    """
    _check(total_frames, num_frames)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"`fraction` must be in [0, 1), got {fraction!r}.")
    return np.floor((np.arange(num_frames) + fraction) * total_frames / num_frames).astype(np.int64)


def _check_sampling(sampling: str) -> None:
    if sampling not in CLIP_SAMPLINGS:
        raise ValueError(f"`sampling` must be one of {CLIP_SAMPLINGS}, got {sampling!r}.")


def train_frame_indices(
    total_frames: int, num_frames: int, sampling: str, stride: int, generator: np.random.Generator
) -> np.ndarray:
    """Training indices: a dense window at a random start, or one random frame per segment (`stride` is
    only used by `dense`)."""
    _check_sampling(sampling)
    if sampling == "segment":
        return random_frame_indices(total_frames, num_frames, generator)
    _check(total_frames, num_frames)
    _positive("stride", stride)
    slack = max(total_frames - ((num_frames - 1) * stride + 1), 0)
    return dense_frame_indices(total_frames, num_frames, stride, int(generator.integers(slack + 1)))


def view_frame_indices(
    total_frames: int, num_frames: int, sampling: str, stride: int, num_clips: int
) -> list[np.ndarray]:
    """The `num_clips` temporal views of the test, in order (see the module's docstring).

    Example:

    ```python
    >>> from vidla_hf.processing.clip_views import view_frame_indices
    >>> [v.tolist() for v in view_frame_indices(16, 4, "segment", stride=1, num_clips=2)]
    [[1, 5, 9, 13], [3, 7, 11, 15]]
    >>> [v.tolist() for v in view_frame_indices(16, 4, "dense", stride=2, num_clips=2)]
    [[0, 2, 4, 6], [9, 11, 13, 15]]

    ```
    """
    _check_sampling(sampling)
    _positive("num_clips", num_clips)
    if sampling == "segment":
        _check(total_frames, num_frames)
        return [
            segment_frame_indices(total_frames, num_frames, (i + 0.5) / num_clips) for i in range(num_clips)
        ]
    starts = dense_window_starts(total_frames, num_frames, stride, num_clips)
    return [dense_frame_indices(total_frames, num_frames, stride, start) for start in starts]


def spatial_crop_boxes(height: int, width: int, crop_size: int, num_crops: int) -> list[tuple[int, int]]:
    """`(top, left)` of `num_crops` square `crop_size` crops of a `height` × `width` frame whose shorter side
    is at least `crop_size`: centred across the shorter side, spread evenly along the longer one.

    Example:

    ```python
    >>> from vidla_hf.processing.clip_views import spatial_crop_boxes
    >>> spatial_crop_boxes(224, 300, 224, 3), spatial_crop_boxes(300, 224, 224, 1)
    ([(0, 0), (0, 38), (0, 76)], [(38, 0)])

    ```
    """
    for name, value in (
        ("height", height),
        ("width", width),
        ("crop_size", crop_size),
        ("num_crops", num_crops),
    ):
        _positive(name, value)
    if min(height, width) < crop_size:
        raise ValueError(f"A {height}x{width} frame is smaller than the {crop_size} px crop.")
    slack = max(height, width) - crop_size
    along = [slack // 2] if num_crops == 1 else [i * slack // (num_crops - 1) for i in range(num_crops)]
    across = (min(height, width) - crop_size) // 2
    return [(across, offset) if width >= height else (offset, across) for offset in along]


__all__ = [
    "CLIP_SAMPLINGS",
    "dense_frame_indices",
    "dense_window_starts",
    "segment_frame_indices",
    "spatial_crop_boxes",
    "train_frame_indices",
    "view_frame_indices",
]
