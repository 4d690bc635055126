"""Every option of the training scripts, the named recipes that set their defaults, and their validation."""

import argparse
import math
from dataclasses import dataclass, field, fields
from typing import Any

from transformers import HfArgumentParser

from ..modeling.configuration_vidla import check_mask_ratio
from .recipes import RECIPE_HELP, RECIPES

# `--frame_sampling` → the video processor's strategy (processing/frame_sampling.py). `uniform`: the centres of
# `num_frames` equal segments, the paper's "we uniformly sample 12 frames" (§5); `segment_random`: one random
# frame per equal segment (TSN-style), which sees other frames of a clip in every epoch.
FRAME_SAMPLING = {"uniform": "uniform", "segment_random": "random"}


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
    frame_sampling: str = field(
        default="uniform",
        metadata={
            "help": "Training frames: uniform (segment centres, the paper's) or segment_random (one random "
            "frame per equal segment); evaluation is always uniform"
        },
    )
    training_augmentation: bool = field(
        default=True, metadata={"help": "Multi-scale crop + flip (off: centre crop, no flip)"}
    )
    random_flip: bool = field(
        default=True,
        metadata={
            "help": "The augmentation's random horizontal flips (the paper's); off for texts that name "
            "directions: a flip turns 'moves left' into a video that moves right"
        },
    )
    per_device_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    max_steps: int | None = field(
        default=None, metadata={"help": "Optimizer steps of the run (its learning-rate schedule's length)"}
    )
    num_train_epochs: float | None = field(
        default=3.0,
        metadata={
            "help": "Passes over a training set of known length (local shards, a dataset with `num_examples`): "
            "ceil(examples / global batch) steps each; a recipe's length is replaced by whichever of "
            "--max_steps and --num_train_epochs is given"
        },
    )
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
    local_loss: bool = field(
        default=False,
        metadata={
            "help": "open_clip's local loss: each process scores only its own rows against the gathered "
            "batch (the same gradients; logits and their memory divided by the number of processes)"
        },
    )
    freeze_spatial: bool = field(
        default=False,
        metadata={
            "help": "Freeze every CLIP-initialised weight of the video tower (patch, [CLS] and spatial position "
            "embeddings, layer norms, spatial attention, MLPs): only VidLA's temporal attention, [MST] tokens and "
            "temporal position table train there (the projections and the temperature as the other options say)"
        },
    )
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

    def __post_init__(self):
        """Options with a fixed set of values are checked as soon as the arguments are built (when the command
        line is parsed); `validate_args` checks the rest."""
        if self.frame_sampling not in FRAME_SAMPLING:
            raise ValueError(
                f"`--frame_sampling` must be one of {', '.join(FRAME_SAMPLING)}; got {self.frame_sampling!r}."
            )
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(
                f"`--mixed_precision` must be one of no, fp16, bf16; got {self.mixed_precision!r}."
            )


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
    """Explicit options > the recipe's defaults > `TrainingArguments` defaults.

    The run's length is one thing set two ways: `--max_steps` alone or `--num_train_epochs` alone replaces the
    recipe's length (the other becomes unset); both given must agree (checked once the data's size is known).
    Raises `ValueError` naming the option for a value outside an option's choices (e.g. `--frame_sampling`).
    """
    namespace = vars(build_parser(description, recipe).parse_args(argv))
    explicit = {k: v for k, v in namespace.items() if v is not None and k != "recipe"}
    chosen = namespace["recipe"] or recipe
    if chosen is None:
        from_scratch_tiny = (
            explicit.get("config", "vidla-tiny") == "vidla-tiny" and "init_from" not in explicit
        )
        chosen = "tiny-cpu" if from_scratch_tiny else "paper"
    values = {**RECIPES[chosen], **explicit}
    if ("max_steps" in explicit) != ("num_train_epochs" in explicit):
        values["num_train_epochs" if "max_steps" in explicit else "max_steps"] = None
    return TrainingArguments(**values)


def validate_args(args: TrainingArguments) -> None:
    """Raises `ValueError` naming the option for every value that cannot work, before any heavy work."""
    if args.max_steps is None and args.num_train_epochs is None:
        raise ValueError("Give the run's length: `--max_steps` or `--num_train_epochs`.")
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"`--max_steps` must be >= 1, got {args.max_steps}.")
    if args.num_train_epochs is not None and not (
        math.isfinite(args.num_train_epochs) and args.num_train_epochs > 0
    ):
        raise ValueError(f"`--num_train_epochs` must be a finite number > 0, got {args.num_train_epochs}.")
    for name in (
        "per_device_batch_size",
        "gradient_accumulation_steps",
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
    if args.max_steps is not None:
        check_stop_at_step(args.stop_at_step, args.max_steps)
    elif args.stop_at_step is not None and args.stop_at_step < 1:
        raise ValueError(f"`--stop_at_step` must be >= 1, got {args.stop_at_step}.")
    check_mask_ratio(args.mask_ratio, name="--mask_ratio")
    if not 0 <= args.max_corrupt_fraction < 1:
        raise ValueError(f"`--max_corrupt_fraction` must be in [0, 1), got {args.max_corrupt_fraction}.")
    if args.freeze_spatial and args.lora_rank:
        raise ValueError(
            f"`--freeze_spatial` keeps the video tower's CLIP layers fixed and `--lora_rank {args.lora_rank}` "
            "adapts them: use one of the two."
        )
    if args.freeze_spatial and args.init_from is None:
        raise ValueError(
            "`--freeze_spatial` freezes the video tower's CLIP-initialised weights, which without `--init_from` "
            "are random: give `--init_from` a VidLA (or CLIP) checkpoint."
        )
    if args.overwrite_output_dir and args.resume_from_checkpoint:
        raise ValueError(
            "`--overwrite_output_dir` removes the earlier run's checkpoints; it cannot be combined with "
            "`--resume_from_checkpoint`."
        )


def check_stop_at_step(stop_at_step: int | None, max_steps: int) -> None:
    """`--stop_at_step` must fall within the run (it keeps the schedule of all `max_steps`)."""
    if stop_at_step is not None and not 1 <= stop_at_step <= max_steps:
        raise ValueError(f"`--stop_at_step` must be in [1, max_steps={max_steps}], got {stop_at_step}.")


def resolve_max_steps(
    args: TrainingArguments, examples_per_epoch: int | None, num_processes: int, source: str = "the data"
) -> int:
    """The run's optimizer steps: `--max_steps`, or `--num_train_epochs` × ceil(examples per epoch / global
    batch), rounded up, as transformers' `Trainer` counts them (global batch: per-device batch × gradient
    accumulation × processes).

    Raises `ValueError` when `--num_train_epochs` is set but `examples_per_epoch` is None (a stream of unknown
    length, named by `source`), when the training set is empty, when `--max_steps` is also set and differs
    from the epochs' count, and when `--stop_at_step` lies past the result.

    Example:

    ```python
    >>> from vidla_hf.training import TrainingArguments
    >>> from vidla_hf.training.arguments import resolve_max_steps
    >>> args = TrainingArguments(per_device_batch_size=32, gradient_accumulation_steps=2, num_train_epochs=3)
    >>> resolve_max_steps(args, examples_per_epoch=1000, num_processes=4)  # 3 × ceil(1000 / 256)
    12

    ```
    """
    steps = args.max_steps
    if args.num_train_epochs is not None:
        if examples_per_epoch is None:
            raise ValueError(
                f"`--num_train_epochs` needs the training set's size, and {source} does not tell it (a stream "
                "without `num_examples` in its dataset info): give `--max_steps` instead."
            )
        if examples_per_epoch < 1:
            raise ValueError(f"`--num_train_epochs`: {source} holds no training examples.")
        global_batch = args.per_device_batch_size * args.gradient_accumulation_steps * num_processes
        steps = math.ceil(args.num_train_epochs * math.ceil(examples_per_epoch / global_batch))
        if args.max_steps is not None and args.max_steps != steps:
            raise ValueError(
                f"`--max_steps` {args.max_steps} and `--num_train_epochs` {args.num_train_epochs:g} disagree: "
                f"{args.num_train_epochs:g} epochs of {examples_per_epoch} examples at a global batch of "
                f"{global_batch} are {steps} steps. Give one of the two."
            )
    check_stop_at_step(args.stop_at_step, steps)
    return steps


__all__ = [
    "FRAME_SAMPLING",
    "RECIPES",
    "TrainingArguments",
    "build_parser",
    "parse_args",
    "resolve_max_steps",
    "validate_args",
]
