import json
import os

import pytest
import torch
from conftest import TINY_TEXT, TINY_TOWER, randomize_, run_without_vidla_hf, tiny_config
from safetensors.torch import load_file
from transformers import AutoModel, CLIPConfig, CLIPModel

from vidla_hf import VidLAModel, VidLAVisionModel
from vidla_hf.modeling.convert_clip import is_new_vidla_parameter


def tiny_clip(seed=0):
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=TINY_TEXT,
        vision_config={**TINY_TOWER, "image_size": 8, "patch_size": 2},
        projection_dim=16,
    )
    return CLIPModel(config).eval()


def videos(batch=2, frames=4, size=8, seed=0):
    return torch.randn(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --- CLIP initialisation ---------------------------------------------------------------------------


def test_one_frame_without_mst_reproduces_clip(text_inputs):
    clip = tiny_clip()
    model = VidLAModel.from_clip(clip, mst_levels=0, patch_attends_cls=True).eval()
    image = videos(batch=3, frames=1)
    with torch.no_grad():
        ours = model(pixel_values_videos=image, return_loss=True, **text_inputs)
        theirs = clip(pixel_values=image[:, 0], return_loss=True, **text_inputs)
        torch.testing.assert_close(
            model.get_video_features(image).pooler_output,
            clip.get_image_features(image[:, 0]).pooler_output,
            atol=1e-5,
            rtol=1e-5,
        )
        torch.testing.assert_close(
            model.get_text_features(**text_inputs).pooler_output,
            clip.get_text_features(**text_inputs).pooler_output,
            atol=1e-5,
            rtol=1e-5,
        )
    torch.testing.assert_close(ours.logits_per_video, theirs.logits_per_image, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.logits_per_text, theirs.logits_per_text, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.loss, theirs.loss, atol=1e-5, rtol=1e-5)


def test_paper_default_patches_do_not_see_cls_so_one_frame_differs_from_clip():
    clip = tiny_clip()
    model = VidLAModel.from_clip(clip, mst_levels=0, patch_attends_cls=False).eval()
    image = videos(frames=1)
    with torch.no_grad():
        ours = model.get_video_features(image).pooler_output
        theirs = clip.get_image_features(image[:, 0]).pooler_output
    assert not torch.allclose(ours, theirs, atol=1e-3)


def test_from_clip_copies_every_clip_weight_and_initialises_only_new_ones(tmp_path):
    clip = tiny_clip()
    clip.save_pretrained(tmp_path / "clip")
    model = VidLAModel.from_clip(
        str(tmp_path / "clip"), num_frames=6
    )  # a folder, loaded with from_pretrained
    ours = model.state_dict()
    clip_state = clip.state_dict()
    for key, value in clip_state.items():
        torch.testing.assert_close(ours[key], value, msg=key)
    new_keys = sorted(set(ours) - set(clip_state))
    assert new_keys and all(is_new_vidla_parameter(k) for k in new_keys)
    assert {k.split("encoder.layers.")[-1].split(".", 1)[-1] for k in new_keys if "layers" in k} == {
        "temporal_layer_norm.weight",
        "temporal_layer_norm.bias",
        *(f"temporal_attn.{p}_proj.{w}" for p in ("q", "k", "v", "out") for w in ("weight", "bias")),
    }
    assert ours["vision_model.embeddings.temporal_embedding"].shape == (6, 32)
    assert not ours["vision_model.embeddings.temporal_embedding"].any()
    assert not ours["vision_model.encoder.layers.1.temporal_attn.out_proj.weight"].any()
    assert ours["vision_model.encoder.layers.1.temporal_attn.q_proj.weight"].std() > 0
    assert ours["vision_model.embeddings.mst_embedding"].std() > 0


def test_from_clip_rejects_unknown_keys_and_types():
    clip = tiny_clip()
    clip.register_parameter("surprise", torch.nn.Parameter(torch.zeros(1)))
    with pytest.raises(KeyError, match="surprise"):
        VidLAModel.from_clip(clip)
    with pytest.raises(TypeError, match="CLIPModel"):
        VidLAModel.from_clip(42)


def test_two_optimiser_steps_move_every_new_parameter(text_inputs):
    model = VidLAModel.from_clip(tiny_clip()).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    new = {n: p.detach().clone() for n, p in model.named_parameters() if is_new_vidla_parameter(n)}
    video = videos(batch=3)

    def step():
        optimizer.zero_grad()
        model(pixel_values_videos=video, return_loss=True, **text_inputs).loss.backward()
        optimizer.step()
        params = dict(model.named_parameters())
        return {n for n, before in new.items() if not torch.equal(params[n], before)}

    moved_after_one = step()
    # Step 1: the zero out_proj gets gradient, so it moves; q/k/v sit behind it and do not yet.
    assert "vision_model.encoder.layers.0.temporal_attn.out_proj.weight" in moved_after_one
    assert "vision_model.encoder.layers.0.temporal_attn.q_proj.weight" not in moved_after_one
    assert "vision_model.embeddings.mst_embedding" in moved_after_one
    assert "vision_model.embeddings.temporal_embedding" in moved_after_one
    moved_after_two = step()
    assert moved_after_two == set(new), sorted(set(new) - moved_after_two)


# --- transformers model conventions ------------------------------------------------------------------


@pytest.fixture
def model():
    return randomize_(VidLAModel(tiny_config())).eval()


def test_save_load_round_trip_is_safetensors_only(model, tmp_path, text_inputs):
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    assert set(load_file(tmp_path / "model.safetensors")) == set(model.state_dict())
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is VidLAModel
    with torch.no_grad():
        expected = model(pixel_values_videos=videos(), **{k: v[:2] for k, v in text_inputs.items()})
        actual = loaded(pixel_values_videos=videos(), **{k: v[:2] for k, v in text_inputs.items()})
    torch.testing.assert_close(actual.logits_per_video, expected.logits_per_video, atol=0, rtol=0)


def test_auto_model_from_config_and_sub_models():
    config = tiny_config()
    assert type(AutoModel.from_config(config)) is VidLAModel
    assert type(AutoModel.from_config(config.vision_config)) is VidLAVisionModel


def test_deterministic_in_eval_mode(model):
    with torch.no_grad():
        first = model.get_video_features(videos()).pooler_output
        second = model.get_video_features(videos()).pooler_output
    assert torch.equal(first, second)


def test_batching_is_equivalent_to_one_by_one(model):
    batch = videos(batch=3)
    with torch.no_grad():
        together = model.get_video_features(batch).last_hidden_state
        alone = torch.cat([model.get_video_features(batch[i : i + 1]).last_hidden_state for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_eager_equals_sdpa(text_inputs):
    eager = randomize_(VidLAModel._from_config(tiny_config(), attn_implementation="eager")).eval()
    sdpa = randomize_(VidLAModel._from_config(tiny_config(), attn_implementation="sdpa")).eval()
    assert eager.vision_model.config._attn_implementation == "eager"
    assert sdpa.vision_model.config._attn_implementation == "sdpa"
    inputs = {"pixel_values_videos": videos(batch=3), **text_inputs}
    with torch.no_grad():
        torch.testing.assert_close(
            eager(**inputs).logits_per_video, sdpa(**inputs).logits_per_video, atol=1e-5, rtol=1e-5
        )


def gradients(model, inputs):
    model.zero_grad()
    model(**inputs, return_loss=True).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_gives_the_same_gradients(model, text_inputs):
    inputs = {"pixel_values_videos": videos(batch=3), **text_inputs}
    model.train()
    plain = gradients(model, inputs)
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.vision_model.encoder.layers)
    checkpointed = gradients(model, inputs)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)


def test_every_trainable_parameter_gets_a_nonzero_gradient(model, text_inputs):
    model.train()
    grads = gradients(model, {"pixel_values_videos": videos(batch=3), **text_inputs})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert grads.keys() == trainable
    assert not [n for n, g in grads.items() if not g.any()]


def test_init_weights_zero_inits_survive_post_init():
    model = VidLAModel(tiny_config())  # built from a config: post_init ran _init_weights
    vision = model.vision_model
    assert not vision.embeddings.temporal_embedding.any()
    assert vision.embeddings.mst_embedding.std() > 0
    for layer in vision.encoder.layers:
        assert not layer.temporal_attn.out_proj.weight.any() and not layer.temporal_attn.out_proj.bias.any()
        assert layer.temporal_attn.q_proj.weight.std() > 0
    # A fresh model's temporal blocks are therefore the identity: equal to a model without them.
    no_local = VidLAModel(tiny_config(use_local_temporal_attention=False)).eval()
    state = {
        k: v
        for k, v in model.state_dict().items()
        if "temporal_attn" not in k and "temporal_layer_norm" not in k
    }
    no_local.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(
            model.eval().get_video_features(videos()).pooler_output,
            no_local.get_video_features(videos()).pooler_output,
        )


# --- frames, masking, inputs -------------------------------------------------------------------------


def test_any_number_of_frames_and_resizing_the_table(model, tmp_path):
    long_video = videos(frames=10)  # the table has 4 entries
    with torch.no_grad():
        interpolated = model.get_video_features(long_video).pooler_output
        assert model.get_video_features(videos(frames=1)).pooler_output.shape == (2, 16)
    model.save_pretrained(tmp_path)
    resized = VidLAModel.from_pretrained(tmp_path, num_frames=10).eval()
    assert resized.config.vision_config.num_frames == 10
    assert resized.vision_model.embeddings.temporal_embedding.shape == (10, 32)
    with torch.no_grad():
        torch.testing.assert_close(resized.get_video_features(long_video).pooler_output, interpolated)
    via_auto = AutoModel.from_pretrained(tmp_path, num_frames=10)
    torch.testing.assert_close(
        via_auto.vision_model.embeddings.temporal_embedding,
        resized.vision_model.embeddings.temporal_embedding,
    )


def test_tube_masking_only_in_training_and_per_call(model):
    video = videos(frames=4)  # 16 patches per frame, 1 + 4 [MST]
    with torch.no_grad():
        eval_out = model.vision_model(pixel_values_videos=video, mask_ratio=0.75)
        unmasked = model.vision_model(pixel_values_videos=video)
        assert eval_out.kept_patch_indices is None
        torch.testing.assert_close(eval_out.last_hidden_state, unmasked.last_hidden_state)
        model.train()
        masked = model.vision_model(pixel_values_videos=video, mask_ratio=0.75)
        assert masked.last_hidden_state.shape == (2, 1 + 4 + 4 * 4, 32)  # a quarter of the patches
        model.vision_model.config.mask_ratio = 0.5
        assert model.vision_model(pixel_values_videos=video).last_hidden_state.shape[1] == 1 + 4 + 4 * 8
        assert model.vision_model(pixel_values_videos=video, mask_ratio=0.0).kept_patch_indices is None
    for bad in (1.0, -0.5):
        with pytest.raises(ValueError, match="mask_ratio"):
            model.vision_model(pixel_values_videos=video, mask_ratio=bad)


@pytest.mark.parametrize(
    ("tensor", "match"),
    [
        (torch.zeros(2, 3, 8, 8), "shape"),  # an image batch, not a video batch
        (torch.zeros(2, 4, 1, 8, 8), "channels"),
        (torch.zeros(2, 4, 3, 16, 16), "16\\*16"),
    ],
)
def test_bad_video_input_raises_value_error(model, tensor, match):
    with pytest.raises(ValueError, match=match):
        model.get_video_features(tensor)


# --- Hub remote code --------------------------------------------------------------------------------

REMOTE_SCRIPT = """
import sys, json, torch
sys.modules["vidla_hf"] = None  # `import vidla_hf` now raises ImportError
try:
    import vidla_hf
    raise SystemExit("vidla_hf was importable")
except ImportError:
    pass
from transformers import AutoConfig, AutoModel
folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
inputs = torch.load(folder + "/inputs.pt")
with torch.no_grad():
    logits = model(**inputs).logits_per_video
print(json.dumps(logits.tolist()))
"""


def test_remote_code_loads_where_vidla_hf_cannot_be_imported(model, tmp_path, text_inputs):
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_vidla.VidLAConfig",
        "AutoModel": "modeling_vidla.VidLAModel",
    }
    assert {"configuration_vidla.py", "modeling_vidla.py", "convert_clip.py"} <= set(os.listdir(tmp_path))
    inputs = {"pixel_values_videos": videos(), **{k: v[:2] for k, v in text_inputs.items()}}
    torch.save(inputs, tmp_path / "inputs.pt")
    remote = run_without_vidla_hf(REMOTE_SCRIPT, tmp_path, cwd=tmp_path)
    with torch.no_grad():
        expected = model(**inputs).logits_per_video
    torch.testing.assert_close(torch.tensor(remote), expected)
