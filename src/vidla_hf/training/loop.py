"""The training loop shared by `examples/pretrain.py` and `examples/finetune_retrieval.py`, in accelerate's
style: `training_function(args)`, one `accelerator.prepare`, `accumulate`, `save_state`/`load_state`."""

import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from torchdata.stateful_dataloader import StatefulDataLoader
from tqdm.auto import tqdm

from ..data.streams import (
    VideoTextStream,
    collate_video_text,
    count_examples,
    load_video_text_stream,
    resolve_tar_shards,
    source_fingerprint,
)
from ..evaluation.retrieval import evaluate_retrieval
from .arguments import FRAME_SAMPLING, TrainingArguments, resolve_max_steps, validate_args
from .checkpointing import (
    data_layout,
    load_data_state,
    prepare_output_dir,
    resume_point,
    save_checkpoint,
    save_final,
    truncate_loss_log,
    write_text_atomic,
)
from .losses import VidLALoss
from .setup import (
    VidLAContrastiveModule,
    build_optimizer_and_schedule,
    configure_trainable,
    load_model_and_processor,
)
from .sharding import (
    check_sharding_support,
    evaluation_model,
    full_tensor,
    is_sharded,
    make_shardable,
    unsharded_model,
)


class TrainingDivergedError(RuntimeError):
    """The loss or the gradients became NaN/inf; nothing was saved from that state."""


def evaluate_on_val(model, processor, args: TrainingArguments) -> dict[str, Any]:
    """Zero-shot text→video retrieval (captions as queries) on the evaluation split, centre crop, uniform
    frames: R@K, MdR, MnR, without and with dual softmax."""
    from ..evaluation.embeddings import compute_embeddings

    embeds = compute_embeddings(
        model,
        processor,
        args.eval_data or args.train_data,
        args.eval_split,
        args.num_frames,
        args.per_device_batch_size,
        args.eval_max_samples,
        None,
        args.video_column,
        args.caption_column,
        args.subtitle_column,
        args.metadata_column or None,
        args.num_workers,
    )
    results = evaluate_retrieval(embeds["caption_embeds"], embeds["video_embeds"])
    return {
        **results["text_to_video"],
        "dsl": results["text_to_video_dsl"],
        "num_videos": len(embeds["keys"]),
    }


def scalar_logs(metrics: dict[str, Any]) -> dict[str, float]:
    logs = {f"eval/{k}": v for k, v in metrics.items() if k != "dsl"}
    return {**logs, **{f"eval/dsl/{k}": v for k, v in metrics.get("dsl", {}).items()}}


def format_metrics(metrics: dict[str, float]) -> str:
    chance = {k: min(100.0, 100.0 * int(k[2:]) / metrics["num_videos"]) for k in ("R@1", "R@5", "R@10")}
    return (
        ", ".join(f"{k} {metrics[k]:.1f}" for k in ("R@1", "R@5", "R@10"))
        + f" on {metrics['num_videos']} videos"
        f" (chance {chance['R@1']:.1f} / {chance['R@5']:.1f} / {chance['R@10']:.1f})"
    )


def generated_data(accelerator: Accelerator, generate: Callable[[str], Any], folder: str, name: str) -> str:
    """`folder` once `generate(folder)` has made (or reused) the `name` data there: the main process generates,
    the others wait for it."""
    if accelerator.is_main_process:
        start = time.perf_counter()
        generate(folder)
        accelerator.print(f"{name} ready in {folder} ({time.perf_counter() - start:.0f} s)")
    accelerator.wait_for_everyone()
    return folder


def default_train_data(args: TrainingArguments, accelerator: Accelerator) -> None:
    """With no --train_data: generate (or reuse) the synthetic dataset under data/synthetic."""
    if args.train_data is not None:
        return
    from ..data.synthetic import generate_synthetic_dataset

    folder = os.environ.get("VIDLA_SYNTHETIC_DIR", "data/synthetic")
    args.train_data = generated_data(accelerator, generate_synthetic_dataset, folder, "synthetic dataset")


def training_stream(args: TrainingArguments, dataset, processor) -> VideoTextStream:
    """The training samples of `dataset`: decoded and augmented as `args` say (`--frame_sampling` picks the
    frame indices), seeded by `--seed` and each sample's position."""
    return VideoTextStream(
        dataset,
        processor,
        args.video_column,
        args.caption_column,
        args.subtitle_column,
        args.metadata_column or None,
        args.num_frames,
        args.training_augmentation,
        args.seed,
        args.max_corrupt_fraction,
        frame_sampling=FRAME_SAMPLING[args.frame_sampling],
        random_flip=args.random_flip,
    )


def check_finite_parameters(model: torch.nn.Module, step: int) -> None:
    """Raises if any weight is NaN/inf. Every process calls it (under FSDP2 each reads whole parameters, a
    collective), so all raise together."""
    bad = [name for name, param in model.named_parameters() if not torch.isfinite(full_tensor(param)).all()]
    if bad:
        raise TrainingDivergedError(
            f"The weights became non-finite at step {step} ({len(bad)} tensors, e.g. {bad[0]}); nothing was "
            "saved from this state. Lower --learning_rate and resume from the last checkpoint."
        )


def use_learning_rate(optimizer, scheduler, learning_rate: float) -> None:
    """After `load_state`: the schedule continues at its step but from this run's `--learning_rate` (the
    checkpoint's optimizer and scheduler carry the old one), so a lowered rate takes effect on resume."""
    schedule = scheduler.scheduler  # accelerate's wrapper around the LambdaLR
    schedule.base_lrs = [learning_rate] * len(schedule.base_lrs)
    for group, factor in zip(optimizer.param_groups, schedule.lr_lambdas, strict=True):
        group["initial_lr"] = learning_rate
        group["lr"] = learning_rate * factor(schedule.last_epoch)


def stateful_loader(stream, batch_size: int, workers: int, collate_fn, seed: int) -> StatefulDataLoader:
    """torchdata's `StatefulDataLoader` over a stateful stream: its `state_dict` is the data position a
    checkpoint saves. Its own generator: creating the iterator must not draw from the global RNG that
    `load_state` restored."""
    with warnings.catch_warnings():  # torchdata 0.11 calls torch's deprecated `set_vital`; not ours to fix
        warnings.filterwarnings("ignore", message="'set_vital' is deprecated")
        return StatefulDataLoader(
            stream,
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=collate_fn,
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(seed),
        )


def restore_checkpoint(
    accelerator, checkpoint: Path, loader, optimizer, scheduler, args, loss_log: Path
) -> int:
    """Loads `checkpoint` (model, optimizer, schedule, RNGs: accelerate's `load_state`; this process's data
    position), continues the schedule from `args.learning_rate`, drops the loss log's later steps; returns the
    samples skipped so far."""
    accelerator.load_state(str(checkpoint))
    data_state = load_data_state(checkpoint, accelerator.process_index)
    loader.load_state_dict(data_state["loader"])
    use_learning_rate(optimizer, scheduler, args.learning_rate)
    step = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
    if accelerator.is_main_process:
        truncate_loss_log(loss_log, step)
    accelerator.print(f"resumed from {checkpoint} at step {step}")
    return data_state["skipped"]


def checkpoint_step(
    accelerator, args, step: int, last_step: int, model, loader, skipped: int, evaluating: bool, trainer_state
) -> None:
    """After optimizer step `step`: checks the weights are finite before a checkpoint or an evaluation (on
    every process, so all raise together), and every `--checkpointing_steps` and at `last_step` saves one
    (`save_checkpoint`) with this process's data position and the main process's `trainer_state`."""
    saving = step % args.checkpointing_steps == 0 or step == last_step
    if saving or evaluating:
        check_finite_parameters(model, step)
    if saving:
        data_state = {"loader": loader.state_dict(), "skipped": skipped}
        save_checkpoint(accelerator, args.output_dir, step, data_state, trainer_state)


def training_function(args: TrainingArguments) -> dict[str, Any]:
    validate_args(args)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=None if args.mixed_precision == "no" else args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")
        ),
    )
    # Every process checks before anything is written; only the main process removes an earlier run's files.
    check_sharding_support(accelerator, args.lora_rank)
    prepare_output_dir(args, remove_earlier_run=accelerator.is_main_process)
    accelerator.wait_for_everyone()

    set_seed(args.seed)
    default_train_data(args, accelerator)
    dataset = load_video_text_stream(
        args.train_data,
        "train",
        args.video_column,
        args.shuffle_buffer,
        args.seed,
        accelerator.process_index,
        accelerator.num_processes,
    )
    # On every process, before the model is built: a bad evaluation source, a length that cannot be known or
    # a resume mismatch fails everywhere at once (on the main process alone the others would wait at a barrier).
    if args.num_train_epochs is not None:
        examples = count_examples(args.train_data, "train")
        args.max_steps = resolve_max_steps(args, examples, accelerator.num_processes, repr(args.train_data))
        accelerator.print(f"{args.num_train_epochs:g} epochs of {examples} examples: {args.max_steps} steps")
    resolve_tar_shards(args.eval_data or args.train_data, args.eval_split)
    fingerprint = source_fingerprint(args.train_data, "train")
    layout = data_layout(args, accelerator.num_processes, fingerprint, accelerator.distributed_type.value)
    checkpoint, resumed_state = resume_point(args, layout)
    start_step = resumed_state.get("step", 0)

    model, processor = load_model_and_processor(args)
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    model = configure_trainable(model, args)
    if is_sharded(accelerator):
        make_shardable(model)
    module = VidLAContrastiveModule(model, processor.tokenizer.pad_token_id)
    optimizer, scheduler = build_optimizer_and_schedule(module, args, accelerator.num_processes)
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    loss_fn = VidLALoss(local_loss=args.local_loss)

    stream = training_stream(args, dataset, processor)
    workers = min(args.num_workers, dataset.num_shards)  # a worker without a shard would yield nothing
    loader = stateful_loader(stream, args.per_device_batch_size, workers, collate_video_text, args.seed)
    loss_log = Path(args.output_dir) / "losses.jsonl"
    skipped_total = 0
    if checkpoint is not None:
        skipped_total = restore_checkpoint(
            accelerator, checkpoint, loader, optimizer, scheduler, args, loss_log
        )
    batches = iter(loader)

    if accelerator.is_main_process:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    if args.report_to != "none":
        accelerator.init_trackers("vidla", config={k: v for k, v in vars(args).items() if v is not None})
    results: dict[str, Any] = dict(resumed_state.get("results", {}))
    unwrapped = accelerator.unwrap_model(module).model
    # The main process evaluates; under FSDP2 every process runs the same evaluation (a forward gathers the
    # weights from all of them) and the main one keeps the results.
    evaluates = accelerator.is_main_process or is_sharded(accelerator)
    evaluated = evaluation_model(accelerator, module, unwrapped)
    if start_step == 0 and evaluates:
        results["before"] = evaluate_on_val(evaluated, processor, args)
        accelerator.print(
            f"zero-shot text→video retrieval before training: {format_metrics(results['before'])}"
        )
        accelerator.log(scalar_logs(results["before"]), step=0)
    accelerator.wait_for_everyone()

    started = time.perf_counter() - resumed_state.get("elapsed_seconds", 0.0)
    last_step = args.stop_at_step or args.max_steps
    progress = tqdm(
        range(start_step, last_step), disable=not accelerator.is_local_main_process, desc="training"
    )
    module.train()
    for step in range(start_step + 1, last_step + 1):
        learning_rate = optimizer.param_groups[0]["lr"]
        step_losses = []
        for _ in range(args.gradient_accumulation_steps):
            batch = next(batches)
            skipped_total += batch["skipped"]
            inputs = {k: v.to(accelerator.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            with accelerator.accumulate(module):
                loss, parts = loss_fn(*module(**inputs))
                # The global loss, the same on every process (a local loss is each process's share of it),
                # so that all stop together.
                reported = accelerator.reduce(loss.detach(), "mean") if args.local_loss else loss.detach()
                if not torch.isfinite(reported):
                    raise TrainingDivergedError(
                        f"The loss became {reported.item()} at step {step}; nothing was saved from this state. "
                        "Lower --learning_rate and resume from the last checkpoint."
                    )
                step_losses.append(reported)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    norm = accelerator.clip_grad_norm_(module.parameters(), args.max_grad_norm)
                    norm = None if norm is None else full_tensor(norm)
                    # With fp16 loss scaling an inf norm is an overflow the scaler skips, not divergence.
                    if accelerator.scaler is None and norm is not None and not torch.isfinite(norm):
                        raise TrainingDivergedError(
                            f"The gradient norm became {norm.item()} at step {step}; nothing was saved from "
                            "this state. Lower --learning_rate and resume from the last checkpoint."
                        )
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        with torch.no_grad():  # CLIP clamps the inverse temperature at 100
            unwrapped.logit_scale.clamp_(0, math.log(100))
        progress.update(1)
        loss = torch.stack(step_losses).mean()  # the step's loss: the mean over its micro-batches
        if accelerator.is_main_process:
            with loss_log.open("a") as file:
                file.write(json.dumps({"step": step, "loss": loss.item(), "lr": learning_rate}) + "\n")
        if step % args.logging_steps == 0 or step == last_step:
            skipped = accelerator.reduce(torch.tensor(skipped_total, device=accelerator.device), "sum").item()
            if args.local_loss:
                parts = {name: accelerator.reduce(part.detach(), "mean") for name, part in parts.items()}
            logs = {
                "train/loss": loss.item(),
                "train/loss_caption": parts["caption"].item(),
                "train/loss_subtitle": parts["subtitle"].item(),
                "train/lr": learning_rate,
                "train/temperature": 1 / full_tensor(unwrapped.logit_scale).exp().item(),
                "train/skipped_samples": skipped,
            }
            accelerator.log(logs, step=step)
            progress.set_postfix(loss=f"{loss.item():.3f}", skipped=int(skipped))
        evaluate_now = step % args.eval_steps == 0 and step != last_step
        elapsed = time.perf_counter() - started
        checkpoint_step(accelerator, args, step, last_step, unwrapped, loader, skipped_total, evaluate_now,
                        {"layout": layout, "results": results, "elapsed_seconds": round(elapsed, 1)})  # fmt: skip
        if evaluate_now and evaluates:
            metrics = evaluate_on_val(evaluated, processor, args)
            results.setdefault("during", {})[str(step)] = metrics
            accelerator.log(scalar_logs(metrics), step=step)
            accelerator.print(f"step {step}: {format_metrics(metrics)}")
        if evaluate_now:
            accelerator.wait_for_everyone()
    progress.close()

    results["skipped_samples"] = int(
        accelerator.reduce(torch.tensor(skipped_total, device=accelerator.device), "sum").item()
    )
    final_model = unsharded_model(accelerator, module, unwrapped) if last_step == args.max_steps else None
    if last_step == args.max_steps and evaluates:
        results["after"] = evaluate_on_val(evaluated, processor, args)
        accelerator.print(
            f"zero-shot text→video retrieval after training: {format_metrics(results['after'])}"
        )
        accelerator.log(scalar_logs(results["after"]), step=last_step)
    if last_step == args.max_steps and accelerator.is_main_process:
        results["run"] = {
            "steps": args.max_steps,
            "resumed_from_step": start_step or None,
            "num_processes": accelerator.num_processes,
            "distributed_type": accelerator.distributed_type.value,
            "global_batch_size": args.per_device_batch_size
            * args.gradient_accumulation_steps
            * accelerator.num_processes,
            "wall_seconds": round(time.perf_counter() - started, 1),  # incl. evaluation and checkpoints
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
            "torch": torch.__version__,
            "device": str(accelerator.device),
        }
        save_final(final_model, processor, args.output_dir, args)
        write_text_atomic(Path(args.output_dir) / "train_results.json", json.dumps(results, indent=2))
        accelerator.print(f"model and processor saved to {args.output_dir}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


__all__ = [
    "TrainingDivergedError",
    "checkpoint_step",
    "evaluate_on_val",
    "restore_checkpoint",
    "stateful_loader",
    "training_function",
    "training_stream",
]
