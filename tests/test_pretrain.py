"""examples/pretrain.py end to end: real `accelerate launch` processes, exact resume, LoRA and freezing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAINING, accelerate_launch, free_port
from transformers import AutoModel, AutoProcessor, CLIPConfig, CLIPModel

from vidla_hf import VidLAConfig, VidLAModel
from vidla_hf.data.synthetic import generate_synthetic_dataset
from vidla_hf.training import (
    RECIPES,
    TrainingArguments,
    configure_trainable,
    find_checkpoint,
    parameter_groups,
    parse_args,
)

ROOT = Path(__file__).parents[1]
FAST = [*FAST_TRAINING, "--warmup_steps", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_dataset(folder, {"train": 48, "val": 8}, clips_per_shard=12)
    return str(folder)


def run(args, num_processes=1, timeout=600, check=True):
    return accelerate_launch(args, num_processes, timeout, check)


def losses(output_dir):
    return {
        row["step"]: row["loss"]
        for row in map(json.loads, (Path(output_dir) / "losses.jsonl").read_text().split("\n")[:-1])
    }


def test_two_process_accelerate_launch_trains_and_writes_a_loadable_model(data, ddp_run, tmp_path):
    output, result = ddp_run["output"], ddp_run["result"]
    assert "retrieval before training" in result.stdout and "retrieval after training" in result.stdout
    results = json.loads((output / "train_results.json").read_text())
    assert set(results) == {"before", "after", "skipped_samples", "run"} and results["skipped_samples"] == 0
    assert results["run"]["num_processes"] == 2 and results["run"]["global_batch_size"] == 8
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.safetensors", "config.json", "training_args.json", "train_results.json"):
        assert (output / name).stat().st_mode & 0o777 == 0o666 & ~umask, f"{name} has unusual permissions"
    assert sorted(losses(output)) == [1, 2, 3]
    assert (output / "checkpoints" / "step_3" / "data_state_rank1.json").is_file(), "two processes ran"
    assert (output / "checkpoints" / "step_3" / "random_states_1.pkl").is_file()
    model = AutoModel.from_pretrained(output)
    processor = AutoProcessor.from_pretrained(output)
    assert isinstance(model, VidLAModel) and model.config.vision_config.num_frames == 2
    assert processor(text="a red circle moves left", return_tensors="pt")["input_ids"].shape[0] == 1

    # The retrieval finetuning script starts from that folder (32 frames: the temporal table is resampled).
    finetuned = tmp_path / "finetuned"
    run(
        [
            "examples/finetune_retrieval.py",
            "--init_from",
            str(output),
            "--train_data",
            data,
            "--output_dir",
            str(finetuned),
            "--max_steps",
            "1",
            "--num_workers",
            "0",
            *FAST[2:],
            "--num_frames",
            "3",
        ]
    )
    assert AutoModel.from_pretrained(finetuned).vision_model.embeddings.temporal_embedding.shape[0] == 3


def test_resume_mid_epoch_gives_the_losses_of_an_uninterrupted_run(data, tmp_path):
    """Stopped at step 3 (mid-round for 2 workers, mid-epoch) and resumed with another
    --checkpointing_steps: the losses equal an uninterrupted run's."""
    common = [
        "examples/pretrain.py",
        "--train_data",
        data,
        "--max_steps",
        "6",
        "--eval_steps",
        "100",
        "--num_workers",
        "2",
        "--mask_ratio",
        "0.5",
        *FAST,
    ]
    run([*common, "--output_dir", str(tmp_path / "whole"), "--checkpointing_steps", "2"])
    split = [*common, "--output_dir", str(tmp_path / "split")]
    run([*split, "--checkpointing_steps", "3", "--stop_at_step", "3"])
    assert not (tmp_path / "split" / "model.safetensors").exists(), "a stopped run writes no final model"
    assert sorted(p.name for p in (tmp_path / "split" / "checkpoints").iterdir()) == ["step_3"]
    run([*split, "--checkpointing_steps", "2", "--resume_from_checkpoint", "latest"])
    whole, split = losses(tmp_path / "whole"), losses(tmp_path / "split")
    assert sorted(split) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):
        assert split[step] == pytest.approx(whole[step], rel=1e-6, abs=1e-6), (step, split, whole)


def test_init_from_a_clip_checkpoint(data, tmp_path):
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4}
    clip = CLIPModel(
        CLIPConfig(
            text_config=tower, vision_config={**tower, "image_size": 32, "patch_size": 16}, projection_dim=16
        )
    )
    clip.save_pretrained(tmp_path / "clip")
    run(
        [
            "examples/pretrain.py",
            "--init_from",
            str(tmp_path / "clip"),
            "--train_data",
            data,
            "--output_dir",
            str(tmp_path / "out"),
            "--max_steps",
            "1",
            "--num_workers",
            "0",
            *FAST,
        ]
    )
    model = AutoModel.from_pretrained(tmp_path / "out")
    assert model.config.vision_config.image_size == 32 and model.config.projection_dim == 16


def test_latest_checkpoint_ignores_half_written_ones(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for name, complete in (("step_4", True), ("step_8", False), ("step_6.partial", True)):
        (checkpoints / name).mkdir(parents=True)
        if complete:
            (checkpoints / name / "trainer_state.json").write_text("{}")
    assert find_checkpoint(str(tmp_path), "latest").name == "step_4"
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        find_checkpoint(str(tmp_path), str(checkpoints / "step_8"))


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture
def tiny_model():
    return VidLAModel(VidLAConfig.from_preset("vidla-tiny"))


def test_freezing_the_text_tower(tiny_model):
    model = configure_trainable(tiny_model, TrainingArguments(freeze_text_tower=True))
    names = trainable(model)
    assert names and not [n for n in names if n.startswith(("text_model.", "text_projection."))]
    assert "vision_model.embeddings.mst_embedding" in names and "logit_scale" in names


def test_lora_trains_adapters_and_new_parameters_and_merges_back(tiny_model):
    original = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    model = configure_trainable(tiny_model, TrainingArguments(lora_rank=4, freeze_text_tower=True))
    names = trainable(model)
    assert any("lora_A" in n for n in names) and any("lora_B" in n for n in names)
    frozen_clip_weight = "base_model.model.vision_model.encoder.layers.0.self_attn.q_proj.base_layer.weight"
    assert frozen_clip_weight not in names and frozen_clip_weight in dict(model.named_parameters())
    assert "base_model.model.vision_model.encoder.layers.0.temporal_attn.q_proj.weight" in names
    assert not [n for n in names if "text_model" in n]
    # LoRA covers the CLIP layers of the video tower only, not VidLA's temporal attention.
    assert not [n for n in names if "temporal_attn" in n and "lora_" in n]

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out = model(
        input_ids=torch.tensor([[49406, 320, 49407]] * 2),
        pixel_values_videos=torch.randn(2, 2, 3, 64, 64),
        return_loss=True,
    )
    out.loss.backward()
    optimizer.step()
    merged = model.merge_and_unload()
    state = merged.state_dict()
    assert type(merged) is VidLAModel and set(state) == set(original)
    assert not torch.equal(
        state["vision_model.encoder.layers.0.self_attn.q_proj.weight"],
        original["vision_model.encoder.layers.0.self_attn.q_proj.weight"],
    )
    assert torch.equal(
        state["text_model.encoder.layers.0.self_attn.q_proj.weight"],
        original["text_model.encoder.layers.0.self_attn.q_proj.weight"],
    )


def test_weight_decay_groups(tiny_model):
    groups = parameter_groups(tiny_model, 0.02)
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    no_decay = {names[id(p)] for p in groups[1]["params"]}
    decay = {names[id(p)] for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.02 and groups[1]["weight_decay"] == 0.0
    for name in (
        "logit_scale",
        "vision_model.embeddings.mst_embedding",
        "vision_model.embeddings.temporal_embedding",
        "vision_model.embeddings.position_embedding.weight",
        "vision_model.pre_layrnorm.weight",
        "vision_model.encoder.layers.0.self_attn.q_proj.bias",
    ):
        assert name in no_decay, name
    assert "vision_model.encoder.layers.0.self_attn.q_proj.weight" in decay


def test_recipes_and_explicit_options():
    assert parse_args("", argv=[]).learning_rate == RECIPES["tiny-cpu"]["learning_rate"]
    paper = parse_args("", argv=["--init_from", "openai/clip-vit-base-patch16"])
    assert (paper.learning_rate, paper.min_learning_rate, paper.num_frames, paper.weight_decay) == (
        2e-5,
        4e-8,
        12,
        0.02,
    )
    assert (paper.adam_beta1, paper.adam_beta2, paper.max_grad_norm) == (0.9, 0.999, 10.0)
    finetune = parse_args("", recipe="retrieval-finetune", argv=["--learning_rate", "3e-5"])
    assert (finetune.num_frames, finetune.learning_rate, finetune.weight_decay) == (32, 3e-5, 0.2)
    assert finetune.training_augmentation is False


def test_boolean_spellings_and_the_help_show_the_defaults_that_apply(capsys):
    """Every spelling of a boolean (HfArgumentParser's and argparse's BooleanOptionalAction's) sets it, and
    leaving it out keeps the recipe's value; --help prints the recipe defaults, not argparse's `None`."""
    reference = TrainingArguments(**RECIPES["tiny-cpu"])
    assert parse_args("", argv=[]) == reference
    for argv, expected in (
        (["--gradient_checkpointing"], True),
        (["--gradient_checkpointing", "true"], True),
        (["--gradient_checkpointing", "false"], False),
        (["--no-gradient_checkpointing"], False),
        (["--no_gradient_checkpointing"], False),
    ):
        assert parse_args("", argv=argv).gradient_checkpointing is expected, argv
    for argv in (
        ["--no_training_augmentation"],
        ["--no-training_augmentation"],
        ["--training_augmentation", "no"],
    ):
        assert parse_args("", argv=argv).training_augmentation is False, argv
    with pytest.raises(SystemExit):
        parse_args("", argv=["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.0005 (tiny-cpu), 2e-05 (paper))" in help_text
    assert "default: None" not in help_text and "a VidLA checkpoint (default: not set)" in help_text
    with pytest.raises(SystemExit):
        parse_args("", argv=["--mixed_precision", "fp16", "--max_steps", "ten"])
    assert "--max_steps" in capsys.readouterr().err


TWO_PROCESS_RUN = ["--max_steps", "3", "--num_workers", "1", "--eval_steps", "100", *FAST]


@pytest.fixture(scope="module")
def ddp_run(data, tmp_path_factory):
    """Two DDP processes, three steps (full loss): the two-process test's run, and the reference for the local
    loss and for FSDP2."""
    from safetensors.torch import load_file

    output = tmp_path_factory.mktemp("ddp")
    args = ["--train_data", data, "--output_dir", output, *TWO_PROCESS_RUN, "--checkpointing_steps", "3"]
    result = accelerate_launch(["examples/pretrain.py", *args], num_processes=2)
    trained = (losses(output), load_file(output / "model.safetensors"))
    return {"output": output, "result": result, "trained": trained}


def assert_same_training(run, reference):
    """The same logged loss at every step and the same trained weights as `reference`."""
    (run_losses, run_weights), (reference_losses, reference_weights) = run, reference
    assert sorted(run_losses) == sorted(reference_losses) == [1, 2, 3]
    for step, value in reference_losses.items():
        assert run_losses[step] == pytest.approx(value, rel=1e-5), step
    assert run_weights.keys() == reference_weights.keys()
    for key, tensor in reference_weights.items():
        assert run_weights[key].shape == tensor.shape, key  # logit_scale a scalar again after FSDP2's (1,)
        if key.endswith("k_proj.bias"):
            # softmax ignores a key bias: its gradient is rounding noise, which Adam scales up to lr steps
            continue
        torch.testing.assert_close(run_weights[key], tensor, rtol=1e-4, atol=1e-6)


def test_the_local_loss_trains_two_processes_exactly_as_the_full_loss(data, ddp_run, tmp_path):
    """Two processes, three steps: `--local_loss` (each process scores its own rows) logs the same global
    losses and trains the same weights as the full loss."""
    from safetensors.torch import load_file

    args = ["--train_data", data, "--output_dir", tmp_path, *TWO_PROCESS_RUN, "--checkpointing_steps", "100"]
    accelerate_launch(["examples/pretrain.py", *args, "--local_loss"], num_processes=2)
    assert_same_training((losses(tmp_path), load_file(tmp_path / "model.safetensors")), ddp_run["trained"])


def fsdp2_launch(args, check=True):
    """examples/pretrain.py under the shipped FSDP2 config on 2 CPU processes (see tests/fsdp2_on_cpu.py)."""
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "examples/configs/fsdp2.yaml",
    ]
    launcher += [
        "--num_machines",
        "1",
        "--num_processes",
        "2",
        "--machine_rank",
        "0",
        "--mixed_precision",
        "no",
    ]
    launcher += ["--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port())]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    command = [*launcher, "tests/fsdp2_on_cpu.py", *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def test_fsdp2_trains_as_ddp_resumes_from_its_sharded_checkpoint_and_saves_a_plain_model(
    data, ddp_run, tmp_path
):
    """The shipped FSDP2 config on 2 CPU processes: stopped after step 2 (a sharded checkpoint) and resumed, it
    logs DDP's losses and saves DDP's weights, `logit_scale` a scalar again, loadable by `AutoModel`."""
    from safetensors.torch import load_file

    args = ["--train_data", data, "--output_dir", tmp_path, *TWO_PROCESS_RUN, "--checkpointing_steps", "2"]
    fsdp2_launch([*args, "--stop_at_step", "2"])
    assert (tmp_path / "checkpoints" / "step_2" / "pytorch_model_fsdp_0").is_dir()  # sharded, not one file
    assert not (tmp_path / "model.safetensors").exists()
    fsdp2_launch([*args, "--resume_from_checkpoint", "latest"])
    assert_same_training((losses(tmp_path), load_file(tmp_path / "model.safetensors")), ddp_run["trained"])
    assert json.loads((tmp_path / "train_results.json").read_text())["run"]["distributed_type"] == "FSDP"
    model = AutoModel.from_pretrained(tmp_path)
    assert type(model).__name__ == "VidLAModel" and model.logit_scale.shape == ()


def test_fsdp2_refuses_lora_before_building_the_model(data, tmp_path):
    result = fsdp2_launch(
        ["--train_data", data, "--output_dir", tmp_path, "--lora_rank", "4", *FAST], check=False
    )
    assert result.returncode != 0
    assert "`--lora_rank` cannot be combined with FSDP2" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_fsdp2_refuses_classification_finetuning_before_reading_data(tmp_path):
    result = fsdp2_launch(
        ["--script", "finetune_classification", "--output_dir", tmp_path / "out"], check=False
    )
    assert result.returncode != 0
    assert "examples/finetune_classification.py does not support FSDP" in result.stderr
    assert not (tmp_path / "out").exists()
