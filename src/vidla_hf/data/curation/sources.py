"""The curation input: a manifest of long source videos with their speech, and the embedded synthetic default.

A manifest is JSON Lines (`.jsonl`) or Parquet (`.parquet`), one source video a row:

- `id`: a unique name made of letters, digits, `_` and `-` (it names the shard and prefixes each clip key);
- `video`: a path (relative paths are relative to the manifest's folder) or an `http(s)://` URL (read by
  FFmpeg with range requests, which the server must answer, as S3, CDNs and nginx do);
- `asr`: word-level speech recognition, a list of `{"word", "start", "end"}` (YT-Temporal style), or
  `subtitles`: a WebVTT or SRT file (as video downloaders save them);
- `split` (optional, default "train"): the split its clips go to, e.g. "val" to hold the source out for
  evaluation (all of a source's clips share a split, so no held-out clip overlaps a training clip).

The whole manifest is validated before anything starts: a row missing a field is a `ValueError` naming the
row and the field. What can only be found by reading a source (an undecodable video, a missing subtitles
file, ASR with impossible times) skips that source later, counted by reason.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..mp4 import write_mp4
from ..synthetic import COLORS, DIRECTIONS, FILLERS, LINKS, SHAPES, SUBTITLE_MOVES, SUBTITLE_SHAPES

SOURCE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _resolve(value: str, folder: Path) -> str:
    if URL.match(value) or os.path.isabs(value):
        return value
    return str(folder / value)


def _rows(path: Path) -> list[tuple[int, Any]]:
    """(row number, row) pairs; JSON Lines are numbered by line (blank lines are skipped, not renumbered)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(enumerate(pq.read_table(path).to_pylist(), start=1))
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise ValueError(f"Manifest {str(path)!r} row {number} is not valid JSON: {error}.") from None
    return rows


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The validated rows of a manifest, in file order, with paths resolved:
    `{"id", "video", "split", "asr"|"subtitles"}`.

    Raises `ValueError` naming the row (its line in a `.jsonl` file) and the field for a missing or
    malformed `id`, `video`, `split`, or `asr`/`subtitles`, and for an id used twice.

    Example:

    ```python
    >>> import json, tempfile
    >>> from vidla_hf.data.curation.sources import read_manifest
    >>> path = tempfile.mkdtemp() + "/sources.jsonl"
    >>> rows = [{"id": "a", "video": "a.mp4", "asr": []}, {"id": "b", "video": "b.mp4"}]
    >>> _ = open(path, "w").write("\\n".join(json.dumps(r) for r in rows))
    >>> read_manifest(path)
    Traceback (most recent call last):
    ...
    ValueError: Manifest ... row 2 (id 'b') has neither field 'asr' nor field 'subtitles'; give one of them.

    ```
    """
    path = Path(path)
    if path.suffix not in (".jsonl", ".json", ".parquet"):
        raise ValueError(f"`manifest` must be a .jsonl or .parquet file, got {str(path)!r}.")
    if not path.is_file():
        raise ValueError(f"`manifest` {str(path)!r} does not exist.")
    folder = path.parent.resolve()
    sources, seen = [], {}
    for number, row in _rows(path):
        where = f"Manifest {str(path)!r} row {number}"
        if not isinstance(row, dict):
            raise ValueError(f"{where} is not an object with fields id, video, asr/subtitles: {row!r:.80}.")
        for field in ("id", "video"):
            if row.get(field) in (None, ""):
                raise ValueError(f"{where} is missing field {field!r}.")
            if not isinstance(row[field], str):
                raise ValueError(f"{where}: field {field!r} must be a string, got {row[field]!r:.80}.")
        source_id = row["id"]
        if not SOURCE_ID.match(source_id):
            raise ValueError(
                f"{where}: field 'id' must use only letters, digits, '_' and '-', got {source_id!r}."
            )
        if source_id in seen:
            raise ValueError(f"{where}: id {source_id!r} is already used by row {seen[source_id]}.")
        seen[source_id] = number
        asr, subtitles = row.get("asr"), row.get("subtitles")
        if asr is None and subtitles in (None, ""):
            raise ValueError(
                f"{where} (id {source_id!r}) has neither field 'asr' nor field 'subtitles'; give one of them."
            )
        if asr is not None and subtitles not in (None, ""):
            raise ValueError(f"{where} (id {source_id!r}) has both 'asr' and 'subtitles'; give one of them.")
        split = row.get("split") or "train"
        if not (isinstance(split, str) and SPLIT_NAME.match(split)):
            raise ValueError(
                f"{where}: field 'split' must be lowercase letters, digits and '_' (e.g. train, val), got "
                f"{split!r:.80}."
            )
        source = {"id": source_id, "video": _resolve(row["video"], folder), "split": split}
        if asr is not None:
            if not isinstance(asr, list):
                raise ValueError(f"{where}: field 'asr' must be a list of words, got {type(asr).__name__}.")
            source["asr"] = asr
        else:
            if not isinstance(subtitles, str):
                raise ValueError(f"{where}: field 'subtitles' must be a file path, got {subtitles!r:.80}.")
            source["subtitles"] = _resolve(subtitles, folder)
        sources.append(source)
    if not sources:
        raise ValueError(f"Manifest {str(path)!r} lists no source.")
    return sources


# --- the embedded default: synthetic long videos narrated by unpunctuated ASR ---------------------------


def _timeline(rng: np.random.Generator, seconds: float) -> list[dict[str, Any]]:
    """Narrated events one after the other: a shape crosses the frame while a sentence describes it."""
    events, t, previous = [], rng.uniform(0.5, 1.5), None
    while True:
        length = rng.uniform(4.0, 9.0)
        if t + length > seconds - 0.5:
            return events
        while True:
            event = (
                str(rng.choice(list(COLORS))),
                str(rng.choice(SHAPES)),
                str(rng.choice(list(DIRECTIONS))),
            )
            if event != previous:
                break
        color, shape, direction = previous = event
        words = [str(rng.choice(FILLERS))] if rng.random() < 0.5 else []
        words += [str(rng.choice(LINKS))] if events and rng.random() < 0.4 else []
        words += f"the {color} {rng.choice(SUBTITLE_SHAPES[shape])} {rng.choice(SUBTITLE_MOVES[direction])}".split()
        words = " ".join(words).split()
        events.append(
            {
                "start": t,
                "end": t + length,
                "color": color,
                "shape": shape,
                "direction": direction,
                "words": words,
            }
        )
        t += length + rng.uniform(0.3, 1.5)


def _render(events: list[dict[str, Any]], seconds: float, fps: int, size: int, rng) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    backgrounds = rng.integers(10, 60, (len(events) // 4 + 1, 3))  # a new "scene" every four events
    frames = np.empty((int(seconds * fps), size, size, 3), np.uint8)
    index = 0
    for number in range(len(frames)):
        t = number / fps
        while index + 1 < len(events) and events[index]["end"] <= t:
            index += 1
        event = events[index]
        frames[number] = backgrounds[index // 4]
        if not event["start"] <= t < event["end"]:
            continue
        radius = size / 8
        progress = ((t - event["start"]) / (event["end"] - event["start"]) - 0.5) * (size - 2 * radius)
        dx, dy = DIRECTIONS[event["direction"]]
        cx, cy = size / 2 + dx * progress, size / 2 + dy * progress
        if event["shape"] == "circle":
            mask = (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
        elif event["shape"] == "square":
            mask = (np.abs(x - cx) <= radius) & (np.abs(y - cy) <= radius)
        else:
            mask = (y - cy <= radius) & (y - cy >= -radius) & (np.abs(x - cx) <= (y - cy + radius) / 2)
        frames[number][mask] = COLORS[event["color"]]
    return frames


def _asr(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Word-level ASR: each event's sentence spread over its span, lowercase and without punctuation."""
    words = []
    for event in events:
        begin, span = event["start"] + 0.2, event["end"] - event["start"] - 0.4
        slot = span / len(event["words"])
        for position, word in enumerate(event["words"]):
            start = begin + position * slot
            words.append({"word": word, "start": round(start, 3), "end": round(start + 0.8 * slot, 3)})
    return words


def _timestamp(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    return (
        f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}.{millis % 1000:03d}"
    )


def _webvtt(events: list[dict[str, Any]]) -> str:
    cues = [
        f"{_timestamp(e['start'] + 0.2)} --> {_timestamp(e['end'] - 0.2)}\n{' '.join(e['words'])}"
        for e in events
    ]
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


def make_synthetic_sources(
    folder: str | os.PathLike,
    num_sources: int = 3,
    minutes: float = 3.0,
    fps: int = 6,
    size: int = 96,
    seed: int = 0,
    punctuated: bool = False,
    val_sources: int = 0,
) -> Path:
    """Writes synthetic long source videos with narrating speech and a `manifest.jsonl`; returns its path.

    Each source shows coloured shapes crossing the frame one after the other (the shapes, colours and
    wordings of `vidla_hf.data.synthetic`) while a narrator describes each one in a sentence. Even-numbered
    sources come with word-level `asr` (unpunctuated, lowercase, like YouTube's ASR), odd-numbered ones with
    a WebVTT `subtitles` file (one cue per sentence). `punctuated=True` capitalises each sentence and ends it
    with a full stop, as human-made subtitles are (for `--punctuation_model none`). The last `val_sources`
    sources are held out (`"split": "val"`). Deterministic given the arguments; a folder holding the same
    set already is reused as is.

    Example:

    ```python
    >>> import tempfile
    >>> from vidla_hf.data.curation.sources import make_synthetic_sources, read_manifest
    >>> folder = tempfile.mkdtemp()
    >>> manifest = make_synthetic_sources(folder, num_sources=2, minutes=0.25, size=32, val_sources=1)
    >>> [(row["id"], row["split"], "asr" in row, "subtitles" in row) for row in read_manifest(manifest)]
    [('synthetic-000', 'train', True, False), ('synthetic-001', 'val', False, True)]

    ```
    """
    if num_sources < 1 or not minutes > 0 or fps < 1 or size < 16 or size % 2:
        raise ValueError(
            "`num_sources` and `fps` must be >= 1, `minutes` positive and `size` an even number >= 16, got "
            f"{num_sources}, {fps}, {minutes}, {size}."
        )
    if not 0 <= val_sources < num_sources:
        raise ValueError(f"`val_sources` must be in [0, num_sources), got {val_sources} of {num_sources}.")
    folder = Path(folder)
    manifest = folder / "manifest.jsonl"
    config = {
        "num_sources": num_sources,
        "minutes": minutes,
        "fps": fps,
        "size": size,
        "seed": seed,
        "punctuated": punctuated,
        "val_sources": val_sources,
        "version": 1,
    }
    config_path = folder / "synthetic.json"
    if manifest.is_file() and config_path.is_file() and json.loads(config_path.read_text()) == config:
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    seconds = minutes * 60
    rows = []
    for number in range(num_sources):
        rng = np.random.default_rng([seed, number])
        source_id = f"synthetic-{number:03d}"
        events = _timeline(rng, seconds)
        if punctuated:
            for event in events:
                event["words"] = [
                    event["words"][0].capitalize(),
                    *event["words"][1:-1],
                    event["words"][-1] + ".",
                ]
        write_mp4(folder / f"{source_id}.mp4", _render(events, seconds, fps, size, rng), fps, crf=23)
        row = {"id": source_id, "video": f"{source_id}.mp4"}
        if number >= num_sources - val_sources:
            row["split"] = "val"
        if number % 2:
            (folder / f"{source_id}.vtt").write_text(_webvtt(events), encoding="utf-8")
            row["subtitles"] = f"{source_id}.vtt"
        else:
            row["asr"] = _asr(events)
        rows.append(row)
    partial = manifest.with_name(".manifest.jsonl.partial")
    partial.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    os.replace(partial, manifest)
    config_path.write_text(json.dumps(config))
    return manifest


__all__ = ["make_synthetic_sources", "read_manifest"]
