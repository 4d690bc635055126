"""The curation pipeline's stages: plain functions of a row, and one small class per model.

A row is one source video: `{"id", "status", "state", "frames"}`. `state` is JSON text holding what the
stages know of the source so far (its manifest fields, words, clips, timings); `frames` holds its sampled
frames between decoding and captioning. Stages only work on rows whose `status` is "ok": a bad source
becomes "skipped" (the reason is counted in stats.json and recorded, so reruns skip it too), an unexpected
error "failed" (reported and not recorded, so the next run retries it). Model classes load their model once
in `__init__` (once per Ray actor) and map a batch of rows; each source is processed on its own, with
batches formed within the source, so results never depend on how sources were grouped or scheduled.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import numpy as np

from .clips import plan_clips
from .frames import assign_captions, sample_frames, sample_times, video_duration
from .prompts import fit_clip_context, join_and_truncate
from .records import Clip, SourceSkipped, Word
from .sentences import split_sentences
from .shards import shard_name, write_record, write_shard
from .stats import clip_stats
from .transcripts import clamp_to_duration, words_from_asr, words_from_subtitles

NO_FRAMES = np.zeros((0, 2, 2, 3), np.uint8)


def initial_row(source: dict[str, Any]) -> dict[str, Any]:
    """A manifest row (`read_manifest`) as a pipeline row."""
    state = {**source, "timings": {}}
    return {"id": source["id"], "status": "ok", "state": json.dumps(state), "frames": NO_FRAMES}


def stage(name: str) -> Callable:
    """Wraps `fn(state, row)` into a row → row stage: runs on "ok" rows only, times itself, and turns
    `SourceSkipped` into a skipped row and any other exception into a failed one."""

    def decorate(fn: Callable) -> Callable:
        @wraps(fn)
        def run(row: dict[str, Any], *args, **kwargs) -> dict[str, Any]:
            if row["status"] != "ok":
                return row
            state = json.loads(row["state"])
            start, wall = time.perf_counter(), time.time()
            try:
                fn(state, row, *args, **kwargs)
            except SourceSkipped as skip:
                row["status"], state["reason"], state["detail"] = "skipped", skip.reason, skip.detail
                row["frames"] = NO_FRAMES
            except Exception:  # a bug or an unforeseen input: reported, and retried by the next run
                row["status"], state["reason"], state["detail"] = "failed", name, traceback.format_exc()
                row["frames"] = NO_FRAMES
            state["timings"][name] = state["timings"].get(name, 0.0) + time.perf_counter() - start
            state.setdefault("wall_times", {})[name] = [wall, time.time()]  # when it ran (for benchmarks)
            row["state"] = json.dumps(state)
            return row

        return run

    return decorate


def _words(state: dict[str, Any]) -> list[Word]:
    return [Word(*word) for word in state["words"]]


def _clips(state: dict[str, Any]) -> list[Clip]:
    return [Clip.from_dict(clip) for clip in state["clips"]]


@stage("prepare")
def prepare_source(state: dict[str, Any], row: dict[str, Any]) -> None:
    """Validates the video (its duration) and reads the words, clamped to the video's length."""
    state["duration"] = duration = video_duration(state["video"])
    if "asr" in state:
        words, state["asr_repairs"] = words_from_asr(state.pop("asr"))
    else:
        words = words_from_subtitles(state["subtitles"])
    words, state["words_beyond_video"] = clamp_to_duration(words, duration)
    state["words"] = [[w.text, w.start, w.end] for w in words]


@stage("clips")
def plan_source_clips(state: dict[str, Any], row: dict[str, Any], scales, min_duration, max_duration) -> None:
    """Sentences (from the punctuated forms, or the transcript's own punctuation) → multi-scale clips."""
    sentences = split_sentences(_words(state), state.pop("punctuated", None))
    clips, state["dropped_clips"] = plan_clips(state["id"], sentences, scales, min_duration, max_duration)
    state["num_sentences"] = len(sentences)
    state["clips"] = [clip.to_dict() for clip in clips]
    del state["words"]


@stage("decode_frames")
def decode_caption_frames(
    state: dict[str, Any], row: dict[str, Any], caption_fps: float, short_side: int
) -> None:
    """The frames to caption: one decoding pass at `caption_fps` (nothing to decode for a source with no clip)."""
    if state["clips"]:
        times = sample_times(state["duration"], caption_fps)
        row["frames"] = sample_frames(state["video"], times, short_side)
        state["frame_times"] = times.tolist()


@stage("assign_captions")
def assign_frame_captions(state: dict[str, Any], row: dict[str, Any]) -> None:
    clips = assign_captions(_clips(state), state.get("frame_times", []), state.pop("captions", []))
    state["clips"] = [clip.to_dict() for clip in clips]


def clip_texts(
    clips: list[Clip], short_scale: str, summarize: Callable[[list[list[str]]], list[str]] | None
) -> None:
    """Fills each clip's training texts (paper §3, Table 1): the clips of `short_scale` keep their subtitle
    and joined frame captions as they are (cut to CLIP's context); the others get LLM summaries of their
    sentences and of their frame captions, all in one `summarize` call, or with `summarize=None` (the
    no-summary ablation) the texts joined and cut to CLIP's context."""
    groups, targets = [], []
    for clip in clips:
        texts = {"subtitle": [s.text for s in clip.sentences], "caption": clip.frame_captions}
        for field, group in texts.items():
            if not group:
                setattr(clip, field, "")
            elif clip.scale == short_scale:
                setattr(
                    clip,
                    field,
                    fit_clip_context(clip.raw_subtitle) if field == "subtitle" else join_and_truncate(group),
                )
            elif summarize is None:
                setattr(clip, field, join_and_truncate(group))
            else:
                groups.append(group)
                targets.append((clip, field))
    for (clip, field), text in zip(targets, summarize(groups) if groups else [], strict=True):
        setattr(clip, field, text)


@stage("summarize")
def join_clip_texts(state: dict[str, Any], row: dict[str, Any], short_scale: str) -> None:
    """The `--summarizer none` ablation as a CPU task."""
    clips = _clips(state)
    clip_texts(clips, short_scale, None)
    state["clips"] = [clip.to_dict() for clip in clips]


@stage("punctuate")
def punctuate_source(state: dict[str, Any], row: dict[str, Any], punctuate: Callable) -> None:
    state["punctuated"] = punctuate(_words(state))


@stage("caption")
def caption_source(state: dict[str, Any], row: dict[str, Any], caption: Callable) -> None:
    """Captions the source's sampled frames in one call; counts the frames the model saw."""
    frames = row["frames"]
    state["captions"] = caption(list(frames)) if len(frames) else []
    state["caption_frames"] = state.get("caption_frames", 0) + len(frames)
    row["frames"] = NO_FRAMES


@stage("summarize")
def summarize_source(
    state: dict[str, Any], row: dict[str, Any], summarize: Callable, short_scale: str
) -> None:
    clips = _clips(state)
    clip_texts(clips, short_scale, summarize)
    state["clips"] = [clip.to_dict() for clip in clips]


def map_rows(batch: dict[str, Any], fn: Callable, *args) -> dict[str, list]:
    """Applies a row stage to every row of a Ray Data batch (a dict of columns)."""
    rows = [fn({name: column[i] for name, column in batch.items()}, *args) for i in range(len(batch["id"]))]
    return {name: [row[name] for row in rows] for name in batch}


def _setup_actor(threads: int) -> None:
    import torch
    from transformers.utils import logging

    torch.set_num_threads(threads)  # the CPUs the actor holds (a model on a GPU barely uses them)
    logging.disable_progress_bar()  # one "Loading weights" bar per actor would flood the driver's log


class PunctuationStage:
    """Restores each source's punctuation with a token-classification model (`models.Punctuator`)."""

    def __init__(self, model: str, threads: int = 1):
        from .models import Punctuator

        _setup_actor(threads)
        self.punctuate = Punctuator(model)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        return map_rows(batch, punctuate_source, self.punctuate)


class CaptionStage:
    """Captions each source's frames with an image-to-text model (`models.FrameCaptioner`)."""

    def __init__(self, model: str, threads: int = 1):
        from .models import FrameCaptioner

        _setup_actor(threads)
        self.caption = FrameCaptioner(model)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        return map_rows(batch, caption_source, self.caption)


class SummaryStage:
    """Summarises the texts of each source's medium and long clips with a chat LLM (`models.Summarizer`)."""

    def __init__(self, model: str, short_scale: str, threads: int = 1):
        from .models import Summarizer

        _setup_actor(threads)
        # A source's clips are summarised in batches of 32 (fewer generation steps; the batches depend on the
        # source alone, so results do not depend on scheduling).
        self.summarize, self.short_scale = Summarizer(model, batch_size=32).summarize, short_scale

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        return map_rows(batch, summarize_source, self.summarize, self.short_scale)


def warm_up() -> None:
    """Does nothing: run as a Ray task, it makes a worker import this module (torch, transformers, ...) while
    the model actors start, instead of when the first row reaches it."""


def source_record(state: dict[str, Any], status: str) -> dict[str, Any]:
    """What `sources/<id>.json` keeps of a finished source: its status or skip reason and its statistics."""
    keep = (
        "id",
        "split",
        "duration",
        "num_sentences",
        "dropped_clips",
        "asr_repairs",
        "words_beyond_video",
        "timings",
        "wall_times",
    )
    keep += ("caption_frames", "shard", "shard_bytes")
    record = {key: state[key] for key in keep if key in state}
    record["status"] = status
    if status != "ok":
        return {**record, "reason": state["reason"], "detail": state.get("detail", "")}
    return {**record, "clips": [clip_stats(clip) for clip in _clips(state)]}


@stage("write")
def write_clips(
    state: dict[str, Any], row: dict[str, Any], output_dir: str, short_side: int, fps: float, crf: int
) -> None:
    clips = _clips(state)
    if clips:
        state["shard"] = shard_name(state["id"], state["split"])
        path = Path(output_dir) / state["shard"]
        state["shard_bytes"] = write_shard(path, state["video"], clips, short_side, fps, crf)


def write_source(
    row: dict[str, Any], output_dir: str, short_side: int, fps: float, crf: int
) -> dict[str, Any]:
    """Writes a finished source: its shard (if it has clips), then its record; returns a small result row.

    A skipped source gets its record (so reruns skip it too), a failed one none (so reruns retry it).
    """
    row = write_clips(row, output_dir, short_side, fps, crf)
    state = json.loads(row["state"])
    if row["status"] != "failed":
        write_record(output_dir, source_record(state, row["status"]))
    return {
        "id": row["id"],
        "status": row["status"],
        "reason": state.get("reason", ""),
        "detail": state.get("detail", ""),
    }


__all__ = [
    "CaptionStage",
    "PunctuationStage",
    "SummaryStage",
    "assign_frame_captions",
    "caption_source",
    "clip_texts",
    "decode_caption_frames",
    "initial_row",
    "join_clip_texts",
    "map_rows",
    "punctuate_source",
    "plan_source_clips",
    "prepare_source",
    "source_record",
    "stage",
    "summarize_source",
    "warm_up",
    "write_source",
]
