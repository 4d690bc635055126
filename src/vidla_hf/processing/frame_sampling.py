"""Frame index sampling: exactly `num_frames` sorted, in-range indices for any video length.

`uniform` takes the centre of each of `num_frames` equal segments (deterministic; evaluation and the
paper's "uniformly sample 12 frames", the training scripts' default); `random` takes one random frame per
segment (TSN-style; the training scripts' `--frame_sampling segment_random`, and the video processor's
default with `training=True`). Videos shorter than `num_frames` repeat frames.
"""

import numpy as np

SAMPLING_STRATEGIES = ("uniform", "random")


def _check(total_frames, num_frames) -> None:
    for name, value in (("total_frames", total_frames), ("num_frames", num_frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"`{name}` must be an int, got {value!r}.")
        if value < 1:
            raise ValueError(f"`{name}` must be >= 1, got {value}.")


def uniform_frame_indices(total_frames: int, num_frames: int) -> np.ndarray:
    """Centres of `num_frames` equal segments of `[0, total_frames)`.

    Example:

    ```python
    >>> from vidla_hf.processing import uniform_frame_indices
    >>> uniform_frame_indices(10, 4).tolist(), uniform_frame_indices(2, 5).tolist()
    ([1, 3, 6, 8], [0, 0, 1, 1, 1])

    ```
    """
    _check(total_frames, num_frames)
    centres = (np.arange(num_frames) * 2 + 1) * total_frames // (2 * num_frames)  # floor((i + ½)·total/num)
    return centres.astype(np.int64)


def random_frame_indices(
    total_frames: int, num_frames: int, generator: np.random.Generator | int | None = None
) -> np.ndarray:
    """One random frame from each of `num_frames` equal segments (a segment shorter than a frame gives its start).

    `generator` is a `numpy.random.Generator` or a seed.
    """
    _check(total_frames, num_frames)
    rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)
    starts = np.arange(num_frames) * total_frames // num_frames
    ends = (np.arange(num_frames) + 1) * total_frames // num_frames
    lengths = np.maximum(ends - starts, 1)
    offsets = np.floor(rng.random(num_frames) * lengths).astype(np.int64)
    return np.minimum(starts + offsets, total_frames - 1).astype(np.int64)


def sample_frame_indices(
    total_frames: int,
    num_frames: int,
    strategy: str = "uniform",
    generator: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Dispatches to `uniform_frame_indices` or `random_frame_indices`."""
    if strategy == "uniform":
        return uniform_frame_indices(total_frames, num_frames)
    if strategy == "random":
        return random_frame_indices(total_frames, num_frames, generator)
    raise ValueError(f"Unknown frame sampling strategy {strategy!r}; choose one of {SAMPLING_STRATEGIES}.")


__all__ = ["SAMPLING_STRATEGIES", "random_frame_indices", "sample_frame_indices", "uniform_frame_indices"]
