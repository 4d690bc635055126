"""Training-step cost against tube token masking, and data loading against the training step.

Every measurement runs in its own subprocess (so peak memory is that configuration's alone), and the
configurations are interleaved over rounds; medians are reported with ratios to mask_ratio 0.

  step     one optimiser step (forward, eq. 3 loss, backward, AdamW) on a fixed batch of random videos
  models   `tiny` (the vidla-tiny preset: 8 frames at 64 px) and `b16-width` (ViT-B/16 widths: 768 hidden,
           12 heads, 224 px, 12 frames; 4 layers instead of 12 to keep a CPU run in minutes)
  loading  clips/s of the streamed synthetic dataset through `VideoTextStream` with 2 DataLoader workers,
           against the clips/s of the tiny model's training step

    python benchmarks/training.py [--rounds 3]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

MODELS = {
    "tiny": {"preset": "vidla-tiny", "frames": 8, "batch": 16, "overrides": {}},
    "b16-width": {
        "preset": "vidla-b16",
        "frames": 12,
        "batch": 2,
        "overrides": {"vision_config": {"num_hidden_layers": 4}, "text_config": {"num_hidden_layers": 4}},
    },
}
MASK_RATIOS = (0.0, 0.5, 0.75)


def measure_step(model_name: str, mask_ratio: float, steps: int) -> dict:
    import torch
    import torch.nn.functional as F

    from vidla_hf import VidLAConfig, VidLAModel
    from vidla_hf.training import VidLALoss

    spec = MODELS[model_name]
    config = VidLAConfig.from_preset(
        spec["preset"], num_frames=spec["frames"], mask_ratio=mask_ratio, **spec["overrides"]
    )
    model = VidLAModel(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    size = config.vision_config.image_size
    videos = torch.randn(spec["batch"], spec["frames"], 3, size, size)
    ids = torch.randint(1, 49000, (2 * spec["batch"], 20))
    loss_fn = VidLALoss()

    def step():
        video = F.normalize(model.get_video_features(videos).pooler_output, dim=-1)
        text = F.normalize(model.get_text_features(input_ids=ids).pooler_output, dim=-1)
        loss, _ = loss_fn(video, *text.chunk(2), model.logit_scale.exp())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return {"seconds": seconds, "clips_per_s": spec["batch"] / seconds, "peak_mb": peak_mb}


def measure_loading(clips: int) -> dict:
    import torch

    from vidla_hf import VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
    from vidla_hf.data import VideoTextStream, collate_video_text, load_video_text_stream
    from vidla_hf.data.synthetic import generate_synthetic_dataset

    folder = os.environ.get("VIDLA_SYNTHETIC_DIR", "data/synthetic")
    generate_synthetic_dataset(folder)
    size = {"shortest_edge": 64}
    processor = VidLAProcessor(
        VidLAVideoProcessor(size=size, crop_size={"height": 64, "width": 64}), build_clip_tokenizer()
    )
    stream = VideoTextStream(
        load_video_text_stream(folder, "train", shuffle_buffer=256), processor, num_frames=8
    )
    loader = torch.utils.data.DataLoader(stream, batch_size=16, num_workers=2, collate_fn=collate_video_text)
    batches = iter(loader)
    next(batches)  # workers started
    start, seen = time.perf_counter(), 0
    while seen < clips:
        seen += len(next(batches)["keys"])
    return {"clips_per_s": seen / (time.perf_counter() - start)}


def run_worker(args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--worker", nargs="*")
    args = parser.parse_args()
    if args.worker is not None:
        if args.worker[0] == "loading":
            print(json.dumps(measure_loading(int(args.worker[1]))))
        else:
            print(json.dumps(measure_step(args.worker[0], float(args.worker[1]), int(args.worker[2]))))
        return

    results: dict[tuple, list[dict]] = {}
    for _ in range(args.rounds):
        for model_name in MODELS:
            for ratio in MASK_RATIOS:
                results.setdefault((model_name, ratio), []).append(
                    run_worker([model_name, str(ratio), str(args.steps)])
                )
        results.setdefault(("loading",), []).append(run_worker(["loading", "320"]))

    def median(key, field):
        return statistics.median(r[field] for r in results[key])

    print(
        f"median of {args.rounds} interleaved rounds, {args.steps} timed steps each, one subprocess per measurement"
    )
    print(f"{'model':<11}{'mask':>6}{'s/step':>9}{'clips/s':>9}{'peak MB':>9}{'speed-up':>10}{'memory':>8}")
    for model_name in MODELS:
        base_time, base_mem = median((model_name, 0.0), "seconds"), median((model_name, 0.0), "peak_mb")
        for ratio in MASK_RATIOS:
            seconds, mem = median((model_name, ratio), "seconds"), median((model_name, ratio), "peak_mb")
            print(
                f"{model_name:<11}{ratio:>6.2f}{seconds:>9.3f}{MODELS[model_name]['batch'] / seconds:>9.1f}"
                f"{mem:>9.0f}{base_time / seconds:>9.2f}x{mem / base_mem:>7.2f}x"
            )
    loading = median(("loading",), "clips_per_s")
    training = median(("tiny", 0.0), "clips_per_s")
    print(
        f"data loading (2 workers): {loading:.1f} clips/s; tiny training step: {training:.1f} clips/s; "
        f"loading / training = {loading / training:.2f}x (above 1: the loader keeps up)"
    )


if __name__ == "__main__":
    main()
