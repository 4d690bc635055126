"""A generated set of WebDataset shards in one folder, published under a `manifest.json`.

The rules of the embedded synthetic dataset (`synthetic.generate_synthetic_dataset`), for any generator that
can write one named shard at a time: the manifest lists the shards of the finished set and is what readers go by
(`streams.resolve_tar_shards`); a set is written into a hidden staging folder, moved in shard by shard after
the old manifest is withdrawn, and published by writing the new manifest last; a set with the same config is
reused, never rewritten; shards the previous manifest listed and the new one does not are removed; nothing
else in the folder is touched, and shard-named files no manifest of the generator lists are refused unless
`overwrite`.
"""

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

SHARD_NAME = re.compile(r"^[\w.-]+-\d{5}\.tar$")
# The synthetic video-text generator wrote manifests without a `dataset` key before it shared these rules: a
# manifest with none is that generator's.
UNNAMED_DATASET = "synthetic"


def _listed(manifest: dict | None) -> set[str]:
    return {name for names in (manifest or {}).get("files", {}).values() for name in names}


def own_manifest(path: Path, dataset: str, version: int) -> dict | None:
    """The manifest at `path` if the generator of `dataset` (at this `version`) wrote it, else None."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    config = manifest.get("config") if isinstance(manifest, dict) else None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(config, dict) or not isinstance(files, dict):
        return None
    if config.get("dataset", UNNAMED_DATASET) != dataset or config.get("version") != version:
        return None
    names = [name for split_files in files.values() for name in split_files]
    if not all(isinstance(n, str) and SHARD_NAME.match(n) for n in names):
        return None
    return {**manifest, "config": {"dataset": dataset, **config}}


def split_shards(
    split: str, items: Sequence, per_shard: int, write: Callable[[Path, Sequence, int], None]
) -> list[tuple[str, Callable[[Path], None]]]:
    """`split`'s items cut into shards of `per_shard`, as the `(name, write)` pairs of `publish_shard_set`:
    shard n is `{split}-{n:05d}.tar`, written by `write(path, its items, n)`."""
    return [
        (f"{split}-{index:05d}.tar", partial(write, items=items[start : start + per_shard], index=index))
        for index, start in enumerate(range(0, len(items), per_shard))
    ]


def publish_shard_set(
    output_dir: str | os.PathLike,
    config: dict,
    shards: dict[str, list[tuple[str, Callable[[Path], None]]]],
    overwrite: bool = False,
    extra: dict | None = None,
) -> dict[str, list[str]]:
    """Writes (or reuses) a shard set; returns `{split: [shard paths]}`.

    `config` (with `dataset` and `version` keys) identifies the set: a manifest with an equal config is reused.
    `shards` maps each split to `(name, write)` pairs, `write(path)` writing that shard; `extra` goes into the
    manifest beside `config` and `files` (e.g. the label names).
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"`output_dir` {str(output_dir)!r} exists and is not a folder.")
    manifest_path = output_dir / "manifest.json"
    previous = own_manifest(manifest_path, config["dataset"], config["version"])
    if previous is not None and previous["config"] == config and not overwrite:
        return {split: [str(output_dir / f) for f in files] for split, files in previous["files"].items()}
    if manifest_path.is_file() and previous is None and not overwrite:
        raise ValueError(
            f"{str(manifest_path)!r} was not written by the {config['dataset']} generator; its folder is left "
            "alone. Choose another folder, or pass overwrite=True (--overwrite)."
        )
    pending_path = output_dir / "manifest.pending.json"  # names being moved in by a generation that crashed
    ours = _listed(previous) | _listed(own_manifest(pending_path, config["dataset"], config["version"]))
    foreign = sorted(
        p.name for p in output_dir.glob("*.tar") if p.name not in ours and SHARD_NAME.match(p.name)
    )
    if foreign and not overwrite:
        raise ValueError(
            f"{str(output_dir)!r} holds shards that no manifest of this generator lists ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}); they are left alone. Choose an empty folder, or pass "
            "overwrite=True (--overwrite) to replace them."
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    for leftover in output_dir.glob(".generating-*"):  # a crashed earlier generation
        shutil.rmtree(leftover, ignore_errors=True)
    files = {split: [name for name, _ in pairs] for split, pairs in shards.items()}
    manifest = {"config": config, "files": files, **(extra or {})}
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".generating-") as staging:
        for pairs in shards.values():
            for name, write in pairs:
                write(Path(staging) / name)
        pending_path.write_text(json.dumps(manifest))  # so a crash below leaves shards we still know as ours
        manifest_path.unlink(missing_ok=True)  # from here until the new manifest, no set is published
        for names in files.values():
            for name in names:
                os.replace(Path(staging) / name, output_dir / name)
    for stale in ours - _listed(manifest):
        (output_dir / stale).unlink(missing_ok=True)
    partial = manifest_path.with_suffix(".partial")
    partial.write_text(json.dumps(manifest, indent=2))
    os.replace(partial, manifest_path)
    pending_path.unlink(missing_ok=True)
    return {split: [str(output_dir / f) for f in names] for split, names in files.items()}


__all__ = ["SHARD_NAME", "own_manifest", "publish_shard_set", "split_shards"]
