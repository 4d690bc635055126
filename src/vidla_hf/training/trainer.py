"""The training loop shared by `examples/pretrain.py` and `examples/finetune_retrieval.py` (accelerate's style:
`training_function(args)`, one `accelerator.prepare`, `accumulate`, `save_state`/`load_state`)."""

import argparse
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoProcessor, get_cosine_with_min_lr_schedule_with_warmup

from ..evaluation.retrieval import retrieval_metrics
from ..modeling import VidLAConfig, VidLAModel
from ..modeling.convert_clip import is_new_vidla_parameter
from ..processing import VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from .data import VideoTextStream, collate_video_text, load_video_text_stream
from .losses import VidLALoss

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)$")
NO_DECAY_NAMES = (
    "position_embedding",
    "temporal_embedding",
    "mst_embedding",
    "class_embedding",
    "logit_scale",
)
LORA_TARGETS = (
    r"vision_model\.encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.fc1|mlp\.fc2)"
)


@dataclass
class TrainingArguments:
    """Every option of the training scripts; the defaults are the paper's pretraining recipe (§5, App. A)."""

    train_data: str | None = field(
        default=None,
        metadata={
            "help": "WebDataset shards (folder or .tar glob) or a datasets source; default: the synthetic dataset"
        },
    )
    eval_data: str | None = field(
        default=None, metadata={"help": "Evaluation source; default: the train source"}
    )
    eval_split: str = field(
        default="val", metadata={"help": "Split of the evaluation source (a datasets id or a shard folder)"}
    )
    output_dir: str = field(
        default="outputs/vidla-pretrain", metadata={"help": "Checkpoints, logs and the final model"}
    )
    init_from: str | None = field(
        default=None, metadata={"help": "An HF CLIP checkpoint (via from_clip) or a VidLA checkpoint"}
    )
    config: str = field(default="vidla-tiny", metadata={"help": "Preset used when --init_from is not given"})
    video_column: str = "mp4"
    caption_column: str = "caption"
    subtitle_column: str = "subtitle"
    metadata_column: str = field(
        default="json", metadata={"help": "Column holding a JSON object with the texts ('' for none)"}
    )
    num_frames: int = 12
    training_augmentation: bool = field(
        default=True, metadata={"help": "Multi-scale crop + flip (off: centre crop, no flip)"}
    )
    per_device_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    max_steps: int = 1000
    stop_at_step: int | None = field(
        default=None,
        metadata={"help": "Stop early (keeping the schedule of --max_steps), e.g. to split a run over jobs"},
    )
    learning_rate: float = 2e-5
    min_learning_rate: float = 4e-8
    warmup_steps: int = 100
    weight_decay: float = 0.02
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 10.0
    mixed_precision: str = field(
        default="no",
        metadata={"help": "no, fp16 or bf16 (also set by `accelerate launch --mixed_precision`)"},
    )
    gradient_checkpointing: bool = False
    mask_ratio: float = field(default=0.0, metadata={"help": "Tube token masking ratio in training"})
    freeze_text_tower: bool = False
    lora_rank: int = field(
        default=0, metadata={"help": "LoRA rank on the video tower's CLIP layers (0: full finetuning)"}
    )
    lora_alpha: int = 16
    shuffle_buffer: int = 256
    num_workers: int = 2
    max_corrupt_fraction: float = 0.5
    checkpointing_steps: int = 250
    eval_steps: int = 250
    eval_max_samples: int = 512
    logging_steps: int = 10
    report_to: str = field(default="tensorboard", metadata={"help": "An accelerate tracker name, or 'none'"})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' or a checkpoint folder"}
    )
    seed: int = 42


RECIPES: dict[str, dict[str, Any]] = {
    # The paper's pretraining recipe: the `TrainingArguments` defaults.
    "paper": {},
    # The embedded default job: the tiny preset from scratch on the synthetic clips, minutes on a CPU.
    "tiny-cpu": {
        "num_frames": 8,
        "per_device_batch_size": 32,
        "learning_rate": 5e-4,
        "min_learning_rate": 1e-5,
        "warmup_steps": 20,
        "max_steps": 300,
        "weight_decay": 0.02,
        "checkpointing_steps": 100,
        "eval_steps": 100,
        "eval_max_samples": 128,
        "logging_steps": 10,
    },
    # The paper's retrieval finetuning (App. A): 32 frames, lr 1e-5 → 1e-6, weight decay 0.2, centre crop, no flip.
    "retrieval-finetune": {
        "num_frames": 32,
        "learning_rate": 1e-5,
        "min_learning_rate": 1e-6,
        "weight_decay": 0.2,
        "training_augmentation": False,
    },
}


def _argument_type(annotation) -> type:
    options = typing.get_args(annotation) or (annotation,)
    return next(t for t in (bool, int, float, str) if t in options)


def build_parser(description: str) -> argparse.ArgumentParser:
    """One `--option` per `TrainingArguments` field, plus `--recipe`. Options left out stay `None` so that
    `parse_args` can tell them from the recipe's defaults."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default=None,
        help="Defaults to start from (default: tiny-cpu for the tiny preset without --init_from, else paper)",
    )
    for spec in fields(TrainingArguments):
        kind = _argument_type(spec.type)
        help_text = spec.metadata.get("help", "") + f" (default: {spec.default})"
        if kind is bool:
            parser.add_argument(
                f"--{spec.name}", default=None, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            parser.add_argument(f"--{spec.name}", type=kind, default=None, help=help_text)
    return parser


def parse_args(description: str, recipe: str | None = None, argv=None) -> TrainingArguments:
    """Explicit options > the recipe's defaults > `TrainingArguments` defaults."""
    namespace = vars(build_parser(description).parse_args(argv))
    explicit = {k: v for k, v in namespace.items() if v is not None and k != "recipe"}
    chosen = namespace["recipe"] or recipe
    if chosen is None:
        from_scratch_tiny = (
            explicit.get("config", "vidla-tiny") == "vidla-tiny" and "init_from" not in explicit
        )
        chosen = "tiny-cpu" if from_scratch_tiny else "paper"
    return TrainingArguments(**{**RECIPES[chosen], **explicit})


def validate_args(args: TrainingArguments) -> None:
    for name in (
        "per_device_batch_size",
        "gradient_accumulation_steps",
        "max_steps",
        "num_frames",
        "checkpointing_steps",
        "eval_steps",
        "logging_steps",
    ):
        if getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be >= 1, got {getattr(args, name)}.")
    if args.stop_at_step is not None and not 1 <= args.stop_at_step <= args.max_steps:
        raise ValueError(
            f"`--stop_at_step` must be in [1, max_steps={args.max_steps}], got {args.stop_at_step}."
        )
    if not 0 <= args.mask_ratio < 1:
        raise ValueError(f"`--mask_ratio` must be in [0, 1), got {args.mask_ratio}.")
    if args.lora_rank < 0 or args.num_workers < 0:
        raise ValueError("`--lora_rank` and `--num_workers` must be >= 0.")


class VidLAContrastiveModule(nn.Module):
    """One forward for DDP: videos, then captions and subtitles as one text batch → normalised embeddings."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values_videos, caption_ids, caption_mask, subtitle_ids, subtitle_mask):
        model = self.model
        video = model.get_video_features(pixel_values_videos=pixel_values_videos).pooler_output
        length = max(caption_ids.shape[1], subtitle_ids.shape[1])
        ids = torch.cat(
            [
                F.pad(caption_ids, (0, length - caption_ids.shape[1]), value=49407),
                F.pad(subtitle_ids, (0, length - subtitle_ids.shape[1]), value=49407),
            ]
        )  # (2B, L)
        mask = torch.cat(
            [
                F.pad(caption_mask, (0, length - caption_mask.shape[1])),
                F.pad(subtitle_mask, (0, length - subtitle_mask.shape[1])),
            ]
        )
        text = model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        captions, subtitles = F.normalize(text, dim=-1).chunk(2)
        return F.normalize(video, dim=-1), captions, subtitles, model.logit_scale.exp()


def load_model_and_processor(args: TrainingArguments) -> tuple[VidLAModel, VidLAProcessor]:
    overrides = {"num_frames": args.num_frames, "mask_ratio": args.mask_ratio}
    if args.init_from:
        model_type = AutoConfig.from_pretrained(args.init_from).model_type
        if model_type == "clip":
            model = VidLAModel.from_clip(args.init_from, **overrides)
        elif model_type == "vidla":
            model = VidLAModel.from_pretrained(args.init_from, num_frames=args.num_frames)
            model.config.vision_config.mask_ratio = args.mask_ratio
        else:
            raise ValueError(
                f"--init_from {args.init_from!r} is a {model_type!r} checkpoint; expected CLIP or VidLA."
            )
    else:
        model = VidLAModel(VidLAConfig.from_preset(args.config, **overrides))
    try:
        processor = AutoProcessor.from_pretrained(args.init_from) if args.init_from else None
    except (OSError, ValueError, TypeError):
        processor = None
    if not isinstance(processor, VidLAProcessor):
        try:  # a CLIP checkpoint's own tokenizer when it has one
            from transformers import AutoTokenizer

            tokenizer = (
                AutoTokenizer.from_pretrained(args.init_from) if args.init_from else build_clip_tokenizer()
            )
        except (OSError, ValueError):
            tokenizer = build_clip_tokenizer()
        size = model.config.vision_config.image_size
        video_processor = VidLAVideoProcessor(
            num_frames=args.num_frames,
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
        )
        processor = VidLAProcessor(video_processor, tokenizer)
    processor.video_processor.num_frames = args.num_frames
    return model, processor


def configure_trainable(model: VidLAModel, args: TrainingArguments) -> nn.Module:
    """Applies --freeze_text_tower and --lora_rank (peft LoRA on the video tower's CLIP linear layers; VidLA's
    new parameters, the projections and the temperature stay fully trainable)."""
    if args.lora_rank:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=args.lora_rank, lora_alpha=args.lora_alpha, target_modules=LORA_TARGETS, lora_dropout=0.0
        )
        model = get_peft_model(model, lora)
        for name, param in model.named_parameters():
            plain = name.replace("base_model.model.", "")
            if is_new_vidla_parameter(plain) or plain.startswith(
                ("visual_projection", "text_projection", "logit_scale")
            ):
                param.requires_grad_(True)
            if plain.startswith("text_model.") and not args.freeze_text_tower and "lora_" not in plain:
                param.requires_grad_(True)
    if args.freeze_text_tower:
        for name, param in model.named_parameters():
            if re.search(r"(^|\.)(text_model|text_projection)\.", name + "."):
                param.requires_grad_(False)
    return model


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay only for matrices, never for biases, norms, [MST] tokens, position embeddings or τ."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or any(n in name for n in NO_DECAY_NAMES) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def find_checkpoint(output_dir: str, which: str) -> Path:
    if which != "latest":
        path = Path(which)
        if not (path / "trainer_state.json").is_file():
            raise FileNotFoundError(f"{path} is not a complete checkpoint (no trainer_state.json).")
        return path
    folder = Path(output_dir) / "checkpoints"
    complete = [
        p
        for p in folder.glob("step_*")
        if CHECKPOINT_PATTERN.match(p.name) and (p / "trainer_state.json").is_file()
    ]
    if not complete:
        raise FileNotFoundError(f"--resume_from_checkpoint latest: no complete checkpoint under {folder}.")
    return max(complete, key=lambda p: int(CHECKPOINT_PATTERN.match(p.name).group(1)))


def save_checkpoint(accelerator: Accelerator, output_dir: str, step: int, data_positions: dict) -> Path:
    """`save_state` into `step_N.partial`, then renamed to `step_N`: a half-written one is never `latest`."""
    folder = Path(output_dir) / "checkpoints"
    final, partial = folder / f"step_{step}", folder / f"step_{step}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    (partial / f"data_state_rank{accelerator.process_index}.json").write_text(
        json.dumps({str(worker): list(position) for worker, position in data_positions.items()})
    )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / "trainer_state.json").write_text(json.dumps({"step": step}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
    accelerator.wait_for_everyone()
    return final


def effective_workers(requested: int, num_shards: int, batches_per_checkpoint: int) -> int:
    """Workers the stream can feed (one shard at least each) whose count divides the batches between
    checkpoints, so that resume points fall on whole rounds of the DataLoader's round-robin."""
    for workers in range(min(requested, num_shards), 0, -1):
        if batches_per_checkpoint % workers == 0:
            return workers
    return 0


def evaluate_retrieval(
    model: VidLAModel, processor: VidLAProcessor, args: TrainingArguments, max_samples: int
):
    """Zero-shot text→video retrieval (captions as queries) on the evaluation split, centre crop, uniform frames."""
    from ..evaluation.embeddings import compute_embeddings

    embeds = compute_embeddings(
        model,
        processor,
        args.eval_data or args.train_data,
        args.eval_split,
        args.num_frames,
        args.per_device_batch_size,
        max_samples,
        None,
        args.video_column,
        args.caption_column,
        args.subtitle_column,
        args.metadata_column or None,
        args.num_workers,
    )
    metrics = retrieval_metrics(embeds["caption_embeds"] @ embeds["video_embeds"].T)
    metrics["num_videos"] = len(embeds["keys"])
    return metrics


def default_train_data(args: TrainingArguments, accelerator: Accelerator) -> None:
    """With no --train_data: generate (or reuse) the synthetic dataset under data/synthetic."""
    if args.train_data is not None:
        return
    from ..data.synthetic import generate_synthetic_dataset

    folder = os.environ.get("VIDLA_SYNTHETIC_DIR", "data/synthetic")
    if accelerator.is_main_process:
        start = time.perf_counter()
        generate_synthetic_dataset(folder)
        accelerator.print(f"synthetic dataset ready in {folder} ({time.perf_counter() - start:.0f} s)")
    accelerator.wait_for_everyone()
    args.train_data = folder


def save_final(model: nn.Module, processor: VidLAProcessor, output_dir: str, args: TrainingArguments) -> None:
    """Merges LoRA weights into plain ones and writes model + processor + the run's arguments
    (`training_args.json`, read by the model card), each file moved in when complete."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output, prefix=".saving-") as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (Path(staging) / "training_args.json").write_text(json.dumps(asdict(args), indent=2))
        for item in Path(staging).iterdir():
            os.replace(item, output / item.name)


def training_function(args: TrainingArguments) -> dict[str, Any]:
    validate_args(args)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=None if args.mixed_precision == "no" else args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=args.output_dir,
    )
    set_seed(args.seed)
    default_train_data(args, accelerator)
    model, processor = load_model_and_processor(args)
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    model = configure_trainable(model, args)
    module = VidLAContrastiveModule(model)
    optimizer = torch.optim.AdamW(
        parameter_groups(module, args.weight_decay),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
    )
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, args.warmup_steps, args.max_steps, min_lr=args.min_learning_rate
    )
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    loss_fn = VidLALoss()

    start_step, resume_positions = 0, {}
    if args.resume_from_checkpoint:
        checkpoint = find_checkpoint(args.output_dir, args.resume_from_checkpoint)
        accelerator.load_state(str(checkpoint))
        start_step = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
        data_state = json.loads((checkpoint / f"data_state_rank{accelerator.process_index}.json").read_text())
        resume_positions = {int(worker): tuple(position[1:]) for worker, position in data_state.items()}
        accelerator.print(f"resumed from {checkpoint} at step {start_step}")

    dataset = load_video_text_stream(
        args.train_data,
        "train",
        args.video_column,
        args.shuffle_buffer,
        args.seed,
        accelerator.process_index,
        accelerator.num_processes,
    )
    workers = effective_workers(
        args.num_workers, dataset.num_shards, args.checkpointing_steps * args.gradient_accumulation_steps
    )
    stream = VideoTextStream(
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
        resume_positions,
    )
    # Its own generator: creating the iterator must not draw from the global RNG that `load_state` restored.
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=args.per_device_batch_size,
        num_workers=workers,
        collate_fn=collate_video_text,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(args.seed),
    )
    batches = iter(loader)

    if accelerator.is_main_process:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    if args.report_to != "none":
        accelerator.init_trackers("vidla", config={k: v for k, v in vars(args).items() if v is not None})
    results: dict[str, Any] = {}
    unwrapped = accelerator.unwrap_model(module).model
    if start_step == 0 and accelerator.is_main_process:
        results["before"] = evaluate_retrieval(unwrapped, processor, args, args.eval_max_samples)
        accelerator.print(
            f"zero-shot text→video retrieval before training: {format_metrics(results['before'])}"
        )
        accelerator.log({f"eval/{k}": v for k, v in results["before"].items()}, step=0)
    accelerator.wait_for_everyone()

    data_positions = {int(w): (w, *p) for w, p in resume_positions.items()}
    skipped_total = 0
    last_step = args.stop_at_step or args.max_steps
    progress = tqdm(
        range(start_step, last_step), disable=not accelerator.is_local_main_process, desc="training"
    )
    loss_log = Path(args.output_dir) / "losses.jsonl"
    module.train()
    for step in range(start_step + 1, last_step + 1):
        for _ in range(args.gradient_accumulation_steps):
            batch = next(batches)
            skipped_total += batch["skipped"]
            for position in batch["positions"]:
                data_positions[position[0]] = position
            inputs = {k: v.to(accelerator.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            with accelerator.accumulate(module):
                loss, parts = loss_fn(*module(**inputs))
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(module.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        with torch.no_grad():  # CLIP clamps the inverse temperature at 100
            unwrapped.logit_scale.clamp_(0, math.log(100))
        progress.update(1)
        if accelerator.is_main_process:
            with loss_log.open("a") as file:
                file.write(json.dumps({"step": step, "loss": loss.item()}) + "\n")
        if step % args.logging_steps == 0 or step == last_step:
            skipped = accelerator.reduce(torch.tensor(skipped_total, device=accelerator.device), "sum").item()
            logs = {
                "train/loss": loss.item(),
                "train/loss_caption": parts["caption"].item(),
                "train/loss_subtitle": parts["subtitle"].item(),
                "train/lr": scheduler.get_last_lr()[0],
                "train/temperature": 1 / unwrapped.logit_scale.exp().item(),
                "train/skipped_samples": skipped,
            }
            accelerator.log(logs, step=step)
            progress.set_postfix(loss=f"{loss.item():.3f}", skipped=int(skipped))
        if step % args.checkpointing_steps == 0 or step == last_step:
            save_checkpoint(accelerator, args.output_dir, step, data_positions)
        if step % args.eval_steps == 0 and step != last_step and accelerator.is_main_process:
            metrics = evaluate_retrieval(unwrapped, processor, args, args.eval_max_samples)
            accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=step)
            accelerator.print(f"step {step}: {format_metrics(metrics)}")
        accelerator.wait_for_everyone()
    progress.close()

    results["skipped_samples"] = int(
        accelerator.reduce(torch.tensor(skipped_total, device=accelerator.device), "sum").item()
    )
    if last_step == args.max_steps and accelerator.is_main_process:
        results["after"] = evaluate_retrieval(unwrapped, processor, args, args.eval_max_samples)
        accelerator.print(
            f"zero-shot text→video retrieval after training: {format_metrics(results['after'])}"
        )
        accelerator.log({f"eval/{k}": v for k, v in results["after"].items()}, step=last_step)
        save_final(accelerator.unwrap_model(module).model, processor, args.output_dir, args)
        (Path(args.output_dir) / "train_results.json").write_text(json.dumps(results, indent=2))
        accelerator.print(f"model and processor saved to {args.output_dir}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


def format_metrics(metrics: dict[str, float]) -> str:
    chance = {k: min(100.0, 100.0 * int(k[2:]) / metrics["num_videos"]) for k in ("R@1", "R@5", "R@10")}
    return (
        ", ".join(f"{k} {metrics[k]:.1f}" for k in ("R@1", "R@5", "R@10"))
        + f" on {metrics['num_videos']} videos"
        f" (chance {chance['R@1']:.1f} / {chance['R@5']:.1f} / {chance['R@10']:.1f})"
    )


__all__ = ["RECIPES", "TrainingArguments", "build_parser", "parse_args", "training_function"]
