import importlib.util
import io
import json
import subprocess
import sys

import numpy as np
import psutil
import pytest
from video_fixtures import frame_pattern, make_corrupt_files, write_mp4

from vidla_hf.processing import VideoDecodeError, available_backends, probe_video, read_video, video_decoding

BACKENDS = available_backends()
AUTO = BACKENDS[0]
SHAPES = {  # name: (frames, height, width)
    "normal": (30, 64, 96),
    "one_frame": (1, 32, 32),
    "three_frames": (3, 32, 48),
    "portrait": (12, 96, 48),
    "odd_size": (9, 33, 47),
    "long": (300, 32, 32),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {name: write_mp4(folder / f"{name}.mp4", frame_pattern(*shape)) for name, shape in SHAPES.items()}


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory, videos):
    return make_corrupt_files(tmp_path_factory.mktemp("corrupt"), videos["normal"])


def test_backends_are_usable_in_auto_order_checked_once(monkeypatch):
    assert {"decord", "pyav"} <= set(BACKENDS)
    if importlib.util.find_spec("torchcodec") is not None:
        assert BACKENDS[0] == "torchcodec", (
            "torchcodec is installed but cannot load FFmpeg's libraries (Debian 12: apt-get install "
            "libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8)"
        )
    assert [b for b in ("torchcodec", "decord", "pyav") if b in BACKENDS] == BACKENDS
    calls = []
    checks = {
        name: (lambda check=check, name=name: calls.append(name) or check())
        for name, check in video_decoding._USABLE.items()
    }
    monkeypatch.setattr(video_decoding, "_USABLE", checks)
    video_decoding._usable_backends.cache_clear()
    try:
        assert [available_backends() for _ in range(3)] == [BACKENDS] * 3
        assert sorted(calls) == ["decord", "pyav", "torchcodec"], "each backend is checked once per process"
    finally:
        video_decoding._usable_backends.cache_clear()


# decord 0.6 fails on H.264 frames whose width is not a multiple of 32 ("Check failed: from_size == to_size").
DECORD_UNSUPPORTED = {"three_frames", "portrait"}


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
@pytest.mark.parametrize("name", SHAPES)
def test_decodes_the_encoded_frames(videos, name, backend):
    num_frames, height, width = SHAPES[name]
    if backend == "decord" and name in DECORD_UNSUPPORTED:
        with pytest.raises(VideoDecodeError, match="with decord"):
            read_video(videos[name], backend=backend)
        return
    frames, metadata = read_video(videos[name], backend=backend)
    assert frames.shape == (num_frames, height, width, 3) and frames.dtype == np.uint8
    assert (metadata.total_num_frames, metadata.width, metadata.height) == (num_frames, width, height)
    assert metadata.fps == 10 and metadata.duration == pytest.approx(num_frames / 10)
    if backend == "auto":
        fell_back = AUTO == "decord" and name in DECORD_UNSUPPORTED
        assert metadata.video_backend == ("pyav" if fell_back else AUTO)
    error = np.abs(frames.astype(float) - frame_pattern(num_frames, height, width)).mean(axis=(1, 2, 3))
    assert error.max() < 6, error  # lossy, but each decoded frame is the frame encoded at that index


@pytest.mark.parametrize("backend", BACKENDS)
def test_indices_and_sources(videos, backend):
    path = videos["normal"]
    indices = [0, 0, 7, 29]
    from_path, _ = read_video(path, indices, backend=backend)
    assert from_path.shape[0] == 4
    np.testing.assert_array_equal(from_path[0], from_path[1])
    from_bytes, _ = read_video(path.read_bytes(), indices, backend=backend)
    from_file, _ = read_video(io.BytesIO(path.read_bytes()), indices, backend=backend)
    np.testing.assert_array_equal(from_bytes, from_path)
    np.testing.assert_array_equal(from_file, from_path)
    sampled, metadata = read_video(path, lambda m: np.arange(0, m.total_num_frames, 10), backend=backend)
    assert metadata.frames_indices.tolist() == [0, 10, 20] and sampled.shape[0] == 3


def test_backends_agree(videos):
    indices = [1, 5, 9, 13, 100, 299]
    decoded = [read_video(videos["long"], indices, backend=b)[0].astype(float) for b in BACKENDS]
    for other in decoded[1:]:
        assert np.abs(other - decoded[0]).mean() < 1.0


@pytest.mark.skipif("torchcodec" not in BACKENDS, reason="torchcodec cannot load FFmpeg here")
@pytest.mark.parametrize("name", SHAPES)
def test_torchcodec_decodes_the_frames_pyav_decodes(videos, name):
    """The same frames at the same indices, with the same metadata (torchcodec's own scan, not PyAV's)."""
    num_frames = SHAPES[name][0]
    indices = sorted({0, num_frames // 3, num_frames // 2, num_frames - 1})
    ours, ours_metadata = read_video(videos[name], indices, backend="torchcodec")
    reference, reference_metadata = read_video(videos[name], indices, backend="pyav")
    assert (ours_metadata.video_backend, reference_metadata.video_backend) == ("torchcodec", "pyav")
    for field in ("total_num_frames", "fps", "width", "height", "duration"):
        assert getattr(ours_metadata, field) == getattr(reference_metadata, field), field
    if name != "odd_size":
        np.testing.assert_array_equal(ours, reference)  # H.264: bit-exact
    else:  # MPEG-4 Part 2 at odd sizes: the two FFmpeg builds convert YUV to RGB slightly differently
        difference = np.abs(ours.astype(float) - reference)
        assert difference.mean() < 1.5 and difference.mean(axis=(1, 2, 3)).max() < 2, difference.mean()


def test_a_valid_video_torchcodec_fails_on_falls_back_to_pyav_only_with_auto(videos, corrupt, monkeypatch):
    pytest.importorskip("torchcodec.decoders")

    def failing_decoder(*args, **kwargs):
        raise RuntimeError("simulated torchcodec failure")

    monkeypatch.setattr("torchcodec.decoders.VideoDecoder", failing_decoder)
    monkeypatch.setattr(video_decoding, "_usable_backends", lambda: ("torchcodec", "pyav"))
    frames, metadata = read_video(videos["normal"], [0, 29])
    assert frames.shape == (2, 64, 96, 3) and metadata.video_backend == "pyav"
    with pytest.raises(VideoDecodeError, match="with torchcodec: simulated torchcodec failure"):
        read_video(videos["normal"], [0], backend="torchcodec")
    # A damaged file is still named as such (by PyAV's check), not blamed on torchcodec.
    with pytest.raises(VideoDecodeError, match="truncated: its header declares 40 frames"):
        read_video(corrupt["truncated_50_faststart"], backend="torchcodec")


def test_pyav_decodes_the_checked_container_rewound_or_else_a_fresh_one(videos, monkeypatch):
    """PyAV decodes from the container its check read (rewound to the start); if the rewind does not land on
    the first frame, or fails, it decodes from a fresh open: the same frames either way."""
    path, indices = str(videos["normal"]), np.array([0, 7, 7, 29])
    expected = video_decoding._decode_pyav(path, indices)
    fresh_opens = []
    decode_fresh = video_decoding._decode_pyav
    monkeypatch.setattr(
        video_decoding, "_decode_pyav", lambda *args: fresh_opens.append(1) or decode_fresh(*args)
    )

    class CannotSeek:
        def seek(self, offset):
            raise OSError("not seekable")

    for start_shift, opens in ((0, 0), (1, 1), (None, 2)):  # rewound; landed elsewhere; cannot seek
        with video_decoding._checked_container(path, "x") as (container, metadata, first_pts):
            assert metadata.total_num_frames == 30
            container = CannotSeek() if start_shift is None else container
            first_pts += start_shift or 0
            frames = video_decoding._decode_checked_pyav(container, first_pts, path, indices)
        np.testing.assert_array_equal(frames, expected)
        assert len(fresh_opens) == opens


def test_probe_reports_metadata_without_decoding(videos):
    metadata = probe_video(videos["portrait"])
    assert (metadata.total_num_frames, metadata.width, metadata.height, metadata.fps) == (12, 48, 96, 10)


def test_bad_arguments(videos):
    with pytest.raises(ValueError, match="backend"):
        read_video(videos["normal"], backend="opencv")
    if "torchcodec" not in BACKENDS:
        with pytest.raises(ValueError, match="not installed"):
            read_video(videos["normal"], backend="torchcodec")
    with pytest.raises(ValueError, match="out of range"):
        read_video(videos["normal"], [0, 30])
    with pytest.raises(TypeError, match="path, bytes"):
        read_video(12345)
    with pytest.raises(VideoDecodeError, match="does not exist"):
        read_video("/no/such/video.mp4")


DECODE_IN_SUBPROCESS = """
import json, sys
from vidla_hf.processing import VideoDecodeError, read_video
backend, paths = sys.argv[1], sys.argv[2:]
for path in paths:
    try:
        read_video(path, [0], backend=backend)
        print(json.dumps({"path": path, "error": None}), flush=True)
    except VideoDecodeError as error:
        print(json.dumps({"path": path, "error": str(error)}), flush=True)
"""

EXPECTED_REASON = {
    "empty": "empty",
    "random_bytes": "could not be read",
    "header_only": "could not be read",
    "truncated_50": "could not be read",  # the index (moov) sits at the end and is gone
    "truncated_50_faststart": "truncated",
    "no_video_stream": "no video stream",
    "zero_frames": "zero frames",
}


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_corrupt_files_give_a_typed_error_never_a_crash_or_hang(corrupt, backend):
    """One process per backend (importing torch and transformers costs seconds); it reports each file as it
    goes, so a crash names the file that caused it."""
    cases = sorted(EXPECTED_REASON)
    result = subprocess.run(
        [sys.executable, "-c", DECODE_IN_SUBPROCESS, backend, *(str(corrupt[c]) for c in cases)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    crashed_on = cases[len(reports)] if len(reports) < len(cases) else None
    assert result.returncode == 0, f"crash ({result.returncode}) on {crashed_on}:\n{result.stderr[-2000:]}"
    for case, report in zip(cases, reports, strict=True):
        error = report["error"]
        assert error is not None and str(corrupt[case]) in error and EXPECTED_REASON[case] in error, (
            case,
            error,
        )


def test_corrupt_bytes_name_the_source(corrupt):
    with pytest.raises(VideoDecodeError, match="<20000 bytes>"):
        read_video(corrupt["random_bytes"].read_bytes())
    with pytest.raises(VideoDecodeError, match="empty"):
        read_video(b"")


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_decoding_does_not_leak(videos, backend):
    process = psutil.Process()

    def decode(times):
        for _ in range(times):
            read_video(videos["one_frame"], [0], backend=backend)

    decode(50)  # warm up allocator pools and codec caches
    before = process.memory_info().rss
    decode(500)
    grown_mb = (process.memory_info().rss - before) / 2**20
    assert grown_mb < 30, f"RSS grew by {grown_mb:.1f} MiB over 500 decodes"
