"""Every option of the training scripts, the named recipes that set their defaults, and their validation."""

import argparse
import math
from dataclasses import dataclass, field, fields
from typing import Any

from transformers import HfArgumentParser

from ..modeling.configuration_vidla import check_mask_ratio


@dataclass
class TrainingArguments:
    """Every option of the training scripts; the field defaults are the paper's pretraining recipe (§5, App. A)."""

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
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start a new run in a non-empty --output_dir: the files an earlier run wrote there "
            "(checkpoints/, logs/, losses.jsonl, results) are removed first; nothing else is touched"
        },
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
RECIPE_HELP = """recipes (--recipe; explicit options override them):
  tiny-cpu             the embedded default job: tiny preset from scratch, 8 frames, lr 5e-4, 300 steps
                       (chosen when neither --init_from nor another --config is given)
  paper                the paper's pretraining (§5): 12 frames, lr 2e-5 cosine to 4e-8, wd 0.02, clip 10
                       (chosen with --init_from or another --config)
  retrieval-finetune   the paper's retrieval finetuning (App. A): 32 frames, lr 1e-5 to 1e-6, wd 0.2,
                       centre crop, no flip (the default of examples/finetune_retrieval.py)
"""


def recipe_value(recipe: str, name: str) -> Any:
    return RECIPES[recipe].get(name, TrainingArguments.__dataclass_fields__[name].default)


def _shown(value: Any) -> Any:
    return "not set" if value is None else value


def _default_help(name: str, recipe: str | None) -> str:
    """The default that applies: the fixed recipe's, or tiny-cpu's and paper's where the choice matters."""
    if recipe is not None:
        return f"default: {_shown(recipe_value(recipe, name))}"
    tiny, paper = _shown(recipe_value("tiny-cpu", name)), _shown(recipe_value("paper", name))
    return f"default: {tiny}" if tiny == paper else f"default: {tiny} (tiny-cpu), {paper} (paper)"


def build_parser(description: str, recipe: str | None = None) -> HfArgumentParser:
    """transformers' `HfArgumentParser` over `TrainingArguments`, plus `--recipe`.

    Options left out parse as `None`, so that `parse_args` can tell them from the recipe's defaults, and the
    help shows the defaults that really apply. Booleans take `--flag`, `--flag false` and `--no_flag`
    (also spelled `--no-flag`, as argparse's `BooleanOptionalAction` does).
    """
    parser = HfArgumentParser(
        TrainingArguments,
        description=description,
        epilog=RECIPE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default=None,
        help=f"Defaults to start from (default: {recipe or 'tiny-cpu, or paper with --init_from/--config'})",
    )
    names = {spec.name for spec in fields(TrainingArguments)}
    registered = set(parser._option_string_actions)
    for spec in fields(TrainingArguments):
        if spec.type in (bool, "bool"):
            negations = [o for o in (f"--no_{spec.name}", f"--no-{spec.name}") if o not in registered]
            if negations:
                parser.add_argument(*negations, action="store_false", dest=spec.name, help=argparse.SUPPRESS)
    for action in parser._actions:
        if (
            action.dest in names
            and action.help is not argparse.SUPPRESS
            and action.option_strings[0] == f"--{action.dest}"
        ):
            described = action.help and "default:" in action.help  # e.g. "default: the synthetic dataset"
            if not described:
                action.help = f"{action.help or ''} ({_default_help(action.dest, recipe)})".lstrip()
        elif action.dest in names and action.help is not argparse.SUPPRESS:
            action.help = argparse.SUPPRESS  # the `--no_flag` twin: described once, with its flag
    parser.set_defaults(**dict.fromkeys(names))
    return parser


def parse_args(description: str, recipe: str | None = None, argv=None) -> TrainingArguments:
    """Explicit options > the recipe's defaults > `TrainingArguments` defaults."""
    namespace = vars(build_parser(description, recipe).parse_args(argv))
    explicit = {k: v for k, v in namespace.items() if v is not None and k != "recipe"}
    chosen = namespace["recipe"] or recipe
    if chosen is None:
        from_scratch_tiny = (
            explicit.get("config", "vidla-tiny") == "vidla-tiny" and "init_from" not in explicit
        )
        chosen = "tiny-cpu" if from_scratch_tiny else "paper"
    return TrainingArguments(**{**RECIPES[chosen], **explicit})


def validate_args(args: TrainingArguments) -> None:
    """Raises `ValueError` naming the option for every value that cannot work, before any heavy work."""
    for name in (
        "per_device_batch_size",
        "gradient_accumulation_steps",
        "max_steps",
        "num_frames",
        "checkpointing_steps",
        "eval_steps",
        "logging_steps",
        "eval_max_samples",
    ):
        if getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be >= 1, got {getattr(args, name)}.")
    for name in ("warmup_steps", "lora_rank", "num_workers", "shuffle_buffer"):
        if getattr(args, name) < 0:
            raise ValueError(f"`--{name}` must be >= 0, got {getattr(args, name)}.")
    for name in ("learning_rate", "min_learning_rate", "weight_decay", "max_grad_norm"):
        value = getattr(args, name)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"`--{name}` must be a finite number >= 0, got {value}.")
    if args.learning_rate == 0:
        raise ValueError("`--learning_rate` must be > 0.")
    if args.min_learning_rate > args.learning_rate:
        raise ValueError(
            f"`--min_learning_rate` ({args.min_learning_rate}) must not exceed `--learning_rate` "
            f"({args.learning_rate})."
        )
    for name in ("adam_beta1", "adam_beta2"):
        if not 0 <= getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be in [0, 1), got {getattr(args, name)}.")
    if args.stop_at_step is not None and not 1 <= args.stop_at_step <= args.max_steps:
        raise ValueError(
            f"`--stop_at_step` must be in [1, max_steps={args.max_steps}], got {args.stop_at_step}."
        )
    check_mask_ratio(args.mask_ratio, name="--mask_ratio")
    if not 0 <= args.max_corrupt_fraction < 1:
        raise ValueError(f"`--max_corrupt_fraction` must be in [0, 1), got {args.max_corrupt_fraction}.")
    if args.mixed_precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"`--mixed_precision` must be one of no, fp16, bf16; got {args.mixed_precision!r}.")
    if args.overwrite_output_dir and args.resume_from_checkpoint:
        raise ValueError(
            "`--overwrite_output_dir` removes the earlier run's checkpoints; it cannot be combined with "
            "`--resume_from_checkpoint`."
        )


__all__ = ["RECIPES", "TrainingArguments", "build_parser", "parse_args", "validate_args"]
