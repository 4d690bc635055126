"""The paper's recipe details (issue 13): training frame sampling, and a run's length in epochs."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST_TRAINING, ROOT, accelerate_launch

from vidla_hf import VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.data.streams import count_examples, count_tar_samples, resolve_tar_shards
from vidla_hf.data.synthetic import generate_synthetic_dataset
from vidla_hf.training import RECIPES, TrainingArguments, parse_args, validate_args
from vidla_hf.training.arguments import resolve_max_steps
from vidla_hf.training.loop import training_stream

# ---------------------------------------------------------------------------------------------------------
# --frame_sampling

FRAMES, NUM_FRAMES, GREY_STEP = 40, 4, 5  # frame t of every test video is grey level 5·t


class GreyClips:
    """A stand-in for a streamed `datasets.IterableDataset` (`set_epoch` + iteration): `count` clips of
    `FRAMES` frames whose frame t is the grey level `GREY_STEP`·t, so a frame's pixels tell its index."""

    def __init__(self, count: int):
        self.count = count
        grey = np.arange(FRAMES, dtype=np.uint8) * GREY_STEP
        self.video = np.broadcast_to(grey[:, None, None, None], (FRAMES, 24, 40, 3)).copy()

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self):
        for index in range(self.count):
            yield {"__key__": f"clip{index}", "mp4": self.video, "json": {"caption": "a grey fade"}}


@pytest.fixture(scope="module")
def processor():
    size = {"shortest_edge": 16}
    return VidLAProcessor(
        VidLAVideoProcessor(size=size, crop_size={"height": 16, "width": 16}), build_clip_tokenizer()
    )


def sampled_frames(stream, count: int) -> list[list[int]]:
    """The source frame index of every frame of the first `count` samples, read back from their pixels."""
    mean, std = VidLAVideoProcessor.image_mean[0], VidLAVideoProcessor.image_std[0]
    indices = []
    for sample, _ in zip(stream, range(count), strict=False):
        grey = (sample["pixel_values_videos"][:, 0] * std + mean) * 255  # (T, H, W): red channel, 0–255
        assert torch.allclose(grey, grey.mean(dim=(1, 2), keepdim=True), atol=0.5), "frames stay uniform"
        indices.append([round(level / GREY_STEP) for level in grey.mean(dim=(1, 2)).tolist()])
    return indices


def test_training_frame_sampling_reaches_the_sampler(processor):
    """`--frame_sampling uniform` gives the segment centres floor((k + ½)·40/4) for every clip;
    `segment_random` one frame in each segment [10k, 10k + 10), drawn per sample from its seed."""
    common = ["--num_frames", str(NUM_FRAMES), "--seed", "7", "--init_from", "x"]
    uniform = training_stream(parse_args("", argv=common), GreyClips(6), processor)
    centres = [(2 * k + 1) * FRAMES // (2 * NUM_FRAMES) for k in range(NUM_FRAMES)]
    assert centres == [5, 15, 25, 35]
    assert sampled_frames(uniform, 6) == [centres] * 6

    args = parse_args("", argv=[*common, "--frame_sampling", "segment_random"])
    drawn = sampled_frames(training_stream(args, GreyClips(6), processor), 6)
    segment = FRAMES // NUM_FRAMES
    for indices in drawn:
        assert [index // segment for index in indices] == list(range(NUM_FRAMES)), indices
    assert len({tuple(indices) for indices in drawn}) > 1 and any(d != centres for d in drawn)
    # Independently: the stream seeds sample i (epoch 0, one worker) with SeedSequence([seed, 0, 0, i]); the
    # processor's generator first draws the crop/flip seed, then one uniform offset per segment.
    for index, indices in enumerate(drawn):
        seed = int(np.random.SeedSequence([7, 0, 0, index]).generate_state(1)[0])
        rng = np.random.default_rng(seed)
        rng.integers(2**62)
        offsets = np.floor(rng.random(NUM_FRAMES) * segment).astype(int)
        assert indices == [segment * k + int(o) for k, o in enumerate(offsets)], index


class RampClips(GreyClips):
    """Clips whose every frame brightens from left to right: a mirrored clip darkens instead."""

    def __init__(self, count: int):
        self.count = count
        ramp = np.linspace(0, 255, 40).astype(np.uint8)
        self.video = np.broadcast_to(ramp[None, None, :, None], (FRAMES, 24, 40, 3)).copy()


def mirrored(stream, count: int) -> list[bool]:
    return [
        bool(s["pixel_values_videos"][0, 0, 8, 0] > s["pixel_values_videos"][0, 0, 8, -1])
        for s, _ in zip(stream, range(count), strict=False)
    ]


def test_the_tiny_cpu_recipe_never_flips_its_direction_captioned_clips(processor):
    """The synthetic captions say "moves left/right": `--recipe tiny-cpu` turns the flips off; the paper's recipe
    (and `--random_flip True`) flips about half the clips."""
    assert parse_args("", argv=[]).random_flip is False
    assert not any(mirrored(training_stream(parse_args("", argv=[]), RampClips(16), processor), 16))
    paper = parse_args("", argv=["--init_from", "x"])
    assert paper.random_flip is True
    assert 0 < sum(mirrored(training_stream(paper, RampClips(16), processor), 16)) < 16
    flipped = parse_args("", argv=["--random_flip", "True"])
    assert 0 < sum(mirrored(training_stream(flipped, RampClips(16), processor), 16)) < 16


def test_frame_sampling_defaults_and_bad_values():
    assert parse_args("", argv=["--init_from", "x"]).frame_sampling == "uniform"  # the paper's recipe
    assert TrainingArguments().frame_sampling == "uniform"
    assert parse_args("", recipe="retrieval-finetune", argv=[]).frame_sampling == "uniform"
    # The embedded default job keeps the sampling of its recorded run.
    assert parse_args("", argv=[]).frame_sampling == RECIPES["tiny-cpu"]["frame_sampling"] == "segment_random"
    for bad in ("random", "Uniform", ""):
        with pytest.raises(ValueError, match=r"`--frame_sampling` must be one of uniform, segment_random"):
            parse_args("", argv=["--frame_sampling", bad])


# ---------------------------------------------------------------------------------------------------------
# --num_train_epochs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_dataset(folder, {"train": 48, "val": 8}, clips_per_shard=12)
    return str(folder)


def test_the_run_length_comes_from_the_recipe_or_from_the_one_option_given():
    paper = parse_args("", argv=["--init_from", "x"])
    assert (paper.num_train_epochs, paper.max_steps) == (3.0, None)  # the paper trains 3 epochs
    assert (parse_args("", argv=[]).max_steps, parse_args("", argv=[]).num_train_epochs) == (300, None)
    steps = parse_args("", argv=["--init_from", "x", "--max_steps", "10"])
    assert (steps.max_steps, steps.num_train_epochs) == (10, None)
    epochs = parse_args("", argv=["--num_train_epochs", "1.5"])
    assert (epochs.max_steps, epochs.num_train_epochs) == (None, 1.5)
    both = parse_args("", argv=["--num_train_epochs", "2", "--max_steps", "6"])
    assert (both.max_steps, both.num_train_epochs) == (6, 2.0)
    for override, message in (
        ({"max_steps": None, "num_train_epochs": None}, "`--max_steps` or `--num_train_epochs`"),
        ({"num_train_epochs": 0.0}, "`--num_train_epochs` must be a finite number > 0"),
        ({"num_train_epochs": float("inf")}, "`--num_train_epochs` must be a finite number > 0"),
        ({"max_steps": 0, "num_train_epochs": None}, "`--max_steps` must be >= 1"),
    ):
        with pytest.raises(ValueError, match=message):
            validate_args(TrainingArguments(**override))


@pytest.mark.parametrize(
    "examples, batch, accumulation, processes, epochs, expected",
    [
        (48, 4, 1, 1, 2.0, 24),  # 12 batches an epoch
        (48, 5, 1, 1, 3.0, 30),  # the last batch of an epoch is short: ceil(48 / 5) = 10
        (1000, 32, 2, 4, 3.0, 12),  # a global batch of 256: ceil(1000 / 256) = 4
        (48, 16, 1, 1, 0.5, 2),  # half of 3 batches, rounded up
    ],
)
def test_epochs_become_steps(examples, batch, accumulation, processes, epochs, expected):
    args = TrainingArguments(
        per_device_batch_size=batch, gradient_accumulation_steps=accumulation, num_train_epochs=epochs
    )
    assert resolve_max_steps(args, examples, processes) == expected
    consistent = TrainingArguments(
        per_device_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=epochs,
        max_steps=expected,
    )
    assert resolve_max_steps(consistent, examples, processes) == expected


def test_a_length_that_cannot_be_known_or_disagrees_is_refused():
    assert resolve_max_steps(TrainingArguments(max_steps=7, num_train_epochs=None), None, 2) == 7
    unknown = r"`--num_train_epochs` needs the training set's size, and 'org/stream' does not tell it"
    with pytest.raises(ValueError, match=unknown + r".*give `--max_steps` instead"):
        resolve_max_steps(TrainingArguments(num_train_epochs=3), None, 1, "'org/stream'")
    # Both given: the epochs cannot be checked against the steps.
    with pytest.raises(ValueError, match=unknown):
        resolve_max_steps(TrainingArguments(num_train_epochs=3, max_steps=10), None, 1, "'org/stream'")
    with pytest.raises(ValueError, match=r"`--max_steps` 10 and `--num_train_epochs` 2 disagree.* 24 steps"):
        resolve_max_steps(TrainingArguments(num_train_epochs=2, max_steps=10, per_device_batch_size=4), 48, 1)
    with pytest.raises(ValueError, match=r"holds no training examples"):
        resolve_max_steps(TrainingArguments(num_train_epochs=1), 0, 1)
    with pytest.raises(ValueError, match=r"`--stop_at_step` must be in \[1, max_steps=24\], got 30"):
        resolve_max_steps(
            TrainingArguments(num_train_epochs=2, stop_at_step=30, per_device_batch_size=4), 48, 1
        )


def write_jsonl_dataset(folder: Path, rows: int, card_examples: int | None) -> None:
    """A local `datasets` folder; with `card_examples`, its README's dataset info gives the train split's size."""
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"caption": f"c{i}"}) + "\n" for i in range(rows)))
    if card_examples is not None:
        card = "---\ndataset_info:\n  features:\n  - name: caption\n    dtype: string\n  splits:\n"
        card += f"  - name: train\n    num_bytes: 0\n    num_examples: {card_examples}\n---\n"
        (folder / "README.md").write_text(card)


def test_count_examples_of_shards_and_of_datasets(data, tmp_path):
    assert count_examples(data, "train") == 48 and count_examples(data, "val") == 8  # as generated
    assert [count_tar_samples(shard) for shard in resolve_tar_shards(data, "train")] == [12] * 4
    write_jsonl_dataset(tmp_path / "known", rows=5, card_examples=5)
    write_jsonl_dataset(tmp_path / "stream", rows=5, card_examples=None)
    assert count_examples(str(tmp_path / "known"), "train") == 5
    assert count_examples(str(tmp_path / "stream"), "train") is None


def test_epochs_on_a_stream_of_unknown_length_stop_before_any_work(tmp_path):
    write_jsonl_dataset(tmp_path / "stream", rows=5, card_examples=None)
    output = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "examples/pretrain.py", "--train_data", str(tmp_path / "stream")]
        + ["--num_train_epochs", "1", "--output_dir", str(output), "--report_to", "none"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode != 0
    assert "`--num_train_epochs` needs the training set's size" in done.stderr, done.stderr[-2000:]
    assert not (output / "checkpoints").exists() and not (output / "losses.jsonl").exists()


def test_two_epochs_give_their_steps_and_the_schedule_ends_at_its_floor(data, tmp_path):
    """48 clips, a global batch of 8 × 2 accumulation = 16: 3 steps an epoch, 6 for 2 epochs. The schedule is
    built for those 6: linear warm-up over 1 step, then a half cosine from 1e-3 down to tiny-cpu's floor 1e-5,
    reached by the last optimizer step."""
    output = tmp_path / "run"
    length = "--num_train_epochs 2 --per_device_batch_size 8 --gradient_accumulation_steps 2 --warmup_steps 1"
    rest = "--learning_rate 1e-3 --eval_steps 100 --checkpointing_steps 100 --num_workers 0"
    accelerate_launch(
        ["examples/pretrain.py", "--train_data", data, "--output_dir", str(output), *FAST_TRAINING]
        + length.split()
        + rest.split()
    )
    rows = {row["step"]: row for row in map(json.loads, (output / "losses.jsonl").read_text().splitlines())}
    assert sorted(rows) == list(range(1, 7))
    for step, row in rows.items():  # step k trains at the rate after k - 1 scheduler steps
        done = step - 1
        expected = (
            1e-3 * done if done < 1 else 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * (done - 1) / 5))
        )
        assert row["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-15), step
    final = torch.load(output / "checkpoints" / "step_6" / "scheduler.bin", weights_only=False)
    assert final["last_epoch"] == 6 and final["_last_lr"] == pytest.approx([1e-5, 1e-5], rel=1e-9)
    recorded = json.loads((output / "training_args.json").read_text())
    assert (recorded["max_steps"], recorded["num_train_epochs"]) == (6, 2.0)
    assert json.loads((output / "train_results.json").read_text())["run"]["steps"] == 6
