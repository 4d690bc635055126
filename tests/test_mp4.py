"""The one MP4 writer, read back with PyAV's decoder (an independent reader)."""

import os
import subprocess
import sys

import av
import numpy as np
import pytest

from vidla_hf.data.mp4 import encode_mp4, write_mp4


def read_back(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return np.stack(frames), float(stream.average_rate), stream.codec_context.name


@pytest.mark.parametrize(("size", "codec"), [((32, 48), "h264"), ((33, 47), "mpeg4")])
def test_frames_come_back_in_order_at_the_given_rate(tmp_path, size, codec):
    frames = np.zeros((6, *size, 3), np.uint8)
    for t in range(6):
        frames[t] = 40 * t  # each frame a distinct grey level
    decoded, fps, name = read_back(write_mp4(tmp_path / "clip.mp4", frames, fps=6, crf=0))
    assert decoded.shape == frames.shape and fps == 6 and name == codec
    assert np.abs(decoded.mean(axis=(1, 2, 3)) - frames.mean(axis=(1, 2, 3))).max() < 3


def test_bytes_and_file_are_the_same_video_and_faststart_moves_the_index(tmp_path):
    frames = np.full((4, 32, 32, 3), 90, np.uint8)
    assert encode_mp4(frames, 4) == write_mp4(tmp_path / "a.mp4", frames, 4).read_bytes()
    fast = encode_mp4(frames, 4, faststart=True)
    assert fast.index(b"moov") < fast.index(b"mdat")
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]  # no temporary file left behind


def test_bad_input_is_refused_and_nothing_is_written(tmp_path):
    target = tmp_path / "clip.mp4"
    for frames, fps, error in (
        (np.zeros((4, 32, 32, 3), np.float32), 4, TypeError),
        (np.zeros((4, 32, 32), np.uint8), 4, TypeError),
        (np.zeros((0, 32, 32, 3), np.uint8), 4, ValueError),
        (np.zeros((4, 32, 32, 3), np.uint8), 0, ValueError),
        (np.zeros((4, 32, 32, 3), np.uint8), "4", ValueError),
    ):
        with pytest.raises(error, match="frames|fps"):
            write_mp4(target, frames, fps)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="threads"):
        write_mp4(target, np.zeros((4, 32, 32, 3), np.uint8), 4, threads=0)
    assert list(tmp_path.iterdir()) == []


ENCODE_ON_CORES = """
import hashlib, os, sys
import numpy as np
os.sched_setaffinity(0, list(range(int(sys.argv[1]))))
from vidla_hf.data.mp4 import encode_mp4
frames = np.random.default_rng(0).integers(0, 255, (24, 224, 320, 3), dtype=np.uint8)
threads = None if sys.argv[2] == "auto" else int(sys.argv[2])
print(hashlib.sha1(encode_mp4(frames, 8, crf=23, threads=threads)).hexdigest())
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to compare 1 with 2")
def test_one_encoder_thread_gives_the_same_bytes_whatever_the_cores():
    """x264's automatic thread count follows the CPUs the process may use, and its bytes follow the thread
    count; `threads=1` (what the curation's shards use) does not. Each encoding runs in a process pinned to
    1 or 2 cores."""

    def digest(cores: int, threads: str) -> str:
        command = [sys.executable, "-c", ENCODE_ON_CORES, str(cores), threads]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    assert digest(1, "1") == digest(2, "1")
    assert digest(1, "auto") != digest(2, "auto"), "the reference: automatic threads do differ"
