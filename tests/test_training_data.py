"""Streamed training data: corrupt samples skipped and counted across DataLoader workers, broken streams stop."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch

from vidla_hf import VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.data import CorruptStreamError, VideoTextStream, collate_video_text, load_video_text_stream
from vidla_hf.data.mp4 import encode_mp4
from vidla_hf.data.synthetic import FPS, render_clip, sample_clip


@pytest.fixture(scope="module")
def processor():
    size = {"shortest_edge": 32}
    return VidLAProcessor(
        VidLAVideoProcessor(size=size, crop_size={"height": 32, "width": 32}), build_clip_tokenizer()
    )


def add(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


BAD_KINDS = ("undecodable_video", "bad_json", "missing_text", "non_utf8_text")


def write_shards(folder, num_shards=2, per_shard=10, bad_every=10, seed=0):
    """Shards of synthetic samples in which every `bad_every`-th sample is corrupt in one of four ways."""
    rng = np.random.default_rng(seed)
    good, bad = set(), set()
    paths = []
    for shard in range(num_shards):
        path = folder / f"train-{shard:05d}.tar"
        with tarfile.open(path, "w") as archive:
            for i in range(per_shard):
                key = f"s{shard}-{i:03d}"
                clip = sample_clip(key, rng, scale="short")
                video = encode_mp4(render_clip(clip, rng), FPS)
                meta = json.dumps({"caption": clip.caption, "subtitle": clip.subtitle}).encode()
                number = shard * per_shard + i
                if number % bad_every == bad_every - 1:
                    kind = BAD_KINDS[(number // bad_every) % len(BAD_KINDS)]
                    if kind == "undecodable_video":
                        video = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
                    elif kind == "bad_json":
                        meta = b'{"caption": "a red'
                    elif kind == "missing_text":
                        meta = b'{"scale": "short"}'
                    else:
                        meta = b'{"caption": "' + bytes([0xFF, 0xFE]) + b'"}'
                    bad.add(key)
                else:
                    good.add(key)
                add(archive, f"{key}.mp4", video)
                add(archive, f"{key}.json", meta)
        paths.append(path)
    return paths, good, bad


def one_epoch(stream, num_workers, batch_size=1):
    loader = torch.utils.data.DataLoader(
        stream, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_video_text
    )
    keys, skipped_keys, workers_done = [], [], set()
    for batch in loader:
        keys += [k for k, p in zip(batch["keys"], batch["positions"], strict=True) if p[1] == 0]
        # A corrupt sample is reported with the next good one, which may come from the next epoch.
        skipped_keys += batch["skipped_keys"]
        workers_done |= {p[0] for p in batch["positions"] if p[1] > 0}
        if len(workers_done) == max(num_workers, 1):
            break
    return keys, skipped_keys


def test_corrupt_samples_are_skipped_and_counted_with_two_workers(tmp_path, processor):
    _, good, bad = write_shards(tmp_path)
    assert len(bad) == 2 and len(good) == 18  # 10 % bad
    stream = VideoTextStream(load_video_text_stream(str(tmp_path), "train"), processor, num_frames=4)
    keys, skipped = one_epoch(stream, num_workers=2)
    assert sorted(keys) == sorted(good), "exactly the good samples, each once"
    assert sorted(skipped) == sorted(bad), "and every corrupt one counted once"


def test_every_kind_of_corruption_is_skipped(tmp_path, processor):
    _, good, bad = write_shards(tmp_path, num_shards=1, per_shard=8, bad_every=2)
    assert len(bad) == 4  # one of each kind
    stream = VideoTextStream(
        load_video_text_stream(str(tmp_path), "train"), processor, num_frames=4, max_corrupt_fraction=0.9
    )
    keys, skipped = one_epoch(stream, num_workers=0)
    assert sorted(keys) == sorted(good) and sorted(skipped) == sorted(bad)


def test_a_mostly_broken_stream_stops_with_a_clear_error(tmp_path, processor):
    write_shards(tmp_path, num_shards=1, per_shard=30, bad_every=2)  # half of them broken
    stream = VideoTextStream(
        load_video_text_stream(str(tmp_path), "train"), processor, num_frames=4, max_corrupt_fraction=0.3
    )
    with pytest.raises(CorruptStreamError, match="could not be used"):
        one_epoch(stream, num_workers=0)


def test_a_sample_with_one_text_uses_it_for_both(processor):
    stream = VideoTextStream(None, processor)
    assert stream.texts({"json": b'{"caption": "a red circle"}'}) == ("a red circle", "a red circle")
    assert stream.texts({"json": {"subtitle": "um a ball"}}) == ("um a ball", "um a ball")
    assert stream.texts({"caption": "c", "subtitle": "s", "json": None}) == ("c", "s")


def test_the_stream_cycles_and_splits_by_node(tmp_path, processor):
    write_shards(tmp_path, num_shards=2, per_shard=4, bad_every=1000)
    shares = []
    for rank in range(2):
        dataset = load_video_text_stream(str(tmp_path), "train", rank=rank, world_size=2)
        stream = iter(VideoTextStream(dataset, processor, num_frames=2))
        shares.append([next(stream)["key"] for _ in range(8)])  # twice its share: the stream goes on
    assert not set(shares[0]) & set(shares[1])
    assert shares[0][:4] == shares[0][4:] or sorted(shares[0][:4]) == sorted(shares[0][4:])


@pytest.mark.parametrize("stop_after", [3, 5])
def test_stateful_loader_resumes_exactly_across_epochs_with_workers_at_different_epochs(
    processor, tmp_path, stop_after
):
    """2 workers, 4 samples each per epoch, batches of 3: after 3 batches worker 0 is in epoch 1 while worker
    1 is still in epoch 0. The resumed loader must give exactly the uninterrupted batches."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    from vidla_hf.data.synthetic import generate_synthetic_dataset

    generate_synthetic_dataset(tmp_path, {"train": 8}, clips_per_shard=4)

    def loader():
        stream = VideoTextStream(
            load_video_text_stream(str(tmp_path), "train", shuffle_buffer=4, seed=3), processor,
            num_frames=2, seed=3,
        )  # fmt: skip
        return StatefulDataLoader(
            stream, batch_size=3, num_workers=2, collate_fn=collate_video_text,
            generator=torch.Generator().manual_seed(3),
        )  # fmt: skip

    whole = loader()
    reference = [batch for batch, _ in zip(whole, range(8), strict=False)]
    first = loader()
    batches = iter(first)
    head = [next(batches) for _ in range(stop_after)]
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint stores it
    del batches, first
    resumed = loader()
    resumed.load_state_dict(state)
    tail = [batch for batch, _ in zip(resumed, range(8 - stop_after), strict=False)]
    assert {b["positions"][0][1] for b in reference} == {0, 1, 2}, "the reference crosses epochs"
    for expected, got in zip(reference, head + tail, strict=True):
        assert got["keys"] == expected["keys"] and got["positions"] == expected["positions"]
        assert torch.equal(got["pixel_values_videos"], expected["pixel_values_videos"])


def test_texts_are_truncated_to_the_tokenizers_context_and_padded_with_its_pad_token(tmp_path, processor):
    """A 300-word subtitle keeps CLIP's first 76 tokens + [EOS] (CLIP's 77-token context); a short caption is
    padded with CLIP's pad token (its [EOS], 49407) and masked out."""
    rng = np.random.default_rng(0)
    long_subtitle = " ".join(["red circle moving left"] * 75)
    with tarfile.open(tmp_path / "train-00000.tar", "w") as archive:
        clip = sample_clip("long", rng, scale="short")
        add(archive, "long.mp4", encode_mp4(render_clip(clip, rng), FPS))
        add(archive, "long.json", json.dumps({"caption": "a red circle", "subtitle": long_subtitle}).encode())
    stream = VideoTextStream(load_video_text_stream(str(tmp_path), "train"), processor, num_frames=4)
    batch = collate_video_text([next(iter(stream))])
    full = processor.tokenizer(long_subtitle)["input_ids"]  # untruncated
    assert batch["subtitle_ids"][0].tolist() == full[:76] + [49407]
    assert batch["caption_ids"].shape == (1, 5) and batch["caption_mask"].tolist() == [[1] * 5]
    two = collate_video_text(
        [next(iter(stream))] * 2 + [{**next(iter(stream)), "caption_ids": [49406, 320, 49407]}]
    )
    assert two["caption_ids"][2].tolist() == [49406, 320, 49407, 49407, 49407]
    assert two["caption_mask"][2].tolist() == [1, 1, 1, 0, 0]
