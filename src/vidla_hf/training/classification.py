"""Finetuning `VidLAForVideoClassification` (paper App. A.3, Table 7), in accelerate's style:
`classification_function(args)`, one `accelerator.prepare`, `accumulate`, cross-entropy on streamed labelled
videos, then the multi-view test on the evaluation split.

Everything that can be wrong with the options or the labels fails before the model is built: a bad option
(`validate_classification_args`), no class names, a label column missing from the data or a label outside
the classes in the first `--label_check_examples` examples of either split. The output folder follows the
training package's rules (`checkpointing.prepare_output_dir`): a non-empty `--output_dir` is refused unless
`--overwrite_output_dir`, which removes only the files an earlier run wrote. A NaN/inf loss stops the run
(`TrainingDivergedError`) before that step's update. Checkpoints (every `--checkpointing_steps` and at the
last step) and `--resume_from_checkpoint` work as in pretraining (`checkpointing`): the data position, the
optimizer, the schedule and the results so far continue exactly. The final model and processor are saved so that
`pipeline("video-classification", model=output_dir)` runs them; `train_results.json` (written atomically) holds
the accuracy before (with `--zero_shot_init`) and after training.
"""

import copy
import json
import math
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import AutoConfig

from ..data.streams import count_examples, load_video_text_stream, source_fingerprint
from ..data.video_labels import VideoLabelStream, check_label_column, collate_video_labels
from ..evaluation.classification import evaluate_classifier
from ..evaluation.zero_shot import class_embeddings, select_templates
from ..modeling import VidLAForVideoClassification
from .arguments import resolve_max_steps
from .checkpointing import (
    data_layout,
    prepare_output_dir,
    resume_point,
    save_final,
    write_text_atomic,
)
from .classification_args import (
    DEFAULT_MAX_STEPS,
    ClassificationArguments,
    class_names,
    validate_classification_args,
    view_counts,
)
from .loop import TrainingDivergedError, checkpoint_step, generated_data, restore_checkpoint, stateful_loader
from .setup import build_optimizer_and_schedule, load_model_and_processor
from .sharding import is_sharded

CLASSIFIER_ARCHITECTURE = "VidLAForVideoClassification"


def default_train_data(args: ClassificationArguments, accelerator: Accelerator) -> None:
    """With no --train_data: generate (or reuse) the synthetic action dataset under data/synthetic_actions."""
    if args.train_data is not None:
        return
    from ..data.synthetic_actions import generate_action_dataset

    folder = os.environ.get("VIDLA_SYNTHETIC_ACTIONS_DIR", "data/synthetic_actions")
    args.train_data = generated_data(accelerator, generate_action_dataset, folder, "synthetic action dataset")


def label_stream(
    args: ClassificationArguments, dataset, processor, label2id, training: bool
) -> VideoLabelStream:
    clips, crops = view_counts(args)
    return VideoLabelStream(
        dataset,
        processor,
        label2id,
        args.label_column,
        args.video_column,
        args.metadata_column or None,
        args.num_frames,
        args.sampling,
        args.frame_stride,
        training,
        clips,
        crops,
        args.random_crop,
        args.random_flip,
        args.seed,
        args.max_corrupt_fraction,
    )


@torch.no_grad()
def start_head(model: VidLAForVideoClassification) -> None:
    """A new head's rows become random directions of norm exp(`logit_scale_init_value`) (CLIP's initial inverse
    temperature, 14.3), the scale a zero-shot head starts at: the features are L2-normalised, so rows of norm ~1
    (the default init) bound every logit by ~1 and the first hundreds of steps go into growing them."""
    scale = math.exp(model.config.logit_scale_init_value)
    model.classifier.weight.copy_(F.normalize(model.classifier.weight, dim=-1) * scale)


@torch.no_grad()
def spread_position_tables(model: VidLAForVideoClassification) -> None:
    """From scratch only: the spatial and temporal position tables are drawn at the scale of the patch
    embeddings' output (std = initializer_range · sqrt(channels · patch²), 0.55 for the tiny preset) instead of
    the 0.02 and zero that suit a CLIP conversion. Otherwise where and when a token is starts ~30x weaker than
    what it shows, and a tiny tower learns order-only actions far slower (the synthetic actions: still at
    chance after 600 steps; with this, near 100%)."""
    vision = model.config.vision_config
    std = vision.initializer_range * math.sqrt(vision.num_channels * vision.patch_size**2)
    embeddings = model.vision_model.embeddings
    embeddings.position_embedding.weight.normal_(std=std)
    embeddings.temporal_embedding.normal_(std=std)


def build_classifier(args: ClassificationArguments, labels: list[str]):
    """`(classifier, processor)`: the preset from scratch, or the video tower of `--init_from` (a VidLA folder or
    a CLIP checkpoint, via the pretraining's loader) with a new head, or with the zero-shot head of the class
    names (`--zero_shot_init`); a classifier folder continues with its own head (same classes only). A new head
    starts at the zero-shot scale (`start_head`); a tower from scratch gets `spread_position_tables`."""
    id2label = dict(enumerate(labels))
    if args.init_from and CLASSIFIER_ARCHITECTURE in (
        AutoConfig.from_pretrained(args.init_from).architectures or []
    ):
        from transformers import AutoProcessor

        model = VidLAForVideoClassification.from_pretrained(args.init_from, num_frames=args.num_frames)
        if args.zero_shot_init or model.config.id2label != id2label:
            raise ValueError(
                f"`--init_from` {args.init_from!r} is a classifier of other classes ({model.config.num_labels}) or "
                "`--zero_shot_init` was asked: start from the VidLA model it was finetuned from instead."
            )
        processor = AutoProcessor.from_pretrained(args.init_from)
        processor.video_processor.num_frames = args.num_frames
        return model.train(), processor
    options = SimpleNamespace(
        init_from=args.init_from, config=args.config, num_frames=args.num_frames, mask_ratio=0.0
    )
    base, processor = load_model_and_processor(options)
    if args.zero_shot_init:
        _, templates = select_templates(args.templates, args.train_data)
        embeds = class_embeddings(base.eval(), processor, labels, templates)
        return VidLAForVideoClassification.from_zero_shot(base, embeds, labels).train(), processor
    config = copy.deepcopy(base.config)
    config.id2label, config.label2id = id2label, {label: i for i, label in id2label.items()}
    model = VidLAForVideoClassification(config)
    model.vision_model.load_state_dict(base.vision_model.state_dict())
    model.visual_projection.load_state_dict(base.visual_projection.state_dict())
    start_head(model)
    if not args.init_from:
        spread_position_tables(model)
    return model.train(), processor


def evaluate(model, processor, args: ClassificationArguments, label2id) -> dict[str, Any]:
    """The multi-view test on `--eval_data` / `--eval_split`."""
    clips, crops = view_counts(args)
    return evaluate_classifier(
        model,
        processor,
        args.eval_data or args.train_data,
        args.eval_split,
        label2id,
        label_column=args.label_column,
        video_column=args.video_column,
        metadata_column=args.metadata_column or None,
        num_frames=args.num_frames,
        sampling=args.sampling,
        frame_stride=args.frame_stride,
        test_clips=clips,
        test_crops=crops,
        view_average=args.view_average,
        batch_size=args.eval_batch_size,
        max_samples=args.eval_max_samples,
        num_workers=args.num_workers,
    )


def describe(metrics: dict[str, Any]) -> str:
    return (
        f"top-1 {metrics['top1']:.1f}, top-5 {metrics['top5']:.1f} on {metrics['num_videos']} videos × "
        f"{metrics['views_per_video']} views (chance {metrics['chance_top1']:.1f} / {metrics['chance_top5']:.1f})"
    )


def classification_function(args: ClassificationArguments) -> dict[str, Any]:
    validate_classification_args(args)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=None if args.mixed_precision == "no" else args.mixed_precision,
    )
    if is_sharded(accelerator):
        raise ValueError(
            "examples/finetune_classification.py does not support FSDP (its evaluation and saving use the whole "
            "model on one process); launch it with DDP (e.g. examples/configs/multi_node_ddp.yaml)."
        )
    guard = SimpleNamespace(
        output_dir=args.output_dir,
        overwrite_output_dir=args.overwrite_output_dir,
        resume_from_checkpoint=args.resume_from_checkpoint,
    )
    prepare_output_dir(guard, remove_earlier_run=accelerator.is_main_process)
    accelerator.wait_for_everyone()
    set_seed(args.seed)
    default_train_data(args, accelerator)
    labels = class_names(args, args.train_data)
    label2id = {label: i for i, label in enumerate(labels)}
    dataset = load_video_text_stream(
        args.train_data,
        args.train_split,
        args.video_column,
        args.shuffle_buffer,
        args.seed,
        accelerator.process_index,
        accelerator.num_processes,
    )
    # The labels of both splits, read without a processor (no video is decoded) before the model is built.
    check_label_column(
        label_stream(args, dataset, None, label2id, True),
        args.train_data,
        args.train_split,
        args.label_check_examples,
    )
    eval_source = args.eval_data or args.train_data
    eval_dataset = load_video_text_stream(eval_source, args.eval_split, args.video_column)
    check_label_column(
        label_stream(args, eval_dataset, None, label2id, False),
        eval_source,
        args.eval_split,
        args.label_check_examples,
    )
    if args.max_steps is None and args.num_train_epochs is None:
        args.max_steps = DEFAULT_MAX_STEPS
    examples = (
        count_examples(args.train_data, args.train_split) if args.num_train_epochs is not None else None
    )
    args.max_steps = resolve_max_steps(args, examples, accelerator.num_processes, repr(args.train_data))
    fingerprint = source_fingerprint(args.train_data, args.train_split)
    layout = data_layout(args, accelerator.num_processes, fingerprint, accelerator.distributed_type.value)
    checkpoint, resumed_state = resume_point(args, layout)
    start_step = resumed_state.get("step", 0)

    model, processor = build_classifier(args, labels)
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    stream = label_stream(args, dataset, processor, label2id, training=True)
    optimizer, scheduler = build_optimizer_and_schedule(model, args, accelerator.num_processes)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    unwrapped = accelerator.unwrap_model(model)
    workers = min(args.num_workers, dataset.num_shards)
    loader = stateful_loader(stream, args.per_device_batch_size, workers, collate_video_labels, args.seed)
    output = Path(args.output_dir)
    loss_log = output / "losses.jsonl"
    skipped_total = 0
    if checkpoint is not None:
        skipped_total = restore_checkpoint(
            accelerator, checkpoint, loader, optimizer, scheduler, args, loss_log
        )
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"task": "video-classification", "labels": labels}
    results.update(resumed_state.get("results", {}))
    if args.zero_shot_init and start_step == 0 and accelerator.is_main_process:
        results["initial"] = evaluate(unwrapped, processor, args, label2id)
        accelerator.print(f"zero-shot head before finetuning: {describe(results['initial'])}")
    accelerator.wait_for_everyone()

    started = time.perf_counter() - resumed_state.get("elapsed_seconds", 0.0)
    batches = iter(loader)
    last_step = args.stop_at_step or args.max_steps
    model.train()
    for step in tqdm(
        range(start_step + 1, last_step + 1),
        disable=not accelerator.is_local_main_process,
        desc="training",
        initial=start_step,
        total=last_step,
    ):
        learning_rate = optimizer.param_groups[0]["lr"]
        step_losses = []
        for _ in range(args.gradient_accumulation_steps):
            batch = next(batches)
            skipped_total += batch["skipped"]
            with accelerator.accumulate(model):
                pixels, targets = batch["pixel_values_videos"], batch["labels"]
                loss = model(
                    pixel_values_videos=pixels.to(accelerator.device), labels=targets.to(accelerator.device)
                ).loss
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"The loss became {loss.item()} at step {step}; nothing was saved from this state. "
                        "Lower --learning_rate."
                    )
                step_losses.append(loss.detach())
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        loss = accelerator.reduce(torch.stack(step_losses).mean(), "mean").item()
        if accelerator.is_main_process:
            with loss_log.open("a") as file:
                file.write(json.dumps({"step": step, "loss": loss, "lr": learning_rate}) + "\n")
        if step % args.logging_steps == 0 or step == args.max_steps:
            accelerator.print(f"step {step}: loss {loss:.4f}, lr {learning_rate:.2e}")
        evaluate_now = args.eval_steps and step % args.eval_steps == 0 and step != args.max_steps
        elapsed = time.perf_counter() - started
        checkpoint_step(accelerator, args, step, last_step, unwrapped, loader, skipped_total, evaluate_now,
                        {"layout": layout, "results": results, "elapsed_seconds": round(elapsed, 1)})  # fmt: skip
        if evaluate_now:
            if accelerator.is_main_process:
                results.setdefault("during", {})[str(step)] = metrics = evaluate(
                    unwrapped, processor, args, label2id
                )
                accelerator.print(f"step {step}: {describe(metrics)}")
            accelerator.wait_for_everyone()
    train_seconds = time.perf_counter() - started
    skipped = accelerator.reduce(torch.tensor(skipped_total, device=accelerator.device), "sum").item()
    if last_step == args.max_steps and accelerator.is_main_process:
        results["final"] = evaluate(unwrapped, processor, args, label2id)
        accelerator.print(f"after {args.max_steps} steps: {describe(results['final'])}")
        clips, crops = view_counts(args)
        results["skipped_samples"] = int(skipped)
        results["run"] = {
            "steps": args.max_steps,
            "resumed_from_step": start_step or None,
            "num_processes": accelerator.num_processes,
            "global_batch_size": args.per_device_batch_size
            * args.gradient_accumulation_steps
            * accelerator.num_processes,
            "sampling": args.sampling,
            "num_frames": args.num_frames,
            "test_views": f"{clips} x {crops}",
            "train_seconds": round(train_seconds, 1),
            "wall_seconds": round(
                time.perf_counter() - started, 1
            ),  # training, checkpoints, final evaluation
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
            "torch": torch.__version__,
            "device": str(accelerator.device),
        }
        save_final(unwrapped, processor, args.output_dir, args)
        write_text_atomic(output / "train_results.json", json.dumps(results, indent=2))
        accelerator.print(f"model and processor saved to {args.output_dir}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


__all__ = ["build_classifier", "classification_function", "evaluate", "spread_position_tables", "start_head"]
