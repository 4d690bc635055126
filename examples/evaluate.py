"""Evaluate a VidLA model on any streamed dataset: retrieval, zero-shot classification or multiple choice.

    python examples/evaluate.py --model outputs/vidla-pretrain --task retrieval --output results.json
    python examples/evaluate.py --model outputs/vidla-pretrain --task classification --label_column label
    python examples/evaluate.py --model outputs/vidla-pretrain --task multiple_choice --num_options 5
    accelerate launch examples/evaluate.py ...       # embeddings computed per process and gathered

Data defaults to the synthetic dataset's val split (generated if missing). Retrieval reports text→video and
video→text R@1/5/10, MdR, MnR with and without dual softmax; `--paragraph_column` joins a list of
sentences per video into one query (paragraph-to-video, as for DiDeMo / ActivityNet). Classification puts
the label names through CLIP's prompt templates for the dataset (an averaged ensemble, as CLIP does):
`--templates auto` (default) picks them by the `--data` name (Kinetics-400/600/700: CLIP's Kinetics-700 set,
UCF101: its UCF101 set; anything else: "a video of {}."), or name a set: video, kinetics700, ucf101.
Multiple choice picks the caption among K: options from `--options_column`/`--answer_column`, or the true
caption plus K-1 captions of other clips. Results are written as JSON (the input of examples/publish.py).
"""

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import AutoModel, AutoProcessor

import vidla_hf  # noqa: F401  (registers the Auto classes)
from vidla_hf.evaluation import (
    build_multiple_choice,
    class_embeddings,
    compute_embeddings,
    embed_texts,
    evaluate_retrieval,
    multiple_choice_accuracy,
    paragraph,
    select_templates,
    zero_shot_accuracy,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="A VidLA model folder or Hub id (with its processor)")
    parser.add_argument(
        "--task", choices=("retrieval", "classification", "multiple_choice"), default="retrieval"
    )
    parser.add_argument(
        "--data", default=None, help="Shards (folder or .tar glob) or a datasets id; default: synthetic"
    )
    parser.add_argument("--split", default="val")
    parser.add_argument("--output", default=None, help="Where to write the results JSON")
    parser.add_argument("--num_frames", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_samples", type=int, default=None)
    parser.add_argument("--text_role", choices=("caption", "subtitle"), default="caption")
    parser.add_argument("--paragraph_column", default=None)
    parser.add_argument("--dsl_temperature", type=float, default=100.0)
    parser.add_argument("--label_column", default="label")
    parser.add_argument(
        "--templates",
        default="auto",
        help="Prompt templates for classification: auto (by the --data name), video, kinetics700, ucf101, "
        "or a dataset name such as kinetics400 (default: auto)",
    )
    parser.add_argument("--options_column", default=None)
    parser.add_argument("--answer_column", default=None)
    parser.add_argument("--num_options", type=int, default=5)
    parser.add_argument("--video_column", default="mp4")
    parser.add_argument("--caption_column", default="caption")
    parser.add_argument("--subtitle_column", default="subtitle")
    parser.add_argument("--metadata_column", default="json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # Checked before any model or data is loaded: a NaN/inf or non-positive DSL temperature would otherwise
    # only fail after every embedding is computed.
    if not math.isfinite(args.dsl_temperature) or args.dsl_temperature <= 0:
        parser.error(f"--dsl_temperature must be a finite number > 0, got {args.dsl_temperature}")
    for option, value, minimum in (
        ("--batch_size", args.batch_size, 1),
        ("--num_frames", args.num_frames, 1),
        ("--max_samples", args.max_samples, 1),
        ("--num_options", args.num_options, 2),
    ):
        if value is not None and value < minimum:
            parser.error(f"{option} must be >= {minimum}, got {value}")
    try:
        template_set, templates = select_templates(args.templates, args.data)
    except ValueError as error:
        parser.error(str(error).replace("`templates`", "--templates"))

    accelerator = Accelerator()
    if args.data is None:
        from vidla_hf.data.synthetic import generate_synthetic_dataset

        args.data = os.environ.get("VIDLA_SYNTHETIC_DIR", "data/synthetic")
        if accelerator.is_main_process and not (Path(args.data) / "manifest.json").is_file():
            generate_synthetic_dataset(args.data)  # a dataset already there is used as it is
        accelerator.wait_for_everyone()
    model = AutoModel.from_pretrained(args.model).to(accelerator.device).eval()
    processor = AutoProcessor.from_pretrained(args.model)
    embeds = compute_embeddings(
        model,
        processor,
        args.data,
        args.split,
        args.num_frames,
        args.batch_size,
        args.max_samples,
        accelerator,
        args.video_column,
        args.caption_column,
        args.subtitle_column,
        args.metadata_column or None,
    )
    videos, metadata = embeds["video_embeds"], embeds["metadata"]

    if args.task == "retrieval":
        if args.paragraph_column:
            texts = embed_texts(model, processor, [paragraph(m[args.paragraph_column]) for m in metadata])
        else:
            texts = embeds[f"{args.text_role}_embeds"]
        metrics = evaluate_retrieval(texts, videos, args.dsl_temperature)
    elif args.task == "classification":
        labels = [m.get(args.label_column) for m in metadata]
        if any(not isinstance(label, str) for label in labels):
            raise ValueError(f"Every sample needs a string `{args.label_column}` for classification.")
        class_names = sorted(set(labels))
        classes = class_embeddings(model, processor, class_names, templates)
        targets = torch.tensor([class_names.index(label) for label in labels])
        metrics = {**zero_shot_accuracy(videos, classes, targets), "num_classes": len(class_names)}
    else:
        options, answers = build_multiple_choice(
            metadata,
            args.num_options,
            options_column=args.options_column,
            answer_column=args.answer_column,
            caption_column=args.caption_column,
            subtitle_column=args.subtitle_column,
            seed=args.seed,
        )
        flat = embed_texts(model, processor, [text for choice in options for text in choice])
        option_embeds = flat.view(len(options), len(options[0]), -1)  # (N, K, D)
        metrics = {
            "accuracy": multiple_choice_accuracy(videos, option_embeds, torch.tensor(answers)),
            "num_options": len(options[0]),
        }

    results = {
        "task": args.task,
        "model": args.model,
        "dataset": {"name": args.data, "split": args.split},
        "num_samples": len(embeds["keys"]),
        "skipped_samples": embeds["skipped"],
        "metrics": metrics,
    }
    if args.task == "classification":
        results["templates"] = template_set
    if accelerator.is_main_process:
        text = json.dumps(results, indent=2, allow_nan=False)  # NaN/inf never reach a results file
        print(text)
        if args.output:
            output = Path(args.output)
            output.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=output.parent, delete=False, suffix=".partial") as file:
                file.write(text)
            os.replace(file.name, output)


if __name__ == "__main__":
    main()
