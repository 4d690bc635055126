from fractions import Fraction

import numpy as np
import pytest

from vidla_hf.processing import random_frame_indices, sample_frame_indices, uniform_frame_indices

PAIRS = [(total, num) for total in range(1, 401) for num in range(1, 65)]


def check_valid(indices, total, num):
    assert indices.shape == (num,) and indices.dtype == np.int64
    assert (np.diff(indices) >= 0).all(), "sorted"
    assert indices.min() >= 0 and indices.max() < total, "in range"
    if total >= num:
        assert (np.diff(indices) > 0).all(), "no repeats when the video has enough frames"


def test_uniform_is_exactly_the_segment_centres_for_every_pair():
    for total, num in PAIRS:
        indices = uniform_frame_indices(total, num)
        check_valid(indices, total, num)
        expected = [int((Fraction(i) + Fraction(1, 2)) * total / num) for i in range(num)]  # exact arithmetic
        assert indices.tolist() == expected, (total, num)


def test_random_takes_one_frame_per_segment_for_every_pair():
    rng = np.random.default_rng(0)
    for total, num in PAIRS:
        indices = random_frame_indices(total, num, rng)
        check_valid(indices, total, num)
        for i, index in enumerate(indices.tolist()):
            start, end = Fraction(i * total, num), Fraction((i + 1) * total, num)
            assert int(start) <= index <= max(int(start), int(np.ceil(end)) - 1), (total, num, i)


def test_random_is_seeded_and_varies():
    assert random_frame_indices(300, 12, 7).tolist() == random_frame_indices(300, 12, 7).tolist()
    draws = {tuple(random_frame_indices(300, 12, seed).tolist()) for seed in range(20)}
    assert len(draws) > 15
    # Across many draws every frame of a segment is reachable.
    rng = np.random.default_rng(1)
    seen = {random_frame_indices(40, 4, rng)[0] for _ in range(500)}
    assert seen == set(range(10))


def test_short_videos_repeat_frames():
    assert uniform_frame_indices(1, 12).tolist() == [0] * 12
    assert uniform_frame_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    ("args", "error"), [((0, 4), ValueError), ((10, 0), ValueError), ((10.5, 4), TypeError)]
)
def test_bad_arguments(args, error):
    with pytest.raises(error):
        uniform_frame_indices(*args)
    with pytest.raises(ValueError, match="strategy"):
        sample_frame_indices(10, 4, strategy="middle")
