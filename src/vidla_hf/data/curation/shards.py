"""Curated clips on disk: each clip cut from its source as an H.264 MP4, one WebDataset tar per source, and
the rules of the output folder (what a rerun resumes, what it refuses to touch).

A source's shard `<split>-<id>.tar` (split "train" unless its manifest row says otherwise) holds
`<key>.json` + `<key>.mp4` per clip (key `<id>_<scale>_<index>`), all cut in one decoding pass. Members
are in the order clips end (ties by key), with mtime 0 and fixed owners, so the same input gives
byte-identical shards whatever the scheduling. The tar is written as a hidden `.partial` file and renamed
when complete; the source's record `sources/<id>.json` (stats, or the
reason it was skipped) is written after it, and a source counts as done when its record exists (and its
shard, if it has clips, with the recorded size).

The folder is ours when it holds our `curation.json` marker. A rerun with the same settings resumes: done
sources are skipped, others (re)written (a source moved to another split is rewritten there and its old
shard removed). Other settings are refused unless `overwrite=True`, which
removes our own files (shards, records, stats, manifest) and nothing else. A non-empty folder without the
marker is always refused: it may hold someone else's data. One run writes a folder at a time (`locking`). `manifest.json` (the format `resolve_tar_shards`
and `examples/pretrain.py --train_data` read) is written last, atomically.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..mp4 import encode_mp4
from .frames import iter_frames, open_video, scaled_size
from .locking import FolderLock
from .records import Clip

MARKER = "curation.json"
MARKER_VERSION = 1
RECORDS = "sources"


def shard_name(source_id: str, split: str = "train") -> str:
    return f"{split}-{source_id}.tar"


def clip_times(start: float, end: float, fps: float) -> np.ndarray:
    """Frame times of a clip cut at `fps`: `round((end - start) * fps)` frames (at least one) from `start`."""
    return start + np.arange(max(1, int(round((end - start) * fps)))) / fps


def _source_rate(video: str) -> float:
    with open_video(video) as container:
        stream = container.streams.video[0]
        return float(stream.average_rate or stream.guessed_rate or 0) or float("inf")


def cut_clips(
    video: str, clips: list[Clip], short_side: int | None = 224, fps: float = 8.0
) -> Iterator[tuple[Clip, np.ndarray, float]]:
    """`(clip, (T, H, W, 3) frames, fps)` for every clip, all from one decoding pass of `video`.

    A clip's frames are the ones on screen at `clip_times(start, end, fps)`, resized so the short side is
    at most `short_side`; `fps` is capped at the source's rate. Clips come out when their last frame is
    decoded: ordered by that time, then by key.
    """
    fps = min(fps, _source_rate(video))
    plans = sorted(((clip, clip_times(clip.start, clip.end, fps)) for clip in clips), key=lambda p: p[1][0])
    active: list[tuple[Clip, np.ndarray, list[np.ndarray]]] = []
    waiting, previous, cached, size = 0, None, None, None

    def fill(limit: float, frame) -> Iterator[tuple[Clip, np.ndarray, float]]:
        nonlocal waiting, cached
        while waiting < len(plans) and plans[waiting][1][0] < limit:
            active.append((*plans[waiting], []))
            waiting += 1
        for _, times, frames in active:
            while len(frames) < len(times) and times[len(frames)] < limit:
                if cached is None:
                    cached = frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()
                frames.append(cached)
        finished = [entry for entry in active if len(entry[2]) == len(entry[1])]
        for entry in sorted(finished, key=lambda e: (e[1][-1], e[0].key)):
            active.remove(entry)
            yield entry[0], np.stack(entry[2]), fps

    for now, frame in iter_frames(video):
        if size is None:
            size = scaled_size(frame.width, frame.height, short_side)
        # Frames before `now` showed the previous frame (the first frame stands in for earlier times).
        yield from fill(now, previous if previous is not None else frame)
        previous, cached = frame, None
    if previous is not None:
        yield from fill(float("inf"), previous)


def _round(value: float) -> float:
    return round(float(value), 3)


def clip_metadata(clip: Clip, num_frames: int, fps: float) -> dict[str, Any]:
    """The clip's `<key>.json`: its two training texts, their sources and where it comes from."""
    return {
        "subtitle": clip.subtitle,
        "caption": clip.caption,
        "raw_subtitle": clip.raw_subtitle,
        "frame_captions": list(clip.frame_captions),
        "source_id": clip.source_id,
        "scale": clip.scale,
        "index": clip.index,
        "start": _round(clip.start),
        "end": _round(clip.end),
        "num_sentences": len(clip.sentences),
        "sentence_times": [[_round(s.start), _round(s.end)] for s in clip.sentences],
        "num_frames": num_frames,
        "fps": _round(fps),
    }


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))


def write_shard(
    path: str | os.PathLike,
    video: str,
    clips: list[Clip],
    short_side: int | None = 224,
    fps: float = 8.0,
    crf: int = 23,
) -> int:
    """Cuts `clips` from `video` into the WebDataset tar `path` (atomically); returns its size in bytes.

    Example:

    ```python
    >>> import tempfile, tarfile, numpy as np
    >>> from vidla_hf.data.mp4 import write_mp4
    >>> from vidla_hf.data.curation.records import Clip, Sentence
    >>> from vidla_hf.data.curation.shards import write_shard
    >>> folder = tempfile.mkdtemp()
    >>> video = str(write_mp4(folder + "/source.mp4", np.zeros((40, 32, 32, 3), np.uint8), fps=8))
    >>> clip = Clip("source", "short", 0, 1.0, 3.5, [Sentence("Hello there.", 1.0, 3.5, 2)], subtitle="Hello there.")
    >>> _ = write_shard(folder + "/train-source.tar", video, [clip], short_side=16, fps=4)
    >>> tarfile.open(folder + "/train-source.tar").getnames()
    ['source_short_0000.json', 'source_short_0000.mp4']

    ```
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as archive:
            for clip, frames, clip_fps in cut_clips(video, clips, short_side, fps):
                meta = clip_metadata(clip, len(frames), clip_fps)
                _add_member(
                    archive, f"{clip.key}.json", json.dumps(meta, sort_keys=True, ensure_ascii=False).encode()
                )
                _add_member(archive, f"{clip.key}.mp4", encode_mp4(frames, clip_fps, crf=crf, threads=1))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path.stat().st_size


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(partial, path)


def record_path(output_dir: str | os.PathLike, source_id: str) -> Path:
    return Path(output_dir) / RECORDS / f"{source_id}.json"


def write_record(output_dir: str | os.PathLike, record: dict[str, Any]) -> None:
    """Writes a finished source's record (atomically), after its shard: from then on the source is done."""
    _write_json(record_path(output_dir, record["id"]), record)


class OutputFolder:
    """The curation output folder: checks it may be written (see the module's docstring), then tracks which
    sources are done. Only touches the file system in `__init__` when the checks pass. Holds the folder's lock
    (`locking.FolderLock`: one run at a time) until `close()` or the end of the process; a context manager."""

    def __init__(self, path: str | os.PathLike, settings: dict[str, Any], overwrite: bool = False):
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings))  # as it will read back from the marker
        marker = self.path / MARKER
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"`output_dir` {str(self.path)!r} exists and is not a folder.")
        theirs = self.path.is_dir() and any(not FolderLock.is_lock_file(p) for p in self.path.iterdir())
        if theirs and not marker.is_file():
            raise ValueError(
                f"`output_dir` {str(self.path)!r} is not empty and was not written by the curation pipeline (no "
                f"{MARKER}); nothing in it is touched. Choose an empty or new folder."
            )
        # Our folder: refused while another run writes it, before anything in it is read or changed.
        self._lock = FolderLock(self.path) if self.path.is_dir() else None
        try:
            self._open(marker, overwrite)
        except BaseException:
            self.close()
            raise

    def _open(self, marker: Path, overwrite: bool) -> None:
        previous = json.loads(marker.read_text()) if marker.is_file() else None
        if previous is not None and previous.get("settings") != self.settings:
            if not overwrite:
                old = previous.get("settings") or {}
                changed = sorted(k for k in {*old, *self.settings} if old.get(k) != self.settings.get(k))
                raise ValueError(
                    f"`output_dir` {str(self.path)!r} holds a curation with other settings ({', '.join(changed)}"
                    "); resuming would mix them. Choose another folder, or pass --overwrite to replace it."
                )
            self._remove_own_files()
        if self._lock is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = FolderLock(self.path)
        (self.path / RECORDS).mkdir(exist_ok=True)
        for leftover in [*self.path.glob(".*-*.tar.partial"), *self.path.rglob(".*.json.partial")]:
            leftover.unlink()  # a crashed run's unfinished writes
        _write_json(marker, {"version": MARKER_VERSION, "settings": self.settings})

    def close(self) -> None:
        """Releases the folder for another run (so does the end of the process)."""
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _remove_own_files(self) -> None:
        """What this pipeline writes in its own folder: the shards its records name, the records, stats,
        manifest and marker."""
        for path in (self.path / RECORDS).glob("*.json"):
            self.forget(path.stem)
        for name in ("stats.json", "manifest.json", MARKER):
            (self.path / name).unlink(missing_ok=True)

    def forget(self, source_id: str) -> None:
        """Removes a source's record, then the shard it names (ours): the source is to be curated again."""
        path = record_path(self.path, source_id)
        try:
            shard = json.loads(path.read_text()).get("shard")
        except (OSError, ValueError):
            shard = None
        path.unlink(missing_ok=True)
        if shard and Path(shard).name == shard:  # a bare file name of this folder, as we write them
            (self.path / shard).unlink(missing_ok=True)

    def record(self, source_id: str, split: str | None = None) -> dict[str, Any] | None:
        """The source's record if it is done (its shard, if any, present with the recorded size; in `split`
        when given), else None."""
        try:
            record = json.loads(record_path(self.path, source_id).read_text())
        except (OSError, ValueError):
            return None
        if split is not None and record.get("split", "train") != split:
            return None
        shard = record.get("shard")
        if shard and (
            not (self.path / shard).is_file() or (self.path / shard).stat().st_size != record["shard_bytes"]
        ):
            return None
        return record

    def publish(self, records: list[dict[str, Any]]) -> dict[str, list[str]]:
        """Writes `manifest.json` listing the shards of `records` by split (sorted; "train" always listed);
        returns that listing."""
        files: dict[str, list[str]] = {"train": []}
        for record in records:
            if record.get("shard"):
                files.setdefault(record.get("split", "train"), []).append(record["shard"])
        files = {split: sorted(names) for split, names in sorted(files.items())}
        config = {"generator": "vidla_hf.data.curation", "version": MARKER_VERSION, "settings": self.settings}
        _write_json(self.path / "manifest.json", {"config": config, "files": files})
        return files


__all__ = [
    "OutputFolder",
    "clip_metadata",
    "clip_times",
    "cut_clips",
    "record_path",
    "shard_name",
    "write_record",
    "write_shard",
]
