"""Real MP4 files written with PyAV for the tests: normal, short, odd sizes, long, and corrupt ones."""

from pathlib import Path

import av
import numpy as np

from vidla_hf.data import mp4


def frame_pattern(num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames whose content identifies the frame: a bright bar at a frame-dependent column,
    and a frame-dependent background level, so decoded frames can be matched to their index."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, :, :, 0] = (t * 37) % 200 + 20
        frames[t, :, :, 1] = 60
        column = (t * max(width // 8, 1)) % width
        frames[t, :, column : column + max(width // 8, 2), :] = 255
    return frames


def write_mp4(path: Path, frames: np.ndarray, fps: int = 10, faststart: bool = False) -> Path:
    """Near-lossless test videos (crf 10, a keyframe every 4 frames) through the project's one writer."""
    return mp4.write_mp4(path, frames, fps, crf=10, keyframe_interval=4, faststart=faststart)


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, 1024), dtype=np.float32)
        for _ in range(8):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_zero_frames(path: Path) -> Path:
    """A container with a video track header and not a single frame."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    return path


def make_corrupt_files(folder: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    files = {
        "empty": b"",
        "random_bytes": np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes(),
        "header_only": data[:48],
        "truncated_50": data[: len(data) // 2],
    }
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.mp4"
        paths[name].write_bytes(content)
    paths["truncated_50_faststart"] = folder / "truncated_50_faststart.mp4"
    faststart = write_mp4(folder / "faststart.mp4", frame_pattern(40, 64, 64), faststart=True).read_bytes()
    paths["truncated_50_faststart"].write_bytes(faststart[: len(faststart) // 2])
    paths["no_video_stream"] = write_audio_only(folder / "audio_only.mp4")
    paths["zero_frames"] = write_zero_frames(folder / "zero_frames.mkv")
    return paths
