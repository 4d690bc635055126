"""Curation throughput on the default data: source minutes per second, time per stage, 2 vs 1 workers.

The default data is what `python examples/curate.py` curates: `make_synthetic_sources`' three 3-minute
sources (96×96, 6 fps) with the three tiny random models. Each configuration runs in its own local Ray
session of N CPUs with the whole process tree pinned to N cores (so "1 worker" is one core, model actors
included), into a fresh folder. Ray's start is not timed; starting the model actors is, as in a real run.
Rounds alternate the order (1, 2, 2, 1, ...) so drift on a shared machine cancels.

Prints per configuration the wall time and source minutes per second, then the share of stage time per
stage and the per-item costs that `docs/curation-at-scale.md` scales up (from the 1-worker runs), and the
2-worker / 1-worker throughput ratio.

    python benchmarks/curation.py [--rounds 2] [--sources 3] [--minutes 3]
"""

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vidla_hf.data.curation import CurationSettings, Sentence, curate, make_synthetic_sources
from vidla_hf.data.curation.clips import plan_clips
from vidla_hf.data.curation.frames import sample_frames, sample_times, video_duration
from vidla_hf.data.curation.shards import write_shard
from vidla_hf.data.curation.tiny_models import build_tiny_models
from vidla_hf.data.mp4 import write_mp4


def run_once(
    manifest: Path, settings: CurationSettings, output: Path, workers: int, replicas: int
) -> tuple[float, dict]:
    """One curation in a fresh local Ray of `workers` CPUs, the whole process tree pinned to `workers` cores."""
    import ray

    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cores[:workers])  # Ray's processes inherit it: N workers really have N cores
    ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        start, wall_start = time.perf_counter(), time.time()
        stats = curate(
            manifest, output, settings, num_workers=workers, model_replicas=replicas, verbose=False
        )
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
        os.sched_setaffinity(0, cores)
    # When the first stage started and the last ended: before is start-up (actor and worker processes
    # importing torch, transformers and the models), between is processing.
    spans = [
        span
        for path in (output / "sources").glob("*.json")
        for span in json.loads(path.read_text())["wall_times"].values()
    ]
    stats["startup_s"] = min(s for s, _ in spans) - wall_start
    stats["processing_s"] = max(e for _, e in spans) - min(s for s, _ in spans)
    return wall, stats


def per_item_costs(stats: dict) -> dict[str, float]:
    """Seconds per unit of work, from one run's stage times and counts."""
    seconds, scales = stats["stage_seconds"], stats["scales"]
    clips = sum(row["clips"] for row in scales.values())
    summarised = sum(row["clips"] for name, row in scales.items() if name != "short")
    clip_minutes = sum(row["hours"] for row in scales.values()) * 60
    return {
        "prepare s / source minute (probe + transcript)": seconds.get("prepare", 0) / stats["source_minutes"],
        "decode_frames s / captioned frame": seconds.get("decode_frames", 0) / stats["caption_frames"],
        "caption s / frame (tiny BLIP-2, CPU)": seconds.get("caption", 0) / stats["caption_frames"],
        "summarize s / LLM call (tiny Llama, CPU)": seconds.get("summarize", 0) / max(1, 2 * summarised),
        "write s / clip (cut + H.264 + tar)": seconds.get("write", 0) / clips,
        "write s / clip minute": seconds.get("write", 0) / clip_minutes,
        "clips per source minute": clips / stats["source_minutes"],
    }


def measure_cpu_costs(folder: Path, seconds: int = 40) -> dict[str, float]:
    """CPU seconds per source minute of the CPU stages on a YouTube-like source (640×360, 30 fps, a
    keyframe every 2 s, scrolling texture), measured in this process with the stage functions themselves:
    validation, caption frames at 0.1 FPS and the cut/encode/tar of all three scales' clips."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (360 // 8, 1280 // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    frames = np.stack([np.roll(base, 3 * t, axis=1)[:, :640] for t in range(seconds * 30)])
    video = str(write_mp4(folder / "youtube-like.mp4", frames, 30, crf=23, keyframe_interval=60))
    del frames
    # sentences of 3 s and clips at the paper's scales (the long one is the whole source here)
    sentences = [Sentence(f"Sentence {i}.", 3.0 * i, 3.0 * i + 2.8, 8) for i in range(seconds // 3)]
    clips, _ = plan_clips("cost", sentences, {"short": 13.2, "medium": 30.4, "long": 60.3}, 1.0, 120.0)
    minutes = seconds / 60
    timings = {}
    start = time.process_time()
    duration = video_duration(video)
    timings["prepare (validate: demux every packet) s / source min"] = (time.process_time() - start) / minutes
    start = time.process_time()
    sample_frames(video, sample_times(duration, 0.1), 224)
    timings["decode_frames (0.1 FPS, seeking) s / source min"] = (time.process_time() - start) / minutes
    start = time.process_time()
    size = write_shard(folder / "cost.tar", video, clips, 224, 8.0, 23)
    clip_minutes = sum(c.end - c.start for c in clips) / 60
    timings["write (decode 30 fps + 224p 8 fps H.264 + tar) s / source min"] = (
        time.process_time() - start
    ) / minutes
    timings["  of which per clip minute written"] = timings[list(timings)[-1]] * minutes / clip_minutes
    timings["shard MB / clip minute"] = size / 1e6 / clip_minutes
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--scale_models", action="store_true", help="one actor per model per worker")
    parser.add_argument("--costs_only", action="store_true", help="only the CPU costs per source minute")
    parser.add_argument("--json", default=None, help="also write the measurements here")
    args = parser.parse_args()
    if args.costs_only:
        with tempfile.TemporaryDirectory() as folder:
            for name, value in measure_cpu_costs(Path(folder)).items():
                print(f"  {name:64} {value:.3f}")
        return
    print(
        f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (others' work skews timings)"
    )
    runs: dict[int, list[tuple[float, dict]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        manifest = make_synthetic_sources(folder / "sources", num_sources=args.sources, minutes=args.minutes)
        settings = CurationSettings(**build_tiny_models(folder / "models"))
        for round_ in range(args.rounds):
            for workers in (1, 2) if round_ % 2 == 0 else (2, 1):
                replicas = workers if args.scale_models else 1
                wall, stats = run_once(
                    manifest, settings, folder / f"out-{round_}-{workers}", workers, replicas
                )
                runs[workers].append((wall, stats))
                print(
                    f"round {round_}, {workers} worker(s): {wall:.1f} s (start-up {stats['startup_s']:.1f} s, "
                    f"processing {stats['processing_s']:.1f} s)"
                )
    minutes = runs[1][0][1]["source_minutes"]
    median = {
        w: {k: statistics.median(s[k] for _, s in runs[w]) for k in ("startup_s", "processing_s")}
        for w in runs
    }
    for w in runs:
        median[w]["wall_s"] = statistics.median(wall for wall, _ in runs[w])
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(
        f"\nDefault data: {args.sources} synthetic sources, {minutes:.1f} source minutes; tiny models on CPU."
    )
    print(
        f"{'':10}{'wall s':>8}{'start-up s':>12}{'processing s':>14}{'src min/s':>11}{'src min/s (processing)':>24}"
    )
    for w in runs:
        m = median[w]
        print(
            f"{w} worker{'s' if w > 1 else ' '}{m['wall_s']:>8.1f}{m['startup_s']:>12.1f}{m['processing_s']:>14.1f}"
            f"{minutes / m['wall_s']:>11.2f}{minutes / m['processing_s']:>24.2f}"
        )
    shares: dict[str, list[float]] = {}
    costs: dict[str, list[float]] = {}
    for _, stats in runs[1]:
        for stage, share in stats["stage_share"].items():
            shares.setdefault(stage, []).append(share)
        for name, value in per_item_costs(stats).items():
            costs.setdefault(name, []).append(value)
    print("\nShare of stage time (1 worker, mean over rounds):")
    for stage, values in sorted(shares.items(), key=lambda kv: -statistics.mean(kv[1])):
        print(f"  {stage:16} {100 * statistics.mean(values):5.1f}%")
    print("\nPer-item costs (1 worker, median over rounds):")
    for name, values in costs.items():
        print(f"  {name:48} {statistics.median(values):.4f}")
    with tempfile.TemporaryDirectory() as folder:
        cpu_costs = measure_cpu_costs(Path(folder))
    print("\nCPU costs on a YouTube-like source (640×360, 30 fps), one process:")
    for name, value in cpu_costs.items():
        print(f"  {name:64} {value:.3f}")
    ratio = median[1]["wall_s"] / median[2]["wall_s"]
    steady = median[1]["processing_s"] / median[2]["processing_s"]
    print(f"\n2-worker / 1-worker throughput: {ratio:.2f}x end to end, {steady:.2f}x once started")
    if args.json:
        result = {
            "median": median,
            "ratio": ratio,
            "ratio_processing": steady,
            "costs": costs,
            "shares": shares,
        }
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
