"""Training data from remote shards: a real HTTP server on 127.0.0.1 and `pipe:` commands, against the same
shards read from disk; unreachable, missing and damaged shards are skipped and counted."""

import functools
import http.server
import itertools
import shutil
import threading
from pathlib import Path

import pytest

from vidla_hf import VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.data import VideoTextStream, collate_video_text, load_video_text_stream
from vidla_hf.data.streams import count_examples, source_fingerprint
from vidla_hf.data.synthetic import generate_synthetic_dataset
from vidla_hf.data.tar_shards import expand_shard_urls, is_remote_source


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    files = generate_synthetic_dataset(folder, {"train": 8}, clips_per_shard=4)["train"]
    names = sorted(Path(f).name for f in files)
    data = (folder / names[0]).read_bytes()
    (folder / "damaged.tar").write_bytes(data[: 512 + 1000])  # cut inside the first member's data
    return folder, names


@pytest.fixture(scope="module")
def server(shards):
    folder, _ = shards
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def examples(source: str) -> list[dict]:
    return list(load_video_text_stream(source, "train"))


def test_shards_over_http_and_pipe_equal_the_local_ones(shards, server):
    folder, names = shards
    local = examples(str(folder))
    assert len(local) == 8
    stem = names[0].rsplit("-", 1)[0]  # e.g. train-0000.tar → train
    width = len(names[0].rsplit("-", 1)[1]) - len(".tar")
    pattern = f"{server}/{stem}-{{{'0' * width}..{len(names) - 1:0{width}d}}}.tar"
    assert expand_shard_urls(pattern) == [f"{server}/{name}" for name in names]
    remote = examples(pattern)
    piped = examples(" :: ".join(f"pipe:cat {folder / name}" for name in names))
    for read in (remote, piped):
        assert [e["__key__"] for e in read] == [e["__key__"] for e in local]
        assert all(r["mp4"] == e["mp4"] and r["json"] == e["json"] for r, e in zip(read, local, strict=True))


def test_unreadable_shards_are_skipped_and_counted(shards, server):
    folder, names = shards
    source = " :: ".join(
        [
            f"{server}/{names[0]}",
            f"{server}/no-such-shard.tar",  # HTTP 404
            "http://127.0.0.1:9/unreachable.tar",  # nothing listens on the discard port
            f"{server}/damaged.tar",  # cut short inside a member
            f"pipe:cat {folder / names[1]}; exit 3",  # a failing command: its shard is not trusted whole
            f"{server}/{names[1]}",
        ]
    )
    read = examples(source)
    errors = [e for e in read if "__error__" in e]
    assert len(errors) == 4, [e["__error__"][:80] for e in errors]
    good = [e for e in read if "__error__" not in e]
    assert len(good) >= 8  # both whole shards, plus what the damaged and piped ones held before failing
    processor = VidLAProcessor(
        VidLAVideoProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        build_clip_tokenizer(),
    )
    stream = VideoTextStream(load_video_text_stream(source, "train"), processor, num_frames=2, training=False)
    samples = list(itertools.islice(stream, len(read)))  # the stream cycles: this is more than one pass
    assert sum(len(s["skipped_keys"]) for s in samples) >= 4
    assert collate_video_text(samples[:2])["pixel_values_videos"].shape[0] == 2


def test_remote_sources_are_not_counted_or_fingerprinted_by_reading_them(server):
    source = f"{server}/train-{{0000..0001}}.tar"
    assert is_remote_source(source) and is_remote_source("pipe:cat x.tar") and not is_remote_source("data/x")
    assert count_examples(source) is None  # --num_train_epochs then asks for --max_steps
    assert source_fingerprint(source, "train") == source
    with pytest.raises(ValueError, match="backwards"):
        expand_shard_urls(f"{server}/train-{{0009..0001}}.tar")


@pytest.mark.skipif(shutil.which("cat") is None, reason="needs cat")
def test_a_pipe_command_is_one_source_whole(shards):
    folder, names = shards
    command = f"pipe:cat {folder / names[0]} | head -c 100000000"
    assert expand_shard_urls(f"{command} :: a/{{0..1}}.tar b.tar") == [command, "a/0.tar", "a/1.tar", "b.tar"]
