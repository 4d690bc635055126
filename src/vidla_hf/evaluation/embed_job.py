"""Embedding a whole video library on Ray Data into Parquet files (`examples/embed.py`).

The videos come from a folder (every video file under it, id = its relative path without extension), a
manifest (JSON Lines or Parquet with `id`, `video` and any metadata columns, kept in the output), or
WebDataset shards (a `.tar` glob or a folder with a `manifest.json`, e.g. the curation pipeline's output;
id = the sample key, metadata = its JSON). They are cut into parts (`part_size` videos, or one shard); each
part is one Ray row, embedded by an actor pool of `VideoEmbedder`s (the model loads once per actor, one GPU
each when the cluster has GPUs) and written as `part-NNNNN.parquet` (`id`, `embedding`, metadata) through a
temporary name, with `part-NNNNN.skipped.json` listing the videos that could not be decoded.

A rerun with the same model and source skips the parts already written; another model or source in the
same folder is refused (the folder's `embed_job.json` records them) unless `overwrite=True`, which removes
only this job's files. A non-empty folder without that record is never touched.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v")
RECORD = "embed_job.json"


def list_parts(source: str, part_size: int = 256, split: str = "train") -> list[dict[str, Any]]:
    """The parts of `source` in a stable order: `{"part", "kind", "items"|"shard"}` (see the module)."""
    from ..data.streams import resolve_tar_shards

    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
        raise ValueError(f"`part_size` must be a positive integer, got {part_size!r}.")
    path = Path(source)
    if path.suffix in (".jsonl", ".parquet") and path.is_file():
        items = _manifest_items(path)
    elif path.is_dir() and not (path / "manifest.json").is_file():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        items = [{"id": str(p.relative_to(path).with_suffix("")), "video": str(p)} for p in files]
    else:
        shards = resolve_tar_shards(source, split)
        if not shards:
            raise ValueError(f"{source!r} is not a folder of videos, a .jsonl/.parquet manifest or shards.")
        return [{"part": i, "kind": "shard", "shard": shard} for i, shard in enumerate(shards)]
    if not items:
        raise ValueError(f"No video found in {source!r}.")
    ids = [item["id"] for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"Video ids in {source!r} are not unique.")
    return [
        {"part": i, "kind": "items", "items": json.dumps(items[start : start + part_size])}
        for i, start in enumerate(range(0, len(items), part_size))
    ]


def _manifest_items(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("id") or not row.get("video"):
            raise ValueError(f"Manifest {str(path)!r} row {number} needs fields 'id' and 'video'.")
        if not str(row["video"]).startswith(("http://", "https://")) and not os.path.isabs(row["video"]):
            row["video"] = str(path.parent / row["video"])
        row["id"] = str(row["id"])
    return rows


def _shard_items(shard: str) -> list[dict[str, Any]]:
    """The samples of a shard: `{"id", "video": bytes, ...metadata}` (a member that fails to read: no video)."""
    samples: dict[str, dict[str, Any]] = {}
    with tarfile.open(shard) as archive:
        for member in archive:
            if member.isfile():
                key, _, extension = member.name.partition(".")
                data = archive.extractfile(member).read()
                sample = samples.setdefault(key, {"id": key, "video": b""})
                if extension == "mp4":
                    sample["video"] = data
                elif extension == "json":
                    sample["metadata"] = data.decode("utf-8", errors="replace")
    return list(samples.values())


def part_name(part: int) -> str:
    return f"part-{part:05d}"


class PartEmbedder:
    """A Ray actor: embeds whole parts with a `VideoEmbedder` and writes each part's files."""

    def __init__(self, model: str, output_dir: str, batch_size: int = 16, threads: int | None = None):
        from .batch_embedding import VideoEmbedder

        self.embedder = VideoEmbedder(model, batch_size=batch_size, num_threads=threads)
        self.output_dir = Path(output_dir)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        results = {"part": [], "embedded": [], "skipped": []}
        for i in range(len(batch["part"])):
            part = int(batch["part"][i])
            if batch["kind"][i] == "shard":
                items = _shard_items(batch["shard"][i])
            else:
                items = json.loads(batch["items"][i])
            embedded, skipped = self.write_part(part, items)
            for key, value in (("part", part), ("embedded", embedded), ("skipped", skipped)):
                results[key].append(value)
        return results

    def write_part(self, part: int, items: list[dict[str, Any]]) -> tuple[int, int]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        embeddings, errors = self.embedder.embed_videos([item["video"] for item in items])
        keep = [i for i, error in enumerate(errors) if not error]
        skipped = [{"id": items[i]["id"], "error": errors[i]} for i, error in enumerate(errors) if error]
        columns: dict[str, Any] = {"id": [items[i]["id"] for i in keep]}
        columns["embedding"] = pa.array(embeddings[keep].tolist(), type=pa.list_(pa.float32()))
        for name in sorted({k for item in items for k in item} - {"id", "video", "embedding"}):
            columns[name] = [items[i].get(name) for i in keep]
        name = part_name(part)
        listing = self.output_dir / f"{name}.skipped.json"
        partial = listing.with_name(f".{listing.name}.partial")
        partial.write_text(json.dumps(skipped, indent=1))
        os.replace(partial, listing)
        partial = self.output_dir / f".{name}.parquet.partial"
        pq.write_table(pa.table(columns), partial)
        os.replace(partial, self.output_dir / f"{name}.parquet")  # last: the part is done
        return len(keep), len(skipped)


def _check_output(output_dir: Path, settings: dict[str, Any], overwrite: bool) -> None:
    record = output_dir / RECORD
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not record.is_file():
            raise ValueError(
                f"`output_dir` {str(output_dir)!r} is not empty and was not written by the embedding job (no "
                f"{RECORD}); nothing in it is touched."
            )
        if json.loads(record.read_text()) != settings:
            if not overwrite:
                raise ValueError(
                    f"`output_dir` {str(output_dir)!r} holds embeddings of another model or source; pass "
                    "--overwrite to replace them, or choose another folder."
                )
            for path in [*output_dir.glob("part-*.parquet"), *output_dir.glob("part-*.skipped.json"), record]:
                path.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    for leftover in output_dir.glob(".part-*.partial"):
        leftover.unlink()
    partial = output_dir / f".{RECORD}.partial"
    partial.write_text(json.dumps(settings, indent=1))
    os.replace(partial, record)


def embed_library(
    source: str,
    model: str,
    output_dir: str | os.PathLike,
    *,
    part_size: int = 256,
    split: str = "train",
    actors: int = 1,
    gpus_per_actor: float | None = None,
    batch_size: int = 16,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Embeds every video of `source` with `model` (a folder or Hub id) into `output_dir`; returns counts
    `{"parts", "already_done", "embedded", "skipped"}` (this run's). Checks everything before Ray starts."""
    from ..data.curation.pipeline import ray_session

    if not (Path(model) / "config.json").is_file() and not (isinstance(model, str) and model.count("/") == 1):
        raise ValueError(f"`model` {model!r} is neither a model folder (with config.json) nor a Hub id.")
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise ValueError(f"`actors` must be a positive integer, got {actors!r}.")
    parts = list_parts(source, part_size, split)
    output_dir = Path(output_dir).resolve()
    settings = {"model": str(model), "source": str(source), "split": split, "part_size": part_size}
    _check_output(output_dir, settings, overwrite)
    todo = [p for p in parts if not (output_dir / f"{part_name(p['part'])}.parquet").is_file()]
    counts = {"parts": len(parts), "already_done": len(parts) - len(todo), "embedded": 0, "skipped": 0}
    if not todo:
        return counts
    with ray_session(num_cpus, ray_address):
        import ray

        if gpus_per_actor is None:
            gpus_per_actor = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        rows = [{"part": p["part"], "kind": p["kind"], "shard": p.get("shard", ""), "items": p.get("items", "")}
                for p in todo]  # fmt: skip
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            PartEmbedder,
            fn_constructor_kwargs={
                "model": str(model),
                "output_dir": str(output_dir),
                "batch_size": batch_size,
            },
            compute=ray.data.ActorPoolStrategy(size=actors),
            batch_size=1,
            num_gpus=gpus_per_actor,
            num_cpus=1,
        )
        for result in dataset.take_all():
            counts["embedded"] += int(result["embedded"])
            counts["skipped"] += int(result["skipped"])
    return counts


__all__ = ["PartEmbedder", "embed_library", "list_parts"]
