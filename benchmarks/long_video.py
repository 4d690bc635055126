"""Long videos (seed 002): one training step's peak memory and time at 32, 64 and 128 frames, with tube masking
0 vs 0.75, and with the long-video recipe's frozen weights vs full training.

  step       one optimiser step of the training loop's objects: `VidLAContrastiveModule` (the video, its
             caption and its subtitle, 32 tokens each), eq. 3 (`VidLALoss`), backward, AdamW over
             `parameter_groups`; a warm-up step on a 1-frame clip first creates AdamW's state, so the timed
             step's memory is that of a step in the middle of a run
  widths     `b16` (the vidla-b16 preset: ViT-B/16 widths, 12 layers, 224 px, 196 patches per frame, random
             init) or `tiny` (the vidla-tiny preset, 64 px); batch 1
  trainable  `full` (every weight) or `frozen` (`--recipe long-video`'s selection: the video tower's CLIP weights
             and the text tower frozen; temporal attention, [MST], temporal positions, projection, τ train)

Every measurement runs in its own subprocess; its memory is the process's peak resident set (`ru_maxrss`): `peak`
is the whole process (what must fit in the machine: Python, weights, AdamW state, the step), `step` its growth
during the timed step (activations and gradients). Ratios are against the 32-frame / mask 0 / full configuration.

Frame counts run in increasing order, and each setting's smaller counts predict the next (linear in frames). A
configuration predicted to need more than `--max_memory_gib` is not run and reads "does not fit"; one predicted to
take longer than `--max_step_seconds` is not run either (its predicted figures are shown with `~`); a running one
is stopped as soon as its resident set passes `--max_memory_gib` (or what the machine has free, which is then
said). For each setting the longest measured clip that fits, and the count the linear fit predicts for
`--max_memory_gib`, are printed.

    python benchmarks/long_video.py [--widths b16|tiny] [--frames 32 64 128] [--max_memory_gib 24]
        [--max_step_seconds inf] [--rounds 1] [--steps 1] [--plot docs/long_video.png]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

PRESETS = {"b16": "vidla-b16", "tiny": "vidla-tiny"}
MASK_RATIOS = (0.0, 0.75)
TRAINABLE = ("full", "frozen")
SETTINGS = tuple((mask, trainable) for mask in MASK_RATIOS for trainable in TRAINABLE)
TEXT_TOKENS = 32
GIB = 1024**3


def measure_step(widths: str, frames: int, mask_ratio: float, trainable: str, steps: int) -> dict:
    """Runs in the worker process: builds the model, one warm-up step on 1 frame, then `steps` timed steps."""
    import torch

    from vidla_hf import VidLAConfig, VidLAModel
    from vidla_hf.training import RECIPES, TrainingArguments, VidLALoss, configure_trainable, parameter_groups
    from vidla_hf.training.setup import VidLAContrastiveModule

    torch.manual_seed(0)
    model = VidLAModel(VidLAConfig.from_preset(PRESETS[widths], num_frames=frames, mask_ratio=mask_ratio))
    if trainable == "frozen":
        recipe = RECIPES["long-video"]
        selection = {name: recipe[name] for name in ("freeze_spatial", "freeze_text_tower")}
        model = configure_trainable(model, TrainingArguments(**selection))
    module = VidLAContrastiveModule(model, model.config.text_config.pad_token_id).train()
    optimizer = torch.optim.AdamW(parameter_groups(module, 0.02), lr=2e-5)
    size = model.config.vision_config.image_size
    videos = torch.randn(1, frames, 3, size, size)
    ids = torch.randint(1, 49000, (2, TEXT_TOKENS))
    ids[:, -1] = model.config.text_config.eos_token_id
    mask = torch.ones_like(ids)
    loss_fn = VidLALoss()

    def step(clip):
        loss, _ = loss_fn(*module(clip, ids[:1], mask[:1], ids[1:], mask[1:]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    # Warm-up on a 1-frame clip: creates AdamW's state and the kernels' one-time set-up at a small memory peak.
    step(videos[:, :1])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    for _ in range(steps):
        step(videos)
    seconds = (time.perf_counter() - start) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "seconds": seconds,
        "peak_gib": peak / GIB,
        "step_gib": (peak - rss_before) / GIB,
        "trainable_m": sum(p.numel() for p in module.parameters() if p.requires_grad) / 1e6,
    }


def linear_fit(measured: dict[int, dict], key: str) -> tuple[float, float] | None:
    """(intercept, slope) of `key` ("peak_gib" or "seconds") in frames: the line through the two largest measured
    counts (slope at least 0); from one count, time through the origin and peak memory as the model's share (peak
    less the step's growth) plus the growth scaled by frames; None with none measured."""
    counts = sorted(measured)
    if not counts:
        return None
    if len(counts) == 1:
        only, frames = measured[counts[0]], counts[0]
        if key == "peak_gib":
            return only["peak_gib"] - only["step_gib"], only["step_gib"] / frames
        return 0.0, only[key] / frames
    (t1, v1), (t2, v2) = [(t, measured[t][key]) for t in counts[-2:]]
    slope = max((v2 - v1) / (t2 - t1), 0.0)
    return v2 - slope * t2, slope


def predict(measured: dict[int, dict], key: str, frames: int) -> float | None:
    """`key` at `frames` by `linear_fit`; None with nothing measured."""
    fit = linear_fit(measured, key)
    return None if fit is None else fit[0] + fit[1] * frames


def frames_within(measured: dict[int, dict], max_memory_gib: float) -> int | None:
    """The largest frame count whose predicted peak memory stays within `max_memory_gib` (None: nothing measured
    or a flat fit)."""
    fit = linear_fit(measured, "peak_gib")
    if fit is None or fit[1] <= 0:
        return None
    return int((max_memory_gib - fit[0]) // fit[1])


def available_gib() -> float:
    import psutil

    return psutil.virtual_memory().available / GIB


def run_worker(worker_args: list[str], limit_gib: float) -> dict:
    """One measurement in a fresh process, stopped once its resident set passes `limit_gib`."""
    import psutil

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    command = [sys.executable, __file__, "--worker", *worker_args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watched, highest = psutil.Process(process.pid), 0.0
    while True:
        try:
            stdout, stderr = process.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            try:
                highest = max(highest, watched.memory_info().rss / GIB)
            except psutil.NoSuchProcess:
                continue
            if highest > limit_gib:
                process.kill()
                process.communicate()
                return {"stopped_gib": highest}
    if process.returncode != 0:
        raise RuntimeError(f"worker {worker_args} failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def check_args(args: argparse.Namespace) -> None:
    """Raises `ValueError` naming the option for a value that cannot work, before any measurement."""
    if not args.frames or any(f < 1 for f in args.frames) or len(set(args.frames)) != len(args.frames):
        raise ValueError(f"`--frames` must be distinct positive counts, got {args.frames}.")
    for name in ("max_memory_gib", "max_step_seconds"):
        if not getattr(args, name) > 0:
            raise ValueError(f"`--{name}` must be > 0, got {getattr(args, name)}.")
    for name in ("rounds", "steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be >= 1, got {getattr(args, name)}.")


def skip_reason(peak_gib: float | None, seconds: float | None, args: argparse.Namespace) -> str | None:
    """Why a configuration with these predicted figures is not run (None: it is run)."""
    if peak_gib is not None and peak_gib > args.max_memory_gib:
        return f"does not fit (> {args.max_memory_gib:g} GiB)"
    if seconds is not None and seconds > args.max_step_seconds:
        return f"not run (> {args.max_step_seconds:g} s)"
    free = available_gib() - 1.0  # leave the machine 1 GiB
    if peak_gib is not None and peak_gib > free:
        return f"not run (machine has {free:.1f} GiB free)"
    return None


def measure_all(args: argparse.Namespace) -> dict[tuple, dict]:
    """Every (frames, mask, trainable) configuration over `--rounds` interleaved rounds: the median measurement,
    or `{"skipped": reason, "peak_gib": predicted, "seconds": predicted}`."""
    runs: dict[tuple, list[dict]] = {}
    skipped: dict[tuple, dict] = {}
    for round_index in range(args.rounds):
        for frames in sorted(args.frames):
            for mask, trainable in SETTINGS:
                key = (frames, mask, trainable)
                if key in skipped:
                    continue
                smaller = {
                    f: median_of(runs[(f, mask, trainable)])
                    for f in args.frames
                    if f < frames and (f, mask, trainable) in runs
                }
                peak, seconds = predict(smaller, "peak_gib", frames), predict(smaller, "seconds", frames)
                label = f"round {round_index + 1}: {frames} frames, mask {mask}, {trainable}"
                reason = skip_reason(peak, seconds, args)
                if reason is None:
                    limit = min(args.max_memory_gib, available_gib() - 1.0)
                    result = run_worker(
                        [args.widths, str(frames), str(mask), trainable, str(args.steps)], limit
                    )
                    if "stopped_gib" in result:
                        reason = (
                            f"does not fit (passed {args.max_memory_gib:g} GiB)"
                            if limit == args.max_memory_gib
                            else f"stopped at {result['stopped_gib']:.1f} GiB, all the machine had free"
                        )
                if reason is not None:
                    skipped[key] = {"skipped": reason, "peak_gib": peak, "seconds": seconds}
                    print(f"{label}: {reason}", file=sys.stderr, flush=True)
                    continue
                runs.setdefault(key, []).append(result)
                print(
                    f"{label}: {result['seconds']:.2f} s, peak {result['peak_gib']:.2f} GiB",
                    file=sys.stderr,
                    flush=True,
                )
    return {**{k: median_of(v) for k, v in runs.items()}, **skipped}


def median_of(results: list[dict]) -> dict:
    return {name: statistics.median(r[name] for r in results) for name in results[0]}


def report(results: dict[tuple, dict], args: argparse.Namespace) -> None:
    """The table with ratios against the baseline, then the longest clip that fits per setting."""
    measured = sorted(k for k in results if "skipped" not in results[k])
    if not measured:
        print("nothing was measured")
        return
    wanted = (min(args.frames), 0.0, "full")
    base = results[wanted if wanted in measured else measured[0]]
    threads = os.environ.get("OMP_NUM_THREADS", "2")
    print(
        f"one training step, batch 1, {args.widths} widths, CPU with {threads} threads; median of {args.rounds} "
        f"round(s) of {args.steps} timed step(s); ratios against {wanted[0]} frames / mask 0 / full; "
        "~: predicted, not run"
    )
    print(
        f"{'frames':>6}{'mask':>6}  {'trainable':<10}{'params M':>8}{'s/step':>9}{'peak GiB':>10}{'step GiB':>10}"
        f"{'time':>8}{'peak':>8}  note"
    )
    for key in sorted(results):
        frames, mask, trainable = key
        row = results[key]
        head = f"{frames:>6}{mask:>6.2f}  {trainable:<10}"
        if "skipped" in row:
            seconds = "" if row["seconds"] is None else f"~{row['seconds']:.0f}"
            peak = "" if row["peak_gib"] is None else f"~{row['peak_gib']:.1f}"
            time_ratio = "" if row["seconds"] is None else f"~{row['seconds'] / base['seconds']:.1f}x"
            peak_ratio = "" if row["peak_gib"] is None else f"~{row['peak_gib'] / base['peak_gib']:.1f}x"
            print(
                f"{head}{'':>8}{seconds:>9}{peak:>10}{'':>10}{time_ratio:>8}{peak_ratio:>8}  {row['skipped']}"
            )
            continue
        print(
            f"{head}{row['trainable_m']:>8.1f}{row['seconds']:>9.2f}{row['peak_gib']:>10.2f}{row['step_gib']:>10.2f}"
            f"{row['seconds'] / base['seconds']:>7.2f}x{row['peak_gib'] / base['peak_gib']:>7.2f}x"
        )
    print(f"longest clip within {args.max_memory_gib:g} GiB ({args.widths} widths, CPU, batch 1):")
    for mask, trainable in SETTINGS:
        points = {f: results[(f, m, t)] for f, m, t in measured if (m, t) == (mask, trainable)}
        shown = f"{max(points)} frames measured" if points else "none measured"
        predicted = frames_within(points, args.max_memory_gib)
        if predicted is not None:
            shown += f"; ~{predicted} frames by the linear fit of peak memory in frames"
        print(f"  mask {mask:.2f}, {trainable:<8}{shown}")


def columns(points: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    return [f for f, _ in points], [v for _, v in points]


def plot(results: dict[tuple, dict], args: argparse.Namespace) -> None:
    """Peak memory and step time against frames, one line per setting; predicted (not run) points hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, (mask, trainable) in enumerate(SETTINGS):
        rows = sorted((f, results[(f, m, t)]) for f, m, t in results if (m, t) == (mask, trainable))
        color = f"C{index}"
        for axis, key in zip(axes, ("peak_gib", "seconds"), strict=True):
            done = [(f, r[key]) for f, r in rows if "skipped" not in r]
            guessed = [(f, r[key]) for f, r in rows if "skipped" in r and r[key] is not None]
            style = "-" if trainable == "full" else "--"
            label = f"mask {mask:g}, {trainable}"
            axis.plot(*columns(done), style, marker="o", color=color, label=label)
            if guessed:
                axis.plot(*columns(done[-1:] + guessed), ":", color=color)
                axis.plot(*columns(guessed), "o", color=color, fillstyle="none")
    axes[0].axhline(args.max_memory_gib, color="grey", linewidth=1, linestyle=":")
    axes[0].set_ylabel("peak resident memory (GiB)")
    axes[1].set_ylabel("seconds per training step")
    for axis in axes:
        axis.set_xscale("log", base=2)
        axis.set_xticks(sorted(args.frames), [str(f) for f in sorted(args.frames)])
        axis.set_xlabel("frames")
        axis.grid(alpha=0.3)
    axes[0].legend()
    threads = os.environ.get("OMP_NUM_THREADS", "2")
    figure.suptitle(
        f"one training step, {args.widths} widths, batch 1, CPU ({threads} threads); frozen = --recipe long-video; "
        "hollow: predicted"
    )
    figure.tight_layout()
    figure.savefig(args.plot, dpi=100)
    print(f"plot written to {args.plot}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--widths", choices=sorted(PRESETS), default="b16")
    parser.add_argument("--frames", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--max_memory_gib", type=float, default=24.0)
    parser.add_argument("--max_step_seconds", type=float, default=float("inf"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=1, help="Timed steps after the warm-up step")
    parser.add_argument("--plot", default="docs/long_video.png", help="PNG to write ('' for none)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        widths, frames, mask, trainable, steps = args.worker
        print(json.dumps(measure_step(widths, int(frames), float(mask), trainable, int(steps))))
        return
    check_args(args)
    results = measure_all(args)
    report(results, args)
    if args.plot:
        plot(results, args)


if __name__ == "__main__":
    main()
