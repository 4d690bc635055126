"""The options of `examples/finetune_classification.py`, their validation, and the class names of a run.

The defaults are the embedded job: the tiny preset from scratch on the synthetic action dataset, 500 steps of
16 clips, segment sampling of 8 frames, a 2 × 3 view test; about 3 minutes on a 2-core CPU. The paper's
finetuning (App. A.3, Table 7) is these options with a pretrained VidLA: Kinetics-400 with `--sampling dense`
and a 5 × 3 view test, Something-Something-v2 with `--sampling segment` and 2 × 3 views, 16 frames, 75-100
epochs at a batch of 512 (K400) or 40 epochs at 512-1024 (SSv2); the paper gives no learning rate or weight
decay for it.
"""

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from ..data.video_labels import manifest_labels
from ..evaluation.classification import VIEW_AVERAGES
from ..processing.clip_views import CLIP_SAMPLINGS

DEFAULT_MAX_STEPS = 500  # when neither --max_steps nor --num_train_epochs is given
DEFAULT_TEST_CLIPS = {"dense": 5, "segment": 2}  # Table 7: K400 5 × 3 views, SSv2 2 × 3


@dataclass
class ClassificationArguments:
    """Every option of the classification finetuning script (defaults: the embedded CPU job)."""

    train_data: str | None = field(
        default=None,
        metadata={
            "help": "Shards (folder or .tar glob) or a datasets source; default: the synthetic actions"
        },
    )
    eval_data: str | None = field(
        default=None, metadata={"help": "Evaluation source (default: --train_data)"}
    )
    train_split: str = "train"
    eval_split: str = "val"
    label_column: str = field(
        default="label", metadata={"help": "Column (or JSON metadata field) holding a class name or id"}
    )
    labels: str | None = field(
        default=None,
        metadata={
            "help": "Class names in id order: comma-separated, or a file (a JSON list or one name a line); "
            "default: the `labels` of the data's manifest.json"
        },
    )
    video_column: str = "mp4"
    metadata_column: str = field(
        default="json", metadata={"help": "Column holding a JSON object ('' for none)"}
    )
    output_dir: str = "outputs/vidla-classification"
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an earlier run's files in a non-empty --output_dir"}
    )
    init_from: str | None = field(
        default=None, metadata={"help": "A VidLA folder (contrastive or classifier) or a CLIP checkpoint"}
    )
    config: str = field(default="vidla-tiny", metadata={"help": "Preset used when --init_from is not given"})
    zero_shot_init: bool = field(
        default=False,
        metadata={"help": "Start the head from the class names' text embeddings (needs --init_from)"},
    )
    templates: str = field(default="auto", metadata={"help": "Prompt templates for --zero_shot_init"})
    num_frames: int = 8
    sampling: str = field(
        default="segment",
        metadata={"help": "dense (SlowFast windows, Kinetics) or segment (TSN, Something-Something)"},
    )
    frame_stride: int = field(default=4, metadata={"help": "Frames between two sampled frames with dense"})
    test_clips: int | None = field(
        default=None, metadata={"help": "Temporal views (default: dense 5, segment 2)"}
    )
    test_crops: int = field(default=3, metadata={"help": "Spatial crops per temporal view"})
    view_average: str = field(
        default="probabilities", metadata={"help": "Average views' probabilities or logits"}
    )
    random_crop: bool = field(default=True, metadata={"help": "Multi-scale random crop in training"})
    random_flip: bool = field(
        default=False, metadata={"help": "Random horizontal flip (wrong for left/right classes)"}
    )
    per_device_batch_size: int = 16
    eval_batch_size: int = field(
        default=8, metadata={"help": "Videos per evaluation batch (all their views)"}
    )
    gradient_accumulation_steps: int = 1
    max_steps: int | None = field(
        default=None, metadata={"help": f"Optimizer steps (default: {DEFAULT_MAX_STEPS})"}
    )
    num_train_epochs: float | None = field(default=None, metadata={"help": "Passes over data of known size"})
    stop_at_step: int | None = field(
        default=None,
        metadata={"help": "Stop early (keeping the schedule of --max_steps), e.g. to split a run over jobs"},
    )
    checkpointing_steps: int = field(
        default=250, metadata={"help": "Save a resumable checkpoint every N steps (and at the last one)"}
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' or a checkpoint folder"}
    )
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-5
    warmup_steps: int = 20
    weight_decay: float = 0.05
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16"})
    gradient_checkpointing: bool = False
    shuffle_buffer: int = 256
    num_workers: int = 2
    max_corrupt_fraction: float = 0.5
    eval_steps: int = field(default=0, metadata={"help": "Evaluate every N steps (0: only after training)"})
    eval_max_samples: int | None = field(default=None, metadata={"help": "Evaluation videos (default: all)"})
    label_check_examples: int = field(
        default=32, metadata={"help": "Examples of each split whose labels are checked before training"}
    )
    logging_steps: int = 10
    seed: int = 42

    def __post_init__(self):
        """Options with a fixed set of values fail when the command line is parsed."""
        choices = {
            "sampling": CLIP_SAMPLINGS,
            "view_average": VIEW_AVERAGES,
            "mixed_precision": ("no", "fp16", "bf16"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"`--{name}` must be one of {', '.join(allowed)}; got {getattr(self, name)!r}."
                )


def parse_classification_args(description: str, argv=None) -> ClassificationArguments:
    """transformers' `HfArgumentParser` over `ClassificationArguments` (booleans take `--flag`, `--flag false`
    and `--no_flag`)."""
    parser = HfArgumentParser(
        ClassificationArguments, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    (args,) = parser.parse_args_into_dataclasses(argv)
    return args


def validate_classification_args(args: ClassificationArguments) -> None:
    """Raises `ValueError` naming the option for every value that cannot work, before any heavy work."""
    args.__post_init__()
    positive = (
        "num_frames",
        "frame_stride",
        "test_crops",
        "per_device_batch_size",
        "eval_batch_size",
        "gradient_accumulation_steps",
        "logging_steps",
        "label_check_examples",
        "checkpointing_steps",
    )
    for name in positive:
        if getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be >= 1, got {getattr(args, name)}.")
    for name in ("test_clips", "max_steps", "eval_max_samples", "stop_at_step"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be >= 1, got {getattr(args, name)}.")
    for name in ("warmup_steps", "num_workers", "shuffle_buffer", "eval_steps"):
        if getattr(args, name) < 0:
            raise ValueError(f"`--{name}` must be >= 0, got {getattr(args, name)}.")
    for name in ("learning_rate", "min_learning_rate", "weight_decay", "max_grad_norm"):
        value = getattr(args, name)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"`--{name}` must be a finite number >= 0, got {value}.")
    if args.learning_rate == 0 or args.min_learning_rate > args.learning_rate:
        raise ValueError(
            f"`--learning_rate` must be > 0 and >= `--min_learning_rate`, got {args.learning_rate} and "
            f"{args.min_learning_rate}."
        )
    for name in ("adam_beta1", "adam_beta2"):
        if not 0 <= getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be in [0, 1), got {getattr(args, name)}.")
    if args.num_train_epochs is not None and not (
        math.isfinite(args.num_train_epochs) and args.num_train_epochs > 0
    ):
        raise ValueError(f"`--num_train_epochs` must be a finite number > 0, got {args.num_train_epochs}.")
    if not 0 <= args.max_corrupt_fraction < 1:
        raise ValueError(f"`--max_corrupt_fraction` must be in [0, 1), got {args.max_corrupt_fraction}.")
    if args.zero_shot_init and not args.init_from:
        raise ValueError(
            "`--zero_shot_init` needs `--init_from` (a VidLA or CLIP checkpoint with a text tower)."
        )
    if args.overwrite_output_dir and args.resume_from_checkpoint:
        raise ValueError(
            "`--overwrite_output_dir` removes the earlier run's checkpoints; it cannot be combined with "
            "`--resume_from_checkpoint`."
        )
    if not args.label_column:
        raise ValueError("`--label_column` must name a column or JSON field.")


def view_counts(args: ClassificationArguments) -> tuple[int, int]:
    """`(clips, crops)` of the multi-view test: `--test_clips` (default by `--sampling`) × `--test_crops`."""
    return args.test_clips or DEFAULT_TEST_CLIPS[args.sampling], args.test_crops


def class_names(args: ClassificationArguments, source: str) -> list[str]:
    """The run's class names in id order: `--labels` (names, or a file of them), else the `labels` list of
    `source`'s manifest.json. Raises `ValueError` when neither gives at least two distinct names.

    Example:

    ```python
    >>> from vidla_hf.training.classification_args import ClassificationArguments, class_names
    >>> class_names(ClassificationArguments(labels="grows, shrinks, spins"), "shards/")
    ['grows', 'shrinks', 'spins']

    ```
    """
    if args.labels:
        path = Path(args.labels).expanduser()
        if path.is_file():
            text = path.read_text()
            try:
                names = json.loads(text) if text.lstrip().startswith("[") else None
            except json.JSONDecodeError as error:
                raise ValueError(f"`--labels` file {str(path)!r} is not a JSON list: {error}") from None
            names = names if names is not None else [line.strip() for line in text.splitlines()]
        else:
            names = [name.strip() for name in args.labels.split(",")]
        names, where = [n for n in names if n != ""], f"`--labels` {args.labels!r}"
    else:
        names, where = manifest_labels(source), f"the manifest of {source!r}"
        if names is None:
            raise ValueError(
                f"{source!r} has no manifest.json with `labels`: give the class names in id order with `--labels` "
                "(comma-separated, or a file with one name a line)."
            )
    if not all(isinstance(name, str) for name in names):
        raise ValueError(f"{where}: class names must be strings, got {names!r:.200}.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated or len(names) < 2:
        raise ValueError(
            f"{where} must give at least 2 distinct class names; got {len(names)}, repeated: {repeated}."
        )
    return names


__all__ = [
    "ClassificationArguments",
    "class_names",
    "parse_classification_args",
    "validate_classification_args",
    "view_counts",
]
