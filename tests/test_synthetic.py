import glob
import json
from pathlib import Path

import datasets
import numpy as np
import pytest

from vidla_hf.data.synthetic import SCALES, caption_for, generate_synthetic_dataset, render_clip, sample_clip
from vidla_hf.processing import read_video


def test_generation_is_deterministic_atomic_and_reused(tmp_path):
    sizes = {"train": 12, "val": 4}
    first = generate_synthetic_dataset(tmp_path / "a", sizes, clips_per_shard=5, seed=3)
    second = generate_synthetic_dataset(tmp_path / "b", sizes, clips_per_shard=5, seed=3)
    assert [len(first[s]) for s in ("train", "val")] == [3, 1]
    for a, b in zip(first["train"] + first["val"], second["train"] + second["val"], strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    manifest = tmp_path / "a" / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    assert generate_synthetic_dataset(tmp_path / "a", sizes, clips_per_shard=5, seed=3) == first
    assert manifest.stat().st_mtime_ns == stamp, "a finished dataset is reused, not rewritten"
    assert not glob.glob(str(tmp_path / "a" / "*.partial"))
    other = generate_synthetic_dataset(tmp_path / "c", sizes, clips_per_shard=5, seed=4)
    assert Path(other["train"][0]).read_bytes() != Path(first["train"][0]).read_bytes()


def test_readable_with_datasets_webdataset_streaming(tmp_path):
    files = generate_synthetic_dataset(tmp_path, {"train": 6, "val": 2}, clips_per_shard=3)
    stream = datasets.load_dataset(
        "webdataset", data_files={"train": files["train"]}, split="train", streaming=True
    )
    stream = stream.cast_column("mp4", datasets.Video(decode=False))
    examples = list(stream)
    assert len(examples) == 6
    for example in examples:
        meta = example["json"]
        expected = ", then ".join(
            f"a {e['color']} {e['shape']} moves {e['direction']}" for e in meta["events"]
        )
        assert meta["caption"] == expected
        assert len(meta["events"]) == SCALES[meta["scale"]]
        frames, metadata = read_video(example["mp4"]["bytes"])
        assert frames.shape == (8 * len(meta["events"]), 64, 64, 3)


def test_texts_describe_events_in_order_in_two_wordings():
    rng = np.random.default_rng(0)
    clips = [sample_clip(f"k{i}", rng) for i in range(300)]
    assert {c.scale for c in clips} == set(SCALES)
    for clip in clips:
        assert len(clip.events) == SCALES[clip.scale]
        phrases = clip.caption.split(", then ")
        assert len(phrases) == len(clip.events)
        for phrase, event in zip(phrases, clip.events, strict=True):
            assert phrase == f"a {event.color} {event.shape} moves {event.direction}"
        assert clip.subtitle != clip.caption
        positions = [clip.subtitle.index(f"the {e.color} ") for e in clip.events[:1]]
        assert positions[0] >= 0 and all(e.color in clip.subtitle for e in clip.events)
    # Order matters: the same events reversed give another caption and other frames.
    long_clip = next(c for c in clips if c.scale == "long" and c.events != c.events[::-1])
    reversed_clip = type(long_clip)(
        "r", "long", long_clip.events[::-1], caption_for(long_clip.events[::-1]), ""
    )
    assert reversed_clip.caption != long_clip.caption
    frames = render_clip(long_clip, np.random.default_rng(1))
    reversed_frames = render_clip(reversed_clip, np.random.default_rng(1))
    assert not np.array_equal(frames, reversed_frames)
    assert (
        np.abs(frames.astype(float).mean(0) - reversed_frames.astype(float).mean(0)).mean()
        < np.abs(frames.astype(float) - reversed_frames.astype(float)).mean()
    ), "frame averages are closer than the videos: order carries the difference"


def test_manifest_lists_the_shards(tmp_path):
    files = generate_synthetic_dataset(tmp_path, {"train": 3}, clips_per_shard=2)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["files"]["train"] == [p.split("/")[-1] for p in files["train"]]


def test_a_smaller_regeneration_leaves_no_stale_shards_and_readers_go_by_the_manifest(tmp_path):
    from vidla_hf.data import resolve_tar_shards

    generate_synthetic_dataset(tmp_path, {"train": 12}, clips_per_shard=3)  # train-00000 .. 00003
    (tmp_path / "notes.txt").write_text("mine")
    smaller = generate_synthetic_dataset(tmp_path, {"train": 4}, clips_per_shard=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "manifest.json",
        "notes.txt",
        "train-00000.tar",
        "train-00001.tar",
    ]
    assert (tmp_path / "notes.txt").read_text() == "mine"
    # The new set is the one a fresh folder gets, byte for byte.
    fresh = generate_synthetic_dataset(tmp_path / "fresh", {"train": 4}, clips_per_shard=2)
    for a, b in zip(smaller["train"], fresh["train"], strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    # A shard the manifest does not list is never read.
    Path(smaller["train"][0]).with_name("train-00007.tar").write_bytes(Path(smaller["train"][0]).read_bytes())
    assert resolve_tar_shards(str(tmp_path), "train") == smaller["train"]


def test_shards_that_are_not_ours_are_never_overwritten(tmp_path):
    (tmp_path / "train-00000.tar").write_bytes(b"the user's own shard")
    with pytest.raises(ValueError, match=r"train-00000\.tar.*overwrite"):
        generate_synthetic_dataset(tmp_path, {"train": 2}, clips_per_shard=2)
    assert (tmp_path / "train-00000.tar").read_bytes() == b"the user's own shard"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-00000.tar"]
    generate_synthetic_dataset(tmp_path, {"train": 2}, clips_per_shard=2, overwrite=True)
    assert (tmp_path / "train-00000.tar").read_bytes() != b"the user's own shard"


def test_a_manifest_this_generator_did_not_write_is_never_trusted(tmp_path):
    victim = tmp_path / "precious.tar"
    victim.write_bytes(b"not ours")
    folder = tmp_path / "curated"
    folder.mkdir()
    foreign = {"config": {"version": "curated-1"}, "files": {"train": ["../precious.tar"]}}
    (folder / "manifest.json").write_text(json.dumps(foreign))
    with pytest.raises(ValueError, match="not written by the synthetic generator"):
        generate_synthetic_dataset(folder, {"train": 2}, clips_per_shard=2)
    assert victim.read_bytes() == b"not ours"
    assert json.loads((folder / "manifest.json").read_text()) == foreign
    generate_synthetic_dataset(folder, {"train": 2}, clips_per_shard=2, overwrite=True)
    assert victim.read_bytes() == b"not ours", "a listed name outside the folder is never removed"


def test_shards_of_a_generation_that_crashed_midway_are_still_ours(tmp_path):
    generate_synthetic_dataset(tmp_path, {"train": 4}, clips_per_shard=2)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    # The state a crash between withdrawing the old manifest and writing the new one leaves behind.
    (tmp_path / "manifest.pending.json").write_text(json.dumps(manifest))
    (tmp_path / "manifest.json").unlink()
    files = generate_synthetic_dataset(tmp_path, {"train": 4}, clips_per_shard=2)
    assert [Path(f).name for f in files["train"]] == ["train-00000.tar", "train-00001.tar"]
    assert not (tmp_path / "manifest.pending.json").exists()


def test_a_folder_from_before_manifests_named_their_dataset_is_still_ours_and_reused(tmp_path):
    """Manifests of earlier releases have no `dataset` key in their config: the folder is reused as it is, not
    refused as someone else's nor regenerated."""
    files = generate_synthetic_dataset(tmp_path, {"train": 2}, clips_per_shard=2)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"].pop("dataset") == "synthetic"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))  # the earlier release's manifest
    shard = Path(files["train"][0])
    stamps = shard.stat().st_mtime_ns, (tmp_path / "manifest.json").stat().st_mtime_ns
    assert generate_synthetic_dataset(tmp_path, {"train": 2}, clips_per_shard=2) == files
    assert (shard.stat().st_mtime_ns, (tmp_path / "manifest.json").stat().st_mtime_ns) == stamps
    # With another config it is regenerated in place: its shards were ours to replace.
    bigger = generate_synthetic_dataset(tmp_path, {"train": 4}, clips_per_shard=2)
    assert [Path(f).name for f in bigger["train"]] == ["train-00000.tar", "train-00001.tar"]


def test_split_shards_cuts_items_in_order_under_shard_names(tmp_path):
    from vidla_hf.data.shard_sets import SHARD_NAME, split_shards

    written = {}
    pairs = split_shards(
        "val", list("abcde"), 2, lambda path, items, index: written.update({path.name: (items, index)})
    )
    assert [name for name, _ in pairs] == ["val-00000.tar", "val-00001.tar", "val-00002.tar"]
    assert all(SHARD_NAME.match(name) for name, _ in pairs)
    for name, write in pairs:
        write(tmp_path / name)
    assert written == {
        "val-00000.tar": (["a", "b"], 0),
        "val-00001.tar": (["c", "d"], 1),
        "val-00002.tar": (["e"], 2),
    }
