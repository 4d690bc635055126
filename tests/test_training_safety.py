"""What a training run must never do: mix with an earlier run, resume inexactly, keep going on NaN, decay the
learning rate per process. Real `accelerate launch` processes on the CPU."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAINING, ROOT, accelerate_launch
from safetensors.torch import load_file

from vidla_hf.data.synthetic import generate_synthetic_dataset
from vidla_hf.training import TrainingArguments, parse_args
from vidla_hf.training.checkpointing import prepare_output_dir

FAST = [*FAST_TRAINING, "--eval_steps", "100"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_dataset(folder, {"train": 48, "val": 8}, clips_per_shard=12)
    return str(folder)


def log_rows(output_dir) -> dict[int, dict]:
    rows = [json.loads(line) for line in (Path(output_dir) / "losses.jsonl").read_text().splitlines()]
    return {row["step"]: row for row in rows}


def test_two_processes_follow_the_one_process_learning_rate_schedule(data, tmp_path):
    """accelerate's prepared scheduler steps once per process; the schedule must not run N times faster."""
    common = ["examples/pretrain.py", "--train_data", data, "--max_steps", "12", "--warmup_steps", "2"]
    common += ["--checkpointing_steps", "12", "--num_workers", "0", "--learning_rate", "1e-3", *FAST]
    accelerate_launch([*common, "--output_dir", str(tmp_path / "one")])
    accelerate_launch([*common, "--output_dir", str(tmp_path / "two")], num_processes=2)
    one, two = log_rows(tmp_path / "one"), log_rows(tmp_path / "two")
    assert sorted(one) == sorted(two) == list(range(1, 13))
    for step in one:
        assert two[step]["lr"] == pytest.approx(one[step]["lr"], rel=1e-9), step
    # Independent reference: linear warm-up over 2 steps, then a half cosine from 1e-3 to 1e-5 (tiny-cpu's
    # floor) over the remaining 10; step k trains at the rate after k - 1 scheduler steps.
    for step in range(1, 13):
        done = step - 1
        if done < 2:
            expected = 1e-3 * done / 2
        else:
            expected = 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * (done - 2) / 10))
        assert one[step]["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-15), step


def test_resume_refuses_every_change_of_the_data_layout_and_of_the_trained_weights(data, tmp_path):
    output = tmp_path / "run"
    common = ["examples/pretrain.py", "--output_dir", str(output), "--max_steps", "4", *FAST]
    accelerate_launch(
        [
            *common,
            "--train_data",
            data,
            "--num_workers",
            "1",
            "--stop_at_step",
            "2",
            "--checkpointing_steps",
            "2",
        ]
    )
    other_data = tmp_path / "other"
    generate_synthetic_dataset(other_data, {"train": 40, "val": 8}, clips_per_shard=10)
    changed = {
        "--num_workers": "2",
        "--per_device_batch_size": "3",
        "--gradient_accumulation_steps": "2",
        "--seed": "7",
        "--shuffle_buffer": "4",
        "--lora_rank": "4",  # another set of trained weights: the saved optimizer state would not load
    }
    # FAST's own batch size and shuffle buffer come first; argparse keeps the last value given.
    result = accelerate_launch(
        [
            *common,
            "--train_data",
            str(other_data),
            "--resume_from_checkpoint",
            "latest",
            "--freeze_text_tower",
            *[item for pair in changed.items() for item in pair],
        ],
        check=False,
    )
    assert result.returncode != 0
    assert "ResumeMismatchError" in result.stderr and "Cannot resume exactly" in result.stderr
    assert "--freeze_text_tower: checkpoint False, now True" in result.stderr
    for option, value in changed.items():
        assert f"{option}: checkpoint" in result.stderr and f"now {value}" in result.stderr, option
    assert "--train_data: checkpoint" in result.stderr
    # Another world size: each process would read another share of the shards.
    result = accelerate_launch(
        [*common, "--train_data", data, "--num_workers", "1", "--resume_from_checkpoint", "latest"],
        num_processes=2,
        check=False,
    )
    assert result.returncode != 0 and "--num_processes: checkpoint 1, now 2" in result.stderr
    # The unchanged layout resumes (the checkpoint is as the refused attempts found it), and a lowered
    # learning rate takes effect on the schedule's position: tiny-cpu warms up over 20 steps, so step k
    # trains at lr · (k - 1) / 20.
    accelerate_launch(
        [
            *common,
            "--train_data",
            data,
            "--num_workers",
            "1",
            "--resume_from_checkpoint",
            "latest",
            "--checkpointing_steps",
            "2",
            "--learning_rate",
            "2.5e-4",
        ]
    )
    rows = log_rows(output)
    assert sorted(rows) == [1, 2, 3, 4]
    assert rows[2]["lr"] == pytest.approx(5e-4 * 1 / 20) and rows[4]["lr"] == pytest.approx(2.5e-4 * 3 / 20)


def test_a_non_empty_output_dir_is_refused_unless_resumed_or_overwritten(data, tmp_path):
    output = tmp_path / "run"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    result = accelerate_launch(
        [
            "examples/pretrain.py",
            "--train_data",
            data,
            "--output_dir",
            str(output),
            "--max_steps",
            "2",
            "--checkpointing_steps",
            "1",
            "--num_workers",
            "0",
            *FAST,
        ],
        check=False,
    )
    assert result.returncode != 0 and "is not empty" in result.stderr and str(output) in result.stderr
    assert sorted(p.name for p in output.iterdir()) == ["notes.txt"], "nothing was written"

    # --overwrite_output_dir removes only what a run writes; the earlier losses do not mix with the new.
    (output / "losses.jsonl").write_text(json.dumps({"step": 99, "loss": 1.0}) + "\n")
    (output / "checkpoints" / "step_99").mkdir(parents=True)
    (output / "checkpoints" / "step_99" / "trainer_state.json").write_text("{}")
    (output / "checkpoints" / "my_analysis").mkdir()
    args = TrainingArguments(output_dir=str(output), overwrite_output_dir=True)
    prepare_output_dir(args)
    assert sorted(p.name for p in output.iterdir()) == ["checkpoints", "notes.txt"]
    assert [p.name for p in (output / "checkpoints").iterdir()] == ["my_analysis"]
    assert (output / "notes.txt").read_text() == "mine"
    accelerate_launch(
        [
            "examples/pretrain.py",
            "--train_data",
            data,
            "--output_dir",
            str(output),
            "--max_steps",
            "1",
            "--num_workers",
            "0",
            "--overwrite_output_dir",
            *FAST,
        ],
    )
    assert sorted(log_rows(output)) == [1] and (output / "notes.txt").read_text() == "mine"
    final_files = json.loads((output / ".vidla_run_files.json").read_text())
    assert "model.safetensors" in final_files and "notes.txt" not in final_files
    prepare_output_dir(args)  # a second overwrite removes that run's final model too, and only it
    assert sorted(p.name for p in output.iterdir()) == ["checkpoints", "notes.txt"]
    # Another run's checkpoint is not resumed into a non-empty folder.
    with pytest.raises(ValueError, match="not one of its checkpoints"):
        prepare_output_dir(
            TrainingArguments(output_dir=str(output), resume_from_checkpoint=str(tmp_path / "x" / "step_2"))
        )
    with pytest.raises(ValueError, match="cannot be combined"):
        from vidla_hf.training import validate_args

        validate_args(TrainingArguments(overwrite_output_dir=True, resume_from_checkpoint="latest"))


def test_a_diverging_run_stops_naming_the_step_and_saves_nothing_from_that_state(data, tmp_path):
    output = tmp_path / "run"
    common = ["examples/pretrain.py", "--train_data", data, "--output_dir", str(output), "--max_steps", "8"]
    common += ["--checkpointing_steps", "1", "--num_workers", "0", "--warmup_steps", "0", *FAST]
    result = accelerate_launch([*common, "--learning_rate", "1e6"], check=False)
    assert result.returncode != 0 and "TrainingDivergedError" in result.stderr
    failed_at = int(result.stderr.split(" at step ")[1].split(";")[0])
    assert 2 <= failed_at <= 8
    assert not (output / "model.safetensors").exists() and not (output / "train_results.json").exists()
    checkpoints = sorted(int(p.name[5:]) for p in (output / "checkpoints").iterdir())
    assert checkpoints == list(range(1, failed_at)), "no checkpoint of the step that failed"
    umask = os.umask(0)
    os.umask(umask)
    for step in checkpoints:
        weights_file = output / "checkpoints" / f"step_{step}" / "model.safetensors"
        assert weights_file.stat().st_mode & 0o777 == 0o666 & ~umask, "checkpoint files are ordinary files"
        weights = load_file(weights_file)
        assert all(torch.isfinite(w).all() for w in weights.values()), f"step_{step} holds NaN weights"
    # The last checkpoint stays loadable: resuming it replays the same steps (exact resume) and stops at the
    # same step, because its weights, finite as they are, already carry the 1e6 update.
    again = accelerate_launch(
        [*common, "--learning_rate", "1e6", "--resume_from_checkpoint", "latest"], check=False
    )
    assert f"resumed from {output / 'checkpoints' / f'step_{failed_at - 1}'}" in again.stdout
    assert f"at step {failed_at};" in again.stderr and not (output / "model.safetensors").exists()
    assert sorted(log_rows(output)) == list(range(1, failed_at))


def test_help_shows_the_defaults_that_apply_and_lists_the_recipes():
    help_text = subprocess.run(
        [sys.executable, "examples/pretrain.py", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    plain = parse_args("", argv=[])
    assert f"default: {plain.learning_rate} (tiny-cpu), 2e-05 (paper)" in help_text
    flat = " ".join(help_text.split()).replace("tiny- cpu", "tiny-cpu")  # argparse wraps at hyphens
    assert f"default: {plain.max_steps} (tiny-cpu), not set (paper)" in flat  # --max_steps
    assert "default: not set (tiny-cpu), 3.0 (paper)" in flat  # --num_train_epochs
    assert "default: segment_random (tiny-cpu), uniform (paper)" in flat  # --frame_sampling
    for recipe in ("tiny-cpu", "paper", "retrieval-finetune"):
        assert f"\n  {recipe} " in help_text
    finetune_help = subprocess.run(
        [sys.executable, "examples/finetune_retrieval.py", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    assert "--num_frames NUM_FRAMES, --num-frames NUM_FRAMES (default: 32)" in " ".join(finetune_help.split())


def test_bad_options_fail_before_any_work():
    from vidla_hf.training import validate_args

    for override, message in (
        ({"learning_rate": float("nan")}, "--learning_rate"),
        ({"learning_rate": 0.0}, "--learning_rate"),
        ({"min_learning_rate": 1.0, "learning_rate": 0.1}, "--min_learning_rate"),
        ({"adam_beta2": 1.0}, "--adam_beta2"),
        ({"num_workers": -1}, "--num_workers"),
        ({"warmup_steps": -1}, "--warmup_steps"),
        ({"mixed_precision": "fp8"}, "--mixed_precision"),
        ({"max_corrupt_fraction": 1.0}, "--max_corrupt_fraction"),
    ):
        with pytest.raises(ValueError, match=message):
            validate_args(TrainingArguments(**override))


def test_the_readme_launch_command_does_not_make_accelerate_guess_its_defaults():
    readme = (ROOT / "README.md").read_text()
    command = "accelerate launch --config_file examples/configs/single_process.yaml examples/pretrain.py"
    assert command in readme
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", *command.split()[2:], "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0 and "usage: pretrain.py" in result.stdout
    assert "was set to a value of" not in result.stdout + result.stderr
