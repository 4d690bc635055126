"""Batch embedding: `VideoEmbedder` against the model run by hand, and the Ray job (local mode) on a folder
of real MP4s (one corrupt) and on WebDataset shards, resumable, into Parquet that a FAISS index reads."""

import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.data.mp4 import write_mp4
from vidla_hf.data.synthetic import generate_synthetic_dataset
from vidla_hf.evaluation import VideoIndex
from vidla_hf.evaluation.batch_embedding import VideoEmbedder
from vidla_hf.evaluation.embed_job import embed_library

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=2)).save_pretrained(folder)
    VidLAProcessor(
        VidLAVideoProcessor(num_frames=2, size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}),
        build_clip_tokenizer(),
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(0)
    for i in range(5):
        write_mp4(folder / f"clip{i}.mp4", rng.integers(0, 255, (6, 32, 48, 3), dtype=np.uint8), fps=6)
    (folder / "sub").mkdir()
    write_mp4(folder / "sub" / "clip5.mp4", np.full((6, 32, 32, 3), 200, np.uint8), fps=6)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return folder


def by_hand(model_dir, paths):
    """The reference: the processor and `get_video_features` called directly, one video at a time."""
    model = VidLAModel.from_pretrained(model_dir).eval()
    processor = VidLAProcessor.from_pretrained(model_dir)
    with torch.inference_mode():
        rows = [
            model.get_video_features(**processor(videos=[str(p)], return_tensors="pt")).pooler_output
            for p in paths
        ]
    return F.normalize(torch.cat(rows), dim=-1).numpy()


def test_the_embedder_equals_the_model_run_by_hand_and_reports_bad_videos(model_dir, videos):
    paths = sorted(videos.glob("clip*.mp4"))
    embedder = VideoEmbedder(str(model_dir), batch_size=2)
    out = embedder({"video": [str(p) for p in paths] + [str(videos / "broken.mp4")], "id": list(range(6))})
    np.testing.assert_allclose(out["embedding"][:5], by_hand(model_dir, paths), atol=1e-5)
    assert out["ok"].tolist() == [True] * 5 + [False] and out["error"][5] and not out["embedding"][5].any()
    texts = embedder({"text": ["a red circle", "a blue square"]})["embedding"]
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    # the same callable in datasets.map(batched=True)
    dataset = datasets.Dataset.from_dict({"video": [str(p) for p in paths]})
    mapped = dataset.map(embedder, batched=True, batch_size=2)
    np.testing.assert_allclose(np.array(mapped["embedding"]), out["embedding"][:5], atol=1e-6)
    with pytest.raises(ValueError, match="exactly one of"):
        embedder({"video": ["x"], "text": ["y"]})


def test_the_ray_job_embeds_a_folder_lists_bad_videos_and_resumes(ray_session, model_dir, videos, tmp_path):
    output = tmp_path / "embeddings"
    counts = embed_library(str(videos), str(model_dir), output, part_size=3, num_cpus=2)
    assert counts == {"parts": 3, "already_done": 0, "embedded": 6, "skipped": 1}
    table = pq.read_table(sorted(output.glob("part-*.parquet"))).to_pylist()
    ids = [row["id"] for row in table]
    assert sorted(ids) == ["clip0", "clip1", "clip2", "clip3", "clip4", "sub/clip5"]
    reference = by_hand(model_dir, [videos / f"{i}.mp4" for i in ids])
    np.testing.assert_allclose(np.array([row["embedding"] for row in table]), reference, atol=1e-5)
    skipped = [e for p in sorted(output.glob("part-*.skipped.json")) for e in json.loads(p.read_text())]
    assert [e["id"] for e in skipped] == ["broken"] and skipped[0]["error"]
    # the Parquet output is a gallery: each video finds itself
    index = VideoIndex.from_parquet(output)
    assert [row[0] for row in index.search(reference, k=1)[1]] == ids
    # rerun: nothing to do; a part lost is redone alone
    assert embed_library(str(videos), str(model_dir), output, part_size=3)["already_done"] == 3
    (output / "part-00001.parquet").unlink()
    again = embed_library(str(videos), str(model_dir), output, part_size=3)
    assert (again["already_done"], again["parts"]) == (2, 3)
    assert pq.read_table(sorted(output.glob("part-*.parquet"))).to_pylist() == table


def test_the_ray_job_embeds_shards_with_their_metadata(ray_session, model_dir, tmp_path):
    shards = tmp_path / "shards"
    generate_synthetic_dataset(shards, {"train": 4}, clips_per_shard=2)
    output = tmp_path / "embeddings"
    counts = embed_library(str(shards), str(model_dir), output)
    assert counts == {"parts": 2, "already_done": 0, "embedded": 4, "skipped": 0}
    rows = pq.read_table(sorted(output.glob("part-*.parquet"))).to_pylist()
    assert all(json.loads(row["metadata"])["caption"] for row in rows)


def test_folders_it_does_not_own_or_another_model_are_refused_before_ray(model_dir, videos, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not written by the embedding job"):
        embed_library(str(videos), str(model_dir), theirs)
    with pytest.raises(ValueError, match="neither a model folder"):
        embed_library(str(videos), str(tmp_path / "no-model"), tmp_path / "out")
    with pytest.raises(ValueError, match="No video found"):
        embed_library(str(theirs), str(model_dir), tmp_path / "out")
    assert (theirs / "notes.txt").read_text() == "keep" and not (tmp_path / "out").exists()
    command = [sys.executable, str(ROOT / "examples" / "embed.py"), "--model", str(model_dir)]
    result = subprocess.run(
        [*command, "--videos", str(videos), "--output_dir", str(theirs)], capture_output=True, text=True
    )
    assert result.returncode != 0 and "not written by the embedding job" in result.stderr
