"""Long-video adaptation (seed 002, issue 13): `--recipe long-video` / `--freeze_spatial` train exactly VidLA's
temporal parameters (plus the visual projection and the temperature), frozen weights never move, the recipe's
frame count and mask ratio reach the model, and a short checkpoint loads at more frames by interpolation."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST_TRAINING, accelerate_launch, randomize_, tiny_config
from safetensors.torch import load_file
from transformers import CLIPConfig, CLIPModel

from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.data.synthetic import generate_synthetic_dataset
from vidla_hf.modeling.convert_clip import convert_clip_state_dict
from vidla_hf.training import (
    RECIPES,
    TrainingArguments,
    VidLALoss,
    parse_args,
    training_function,
    validate_args,
)
from vidla_hf.training.setup import (
    VidLAContrastiveModule,
    build_optimizer_and_schedule,
    configure_trainable,
    load_model_and_processor,
)

TOWER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
# The parameters a 2-layer VidLA model adds to CLIP, written out by hand (modeling_vidla.py's names).
NEW_BY_HAND = {
    "vision_model.embeddings.temporal_embedding",
    "vision_model.embeddings.mst_embedding",
    *(
        f"vision_model.encoder.layers.{layer}.{part}"
        for layer in (0, 1)
        for part in (
            "temporal_layer_norm.weight",
            "temporal_layer_norm.bias",
            *(
                f"temporal_attn.{proj}.{kind}"
                for proj in ("q_proj", "k_proj", "v_proj", "out_proj")
                for kind in ("weight", "bias")
            ),
        )
    ),
}
HEADS = {"visual_projection.weight", "logit_scale"}


def long_video_args(**overrides) -> TrainingArguments:
    return TrainingArguments(**{**RECIPES["long-video"], "init_from": "checkpoint", **overrides})


def trainable(model: torch.nn.Module) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


def interpolate_reference(table: np.ndarray, num_frames: int) -> np.ndarray:
    """Linear resampling of a `(T, d)` table to `num_frames` rows with half-sample centres (each new row at
    position (i + 0.5)·T/num_frames − 0.5 of the old rows, clamped at the ends), written with `np.interp`."""
    positions = (np.arange(num_frames) + 0.5) * table.shape[0] / num_frames - 0.5
    return np.stack([np.interp(positions, np.arange(table.shape[0]), column) for column in table.T], axis=1)


@pytest.fixture
def clip_and_vidla():
    clip = CLIPModel(
        CLIPConfig(
            text_config=TOWER, vision_config={**TOWER, "image_size": 32, "patch_size": 16}, projection_dim=16
        )
    )
    return clip, VidLAModel.from_clip(clip, num_frames=4, mst_levels=2, mst_tokens_per_level=2)


def test_the_recipe_trains_exactly_the_temporal_parameters_and_the_heads(clip_and_vidla):
    clip, model = clip_and_vidla
    # Independent derivation: the VidLA parameters CLIP's (converted) state dict does not hold.
    absent_from_clip = {n for n, _ in model.named_parameters()} - set(
        convert_clip_state_dict(clip.state_dict())
    )
    assert absent_from_clip == NEW_BY_HAND
    assert trainable(configure_trainable(model, long_video_args())) == NEW_BY_HAND | HEADS


def test_freeze_spatial_alone_leaves_the_text_tower_training(clip_and_vidla):
    _, model = clip_and_vidla
    text = {n for n, _ in model.named_parameters() if n.startswith(("text_model.", "text_projection."))}
    assert len(text) > 10
    names = trainable(configure_trainable(model, long_video_args(freeze_text_tower=False)))
    assert names == NEW_BY_HAND | HEADS | text
    every = {n for n, _ in model.named_parameters()}
    vision_clip = {n for n in every if n.startswith("vision_model.")} - NEW_BY_HAND
    assert "vision_model.embeddings.patch_embedding.weight" in vision_clip and not vision_clip & names


def test_frozen_weights_stay_bit_identical_while_the_temporal_ones_train():
    torch.manual_seed(0)
    model = randomize_(
        VidLAModel(tiny_config(mask_ratio=0.75))
    )  # no zero-initialised path: all get gradients
    args = long_video_args(max_steps=3, warmup_steps=0, learning_rate=1e-2, min_learning_rate=0.0)
    model = configure_trainable(model, args)
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    module = VidLAContrastiveModule(model, pad_token_id=1).train()
    optimizer, schedule = build_optimizer_and_schedule(module, args, num_processes=1)
    loss_fn = VidLALoss()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        videos = torch.randn(3, 4, 3, 8, 8, generator=generator)
        ids = torch.randint(3, 99, (3, 6), generator=generator)
        ids[:, -1] = 2
        loss, _ = loss_fn(*module(videos, ids, torch.ones_like(ids), ids.flip(0), torch.ones_like(ids)))
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    after = dict(model.named_parameters())
    trained = NEW_BY_HAND | HEADS
    assert trained == trainable(model)
    frozen = [name for name in before if name not in trained]
    assert len(frozen) > 30 and "vision_model.encoder.layers.0.self_attn.q_proj.weight" in frozen
    moved = [name for name in frozen if not torch.equal(before[name], after[name])]
    assert moved == []
    still = [name for name in trained if torch.equal(before[name], after[name])]
    assert still == []


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The tiny preset at 8 frames with random (non-zero) temporal weights, saved with its processor."""
    folder = tmp_path_factory.mktemp("vidla-8-frames")
    torch.manual_seed(0)
    model = randomize_(VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=8)), std=0.02)
    model.save_pretrained(folder)
    size = {"shortest_edge": 64}
    VidLAProcessor(
        VidLAVideoProcessor(num_frames=8, size=size, crop_size={"height": 64, "width": 64}),
        build_clip_tokenizer(),
    ).save_pretrained(folder)
    return folder


def test_an_8_frame_checkpoint_loads_at_32_frames_with_the_recipes_mask(checkpoint):
    assert parse_args("", argv=["--recipe", "long-video", "--init_from", str(checkpoint)]).num_frames == 64
    args = parse_args(
        "", argv=["--recipe", "long-video", "--init_from", str(checkpoint), "--num_frames", "32"]
    )
    model, processor = load_model_and_processor(args)
    vision = model.config.vision_config
    assert (vision.num_frames, vision.mask_ratio, processor.video_processor.num_frames) == (32, 0.75, 32)
    saved = load_file(checkpoint / "model.safetensors")["vision_model.embeddings.temporal_embedding"]
    assert saved.shape == (8, 128) and saved.abs().min() > 0
    table = model.vision_model.embeddings.temporal_embedding.detach().numpy()
    np.testing.assert_allclose(table, interpolate_reference(saved.numpy(), 32), rtol=0, atol=1e-6)

    # The mask is applied in training: 1 [CLS] + 4 [MST] + 32 frames × a quarter of the 16 patches.
    videos = torch.randn(1, 32, 3, 64, 64)
    with torch.no_grad():
        model.train()
        assert model.vision_model(videos).last_hidden_state.shape[1] == 1 + 4 + 32 * 4
        model.eval()
        assert model.vision_model(videos).last_hidden_state.shape[1] == 1 + 4 + 32 * 16


def test_the_reference_interpolation_on_known_values():
    """The test's own reference, on a table whose resampling can be worked out by hand."""
    table = np.array([[0.0], [4.0]])
    np.testing.assert_allclose(interpolate_reference(table, 4)[:, 0], [0.0, 1.0, 3.0, 4.0])


def test_bad_combinations_fail_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="--lora_rank 4"):
        validate_args(long_video_args(lora_rank=4))
    output = tmp_path / "run"
    with pytest.raises(ValueError, match="--freeze_spatial.*--init_from"):
        training_function(parse_args("", argv=["--recipe", "long-video", "--output_dir", str(output)]))
    assert not output.exists()
    with pytest.raises(ValueError, match="--mask_ratio"):
        validate_args(long_video_args(mask_ratio=1.0))


def test_help_lists_the_recipe(capsys):
    with pytest.raises(SystemExit):
        parse_args("", argv=["--help"])
    help_text = capsys.readouterr().out
    assert re.search(r"\n  long-video +long-video adaptation", help_text) and "--freeze_spatial" in help_text


def test_accelerate_launch_of_the_recipe_moves_only_the_temporal_weights(tmp_path):
    """End to end: `examples/pretrain.py --recipe long-video` from a 2-frame checkpoint at 4 frames."""
    data = tmp_path / "data"
    generate_synthetic_dataset(data, {"train": 8, "val": 4}, clips_per_shard=8)
    start = tmp_path / "start"
    torch.manual_seed(0)
    randomize_(VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=2)), std=0.02).save_pretrained(
        start
    )
    size = {"shortest_edge": 64}
    VidLAProcessor(
        VidLAVideoProcessor(num_frames=2, size=size, crop_size={"height": 64, "width": 64}),
        build_clip_tokenizer(),
    ).save_pretrained(start)
    output = tmp_path / "out"
    accelerate_launch(
        [
            "examples/pretrain.py",
            "--recipe",
            "long-video",
            "--init_from",
            str(start),
            "--train_data",
            str(data),
            "--output_dir",
            str(output),
            "--max_steps",
            "2",
            "--warmup_steps",
            "0",
            "--learning_rate",
            "1e-3",
            "--num_workers",
            "0",
            *FAST_TRAINING[2:],
            "--num_frames",
            "4",
        ]
    )
    before, after = load_file(start / "model.safetensors"), load_file(output / "model.safetensors")
    assert set(before) == set(after)
    table = "vision_model.embeddings.temporal_embedding"
    assert after[table].shape[0] == 4
    assert not np.allclose(after[table].numpy(), interpolate_reference(before[table].numpy(), 4), atol=1e-6)
    trained = {
        name
        for name in before
        if re.match(r"vision_model\.(embeddings\.mst_embedding|encoder\.layers\.\d+\.temporal_)", name)
    } | HEADS
    assert (
        len(trained) == 1 + 2 * 10 + 2
    )  # [MST]; 2 layers × (layer norm + 4 projections) × (weight, bias); heads
    for name in sorted(set(before) - trained - {table}):
        assert torch.equal(before[name], after[name]), f"{name} is frozen but changed"
    for name in sorted(trained):
        assert not torch.equal(before[name], after[name]), f"{name} should train but did not change"
    config = Path(output / "config.json").read_text()
    assert '"mask_ratio": 0.75' in config and '"num_frames": 4' in config
