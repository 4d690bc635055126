"""ONNX export (`vidla_hf.export`): each tower's graph, run by onnxruntime, against PyTorch's own embeddings
(`F.normalize(get_*_features(...).pooler_output)` and `VidLAModel.forward`'s `*_embeds`), on random inputs and on
real MP4s and CLIP tokens; dynamic batch, text length and (optionally) frames; the folder's safety."""

import copy
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, randomize_, run_without_vidla_hf, tiny_config
from video_fixtures import frame_pattern, write_mp4

from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.export import OnnxEmbedder, OnnxExportError, export_onnx
from vidla_hf.export import onnx as onnx_export
from vidla_hf.modeling import NoSuchFolderError

ATOL = 1e-4  # max |ONNX - PyTorch| on L2-normalised embeddings
FRAMES = 3
SIZE = 64  # the tiny preset's image size
SCRIPT = ROOT / "examples" / "export_onnx.py"


def torch_video_embeds(model, pixels) -> np.ndarray:
    with torch.no_grad():
        return F.normalize(model.get_video_features(torch.as_tensor(pixels)).pooler_output, dim=-1).numpy()


def torch_text_embeds(model, input_ids, attention_mask) -> np.ndarray:
    with torch.no_grad():
        text = model.get_text_features(
            torch.as_tensor(input_ids), torch.as_tensor(attention_mask)
        ).pooler_output
    return F.normalize(text, dim=-1).numpy()


def max_diff(actual, expected) -> float:
    assert actual.shape == expected.shape
    return float(np.abs(actual - expected).max())


def reference_processor(num_frames: int) -> VidLAProcessor:
    """Built here, not read from the export: the torch side of every real-input comparison."""
    video_processor = VidLAVideoProcessor(
        num_frames=num_frames, size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}
    )
    return VidLAProcessor(video_processor, build_clip_tokenizer())


def random_tokens(batch: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """CLIP-like rows: [BOS] random tokens [EOS], the first row padded after a shorter text."""
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(1, 49406, (batch, length))
    input_ids[:, 0], input_ids[:, -1] = 49406, 49407
    attention_mask = np.ones((batch, length), np.int64)
    if batch > 1:
        input_ids[0, length // 2], input_ids[0, length // 2 + 1 :] = 49407, 0
        attention_mask[0, length // 2 + 1 :] = 0
    return input_ids, attention_mask


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny_model():
    # Random weights everywhere (also the zero-initialised temporal ones), so no path is trivial.
    return randomize_(VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=FRAMES)), std=0.05).eval()


@pytest.fixture(scope="module")
def fixed_export(tiny_model, tmp_path_factory):
    tiny_model.train()  # exported in eval mode, and left in the mode it was in
    export = export_onnx(tiny_model, tmp_path_factory.mktemp("fixed") / "onnx")
    assert tiny_model.training
    tiny_model.eval()
    return export


@pytest.fixture(scope="module")
def embedder(fixed_export):
    return OnnxEmbedder(fixed_export.folder)


@pytest.fixture(scope="module")
def mst_model():
    """Non-default hierarchy: 3 [MST] levels of 1 token, temporal scale 3, patches attending to [CLS]."""
    config = VidLAConfig.from_preset(
        "vidla-tiny",
        num_frames=4,
        mst_levels=3,
        mst_tokens_per_level=1,
        mst_temporal_scale=3,
        patch_attends_cls=True,
    )
    return randomize_(VidLAModel(config), std=0.05, seed=1).eval()


@pytest.fixture(scope="module")
def dynamic_export(mst_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dynamic") / "onnx"
    folder.mkdir()  # an empty folder is as good as a new one
    return export_onnx(mst_model, folder, dynamic_frames=True)


@pytest.fixture(scope="module")
def real_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [
        write_mp4(folder / "long.mp4", frame_pattern(20, 48, 80)),
        write_mp4(folder / "short.mp4", frame_pattern(2, 64, 64)),  # fewer frames than sampled: repeats
    ]


def test_video_graph_matches_pytorch_at_two_batch_sizes(tiny_model, embedder):
    for batch in (1, 5):  # the graph was traced at batch 2
        pixels = torch.randn(batch, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(batch))
        onnx_embeds = embedder.run_video_tower(pixels.numpy())
        assert max_diff(onnx_embeds, torch_video_embeds(tiny_model, pixels)) < ATOL
        with torch.no_grad():  # what the model's own forward calls the video embeddings
            forward = tiny_model(input_ids=torch.tensor([[49406, 49407]] * batch), pixel_values_videos=pixels)
        assert max_diff(onnx_embeds, forward.video_embeds.numpy()) < ATOL
        np.testing.assert_allclose(np.linalg.norm(onnx_embeds, axis=1), 1.0, atol=1e-5)


def test_text_graph_matches_pytorch_at_two_lengths_and_batch_sizes(tiny_model, embedder):
    for batch, length in ((1, 6), (3, 77)):
        input_ids, attention_mask = random_tokens(batch, length, seed=length)
        onnx_embeds = embedder.run_text_tower(input_ids, attention_mask)
        assert max_diff(onnx_embeds, torch_text_embeds(tiny_model, input_ids, attention_mask)) < ATOL
        with torch.no_grad():
            forward = tiny_model(
                input_ids=torch.as_tensor(input_ids),
                attention_mask=torch.as_tensor(attention_mask),
                pixel_values_videos=torch.zeros(1, FRAMES, 3, SIZE, SIZE),
            )
        assert max_diff(onnx_embeds, forward.text_embeds.numpy()) < ATOL


def test_real_mp4s_and_clip_tokens_match_pytorch(tiny_model, embedder, real_videos):
    processor = reference_processor(FRAMES)
    pixels = processor(videos=[str(path) for path in real_videos], return_tensors="pt")["pixel_values_videos"]
    expected_videos = torch_video_embeds(tiny_model, pixels)
    sources = [str(real_videos[0]), real_videos[1].read_bytes()]  # a path and bytes
    for batch_size in (1, 2):
        assert max_diff(embedder.embed_videos(sources, batch_size=batch_size), expected_videos) < ATOL
    assert max_diff(embedder.embed_videos(str(real_videos[1])), expected_videos[1:]) < ATOL  # one video

    texts = [
        "a white bar moves to the right",
        "",
        " ".join(["a long subtitle"] * 60),
    ]  # the last is cut to 77
    tokens = processor(text=texts, return_tensors="pt")
    assert tokens["input_ids"].shape[1] == 77
    expected_texts = torch_text_embeds(tiny_model, tokens["input_ids"], tokens["attention_mask"])
    for batch_size in (1, 2):  # padded to 7, 2 and 77 tokens
        assert max_diff(embedder.embed_texts(texts, batch_size=batch_size), expected_texts) < ATOL

    # Retrieval is a dot product: logit_scale times it is the model's own logits.
    with torch.no_grad():
        logits = tiny_model(pixel_values_videos=pixels, **tokens).logits_per_text.numpy()
    onnx_logits = embedder.logit_scale * embedder.embed_texts(texts) @ embedder.embed_videos(sources).T
    np.testing.assert_allclose(onnx_logits, logits, atol=ATOL * embedder.logit_scale * 2)


SERVE_WITHOUT_VIDLA_HF = """
import json, sys
import onnxruntime
from transformers import AutoProcessor

folder, video = sys.argv[1], sys.argv[2]
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)  # the processor's own code files
batch = processor(text=["a white bar moves to the right"], videos=[video], return_tensors="np")
towers = {name: onnxruntime.InferenceSession(f"{folder}/{name}.onnx") for name in ("video_tower", "text_tower")}
videos = towers["video_tower"].run(None, {"pixel_values_videos": batch["pixel_values_videos"]})[0]
texts = towers["text_tower"].run(None, {k: batch[k] for k in ("input_ids", "attention_mask")})[0]
print(json.dumps({"videos": videos.tolist(), "texts": texts.tolist()}))
"""


def test_the_export_folder_serves_without_vidla_hf(tiny_model, fixed_export, real_videos, tmp_path):
    """Plain onnxruntime and transformers' AutoProcessor on the folder, where `import vidla_hf` fails."""
    out = run_without_vidla_hf(SERVE_WITHOUT_VIDLA_HF, fixed_export.folder, real_videos[0], cwd=tmp_path)
    processor = reference_processor(FRAMES)
    pixels = processor(videos=[str(real_videos[0])], return_tensors="pt")["pixel_values_videos"]
    tokens = processor(text=["a white bar moves to the right"], return_tensors="pt")
    assert max_diff(np.array(out["videos"], np.float32), torch_video_embeds(tiny_model, pixels)) < ATOL
    expected_texts = torch_text_embeds(tiny_model, tokens["input_ids"], tokens["attention_mask"])
    assert max_diff(np.array(out["texts"], np.float32), expected_texts) < ATOL


def test_graphs_and_metadata_describe_the_export(tiny_model, fixed_export, embedder):
    video_input = embedder.video_session.get_inputs()[0]
    assert (video_input.name, video_input.shape) == ("pixel_values_videos", ["batch", FRAMES, 3, SIZE, SIZE])
    assert [(v.name, v.shape) for v in embedder.text_session.get_inputs()] == [
        ("input_ids", ["batch", "sequence"]),
        ("attention_mask", ["batch", "sequence"]),
    ]
    assert [(v.name, v.shape) for v in embedder.video_session.get_outputs()] == [
        ("video_embeds", ["batch", 128])
    ]
    assert [(v.name, v.shape) for v in embedder.text_session.get_outputs()] == [
        ("text_embeds", ["batch", 128])
    ]

    metadata = json.loads(fixed_export.metadata.read_text())
    graph = onnx.load(str(fixed_export.video_tower), load_external_data=False)
    assert metadata["video_tower"]["opset"] == next(o.version for o in graph.opset_import if o.domain == "")
    assert metadata["video_tower"]["inputs"] == [
        {"name": "pixel_values_videos", "shape": ["batch", FRAMES, 3, SIZE, SIZE], "dtype": "float32"}
    ]
    assert metadata["text_tower"]["inputs"][0] == {
        "name": "input_ids",
        "shape": ["batch", "sequence"],
        "dtype": "int64",
    }
    assert (metadata["num_frames"], metadata["dynamic_frames"], metadata["max_text_length"]) == (
        FRAMES,
        False,
        77,
    )
    assert metadata["logit_scale"] == pytest.approx(tiny_model.logit_scale.exp().item())
    assert max(metadata["verification"]["max_abs_difference"].values()) < ATOL
    assert sorted(metadata["files"]) == sorted(folder_digest(fixed_export.folder))  # every file, listed
    assert [p.name for p in fixed_export.folder.parent.iterdir()] == ["onnx"]  # no staging folder left
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(fixed_export.folder.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert embedder.processor.video_processor.num_frames == FRAMES


def test_fixed_frame_export_refuses_other_frame_counts_and_bad_arrays(embedder, real_videos):
    with pytest.raises(
        ValueError, match=r"has 4 frames but this export takes exactly 3 .*dynamic_frames=True"
    ):
        embedder.run_video_tower(np.zeros((1, 4, 3, SIZE, SIZE), np.float32))
    with pytest.raises(ValueError, match=r"`num_frames=5`: this export takes exactly 3"):
        embedder.embed_videos(str(real_videos[0]), num_frames=5)
    with pytest.raises(TypeError, match="raw pixels"):
        embedder.run_video_tower(np.zeros((1, FRAMES, 3, SIZE, SIZE), np.uint8))
    with pytest.raises(ValueError, match=r"must have shape \(batch, 3, 3, 64, 64\), got \(1, 3, 64, 64, 3\)"):
        embedder.run_video_tower(np.zeros((1, FRAMES, SIZE, SIZE, 3), np.float32))
    with pytest.raises(ValueError, match="longer than the text tower's 77"):
        embedder.run_text_tower(*random_tokens(1, 78, seed=0))
    with pytest.raises(ValueError, match="must both have shape"):
        embedder.run_text_tower(np.ones((2, 5), np.int64), np.ones((2, 4), np.int64))
    with pytest.raises(ValueError, match="`videos` is empty"):
        embedder.embed_videos([])


def test_dynamic_frames_match_pytorch_at_any_frame_count(mst_model, dynamic_export):
    embedder = OnnxEmbedder(dynamic_export.folder)
    assert embedder.video_session.get_inputs()[0].shape == ["batch", "frames", 3, SIZE, SIZE]
    generator = torch.Generator().manual_seed(0)
    # 4 is the temporal table's own length (used as it is in PyTorch, interpolated to itself in the graph).
    for frames in (1, 2, 4, 5, 9):
        for batch in (1, 3):
            pixels = torch.randn(batch, frames, 3, SIZE, SIZE, generator=generator)
            assert (
                max_diff(embedder.run_video_tower(pixels.numpy()), torch_video_embeds(mst_model, pixels))
                < ATOL
            )
    metadata = json.loads(dynamic_export.metadata.read_text())
    assert (metadata["num_frames"], metadata["dynamic_frames"]) == (4, True)


def test_dynamic_export_embeds_real_videos_at_a_chosen_frame_count(mst_model, dynamic_export, real_videos):
    embedder = OnnxEmbedder(dynamic_export.folder)
    sources = [str(path) for path in real_videos]
    for frames in (None, 6):  # the export's 4, and 6 chosen per call
        pixels = reference_processor(frames or 4)(videos=sources, return_tensors="pt")["pixel_values_videos"]
        assert (
            max_diff(embedder.embed_videos(sources, num_frames=frames), torch_video_embeds(mst_model, pixels))
            < ATOL
        )


def test_output_dir_is_refused_unless_new_empty_or_an_earlier_export(tiny_model, fixed_export, tmp_path):
    foreign = tmp_path / "run"
    foreign.mkdir()
    (foreign / "model.safetensors").write_bytes(b"weights")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="not written by export_onnx .* also with overwrite=True"):
            export_onnx(tiny_model, foreign, overwrite=overwrite)
    assert folder_digest(foreign) == {"model.safetensors": hashlib.sha256(b"weights").hexdigest()}

    earlier = tmp_path / "earlier"
    shutil.copytree(fixed_export.folder, earlier)
    with pytest.raises(ValueError, match="holds an earlier ONNX export; pass overwrite=True"):
        export_onnx(tiny_model, earlier)
    (earlier / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds 1 file\(s\) that export_onnx did not write \(notes.txt\)"):
        export_onnx(tiny_model, earlier, overwrite=True)
    with pytest.raises(ValueError, match="is a file or a link"):
        export_onnx(tiny_model, earlier / "notes.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "run"]  # nothing else written


def test_a_failed_export_leaves_the_folder_as_it_was(tiny_model, fixed_export, tmp_path, monkeypatch):
    target = tmp_path / "onnx"
    shutil.copytree(fixed_export.folder, target)
    before = folder_digest(target)
    monkeypatch.setattr(onnx_export, "_max_abs_difference", lambda *args: 1.0)  # as if the graph were wrong
    with pytest.raises(
        OnnxExportError, match=r"video tower differs from PyTorch by 1 .* nothing was written"
    ):
        export_onnx(tiny_model, target, overwrite=True)
    assert folder_digest(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["onnx"]  # the staging folder is gone


def test_an_axis_that_comes_out_fixed_is_an_error(tmp_path, monkeypatch):
    """The check that keeps a graph from silently losing its dynamic batch (or frames) axis."""
    real_export = torch.export.export
    monkeypatch.setattr(
        torch.export, "export", lambda module, args, **kwargs: real_export(module, args)
    )  # static
    axes = {"input": {0: torch.export.Dim("batch", min=1)}}
    with pytest.raises(
        OnnxExportError, match=r"fixed axis 0 of `input` to 3; it should be dynamic \(batch\)"
    ):
        onnx_export._to_onnx(
            torch.nn.Linear(4, 2).eval(), [{"input": torch.randn(3, 4)}], axes, "y", tmp_path / "a.onnx"
        )


def test_bad_arguments_are_refused_before_any_work(tiny_model, tmp_path):
    target = tmp_path / "onnx"
    with pytest.raises(NoSuchFolderError, match="no such model folder: .*missing-model"):
        export_onnx(tmp_path / "missing-model", target)
    with pytest.raises(TypeError, match="must be a VidLAModel or a model folder, got dict"):
        export_onnx({}, target)
    with pytest.raises(ValueError, match="`num_frames` must be a positive int, got 0"):
        export_onnx(tiny_model, target, num_frames=0)
    with pytest.raises(ValueError, match="torch.float16 parameters on cpu"):
        export_onnx(copy.deepcopy(tiny_model).half(), target)
    with pytest.raises(ValueError, match="49408 tokens but the text tower embeds 99"):
        export_onnx(VidLAModel(tiny_config()), target)  # CLIP's tokenizer would overflow a 99-token table
    with pytest.raises(ValueError, match="makes 224x224 frames but the video tower takes 64x64"):
        export_onnx(
            tiny_model, target, processor=VidLAProcessor(VidLAVideoProcessor(), build_clip_tokenizer())
        )
    assert not target.exists()
    with pytest.raises(NoSuchFolderError, match="no such ONNX export folder"):
        OnnxEmbedder(tmp_path / "missing")
    with pytest.raises(ValueError, match="is not an ONNX export folder: it has no onnx_export.json"):
        OnnxEmbedder(tmp_path)


@pytest.fixture(scope="module")
def script_export(fixed_export, tmp_path_factory):
    """examples/export_onnx.py on a saved folder (no temporal attention, no [MST] tokens, a 4-frame table exported
    at `--num_frames 2`; its own processor, sampling 7 frames with a tokenizer that declares no context) over a
    copy of an earlier export, which `--overwrite` replaces (refused without it: tested above)."""
    root = tmp_path_factory.mktemp("script")
    config = VidLAConfig.from_preset(
        "vidla-tiny", num_frames=4, mst_levels=0, use_local_temporal_attention=False
    )
    model = randomize_(VidLAModel(config), std=0.05, seed=2).eval()
    model.save_pretrained(root / "model")
    processor = reference_processor(7)
    processor.video_processor.video_backend = "pyav"  # recognisable: the folder's processor, not a default
    processor.tokenizer.model_max_length = int(1e30)  # transformers' "no limit": the export cuts at 77
    processor.save_pretrained(root / "model")
    shutil.copytree(fixed_export.folder, root / "onnx")
    command = [
        sys.executable,
        str(SCRIPT),
        "--model",
        str(root / "model"),
        "--output_dir",
        str(root / "onnx"),
    ]
    done = subprocess.run([*command, "--num_frames", "2", "--overwrite"], capture_output=True, text=True)
    return model, root / "onnx", done


def test_the_script_exports_a_saved_folder_with_its_processor(script_export, real_videos):
    model, folder, done = script_export
    assert done.returncode == 0, done.stderr
    assert f"{folder / 'video_tower.onnx'}: pixel_values_videos ['batch', 2, 3, 64, 64]; opset" in done.stdout
    embedder = OnnxEmbedder(folder)
    assert embedder.processor.video_processor.video_backend == "pyav"
    assert embedder.processor.video_processor.num_frames == 2  # set to the export's, for direct use too
    metadata = json.loads((folder / "onnx_export.json").read_text())
    assert metadata["num_frames"] == 2 and sorted(metadata["files"]) == sorted(folder_digest(folder))
    processor = reference_processor(2)
    sources = [str(path) for path in real_videos]
    pixels = processor(videos=sources, return_tensors="pt")["pixel_values_videos"]
    assert max_diff(embedder.embed_videos(sources), torch_video_embeds(model, pixels)) < ATOL
    texts = ["a short one", " ".join(["a long subtitle"] * 60)]
    tokens = processor(text=texts, return_tensors="pt")  # CLIP's tokenizer, cut at 77
    expected = torch_text_embeds(model, tokens["input_ids"], tokens["attention_mask"])
    assert max_diff(embedder.embed_texts(texts), expected) < ATOL
