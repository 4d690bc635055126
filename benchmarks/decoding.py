"""Decoding throughput: clips/s for 12-frame uniform sampling per backend, and what our layers cost on top.

For each backend, three ways to get 12 uniformly sampled frames of a clip are timed side by side,
interleaved over several rounds (medians reported; these machines are noisy, so only ratios matter):

  bare       the backend alone, given the indices (no validation, no processing)
  read_video `vidla_hf.processing.read_video` (PyAV validation of the container + the backend)
  processor  `VidLAVideoProcessor` (read_video + resize 224 + centre crop + normalise)

Threads are pinned to one (torch, decord, FFmpeg) so the backends compare like for like.

    python benchmarks/decoding.py [--clips 8] [--seconds 10] [--rounds 5]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import av  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidla_hf import VidLAVideoProcessor  # noqa: E402
from vidla_hf.processing import available_backends, read_video, uniform_frame_indices  # noqa: E402

NUM_FRAMES = 12


def write_clip(path: Path, seconds: int, fps: int = 30, size=(240, 320), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    height, width = size
    base = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "g": str(fps * 2)}
        for t in range(seconds * fps):
            frame = np.roll(base, shift=t * 2, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def bare_decord(path: str) -> np.ndarray:
    import decord

    reader = decord.VideoReader(path, num_threads=1)
    return reader.get_batch(uniform_frame_indices(len(reader), NUM_FRAMES).tolist()).asnumpy()


def bare_pyav(path: str) -> np.ndarray:
    with av.open(path) as container:
        stream = container.streams.video[0]
        wanted = uniform_frame_indices(stream.frames, NUM_FRAMES)
        frames, wanted_set = {}, set(wanted.tolist())
        for position, frame in enumerate(container.decode(stream)):
            if position in wanted_set:
                frames[position] = frame.to_ndarray(format="rgb24")
            if position >= wanted[-1]:
                break
    return np.stack([frames[i] for i in wanted.tolist()])


BARE = {"decord": bare_decord, "pyav": bare_pyav}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    backends = [b for b in available_backends() if b in BARE]
    with tempfile.TemporaryDirectory() as folder:
        clips = [str(write_clip(Path(folder) / f"{i}.mp4", args.seconds, seed=i)) for i in range(args.clips)]
        processor = VidLAVideoProcessor(num_frames=NUM_FRAMES)
        ways = {}
        for backend in backends:
            ways[f"{backend}/bare"] = BARE[backend]
            ways[f"{backend}/read_video"] = lambda p, b=backend: read_video(
                p, lambda m: uniform_frame_indices(m.total_num_frames, NUM_FRAMES), backend=b
            )
            ways[f"{backend}/processor"] = lambda p, b=backend: processor(
                p, video_backend=b, return_tensors="pt"
            )
        for way in ways.values():  # warm-up
            way(clips[0])
        times = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():  # interleaved: every way sees the same machine state per round
                start = time.perf_counter()
                for clip in clips:
                    way(clip)
                times[name].append(time.perf_counter() - start)

    clips_per_s = {name: args.clips / statistics.median(t) for name, t in times.items()}
    print(
        f"{args.clips} clips of {args.seconds} s at 30 fps, 320x240, H.264; {NUM_FRAMES} uniform frames; "
        f"median of {args.rounds} interleaved rounds; 1 thread; python {sys.version.split()[0]}"
    )
    print(f"{'way':<22}{'clips/s':>10}")
    for name, rate in clips_per_s.items():
        print(f"{name:<22}{rate:>10.1f}")
    print("ratios (time / time of the bare backend):")
    for backend in backends:
        bare = clips_per_s[f"{backend}/bare"]
        for layer in ("read_video", "processor"):
            print(f"  {backend:<7} {layer:<11} {bare / clips_per_s[f'{backend}/{layer}']:.2f}x")
    if {"decord", "pyav"} <= set(backends):
        print(
            f"decord bare is {clips_per_s['decord/bare'] / clips_per_s['pyav/bare']:.2f}x the clips/s of pyav bare"
        )


if __name__ == "__main__":
    main()
