import json
import os
import stat
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, TINY_TEXT, TINY_TOWER, randomize_, run_without_vidla_hf, tiny_config
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModel, CLIPConfig, CLIPModel, CLIPTextModel
from transformers.models.clip.modeling_clip import image_text_contrastive_loss

from vidla_hf import VidLAConfig, VidLAModel, VidLATextModel, VidLAVisionConfig, VidLAVisionModel
from vidla_hf.modeling.configuration_vidla import NoSuchFolderError, check_local_folder, looks_like_local_path
from vidla_hf.modeling.convert_clip import is_new_vidla_parameter
from vidla_hf.modeling.modeling_vidla import CheckpointSaveError, CorruptCheckpointError, safetensors_problem


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


def test_missing_logit_scale_starts_at_the_configured_value(tmp_path):
    """A checkpoint without `logit_scale` (or none at all) gets `config.logit_scale_init_value`, not whatever
    memory the parameter was allocated in."""
    config = VidLAConfig(
        text_config=TINY_TEXT,
        vision_config=tiny_config().vision_config.to_dict(),
        logit_scale_init_value=3.25,
    )
    model = VidLAModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(1.0)
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["logit_scale"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    for _ in range(3):  # uninitialised memory differs between tries; the configured value does not
        assert VidLAModel.from_pretrained(tmp_path).logit_scale.item() == 3.25
        assert VidLAModel.from_pretrained(None, config=config, state_dict={}).logit_scale.item() == 3.25
    assert VidLAModel(config).logit_scale.item() == 3.25


def test_from_clip_refuses_a_vidla_checkpoint(model, tmp_path):
    """`from_clip` on a VidLA folder would keep only the CLIP-named weights and start the temporal ones afresh."""
    model.save_pretrained(tmp_path / "vidla")
    for source in (str(tmp_path / "vidla"), tmp_path / "vidla", model, model.config, model.vision_model):
        with pytest.raises(
            ValueError, match=r"is a VidLA checkpoint \(model_type 'vidla.*VidLAModel\.from_pretrained"
        ):
            VidLAModel.from_clip(source)
    clip = tiny_clip()
    with pytest.raises(
        ValueError, match=r"has model_type 'clip_vision_model'; `from_clip` takes a CLIP checkpoint"
    ):
        VidLAModel.from_clip(clip.vision_model)


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
    # The paper's info-NCE sums the two directions (eq. 3); CLIP averages them.
    torch.testing.assert_close(ours.loss, 2 * theirs.loss, atol=1e-5, rtol=1e-5)


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


def test_return_loss_is_the_papers_info_nce(model, text_inputs):
    """Eq. 3 sums both directions: 2x CLIP's loss on the same logits, and the two log-softmaxes written out."""
    with torch.no_grad():
        out = model(pixel_values_videos=videos(batch=3), return_loss=True, **text_inputs)
    assert out.loss.shape == ()
    torch.testing.assert_close(out.loss, 2 * image_text_contrastive_loss(out.logits_per_text))
    video_to_text = out.logits_per_video.log_softmax(dim=1).diagonal().mean()
    text_to_video = out.logits_per_text.log_softmax(dim=1).diagonal().mean()
    torch.testing.assert_close(out.loss, -(video_to_text + text_to_video))
    assert model(pixel_values_videos=videos(batch=3), **text_inputs).loss is None
    with pytest.raises(ValueError, match="as many texts as videos .*got 3 texts and 2 videos"):
        model(pixel_values_videos=videos(batch=2), return_loss=True, **text_inputs)


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


def test_num_frames_is_for_models_with_a_video_tower(model, tmp_path):
    model.vision_model.save_pretrained(tmp_path / "vision")
    vision = VidLAVisionModel.from_pretrained(tmp_path / "vision", num_frames=6)
    assert vision.embeddings.temporal_embedding.shape == (6, 32) and vision.config.num_frames == 6
    model.text_model.save_pretrained(tmp_path / "text")
    with pytest.raises(TypeError, match=r"`num_frames=6`: VidLATextModel has no video tower"):
        VidLATextModel.from_pretrained(tmp_path / "text", num_frames=6)
    assert not hasattr(VidLATextModel, "resize_num_frames")


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


EXPECTED_SHAPE = r"\(B, T, 3, 8, 8\)"


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((2, 3, 8, 8), r"got \(2, 3, 8, 8\)\. A batch of images is a batch of 1-frame videos"),
        ((2, 4, 1, 8, 8), r"got \(2, 4, 1, 8, 8\)"),
        ((2, 4, 3, 16, 16), r"got \(2, 4, 3, 16, 16\)"),
        ((2, 4, 8, 8, 3), r"got \(2, 4, 8, 8, 3\)\. The channels look last"),
        ((2, 0, 3, 8, 8), r"got \(2, 0, 3, 8, 8\)"),
        ((1, 2, 4, 3, 8, 8), r"got \(1, 2, 4, 3, 8, 8\)"),
    ],
)
def test_bad_video_shape_raises_value_error_naming_the_expected_shape(model, text_inputs, shape, match):
    for call in (
        lambda video: model.get_video_features(video),
        lambda video: model(pixel_values_videos=video, **text_inputs),
    ):
        with pytest.raises(ValueError, match=EXPECTED_SHAPE) as error:
            call(torch.zeros(shape))
        assert error.match(match) and error.match("pixel_values_videos")


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_unnormalised_integer_frames_raise_type_error_pointing_to_the_processor(model, text_inputs, dtype):
    raw = torch.randint(0, 255, (2, 4, 3, 8, 8)).to(dtype)  # decoded frames, never normalised
    model.vision_model.embeddings.forward = _heavy_work  # raised before the towers run
    model.text_model.embeddings.forward = _heavy_work
    for call in (
        lambda: model.get_video_features(raw),
        lambda: model.vision_model(pixel_values_videos=raw),
        lambda: model(pixel_values_videos=raw, **text_inputs),
    ):
        with pytest.raises(TypeError, match=rf"`pixel_values_videos` has dtype {dtype}.*processor"):
            call()
    with pytest.raises(TypeError, match=r"must be a torch.Tensor of shape \(B, T, 3, 8, 8\).*got list"):
        model.get_video_features(raw.tolist())


def _heavy_work(*args, **kwargs):
    raise AssertionError("the model ran before its inputs were checked")


# --- output_attentions ------------------------------------------------------------------------------------


def test_output_attentions_is_refused_by_the_video_tower(text_inputs):
    """The factorised attention has no (seq x seq) map: asking for one is an error, not a silent None."""
    # eager: transformers itself refuses `config.output_attentions = True` under sdpa
    model = VidLAModel._from_config(tiny_config(), attn_implementation="eager").eval()
    video = videos()
    model.vision_model.embeddings.forward = _heavy_work
    calls = {
        "VidLAVisionModel": lambda **kw: model.vision_model(pixel_values_videos=video, **kw),
        "get_video_features": lambda **kw: model.get_video_features(video, **kw),
        "VidLAModel": lambda **kw: model(pixel_values_videos=video, **text_inputs, **kw),
    }
    for name, call in calls.items():
        with pytest.raises(
            ValueError, match=r"`output_attentions=True` is not supported.*accepts only False"
        ):
            call(output_attentions=True)
        configs = [model.vision_model.config] + ([model.config] if name == "VidLAModel" else [])
        for config in configs:
            config.output_attentions = True
            with pytest.raises(ValueError, match="output_attentions"):
                call()
            config.output_attentions = False
        with pytest.raises(AssertionError, match="ran before"):
            call(output_attentions=False)  # False is accepted (and the tower then runs)


def test_text_tower_attentions_equal_clip(text_inputs):
    """The text tower is CLIP's and keeps its attention maps, checked against CLIPTextModel itself."""
    clip_config = CLIPConfig(text_config=TINY_TEXT).text_config
    clip_text = CLIPTextModel._from_config(clip_config, attn_implementation="eager").eval()
    ours = VidLATextModel._from_config(tiny_config().text_config, attn_implementation="eager").eval()
    ours.load_state_dict(clip_text.state_dict())
    with torch.no_grad():
        expected = clip_text(**text_inputs, output_attentions=True).attentions
        actual = ours(**text_inputs, output_attentions=True).attentions
    assert len(actual) == len(expected) == TINY_TEXT["num_hidden_layers"]
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e)


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


# --- from_pretrained: local paths, corrupt files ----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "./runs/typo",
        "{tmp}/typo",
        "~/vidla-no-such-folder",
        "runs/typo/",
        "runs/exp/final",
        "C:\\runs\\typo",
        ".typo",
    ],
)
@pytest.mark.parametrize("load", [VidLAModel, VidLAVisionModel, VidLAConfig, VidLAVisionConfig, AutoModel])
def test_missing_local_folder_fails_at_once(name, load, tmp_path, monkeypatch):
    """A name that can only be a path must not become a Hub lookup (retries, then a connection or repo-id error)."""
    monkeypatch.chdir(tmp_path)
    name = name.format(tmp=tmp_path)
    expected = os.path.abspath(os.path.expanduser(name))
    start = time.perf_counter()
    if load is AutoModel:
        # AutoModel reads the config with transformers' own AutoConfig first: the VidLA check never runs.
        with pytest.raises(OSError, match="Repo id must"):
            load.from_pretrained(name)
    else:
        with pytest.raises(NoSuchFolderError, match="no such folder") as error:
            load.from_pretrained(name)
        assert expected in str(error.value) and error.value.path == expected
        assert isinstance(error.value, OSError) and isinstance(error.value, ValueError)
    assert time.perf_counter() - start < 5


def test_path_objects_and_hub_ids(tmp_path, model, monkeypatch):
    with pytest.raises(NoSuchFolderError, match="no such folder"):
        VidLAModel.from_pretrained(tmp_path / "typo")  # a pathlib.Path is a path, never a Hub id
    for hub_id in ("openai/clip-vit-base-patch16", "runs/typo", "bert-base-uncased"):
        assert not looks_like_local_path(hub_id) and check_local_folder(hub_id) == hub_id
        with pytest.raises(OSError) as error:  # goes to the Hub lookup (here: not in the local cache)
            VidLAModel.from_pretrained(hub_id, local_files_only=True)
        assert "no such folder" not in str(error.value)
    # `~` is expanded (transformers alone would take "~/saved" for an invalid Hub id).
    monkeypatch.setenv("HOME", str(tmp_path))
    model.save_pretrained(tmp_path / "saved")
    assert type(VidLAModel.from_pretrained("~/saved")) is VidLAModel
    assert VidLAConfig.from_pretrained("~/saved").projection_dim == 16


def _corruptions(data: bytes) -> dict[str, bytes]:
    return {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "header_only": data[:8],
        "not_safetensors": b"PK\x03\x04 a zip file, not weights" * 4,
        "extra_bytes": data + b"\0" * 16,
    }


def _library_refuses(path) -> bool:
    try:
        with safe_open(path, "pt") as file:
            for key in file.keys():  # noqa: SIM118 (safe_open is not iterable)
                file.get_tensor(key)
    except (SafetensorError, OSError):
        return True
    return False


def test_corrupt_weights_file_is_named_in_the_error(model, tmp_path):
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    good = weights.read_bytes()
    assert safetensors_problem(weights) is None and not _library_refuses(weights)
    for name, content in _corruptions(good).items():
        weights.write_bytes(content)
        assert _library_refuses(weights), name  # the reference: safetensors itself cannot read it
        assert safetensors_problem(weights) is not None, name
        for load in (VidLAModel.from_pretrained, AutoModel.from_pretrained):
            with pytest.raises(CorruptCheckpointError, match=f"weights file {weights}: ") as error:
                load(tmp_path)
            assert isinstance(error.value, OSError)


def test_corrupt_shard_is_named_in_the_error(model, tmp_path):
    model.save_pretrained(tmp_path, max_shard_size="50KB")
    shards = sorted(tmp_path.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1
    shards[-1].write_bytes(shards[-1].read_bytes()[:-100])
    with pytest.raises(
        CorruptCheckpointError, match=f"weights file {shards[-1]}: safetensors cannot read it"
    ):
        VidLAModel.from_pretrained(tmp_path)


# --- save_pretrained: permissions, all-or-nothing ---------------------------------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_saved_files_have_the_permissions_of_a_normal_write(model, tmp_path):
    old_umask = os.umask(0o022)
    try:
        reference = tmp_path / "reference.txt"
        reference.write_text("written with open()")  # the reference: what any normal write gets
        model.save_pretrained(tmp_path / "saved")
    finally:
        os.umask(old_umask)
    files = sorted((tmp_path / "saved").iterdir())
    assert "model.safetensors" in {f.name for f in files}
    assert {f.name: oct(_mode(f)) for f in files} == {f.name: oct(_mode(reference)) for f in files}
    assert _mode(reference) == 0o644


def test_saving_over_an_earlier_save_leaves_exactly_the_new_checkpoint(model, tmp_path, text_inputs):
    model.save_pretrained(tmp_path / "fresh")  # the reference: a save into an empty folder
    target = tmp_path / "target"
    randomize_(VidLAModel(tiny_config()), seed=5).save_pretrained(target, max_shard_size="50KB")
    assert len(list(target.glob("model-*.safetensors"))) > 1
    model.save_pretrained(target)
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in (tmp_path / "fresh").iterdir())
    assert (target / "model.safetensors").read_bytes() == (
        tmp_path / "fresh" / "model.safetensors"
    ).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "target"]  # no staging folder left
    loaded = VidLAModel.from_pretrained(target).eval()
    inputs = {"pixel_values_videos": videos(batch=3), **text_inputs}
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits_per_video, model(**inputs).logits_per_video)


FULL_DISK_SCRIPT = """
import json, os, resource, signal, sys
sys.path.insert(0, sys.argv[2])
from conftest import randomize_, tiny_config
from vidla_hf import VidLAModel
target = sys.argv[1]
limit = int(sys.argv[3])
model = randomize_(VidLAModel(tiny_config()), seed=7)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    model.save_pretrained(target)
except Exception as error:
    print(json.dumps({"type": type(error).__name__, "message": str(error), "errno": getattr(error, "errno", None)}))
else:
    print(json.dumps({"type": None}))
"""


def test_full_disk_names_the_folder_and_keeps_the_earlier_save(model, tmp_path):
    target = tmp_path / "model"
    model.save_pretrained(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    limit = len(before["model.safetensors"]) // 2  # config and code files fit, the weights do not
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(target), str(ROOT / "tests"), str(limit)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    error = json.loads(result.stdout.strip().splitlines()[-1])
    assert error["type"] == "CheckpointSaveError" and issubclass(CheckpointSaveError, OSError)
    assert error["errno"] == 27  # EFBIG
    assert f"could not save VidLAModel to {target}: File too large" in error["message"]
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the staging folder is gone
