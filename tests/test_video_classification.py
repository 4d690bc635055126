"""`VidLAForVideoClassification`: loading a VidLA folder, the loss, the zero-shot start (against `VidLAModel` and
the zero-shot evaluation code), the Auto class and remote code in fresh processes, and transformers' own
video-classification pipeline on real MP4 files."""

import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_TOWER, randomize_, run_without_vidla_hf, tiny_config, tiny_vision_config
from transformers import AutoModelForVideoClassification, pipeline
from video_fixtures import frame_pattern, write_mp4

from vidla_hf import (
    VidLAConfig,
    VidLAForVideoClassification,
    VidLAModel,
    VidLAProcessor,
    VidLAVideoProcessor,
    build_clip_tokenizer,
)
from vidla_hf.evaluation import class_embeddings, zero_shot_accuracy

LABELS = ["cooking", "dancing", "diving", "juggling", "surfing"]


def videos(batch: int = 3, seed: int = 0) -> torch.Tensor:
    """Normalised-looking frames for `tiny_config`: (batch, 4 frames, 3, 8, 8)."""
    return torch.randn(batch, 4, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def id2label(labels=LABELS) -> dict[int, str]:
    return dict(enumerate(labels))


@pytest.fixture(scope="module")
def vidla():
    return randomize_(VidLAModel(tiny_config())).eval()


@pytest.fixture(scope="module")
def vidla_folder(vidla, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vidla")
    vidla.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifier(vidla):
    """A classifier with random weights everywhere (its head too), labels `LABELS`."""
    config = tiny_config()
    config.id2label, config.label2id = id2label(), {label: i for i, label in enumerate(LABELS)}
    return randomize_(VidLAForVideoClassification(config), seed=3).eval()


def text_ids(num_texts: int, seed: int = 0) -> torch.Tensor:
    """Token ids for the tiny text tower (vocabulary 99, bos 0, eos 2)."""
    ids = torch.randint(3, 99, (num_texts, 6), generator=torch.Generator().manual_seed(seed))
    ids[:, 0], ids[:, -1] = 0, 2
    return ids


# --- A VidLA folder loads as a classifier --------------------------------------------------------------


def test_a_vidla_folder_loads_with_its_video_tower_and_a_new_head(vidla, vidla_folder):
    model, info = VidLAForVideoClassification.from_pretrained(
        vidla_folder, num_labels=5, id2label=id2label(), output_loading_info=True
    )
    # transformers' loading report: the head is new; the text tower is dropped without a warning
    assert info["missing_keys"] == {"classifier.weight", "classifier.bias"}
    assert info["unexpected_keys"] == set() and info["mismatched_keys"] == set()
    assert not any(
        name.startswith(("text_model", "text_projection", "logit_scale")) for name in model.state_dict()
    )
    expected = {
        name: tensor
        for name, tensor in vidla.state_dict().items()
        if name.startswith(("vision_model.", "visual_projection."))
    }
    loaded = {
        name: tensor for name, tensor in model.state_dict().items() if not name.startswith("classifier.")
    }
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[name], expected[name]) for name in expected)
    config = model.config
    assert (config.num_labels, config.id2label) == (5, id2label())
    assert config.label2id == {label: i for i, label in enumerate(LABELS)}
    # the head scores VidLAModel's own normalised video embedding
    with torch.no_grad():
        embeds = F.normalize(vidla.get_video_features(videos()).pooler_output, dim=-1)
        torch.testing.assert_close(
            model.eval()(pixel_values_videos=videos()).logits, model.classifier(embeds)
        )


def test_num_frames_resizes_the_loaded_video_tower(vidla_folder):
    model = VidLAForVideoClassification.from_pretrained(vidla_folder, num_labels=2, num_frames=6)
    assert model.config.vision_config.num_frames == model.config.num_frames == 6
    assert model.vision_model.embeddings.temporal_embedding.shape[0] == 6


def test_config_num_frames_is_the_video_towers():
    """transformers' video-classification pipeline samples `model.config.num_frames` frames."""
    config = VidLAConfig(vision_config=tiny_vision_config(num_frames=4).to_dict(), num_frames=7)
    assert config.vision_config.num_frames == config.num_frames == 7
    assert "num_frames" not in config.to_dict()
    config.num_frames = 3
    assert config.vision_config.num_frames == 3
    with pytest.raises(ValueError, match="num_frames"):
        config.num_frames = 0
    labelled = VidLAConfig.from_preset("vidla-tiny", id2label={0: "a", 1: "b", 2: "c"})
    assert labelled.num_labels == 3 and labelled.vision_config.num_labels == 2  # top-level, not a tower's


# --- forward: loss, hidden states, gradients ----------------------------------------------------------


def test_loss_is_cross_entropy_and_hidden_states_are_the_towers(classifier):
    labels = torch.tensor([4, 0, 2])
    with torch.no_grad():
        out = classifier(pixel_values_videos=videos(), labels=labels, output_hidden_states=True)
        tower = classifier.vision_model(pixel_values_videos=videos(), output_hidden_states=True)
    assert out.logits.shape == (3, 5)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    assert len(out.hidden_states) == len(tower.hidden_states) == 3  # embeddings + 2 layers
    for actual, expected in zip(out.hidden_states, tower.hidden_states, strict=True):
        torch.testing.assert_close(actual, expected)
    ignored = torch.tensor([4, -100, 2])  # transformers' ignore index
    with torch.no_grad():
        loss = classifier(pixel_values_videos=videos(), labels=ignored).loss
    torch.testing.assert_close(loss, F.cross_entropy(out.logits[[0, 2]], labels[[0, 2]]))
    as_tuple = classifier(pixel_values_videos=videos(), labels=labels, return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.loss)


def test_every_parameter_gets_a_gradient():
    config = tiny_config()
    config.num_labels = 3
    model = randomize_(VidLAForVideoClassification(config)).train()
    model(pixel_values_videos=videos(), labels=torch.tensor([0, 1, 2])).loss.backward()
    without = [name for name, param in model.named_parameters() if param.grad is None or not param.grad.any()]
    assert without == []


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        (torch.tensor([0, 5, 1]), ValueError, r"\[0, 5\).*\[5\]"),
        (torch.tensor([0, -1, 1]), ValueError, r"\[-1\]"),
        (torch.tensor([0, 1]), ValueError, r"shape \(3,\)"),
        ([0, 1, 2], TypeError, "torch.Tensor"),
    ],
)
def test_bad_labels_raise_before_the_video_tower_runs(classifier, monkeypatch, labels, error, match):
    def tripwire(*args, **kwargs):
        raise AssertionError("the video tower ran")

    monkeypatch.setattr(classifier.vision_model, "forward", tripwire)
    with pytest.raises(error, match=match):
        classifier(pixel_values_videos=videos(), labels=labels)


# --- Zero-shot start ----------------------------------------------------------------------------------


def test_zero_shot_start_equals_vidla_logits_per_video(vidla, vidla_folder):
    """Reference: `VidLAModel.forward` itself, with one prompt per class."""
    ids = text_ids(len(LABELS))
    with torch.no_grad():
        reference = vidla(input_ids=ids, pixel_values_videos=videos(4)).logits_per_video  # (videos, classes)
        text_embeds = vidla.get_text_features(input_ids=ids).pooler_output
    classifier = VidLAForVideoClassification.from_zero_shot(vidla, text_embeds, LABELS)
    assert classifier.config.id2label == id2label() and not classifier.training
    assert classifier.config.num_labels == len(LABELS) and vidla.config.num_labels == 2  # vidla's left alone
    with torch.no_grad():
        logits = classifier(pixel_values_videos=videos(4)).logits
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=1e-5)
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))
    # the same head on a classifier loaded from the folder
    loaded = VidLAForVideoClassification.from_pretrained(vidla_folder, id2label=id2label()).eval()
    loaded.init_classifier_from_text(text_embeds, vidla.logit_scale.exp())
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(pixel_values_videos=videos(4)).logits, reference, atol=1e-5, rtol=1e-5
        )
    torch.testing.assert_close(
        loaded.classifier.weight.norm(dim=-1), vidla.logit_scale.exp().expand(5).detach()
    )
    assert not loaded.classifier.bias.any()


def test_zero_shot_start_matches_the_zero_shot_evaluation():
    """Reference: `vidla_hf.evaluation` (prompt templates averaged as CLIP does, then `zero_shot_accuracy`),
    with the real CLIP tokenizer."""
    config = VidLAConfig(
        text_config={**TINY_TOWER, "max_position_embeddings": 77},  # CLIP's vocabulary and special tokens
        vision_config=tiny_vision_config().to_dict(),
        projection_dim=16,
    )
    vidla = randomize_(VidLAModel(config), seed=1).eval()
    processor = VidLAProcessor(
        VidLAVideoProcessor(num_frames=4, size={"shortest_edge": 8}, crop_size={"height": 8, "width": 8}),
        build_clip_tokenizer(),
    )
    templates = ("a video of {}.", "a photo of a person {}.", "a demonstration of {}.")
    embeds = class_embeddings(vidla, processor, LABELS, templates)
    classifier = VidLAForVideoClassification.from_zero_shot(vidla, embeds, LABELS)
    clips, labels = videos(12, seed=5), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    with torch.no_grad():
        video_embeds = vidla.get_video_features(clips).pooler_output
        logits = classifier(pixel_values_videos=clips).logits
    expected = vidla.logit_scale.exp() * F.normalize(video_embeds, dim=-1) @ embeds.T
    torch.testing.assert_close(logits, expected.detach(), atol=1e-5, rtol=1e-5)
    reference = zero_shot_accuracy(video_embeds, embeds, labels, ks=(1, 3))
    ranking = logits.argsort(dim=-1, descending=True)
    measured = {
        f"top{k}": float((ranking[:, :k] == labels[:, None]).any(-1).float().mean() * 100) for k in (1, 3)
    }
    assert measured == pytest.approx(reference)  # (float32 means here, float64 there)


@pytest.mark.parametrize(
    ("text_embeds", "scale", "error", "match"),
    [
        (torch.randn(4, 16), 10.0, ValueError, "4 rows but the classifier has num_labels=5"),
        (torch.randn(5, 8), 10.0, ValueError, r"\(5, 16\), got \(5, 8\)"),
        (torch.randn(5, 16, 1), 10.0, ValueError, "shape"),
        (np.ones((5, 16), np.float32), 10.0, TypeError, "torch.Tensor"),
        (torch.ones(5, 16, dtype=torch.long), 10.0, TypeError, "torch.int64"),
        (torch.full((5, 16), float("nan")), 10.0, ValueError, "NaN"),
        (torch.cat([torch.zeros(1, 16), torch.randn(4, 16)]), 10.0, ValueError, r"rows \[0\]"),
        (torch.randn(5, 16), 0.0, ValueError, "positive"),
        (torch.randn(5, 16), float("inf"), ValueError, "positive"),
        (torch.randn(5, 16), "100", TypeError, "scale"),
    ],
)
def test_init_classifier_from_text_refuses_bad_input(classifier, text_embeds, scale, error, match):
    before = classifier.classifier.weight.clone()
    with pytest.raises(error, match=match):
        classifier.init_classifier_from_text(text_embeds, scale)
    assert torch.equal(classifier.classifier.weight, before)


@pytest.mark.parametrize(
    ("model", "embeds", "labels", "error", "match"),
    [
        ("classifier", torch.randn(2, 16), ["a", "b"], TypeError, "must be a VidLAModel"),
        ("vidla", torch.randn(3, 16), ["a", "b"], ValueError, "3 rows but the classifier has num_labels=2"),
        ("vidla", torch.randn(2, 16), ["a", "a"], ValueError, r"distinct.*\['a'\]"),
        ("vidla", torch.randn(1, 16), ["a"], ValueError, "at least 2"),
        ("vidla", torch.randn(2, 16), "ab", TypeError, "list of class names"),
        ("vidla", torch.randn(2, 16), ["a", ""], TypeError, r"labels\[1\]"),
    ],
)
def test_from_zero_shot_refuses_bad_input_before_building(
    vidla, classifier, monkeypatch, model, embeds, labels, error, match
):
    def tripwire(*args, **kwargs):
        raise AssertionError("a classifier was built")

    monkeypatch.setattr(VidLAForVideoClassification, "__init__", tripwire)
    with pytest.raises(error, match=match):
        VidLAForVideoClassification.from_zero_shot(
            {"vidla": vidla, "classifier": classifier}[model], embeds, labels
        )


# --- Auto class and Hub remote code, in fresh processes -------------------------------------------------

FRESH_PROCESS = """
import json, sys, torch
if sys.argv[2] == "import":
    import vidla_hf  # registers the Auto classes
    remote = {}
else:
    sys.modules["vidla_hf"] = None  # `import vidla_hf` now raises ImportError: only remote code can load it
    remote = {"trust_remote_code": True}
from transformers import AutoModelForVideoClassification, pipeline
folder = sys.argv[1]
model = AutoModelForVideoClassification.from_pretrained(folder, **remote).eval()
with torch.no_grad():
    logits = model(pixel_values_videos=torch.load(folder + "/videos.pt")).logits
scores = pipeline("video-classification", model=folder, **remote)(sys.argv[3], top_k=5)
print(json.dumps([type(model).__module__, type(model).__name__, logits.tolist(), scores]))
"""


@pytest.fixture(scope="module")
def classifier_folder(classifier, tmp_path_factory):
    """A saved classifier with the VidLA processor beside it (8 px, 4 frames), as one would publish it."""
    folder = tmp_path_factory.mktemp("classifier")
    classifier.save_pretrained(folder)
    VidLAProcessor(
        VidLAVideoProcessor(num_frames=4, size={"shortest_edge": 8}, crop_size={"height": 8, "width": 8}),
        build_clip_tokenizer(),
    ).save_pretrained(folder)
    torch.save(videos(), folder / "videos.pt")
    return folder


@pytest.fixture(scope="module")
def mp4s(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mp4")
    return [
        str(write_mp4(folder / f"v{i}.mp4", np.roll(frame_pattern(13 + 4 * i, 24, 32), 5 * i, axis=2)))
        for i in range(2)
    ]


def test_saved_folder_names_the_auto_class(classifier_folder):
    assert type(AutoModelForVideoClassification.from_config(tiny_config())) is VidLAForVideoClassification
    config = json.loads((classifier_folder / "config.json").read_text())
    assert (
        config["auto_map"]["AutoModelForVideoClassification"] == "modeling_vidla.VidLAForVideoClassification"
    )
    assert config["architectures"] == ["VidLAForVideoClassification"]
    assert config["id2label"] == {str(i): label for i, label in enumerate(LABELS)}
    assert {"configuration_vidla.py", "modeling_vidla.py", "video_processing_vidla.py"} <= set(
        os.listdir(classifier_folder)
    )


@pytest.mark.parametrize("mode", ["import", "remote_code"])
def test_a_fresh_process_loads_the_folder_with_the_auto_class_and_the_pipeline(
    classifier, classifier_folder, mp4s, tmp_path, mode
):
    if mode == "import":
        done = subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS, str(classifier_folder), mode, mp4s[0]],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        module, name, logits, scores = json.loads(done.stdout.strip().splitlines()[-1])
        assert module == "vidla_hf.modeling.modeling_vidla"
    else:
        module, name, logits, scores = run_without_vidla_hf(
            FRESH_PROCESS, classifier_folder, mode, mp4s[0], cwd=tmp_path
        )
        assert module.startswith("transformers_modules")
    assert name == "VidLAForVideoClassification"
    with torch.no_grad():
        expected = classifier(pixel_values_videos=videos()).logits
    torch.testing.assert_close(torch.tensor(logits), expected, atol=1e-5, rtol=1e-5)
    in_process = pipeline("video-classification", model=str(classifier_folder))(mp4s[0], top_k=5)
    assert [s["label"] for s in scores] == [s["label"] for s in in_process]
    assert [s["score"] for s in scores] == pytest.approx([s["score"] for s in in_process], abs=1e-6)


# --- transformers' video-classification pipeline --------------------------------------------------------


def decode_all_frames(path: str) -> np.ndarray:
    """Every frame of `path` as (T, H, W, 3) uint8, decoded with PyAV here (not by the processor)."""
    with av.open(path) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_pipeline_on_mp4_files_matches_the_model_run_by_hand(classifier, classifier_folder, mp4s):
    classify = pipeline("video-classification", model=str(classifier_folder))
    assert isinstance(classify.model, VidLAForVideoClassification)
    assert isinstance(classify.video_processor, VidLAVideoProcessor)
    results = classify(mp4s, top_k=5)
    processor = VidLAVideoProcessor.from_pretrained(classifier_folder)
    for path, result in zip(mp4s, results, strict=True):
        scores = [r["score"] for r in result]
        assert sorted(r["label"] for r in result) == sorted(LABELS)
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0)
        frames = decode_all_frames(path)
        inputs = processor(frames, num_frames=classifier.config.num_frames, return_tensors="pt")
        with torch.no_grad():
            probs = classifier(**inputs).logits[0].softmax(-1)
        expected = sorted(zip(probs.tolist(), LABELS, strict=True), reverse=True)
        assert [r["label"] for r in result] == [label for _, label in expected]
        assert scores == pytest.approx([score for score, _ in expected], abs=1e-5)
    top2 = classify(mp4s[0], top_k=2)
    assert top2 == results[0][:2]
    assert len(classify(mp4s[0])) == 5  # transformers' default top_k, capped at num_labels
