"""Where a training run writes, and how it resumes: the output folder guard, crash-safe checkpoints, the
data layout a checkpoint can only be resumed with, and the final model folder.

A run owns these names in `--output_dir`; nothing else there is ever touched:

    checkpoints/step_N/     accelerate's `save_state` + `data_state_rank{r}.json` + `trainer_state.json`
    logs/vidla/             the tracker's logs (TensorBoard)
    losses.jsonl            one line per optimizer step
    train_results.json      retrieval before/after training, skipped samples
    model + processor files and training_args.json (the final model, AutoModel-loadable), listed in
    .vidla_run_files.json
"""

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from .arguments import TrainingArguments

CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)$")
RUN_FILES = (
    ".vidla_run_files.json"  # the final model's file names, so --overwrite_output_dir removes exactly them
)
# Options that decide which sample comes next: a checkpoint only resumes exactly with the same values.
LAYOUT_OPTIONS = (
    "per_device_batch_size",
    "gradient_accumulation_steps",
    "num_workers",
    "seed",
    "shuffle_buffer",
)
# What the checkpoint's model and optimizer states are shaped by: which weights train (a state saved with
# other trainable weights, LoRA adapters or none, does not load) and whether they are sharded (FSDP2 writes
# one file per process, DDP one file).
SETUP_OPTIONS = ("freeze_spatial", "freeze_text_tower", "lora_rank")


class ResumeMismatchError(ValueError):
    """The checkpoint was written with another data layout; resuming would replay or skip samples."""


def prepare_output_dir(args: TrainingArguments, remove_earlier_run: bool = True) -> None:
    """Refuses to start a new run in a non-empty `--output_dir` (an earlier run's logs and checkpoints would
    mix with this one's) unless `--resume_from_checkpoint` continues the run in it, or
    `--overwrite_output_dir` asks to remove the earlier run's own files (removed if `remove_earlier_run`):
    complete or partial `checkpoints/step_N`, `logs/vidla`, `losses.jsonl`, `train_results.json` and the
    final model files its `RUN_FILES` marker lists. Anything else stays."""
    output = Path(args.output_dir)
    if output.exists() and not output.is_dir():
        raise ValueError(f"`--output_dir` {str(output)!r} exists and is not a folder.")
    if not output.is_dir() or not any(output.iterdir()):
        return
    if args.resume_from_checkpoint:
        resumed = Path(args.resume_from_checkpoint).expanduser().resolve()
        own = (output / "checkpoints").resolve()
        if args.resume_from_checkpoint == "latest" or resumed.parent == own:
            return  # continues the run in this folder
        raise ValueError(
            f"`--output_dir` {str(output)!r} is not empty and `--resume_from_checkpoint` {str(resumed)!r} is "
            "not one of its checkpoints: resuming another run's checkpoint needs a new or empty --output_dir."
        )
    if not args.overwrite_output_dir:
        raise ValueError(
            f"`--output_dir` {str(output)!r} is not empty. Pass --resume_from_checkpoint latest to continue "
            "the run in it, --overwrite_output_dir to start a new run there (the earlier run's checkpoints, "
            "logs, losses.jsonl, train_results.json and final model are removed; nothing else), or choose "
            "another folder."
        )
    if not remove_earlier_run:
        return
    for checkpoint in (output / "checkpoints").glob("step_*"):
        if CHECKPOINT_PATTERN.match(checkpoint.name.removesuffix(".partial")) and checkpoint.is_dir():
            shutil.rmtree(checkpoint)
    shutil.rmtree(output / "logs" / "vidla", ignore_errors=True)
    marker = output / RUN_FILES
    final_files = json.loads(marker.read_text()) if marker.is_file() else []
    for name in [*final_files, "losses.jsonl", "train_results.json", RUN_FILES]:
        if isinstance(name, str) and "/" not in name and name not in ("", ".", ".."):
            (output / name).unlink(missing_ok=True)


def find_checkpoint(output_dir: str, which: str) -> Path:
    """`which` is 'latest' (the highest complete `step_N` under `output_dir/checkpoints`) or a folder."""
    if which != "latest":
        path = Path(which).expanduser()
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


def data_layout(
    args: TrainingArguments, num_processes: int, data_fingerprint: Any, distributed_type: str = "NO"
) -> dict[str, Any]:
    """What resuming exactly depends on: the position in the stream (the source, the options in
    `LAYOUT_OPTIONS`, the number of processes: each takes its own share of the shards) and the shape of the
    saved states (`SETUP_OPTIONS`, and FSDP's sharded states against the others)."""
    layout = {name: getattr(args, name, None) for name in (*LAYOUT_OPTIONS, *SETUP_OPTIONS)}
    sharding = "FSDP" if distributed_type == "FSDP" else "unsharded"
    return {**layout, "num_processes": num_processes, "train_data": data_fingerprint, "sharding": sharding}


def check_resume_layout(checkpoint: Path, layout: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's trainer state (`step`, `layout`, `results`, `elapsed_seconds`); raises
    `ResumeMismatchError` naming every option whose value differs from the checkpoint's (resuming would
    silently replay or skip samples)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    saved = state.get("layout")
    if saved is None:
        raise ResumeMismatchError(
            f"{checkpoint} records no data layout (written by an older vidla_hf); it cannot be resumed exactly."
        )
    differences = [
        f"--{name}: checkpoint {saved.get(name)!r}, now {value!r}"
        for name, value in layout.items()
        if saved.get(name) != value and (name in saved or name not in (*SETUP_OPTIONS, "sharding"))
    ]  # (checkpoints from before SETUP_OPTIONS were recorded are not refused for them)
    if differences:
        raise ResumeMismatchError(
            f"Cannot resume exactly from {checkpoint}: the data layout or the training setup differs ("
            + "; ".join(differences)
            + "). Resume with the checkpoint's values (`--num_processes` and `--sharding`, FSDP or not, are "
            "accelerate launch's), or start a new run in another --output_dir."
        )
    return state


def resume_point(args, layout: dict[str, Any]) -> tuple[Path | None, dict[str, Any]]:
    """The checkpoint `--resume_from_checkpoint` names (None without it) and its trainer state (`step`, ...;
    `{}` without it), refused (`ResumeMismatchError`) when its layout differs from `layout`."""
    if not args.resume_from_checkpoint:
        return None, {}
    checkpoint = find_checkpoint(args.output_dir, args.resume_from_checkpoint)
    return checkpoint, check_resume_layout(checkpoint, layout)


def save_checkpoint(
    accelerator: Accelerator, output_dir: str, step: int, data_state: dict, trainer_state: dict[str, Any]
) -> Path:
    """`save_state` into `step_N.partial`, then renamed to `step_N`: a half-written one is never `latest`.
    `data_state` is this process's (its loader's state), `trainer_state` the main process's (layout,
    results so far)."""
    folder = Path(output_dir) / "checkpoints"
    final, partial = folder / f"step_{step}", folder / f"step_{step}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)  # our own leftover of a crashed save
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    (partial / f"data_state_rank{accelerator.process_index}.json").write_text(json.dumps(data_state))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / "trainer_state.json").write_text(json.dumps({"step": step, **trainer_state}, indent=2))
        mode = 0o666 & ~_umask()  # safetensors writes 0600; a checkpoint is an ordinary file
        for item in partial.iterdir():
            if item.is_file():
                os.chmod(item, mode)
        if final.exists():  # the same step of this run, written before a resume from an earlier one
            shutil.rmtree(final)
        os.replace(partial, final)
    accelerator.wait_for_everyone()
    return final


def load_data_state(checkpoint: Path, process_index: int) -> dict:
    return json.loads((checkpoint / f"data_state_rank{process_index}.json").read_text())


def truncate_loss_log(path: Path, last_step: int) -> None:
    """Keeps the lines of steps <= `last_step` (a resumed run rewrites the steps after its checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):  # a line torn by a crash mid-append
            continue
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def write_text_atomic(path: Path, text: str) -> None:
    """Writes `path` via a temporary file in the same folder and a rename: readers never see half a file."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as file:
        file.write(text)
    os.chmod(file.name, 0o666 & ~_umask())
    os.replace(file.name, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_final(model, processor, output_dir: str, args: TrainingArguments) -> None:
    """Merges LoRA weights into plain ones and writes model + processor + the run's arguments
    (`training_args.json`, read by the model card); each file is moved in only when all are complete."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output, prefix=".saving-") as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (Path(staging) / "training_args.json").write_text(json.dumps(asdict(args), indent=2))
        names = sorted(item.name for item in Path(staging).iterdir())
        write_text_atomic(output / RUN_FILES, json.dumps(names))
        for item in Path(staging).iterdir():  # the model's own save already gave its files normal permissions
            os.replace(item, output / item.name)


__all__ = [
    "ResumeMismatchError",
    "check_resume_layout",
    "data_layout",
    "find_checkpoint",
    "prepare_output_dir",
    "resume_point",
    "save_checkpoint",
    "save_final",
]
