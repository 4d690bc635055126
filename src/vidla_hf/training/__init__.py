"""Training: the VidLA objective and the loop shared by the example scripts.

arguments.py      options, validation
recipes.py        the named recipes of `--recipe`
setup.py          model + processor, trainable parameters (freezing, LoRA), optimizer and schedule
checkpointing.py  output folder guard, crash-safe checkpoints, resume layout, the final model folder
loop.py           `training_function`
losses.py         eq. 3 with negatives gathered across processes
"""

from .arguments import RECIPES, TrainingArguments, build_parser, parse_args, validate_args
from .checkpointing import ResumeMismatchError, find_checkpoint
from .loop import TrainingDivergedError, training_function
from .losses import VidLALoss, gather_with_grad, info_nce
from .setup import configure_trainable, parameter_groups

__all__ = [
    "RECIPES",
    "ResumeMismatchError",
    "TrainingArguments",
    "TrainingDivergedError",
    "VidLALoss",
    "build_parser",
    "configure_trainable",
    "find_checkpoint",
    "gather_with_grad",
    "info_nce",
    "parameter_groups",
    "parse_args",
    "training_function",
    "validate_args",
]
