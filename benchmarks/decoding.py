"""Decoding throughput: clips/s for 12-frame uniform sampling per backend, and what our layers cost on top.

For each backend, three ways to get 12 uniformly sampled frames of a clip are timed side by side,
interleaved call by call over several rounds (medians reported; these machines are noisy, so only ratios
matter):

  bare       the backend alone, given the indices (no validation, no processing)
  read_video `vidla_hf.processing.read_video` (validation + the backend: PyAV's check before decord and
             PyAV, torchcodec's own scan for torchcodec)
  processor  `VidLAVideoProcessor` (read_video + resize 224 + centre crop + normalise)

The processor's ratio to the bare decoder is the overhead of the whole library path; the target is <= 1.2x.
Threads are pinned to one (torch, decord, FFmpeg) so the backends compare like for like.

    python benchmarks/decoding.py [--clips 8] [--seconds 10] [--rounds 7]
    python benchmarks/decoding.py --quick     # 3 clips, 3 rounds: noisier, same clips
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
from vidla_hf.data.mp4 import write_mp4  # noqa: E402
from vidla_hf.processing import available_backends, read_video, uniform_frame_indices  # noqa: E402

NUM_FRAMES = 12
FPS = 30


def clip_frames(seconds: int, size=(240, 320), seed: int = 0) -> np.ndarray:
    """Blocky random texture scrolling right: (seconds·30, 240, 320, 3) uint8."""
    height, width = size
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    return np.stack([np.roll(base, shift=t * 2, axis=1) for t in range(seconds * FPS)])


def bare_torchcodec(path: str) -> torch.Tensor:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=1)
    return decoder.get_frames_at(uniform_frame_indices(decoder.metadata.num_frames, NUM_FRAMES).tolist()).data


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


BARE = {"torchcodec": bare_torchcodec, "decord": bare_decord, "pyav": bare_pyav}
LAYERS = ("bare", "read_video", "processor")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--quick", action="store_true", help="3 clips, 3 rounds (overrides --clips, --rounds)"
    )
    args = parser.parse_args()
    if args.quick:
        args.clips, args.rounds = 3, 3
    torch.set_num_threads(1)

    backends = [b for b in available_backends() if b in BARE]
    with tempfile.TemporaryDirectory() as folder:
        clips = [
            str(
                write_mp4(
                    Path(folder) / f"{i}.mp4",
                    clip_frames(args.seconds, seed=i),
                    FPS,
                    crf=23,
                    preset="veryfast",
                    keyframe_interval=2 * FPS,
                )
            )
            for i in range(args.clips)
        ]
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
        # Interleaved call by call, in an order rotated every round: each way meets the same machine state.
        names = list(ways)
        wall = {name: [[] for _ in clips] for name in names}
        cpu = {name: [[] for _ in clips] for name in names}
        for round_index in range(args.rounds):
            shift = round_index % len(names)
            for index, clip in enumerate(clips):
                for name in names[shift:] + names[:shift]:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    ways[name](clip)
                    wall[name][index].append(time.perf_counter() - start)
                    cpu[name][index].append(time.process_time() - start_cpu)

    # Per way: the sum over clips of each clip's median time over the rounds.
    wall_s = {name: sum(map(statistics.median, times)) for name, times in wall.items()}
    cpu_s = {name: sum(map(statistics.median, times)) for name, times in cpu.items()}
    print(
        f"{args.clips} clips of {args.seconds} s at {FPS} fps, 320x240, H.264; {NUM_FRAMES} uniform frames; "
        f"medians of {args.rounds} interleaved rounds; 1 thread; python {sys.version.split()[0]}"
    )
    print(f"{'backend':<12}" + "".join(f"{layer + ' clips/s':>22}" for layer in LAYERS))
    for backend in backends:
        rates = (args.clips / wall_s[f"{backend}/{layer}"] for layer in LAYERS)
        print(f"{backend:<12}" + "".join(f"{rate:>22.1f}" for rate in rates))
    # CPU time (the process's, kernel time such as page faults included) is what other jobs on a shared
    # machine disturb least; with one thread it is the wall time of an idle machine.
    print("time / time of the bare backend, wall | CPU (the processor's target: <= 1.2x):")
    for backend in backends:
        ratios = []
        for layer in LAYERS[1:]:
            of_wall, of_cpu = (t[f"{backend}/{layer}"] / t[f"{backend}/bare"] for t in (wall_s, cpu_s))
            ratios.append(f"{layer} {of_wall:.2f}x | {of_cpu:.2f}x")
        print(f"  {backend:<11} " + "   ".join(ratios))
    fastest = min(backends, key=lambda b: wall_s[f"{b}/bare"])
    relative = [f"{b} {wall_s[f'{fastest}/bare'] / wall_s[f'{b}/bare']:.2f}x" for b in backends]
    print(f"bare clips/s relative to the fastest ({fastest}): " + ", ".join(relative))


if __name__ == "__main__":
    main()
