"""Curate long videos with speech into VidLA training shards (paper §3, A.4) on Ray Data.

    python examples/curate.py                      # the embedded demo: synthetic sources, tiny models
    python examples/curate.py --manifest sources.jsonl --output_dir data/curated
    python examples/curate.py --manifest sources.jsonl --output_dir /shared/curated --ray_address auto
    accelerate launch examples/pretrain.py --train_data data/curated     # train on it (evaluates on "val")

The manifest (JSON Lines or Parquet) lists one source a row: `id`, `video` (path or URL) and `asr` (word-level
`[{"word", "start", "end"}]`) or `subtitles` (a WebVTT / SRT file), and optionally `split` ("train" by
default; "val" holds the source out for evaluation). Each source is punctuated and split into
sentences, cut into short / medium / long clips at sentence boundaries, captioned once at --caption_fps, and
its clips' texts summarised with the paper's prompt; each source becomes one WebDataset shard
`<split>-<id>.tar` (`<key>.mp4` + `<key>.json`). Models default to the paper's (a BERT punctuation model,
BLIP-2 OPT-2.7B, Llama-2-13B-chat); "none" drops a stage (the paper's ablations).

Without --manifest it writes four synthetic long videos narrated by unpunctuated ASR (the last one held out
as "val") and three tiny models with random weights under data/curation_demo/, and curates them into
data/curated/: every stage runs for real,
but the punctuation, captions and summaries of random models are not meaningful text.

Without --ray_address (or RAY_ADDRESS) it starts a local Ray with --num_workers CPUs. A rerun into the same
--output_dir resumes (finished sources are skipped); other settings there are refused unless --overwrite.
"""

import argparse
import os
import sys
from pathlib import Path

from vidla_hf.data.curation import (
    DEFAULT_SCALES,
    PAPER_MODELS,
    CurationSettings,
    curate,
    format_table,
    make_synthetic_sources,
)

DEMO_FOLDER = Path("data/curation_demo")
MODEL_OPTIONS = ("punctuation_model", "captioner", "summarizer")


def parse_scales(text: str) -> dict[str, float]:
    """`short=13.2,medium=30.4,long=60.3` → {"short": 13.2, ...}."""
    scales = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            scales[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected NAME=SECONDS[,NAME=SECONDS...], got {text!r}"
            ) from None
    return scales


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", default=None, help="JSONL or Parquet; default: the synthetic demo")
    parser.add_argument("--output_dir", default="data/curated")
    for option in MODEL_OPTIONS:
        parser.add_argument(
            f"--{option}", default=None, help=f"Hub id, folder or none (default {PAPER_MODELS[option]})"
        )
    parser.add_argument("--caption_fps", type=float, default=0.1, help="frames captioned per second of video")
    parser.add_argument("--caption_short_side", type=int, default=224)
    default_scales = ",".join(f"{k}={v}" for k, v in DEFAULT_SCALES.items())
    parser.add_argument("--scales", type=parse_scales, default=dict(DEFAULT_SCALES), help=default_scales)
    parser.add_argument("--min_duration", type=float, default=None, help="seconds (default: half the target)")
    parser.add_argument(
        "--max_duration", type=float, default=None, help="seconds (default: twice the target)"
    )
    parser.add_argument("--clip_short_side", type=int, default=224)
    parser.add_argument("--clip_fps", type=float, default=8.0)
    parser.add_argument("--clip_crf", type=int, default=23, help="H.264 quality (lower is better)")
    parser.add_argument(
        "--num_workers", type=int, default=None, help="CPU tasks at a time (default: all CPUs)"
    )
    parser.add_argument("--ray_address", default=None, help="e.g. auto: run on the Ray cluster of this node")
    parser.add_argument("--model_replicas", type=int, default=1, help="actors per model")
    parser.add_argument(
        "--gpus_per_model", type=float, default=None, help="default: 1 if the cluster has GPUs"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a curation made with other settings"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or Ray Data logs")
    args = parser.parse_args()

    models = {option: getattr(args, option) for option in MODEL_OPTIONS}
    manifest = args.manifest
    if manifest is None:
        from vidla_hf.data.curation.tiny_models import build_tiny_models, tiny_model_summary

        print(f"No --manifest: curating synthetic sources under {DEMO_FOLDER} with tiny models.")
        manifest = make_synthetic_sources(DEMO_FOLDER / "sources", num_sources=4, val_sources=1)
        tiny = build_tiny_models(DEMO_FOLDER / "models")
        models = {option: models[option] or tiny[option] for option in MODEL_OPTIONS}
        print(tiny_model_summary({k: v for k, v in tiny.items() if models[k] == v}))
        print(
            "NOTE: the tiny models have RANDOM weights: their punctuation, captions and summaries are NOT meaningful."
        )
    models = {option: models[option] or PAPER_MODELS[option] for option in MODEL_OPTIONS}
    settings = CurationSettings(
        **models,
        caption_fps=args.caption_fps,
        caption_short_side=args.caption_short_side,
        scales=args.scales,
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        clip_short_side=args.clip_short_side,
        clip_fps=args.clip_fps,
        clip_crf=args.clip_crf,
    )
    try:
        stats = curate(
            manifest,
            args.output_dir,
            settings,
            num_workers=args.num_workers
            or (None if args.ray_address or os.environ.get("RAY_ADDRESS") else os.cpu_count()),
            ray_address=args.ray_address,
            overwrite=args.overwrite,
            model_replicas=args.model_replicas,
            gpus_per_model=args.gpus_per_model,
            verbose=not args.quiet,
        )
    except ValueError as error:  # bad manifest, model, option or output folder: found before Ray started
        sys.exit(f"error: {error}")
    if args.quiet:  # curate() prints the table itself unless quiet
        print(format_table(stats, settings.short_scale))
    splits = stats["splits"]
    print(f"Shards in {args.output_dir} (manifest.json, stats.json); train on them with:")
    if "val" in splits:
        print(f"  accelerate launch examples/pretrain.py --train_data {args.output_dir}")
    else:  # no source held out: the zero-shot monitor can only run on training clips
        print(f"  accelerate launch examples/pretrain.py --train_data {args.output_dir} --eval_split train")
        print('(no source has split \'val\'; give held-out sources `"split": "val"` in the manifest)')
    if stats["sources"]["failed"]:
        print(f"{len(stats['sources']['failed'])} source(s) failed (see stats.json); rerun to retry them.")
        sys.exit(1)


if __name__ == "__main__":
    main()
