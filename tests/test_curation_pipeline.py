"""The curation pipeline end to end: real MP4 sources, the tiny transformers models, real Ray (local mode).

One Ray session serves the module. The main run (1 worker) curates two synthetic sources plus four broken
ones; the other tests check its shards against what the inputs imply, and compare it with a 2-worker run
and with a run resumed after its driver was killed.
"""

import dataclasses
import functools
import http.server
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import av
import datasets
import numpy as np
import pytest

from vidla_hf import VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.data import (
    VideoTextStream,
    collate_video_text,
    load_video_text_stream,
    resolve_tar_shards,
)
from vidla_hf.data.curation import CurationSettings, curate, make_synthetic_sources
from vidla_hf.data.curation import pipeline as curation_pipeline
from vidla_hf.data.curation.frames import sample_times
from vidla_hf.data.curation.prompts import count_clip_tokens, join_texts
from vidla_hf.data.curation.shards import OutputFolder, shard_name
from vidla_hf.data.curation.tiny_models import build_tiny_models

ROOT = Path(__file__).parents[1]
CLIP_FPS = 4.0
BROKEN = {
    "truncated": "undecodable_video",
    "no-subtitles": "missing_subtitles",
    "bad-asr": "bad_asr",
    "asr-after-end": "asr_beyond_video",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two 1.5-minute synthetic sources (ASR and WebVTT) and four broken ones, with the tiny models."""
    folder = tmp_path_factory.mktemp("curation")
    manifest = make_synthetic_sources(folder / "sources", num_sources=2, minutes=1.5)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    good_video = rows[0]["video"]
    data = (manifest.parent / good_video).read_bytes()
    (manifest.parent / "truncated.mp4").write_bytes(data[: len(data) // 2])
    rows += [
        {"id": "truncated", "video": "truncated.mp4", "asr": rows[0]["asr"]},
        {"id": "no-subtitles", "video": good_video, "subtitles": "missing.vtt"},
        {"id": "bad-asr", "video": good_video, "asr": [{"word": "hello", "start": "soon", "end": 1.0}]},
        {"id": "asr-after-end", "video": good_video, "asr": [{"word": "late", "start": 900.0, "end": 901.0}]},
    ]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    models = build_tiny_models(folder / "models")
    settings = CurationSettings(**models, clip_short_side=64, clip_fps=CLIP_FPS)
    return {"manifest": manifest, "settings": settings, "folder": folder}


@pytest.fixture(scope="module")
def curated(ray_session, inputs):
    output = inputs["folder"] / "curated-1-worker"
    stats = curate(inputs["manifest"], output, inputs["settings"], num_workers=1, verbose=False)
    return output, stats


def shard_members(path: Path) -> dict[str, dict]:
    """{key: {"json": metadata, "mp4": bytes}} of a shard, checking members come in key pairs."""
    samples = {}
    with tarfile.open(path) as archive:
        for member in archive:
            key, _, extension = member.name.partition(".")
            samples.setdefault(key, {})[extension] = archive.extractfile(member).read()
            assert member.mtime == 0 and member.uid == 0
    for key, sample in samples.items():
        assert sorted(sample) == ["json", "mp4"], key
        sample["json"] = json.loads(sample["json"])
    return samples


def all_clips(output: Path) -> dict[str, dict]:
    manifest = json.loads((output / "manifest.json").read_text())
    return {key: s for name in manifest["files"]["train"] for key, s in shard_members(output / name).items()}


def test_shards_decode_with_the_durations_of_their_clips(curated):
    output, stats = curated
    clips = all_clips(output)
    assert {c["json"]["source_id"] for c in clips.values()} == {"synthetic-000", "synthetic-001"}
    assert {c["json"]["scale"] for c in clips.values()} == {"short", "medium", "long"}
    fields = {"subtitle", "caption", "raw_subtitle", "frame_captions", "source_id", "start", "end", "scale"}
    for key, clip in clips.items():
        meta = clip["json"]
        assert fields | {"num_sentences"} <= set(meta)
        with av.open(__import__("io").BytesIO(clip["mp4"])) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and min(stream.width, stream.height) <= 64
            frames = sum(1 for _ in container.decode(stream))
            duration = frames / float(stream.average_rate)
        assert abs(duration - (meta["end"] - meta["start"])) <= 2 / CLIP_FPS, key
        # clips span whole sentences: they start with their first sentence, end with their last
        times = meta["sentence_times"]
        assert len(times) == meta["num_sentences"] >= 1
        assert meta["start"] == times[0][0] and meta["end"] <= times[-1][1]
    for scale, target in {"short": 13.2, "medium": 30.4, "long": 60.3}.items():
        assert target / 2 <= stats["scales"][scale]["mean_duration"] <= target * 2


def test_captions_follow_the_caption_rate_and_each_source_is_captioned_once(curated, inputs):
    output, _ = curated
    clips = all_clips(output)
    for source_id in ("synthetic-000", "synthetic-001"):
        record = json.loads((output / "sources" / f"{source_id}.json").read_text())
        times = sample_times(record["duration"], inputs["settings"].caption_fps)
        assert len(times) == 9  # 90 s at 0.1 FPS
        # the captioner saw each sampled frame once, not once per clip that contains it
        assert record["caption_frames"] == len(times)
        source_clips = [c["json"] for c in clips.values() if c["json"]["source_id"] == source_id]
        assert sum(len(c["frame_captions"]) for c in source_clips) > len(times)
        by_time = {}
        for clip in source_clips:
            inside = [t for t in times if clip["start"] <= t < clip["end"]]
            assert len(clip["frame_captions"]) == max(1, len(inside))
            for t, caption in zip(inside, clip["frame_captions"], strict=False):
                assert (
                    by_time.setdefault(t, caption) == caption
                )  # the same frame, the same caption at every scale


def test_short_clips_keep_their_texts_and_longer_ones_are_summarised(curated):
    output, _ = curated
    clips = [c["json"] for c in all_clips(output).values()]
    for clip in clips:
        assert count_clip_tokens(clip["subtitle"]) <= 77 and count_clip_tokens(clip["caption"]) <= 77
        if clip["scale"] == "short":
            assert clip["subtitle"] == clip["raw_subtitle"]
            assert clip["caption"] == join_texts(clip["frame_captions"])
    longer = [c for c in clips if c["scale"] != "short"]
    assert longer and all(c["subtitle"] != c["raw_subtitle"] for c in longer)


def test_broken_sources_are_skipped_and_counted(curated):
    output, stats = curated
    assert stats["sources"]["listed"] == 6 and stats["sources"]["curated"] == 2
    assert stats["sources"]["skipped"] == dict(
        sorted(__import__("collections").Counter(BROKEN.values()).items())
    )
    assert stats["sources"]["failed"] == {}
    for source_id, reason in BROKEN.items():
        assert json.loads((output / "sources" / f"{source_id}.json").read_text())["reason"] == reason
        assert not (output / f"train-{source_id}.tar").exists()
    assert json.loads((output / "stats.json").read_text())["sources"] == stats["sources"]


def test_one_and_two_workers_write_identical_shards(curated, inputs):
    output, _ = curated
    other = inputs["folder"] / "curated-2-workers"
    curate(inputs["manifest"], other, inputs["settings"], num_workers=2, verbose=False)
    names = json.loads((output / "manifest.json").read_text())["files"]["train"]
    assert names == ["train-synthetic-000.tar", "train-synthetic-001.tar"]
    assert json.loads((other / "manifest.json").read_text())["files"]["train"] == names
    for name in names:
        assert (output / name).read_bytes() == (other / name).read_bytes(), name


def test_a_run_killed_midway_resumes_to_the_same_shards(inputs, ray_session):
    """The driver (examples/curate.py, on this module's Ray) is killed once its first shard appears; a rerun
    completes it, identical to an uninterrupted run. Punctuated subtitles and no models: only CPU tasks."""
    manifest = make_synthetic_sources(
        inputs["folder"] / "punctuated", num_sources=4, minutes=1.0, punctuated=True
    )
    settings = CurationSettings(clip_short_side=64, clip_fps=CLIP_FPS)
    reference = inputs["folder"] / "uninterrupted"
    curate(manifest, reference, settings, num_workers=1, verbose=False)
    resumed = inputs["folder"] / "killed"
    command = [sys.executable, str(ROOT / "examples" / "curate.py"), "--manifest", str(manifest)]
    command += ["--output_dir", str(resumed), "--ray_address", ray_session.get_runtime_context().gcs_address]
    command += ["--punctuation_model", "none", "--captioner", "none", "--summarizer", "none"]
    command += ["--clip_short_side", "64", "--clip_fps", str(CLIP_FPS), "--num_workers", "1", "--quiet"]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while not list(resumed.glob("train-*.tar")) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)
    _, stderr = driver.communicate()
    assert list(resumed.glob("train-*.tar")), stderr.decode()[-3000:]
    assert not (resumed / "manifest.json").exists(), "killed before the end"
    stats = curate(manifest, resumed, settings, num_workers=1, verbose=False)
    assert 1 <= stats["run"]["already_done"] < 4 and stats["sources"]["curated"] == 4
    names = json.loads((reference / "manifest.json").read_text())["files"]["train"]
    assert json.loads((resumed / "manifest.json").read_text())["files"]["train"] == names and len(names) == 4
    for name in names:
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
    assert not list(resumed.rglob(".*.partial"))
    again = curate(manifest, resumed, settings, verbose=False)
    assert again["run"]["processed"] == 0, "a finished curation is not redone"


def test_sources_held_out_go_to_their_split_and_move_when_their_split_changes(inputs, ray_session):
    """A manifest's `split` column: a "val" source's clips land in `val-<id>.tar`, listed under "val" (what
    pretraining evaluates on by default); moving a source to another split on a rerun rewrites only that
    source there, with the same clips, and removes its old shard."""
    manifest = make_synthetic_sources(
        inputs["folder"] / "held-out", num_sources=2, minutes=0.5, punctuated=True, val_sources=1
    )
    settings = CurationSettings(clip_short_side=32, clip_fps=2.0)
    output = inputs["folder"] / "curated-splits"
    stats = curate(manifest, output, settings, num_workers=1, verbose=False)
    listed = json.loads((output / "manifest.json").read_text())["files"]
    assert listed == {"train": ["train-synthetic-000.tar"], "val": ["val-synthetic-001.tar"]}
    assert resolve_tar_shards(str(output), "val") == [str(output / "val-synthetic-001.tar")]
    assert stats["splits"]["val"]["sources"] == 1 and stats["splits"]["val"]["clips"] >= 1
    held_out = (output / "val-synthetic-001.tar").read_bytes()

    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["split"] = "train"
    moved = manifest.with_name("moved.jsonl")
    moved.write_text("".join(json.dumps(row) + "\n" for row in rows))
    again = curate(moved, output, settings, num_workers=1, verbose=False)
    assert again["run"] == {**again["run"], "processed": 1, "already_done": 1}
    listed = json.loads((output / "manifest.json").read_text())["files"]
    assert listed == {"train": ["train-synthetic-000.tar", "train-synthetic-001.tar"]}
    assert not (output / "val-synthetic-001.tar").exists()
    # the same clips: nothing inside a shard names its split
    assert (output / "train-synthetic-001.tar").read_bytes() == held_out


def test_pretraining_and_datasets_read_the_shards(curated):
    output, _ = curated
    processor = VidLAProcessor(
        VidLAVideoProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        build_clip_tokenizer(),
    )
    stream = VideoTextStream(load_video_text_stream(str(output)), processor, num_frames=2, training=False)
    iterator = iter(stream)
    batch = collate_video_text([next(iterator) for _ in range(2)])
    assert batch["pixel_values_videos"].shape == (2, 2, 3, 32, 32) and batch["skipped"] == 0
    shards = [str(output / n) for n in json.loads((output / "manifest.json").read_text())["files"]["train"]]
    examples = list(
        datasets.load_dataset("webdataset", data_files={"train": shards}, split="train", streaming=True)
    )
    assert len(examples) == len(all_clips(output))
    assert all(e["json"]["subtitle"] and isinstance(e["json"]["frame_captions"], list) for e in examples)


def test_bad_manifests_models_and_folders_fail_before_ray_starts(tmp_path, inputs, monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(curation_pipeline, "ray_session", no_ray)
    manifest = tmp_path / "sources.jsonl"
    manifest.write_text('{"id": "a", "video": "a.mp4", "asr": []}\n\n{"id": "b", "asr": []}\n')
    with pytest.raises(ValueError, match=r"row 3 is missing field 'video'"):
        curate(manifest, tmp_path / "out", CurationSettings())
    good = inputs["manifest"]
    with pytest.raises(ValueError, match="--captioner"):
        curate(good, tmp_path / "out", CurationSettings(captioner=str(tmp_path / "no-such-model")))
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("not ours")
    with pytest.raises(ValueError, match="not written by the curation pipeline"):
        curate(good, tmp_path / "theirs", CurationSettings())
    assert not (tmp_path / "out").exists() and sorted(os.listdir(tmp_path / "theirs")) == [
        "notes.txt"
    ]  # no lock


def test_the_command_line_reports_a_bad_manifest_without_importing_ray(tmp_path):
    manifest = tmp_path / "sources.jsonl"
    manifest.write_text('{"id": "a", "video": "a.mp4"}\n')
    code = "import runpy, sys\nsys.modules['ray'] = None\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')"
    command = [sys.executable, "-c", code, str(ROOT / "examples" / "curate.py"), "--manifest", str(manifest)]
    result = subprocess.run([*command, "--output_dir", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode != 0 and "ImportError" not in result.stderr
    assert "row 1 (id 'a') has neither field 'asr' nor field 'subtitles'" in result.stderr


def test_the_output_folder_is_resumed_only_with_the_same_settings(tmp_path):
    folder = tmp_path / "out"
    OutputFolder(folder, {"caption_fps": 0.1}).close()
    (folder / "train-x.tar").write_bytes(b"x" * 10)
    (folder / "sources" / "x.json").write_text(
        json.dumps({"id": "x", "shard": "train-x.tar", "shard_bytes": 10})
    )
    (folder / "mine.txt").write_text("the user's")
    with OutputFolder(folder, {"caption_fps": 0.1}) as resumed:
        assert resumed.record("x")["id"] == "x"
    with pytest.raises(ValueError, match="other settings \\(caption_fps\\)"):
        OutputFolder(folder, {"caption_fps": 0.2})
    OutputFolder(folder, {"caption_fps": 0.2}, overwrite=True).close()
    assert sorted(os.listdir(folder)) == [".curation.lock", "curation.json", "mine.txt", "sources"]
    assert np.array_equal(os.listdir(folder / "sources"), [])


HOLD_THE_FOLDER = """
import sys, time
from vidla_hf.data.curation.shards import OutputFolder
folder = OutputFolder(sys.argv[1], {"caption_fps": 0.1})
print("holding", flush=True)
time.sleep(600)
"""


def test_a_second_run_on_a_folder_is_refused_while_the_first_runs_even_after_a_kill(
    tmp_path, inputs, monkeypatch
):
    """One driver per folder: another process's run (a real second process) holds it; `kill -9` of that
    process frees it (the OS drops the lock with the process; no stale lock to clean up by hand)."""
    from vidla_hf.data.curation.locking import FolderInUseError

    folder = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_FOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        (folder / "sources" / "x.json").write_text("{}")
        with pytest.raises(FolderInUseError, match=f"another curation run \\(pid {holder.pid} on "):
            OutputFolder(folder, {"caption_fps": 0.2}, overwrite=True)
        assert (folder / "sources" / "x.json").exists()  # refused before anything was removed
        monkeypatch.setattr(curation_pipeline, "ray_session", None)  # refused before Ray would start
        with pytest.raises(FolderInUseError):
            curate(inputs["manifest"], folder, CurationSettings())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with OutputFolder(folder, {"caption_fps": 0.1}) as mine:  # the killed run's lock went with it
        with pytest.raises(FolderInUseError):  # and now this process holds it
            OutputFolder(folder, {"caption_fps": 0.1})
        assert mine.path == folder
    OutputFolder(folder, {"caption_fps": 0.1}).close()  # released by `with`


def test_a_stage_skips_bad_sources_and_reports_unexpected_errors_without_stopping():
    from vidla_hf.data.curation.records import SourceSkipped
    from vidla_hf.data.curation.stages import initial_row, stage

    @stage("check")
    def check(state, row, error):
        raise error

    skipped = check(initial_row({"id": "a", "video": "a.mp4"}), SourceSkipped("bad_asr", "word 3"))
    assert skipped["status"] == "skipped" and json.loads(skipped["state"])["reason"] == "bad_asr"
    failed = check(initial_row({"id": "b", "video": "b.mp4"}), RuntimeError("a bug"))
    state = json.loads(failed["state"])
    assert failed["status"] == "failed" and "RuntimeError: a bug" in state["detail"]
    assert check(skipped, RuntimeError("never raised")) is skipped, "later stages pass a skipped row through"


def test_only_medium_and_long_clips_are_summarised_in_one_call_per_source():
    from vidla_hf.data.curation.records import Clip, Sentence
    from vidla_hf.data.curation.stages import clip_texts

    def clip(scale, index, captions):
        sentences = [Sentence(f"Sentence {scale} {index}.", 0.0, 1.0, 3), Sentence("And more.", 1.0, 2.0, 2)]
        return Clip("v", scale, index, 0.0, 2.0, sentences, frame_captions=captions)

    calls = []

    def summarize(groups):
        calls.append(groups)
        return [f"summary {i}" for i in range(len(groups))]

    clips = [clip("short", 0, ["a dog", "a cat"]), clip("medium", 0, ["a dog"]), clip("long", 0, [])]
    clip_texts(clips, "short", summarize)
    assert calls == [[["Sentence medium 0.", "And more."], ["a dog"], ["Sentence long 0.", "And more."]]]
    assert (clips[0].subtitle, clips[0].caption) == ("Sentence short 0. And more.", "a dog. a cat.")
    assert (clips[1].subtitle, clips[1].caption) == ("summary 0", "summary 1")
    assert (clips[2].subtitle, clips[2].caption) == ("summary 2", "")
    clip_texts(clips, "short", None)  # --summarizer none: joined and cut to CLIP's context
    assert clips[1].subtitle == "Sentence medium 0. And more." and clips[2].caption == ""


def run_source_stages(source: dict, settings: CurationSettings, output_dir: Path) -> tuple[dict, dict]:
    """A manifest row through the CPU stages (what the Ray job runs per source, with no models): the
    frames decoded for captioning and the result row; the shard and record land in `output_dir`."""
    from vidla_hf.data.curation.stages import (
        decode_caption_frames,
        initial_row,
        join_clip_texts,
        plan_source_clips,
        prepare_source,
        write_source,
    )

    OutputFolder(output_dir, dataclasses.asdict(settings)).close()  # as `curate` prepares it
    row = prepare_source(initial_row(source))
    row = plan_source_clips(row, settings.scales, settings.min_duration, settings.max_duration)
    row = decode_caption_frames(row, settings.caption_fps, settings.caption_short_side)
    frames = row["frames"]
    row = join_clip_texts(row, settings.short_scale)
    write_args = (str(output_dir), settings.clip_short_side, settings.clip_fps, settings.clip_crf)
    return frames, write_source(row, *write_args)


class RangeRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Python's file server plus single `Range: bytes=a-b` requests (206), as S3, CDNs and nginx answer them:
    FFmpeg seeks with them (to an MP4's index at the end of the file, and to the frames to caption)."""

    def log_message(self, *args):
        pass

    def send_head(self):
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        path = self.translate_path(self.path)
        if not ranged or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        first = int(ranged[1]) if ranged[1] else max(0, size - int(ranged[2]))
        last = min(size - 1, int(ranged[2])) if ranged[1] and ranged[2] else size - 1
        if first >= size:
            self.send_error(416)
            return None
        with open(path, "rb") as file:
            file.seek(first)
            body = file.read(last - first + 1)
        self.send_response(206)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        return io.BytesIO(body)  # the handler copies it out and closes it


def test_a_source_video_read_over_http_gives_the_same_clips_and_an_unreachable_one_is_skipped(
    inputs, tmp_path
):
    """`video` as an http:// URL (a real server on 127.0.0.1): the same caption frames and a byte-identical
    shard as the same file read from disk; a URL that is not there skips its source as unreachable."""
    from vidla_hf.data.curation.sources import read_manifest

    local = read_manifest(inputs["manifest"])[0]
    folder = Path(local["video"]).parent
    handler = functools.partial(RangeRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    settings = CurationSettings(clip_short_side=64, clip_fps=CLIP_FPS, caption_short_side=64)
    try:
        remote = {**local, "video": f"{base}/{Path(local['video']).name}"}
        local_frames, local_result = run_source_stages(local, settings, tmp_path / "local")
        remote_frames, remote_result = run_source_stages(remote, settings, tmp_path / "remote")
        missing = {**local, "id": "gone", "video": f"{base}/no-such-video.mp4"}
        _, missing_result = run_source_stages(missing, settings, tmp_path / "missing")
    finally:
        httpd.shutdown()
    assert local_result["status"] == remote_result["status"] == "ok", remote_result["detail"]
    assert len(local_frames) > 0 and np.array_equal(remote_frames, local_frames)
    shard = shard_name(local["id"])
    assert (tmp_path / "remote" / shard).read_bytes() == (tmp_path / "local" / shard).read_bytes()
    assert (missing_result["status"], missing_result["reason"]) == ("skipped", "unreachable_video")
    assert "no-such-video.mp4" in missing_result["detail"]
