"""The embedded default dataset: procedurally rendered clips with a caption and a subtitle each.

Each clip shows 1, 2 or 4 *events* (YT-VidLA's short/medium/long scales), one after the other. An event is
a coloured shape entering and moving in a direction. Texts come in the paper's two roles: a visual
`caption` ("a red circle moves left, then a blue square moves up") and a narration-style `subtitle` that
says the same with other, noisier words, like ASR ("okay so uh the red ball goes to the left and then ...").

Event *order* matters: the same events in another order is another clip with another caption, so a model
that averages frames cannot solve retrieval. Everything is deterministic given the seed. Written as
WebDataset tar shards (`<key>.mp4` + `<key>.json`), readable with
`datasets.load_dataset("webdataset", data_files=..., streaming=True)`.

    python -m vidla_hf.data.synthetic --output_dir data/synthetic
"""

import argparse
import io
import json
import os
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .mp4 import encode_mp4
from .shard_sets import publish_shard_set, split_shards

COLORS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (40, 80, 240), "yellow": (240, 220, 40)}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SCALES = {"short": 1, "medium": 2, "long": 4}

SUBTITLE_SHAPES = {
    "circle": ("ball", "dot", "round thing"),
    "square": ("box", "block", "square"),
    "triangle": ("wedge", "pointy thing", "triangle"),
}
SUBTITLE_MOVES = {
    "left": ("goes to the left", "heads left", "slides over to the left"),
    "right": ("goes to the right", "heads right", "slides off to the right"),
    "up": ("goes up", "rises", "floats upwards"),
    "down": ("goes down", "drops", "sinks down"),
}
FILLERS = ("okay so", "um", "alright", "so here", "uh", "and yeah", "right so")
LINKS = ("and then", "after that", "next", "then uh")

FRAME_SIZE = 64
FRAMES_PER_EVENT = 8
FPS = 8


@dataclass(frozen=True)
class Event:
    color: str
    shape: str
    direction: str


@dataclass(frozen=True)
class SyntheticClip:
    key: str
    scale: str
    events: tuple[Event, ...]
    caption: str
    subtitle: str


def caption_for(events) -> str:
    phrases = [f"a {e.color} {e.shape} moves {e.direction}" for e in events]
    return ", then ".join(phrases)


def subtitle_for(events, rng: np.random.Generator) -> str:
    words = [str(rng.choice(FILLERS))]
    for index, event in enumerate(events):
        if index:
            words.append(str(rng.choice(LINKS)))
        words.append(
            f"the {event.color} {rng.choice(SUBTITLE_SHAPES[event.shape])} "
            f"{rng.choice(SUBTITLE_MOVES[event.direction])}"
        )
        if rng.random() < 0.3:
            words.append(str(rng.choice(FILLERS)))
    return " ".join(words)


def sample_clip(key: str, rng: np.random.Generator, scale: str | None = None) -> SyntheticClip:
    """Draws a clip description: its scale, events (no two consecutive identical) and both texts."""
    scale = scale or str(rng.choice(list(SCALES)))
    events = []
    while len(events) < SCALES[scale]:
        event = Event(
            str(rng.choice(list(COLORS))), str(rng.choice(SHAPES)), str(rng.choice(list(DIRECTIONS)))
        )
        if not events or event != events[-1]:
            events.append(event)
    return SyntheticClip(key, scale, tuple(events), caption_for(events), subtitle_for(events, rng))


def _shape_mask(shape: str, cx: float, cy: float, radius: float) -> np.ndarray:
    y, x = np.mgrid[0:FRAME_SIZE, 0:FRAME_SIZE]
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
    if shape == "square":
        return (np.abs(x - cx) <= radius) & (np.abs(y - cy) <= radius)
    return (y - cy <= radius) & (y - cy >= -radius) & (np.abs(x - cx) <= (y - cy + radius) / 2)  # triangle


def render_clip(clip: SyntheticClip, rng: np.random.Generator) -> np.ndarray:
    """(T, 64, 64, 3) uint8 frames: each event's shape crosses the frame in its direction over 8 frames."""
    background = rng.integers(10, 50, 3)
    frames = []
    for event in clip.events:
        dx, dy = DIRECTIONS[event.direction]
        radius = rng.uniform(7, 11)
        offset = rng.uniform(-10, 10)
        for step in range(FRAMES_PER_EVENT):
            progress = (step / (FRAMES_PER_EVENT - 1) - 0.5) * (FRAME_SIZE - 2 * radius)
            cx = FRAME_SIZE / 2 + dx * progress + (offset if dx == 0 else 0)
            cy = FRAME_SIZE / 2 + dy * progress + (offset if dy == 0 else 0)
            frame = np.empty((FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
            frame[:] = background
            frame[_shape_mask(event.shape, cx, cy, radius)] = COLORS[event.color]
            frames.append(frame)
    return np.stack(frames)


def short_clips(frames: np.ndarray, events, rng: np.random.Generator) -> list[tuple[np.ndarray, str, str]]:
    """Cuts a clip into its events: one short-scale clip `(frames, caption, subtitle)` per event.

    `frames` are the clip's `(8·E, H, W, 3)` frames (rendered or decoded), `events` its E events (`Event`s or
    the dicts of a shard's JSON). Each event's 8 frames become a clip of their own with that event's caption
    and a new subtitle (drawn from `rng`): the short-only data of the same source sequences, as the paper's
    Table 5 compares short-only pretraining data against short + medium + long clips of the same videos.
    """
    events = [Event(**e) if isinstance(e, dict) else e for e in events]
    if not events or len(frames) != FRAMES_PER_EVENT * len(events):
        raise ValueError(
            f"A clip of {len(events)} events has {FRAMES_PER_EVENT * len(events)} frames, got {len(frames)}."
        )
    return [
        (frames[i * FRAMES_PER_EVENT : (i + 1) * FRAMES_PER_EVENT], caption_for([e]), subtitle_for([e], rng))
        for i, e in enumerate(events)
    ]


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))


def write_shard(path: Path, clips: list[SyntheticClip], seed: tuple[int, ...]) -> None:
    """Writes one WebDataset shard atomically (a temporary file renamed when complete)."""
    rng = np.random.default_rng(seed)
    partial = path.with_suffix(".tar.partial")
    with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as archive:
        for clip in clips:
            _add_member(
                archive,
                f"{clip.key}.mp4",
                encode_mp4(render_clip(clip, rng), FPS, keyframe_interval=FRAMES_PER_EVENT),
            )
            meta = {
                "caption": clip.caption,
                "subtitle": clip.subtitle,
                "scale": clip.scale,
                "label": f"{clip.events[0].color} {clip.events[0].shape}",  # for zero-shot classification
                "events": [asdict(e) for e in clip.events],
            }
            _add_member(archive, f"{clip.key}.json", json.dumps(meta).encode("utf-8"))
    os.replace(partial, path)


DEFAULT_SPLITS = {"train": 2048, "val": 128, "test": 128}
MANIFEST_VERSION = 3
DATASET_NAME = "synthetic"  # (manifests from before `dataset` was recorded have none: see shard_sets)


def generate_synthetic_dataset(
    output_dir: str | os.PathLike,
    splits: dict[str, int] | None = None,
    clips_per_shard: int = 128,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, list[str]]:
    """Generates (or reuses) the dataset; returns `{split: [shard paths]}` for `load_dataset("webdataset")`.

    `manifest.json` lists the shards of the finished dataset and is what readers go by (files it does not
    list are ignored). A new set is written into a hidden staging folder, moved in shard by shard after
    the old manifest is withdrawn, and published by writing the new manifest last; shards the previous
    manifest listed and the new one does not are removed, nothing else in the folder is touched. A folder
    holding shard-named files that no manifest of ours lists is refused (they may be the user's) unless
    `overwrite=True`. Splits use disjoint seeds, so the same (seed, sizes) always gives the same bytes.

    Example:

    ```python
    >>> import tempfile
    >>> from vidla_hf.data.synthetic import generate_synthetic_dataset
    >>> folder = tempfile.mkdtemp()
    >>> files = generate_synthetic_dataset(folder, {"train": 8, "val": 4}, clips_per_shard=4)
    >>> sorted(files), len(files["train"])
    (['train', 'val'], 2)

    ```
    """
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    for name, size in splits.items():
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"Split {name!r} must have a positive number of clips, got {size!r}.")
    if clips_per_shard < 1:
        raise ValueError(f"`clips_per_shard` must be >= 1, got {clips_per_shard}.")
    config = {
        "dataset": DATASET_NAME,
        "seed": seed,
        "splits": splits,
        "clips_per_shard": clips_per_shard,
        "version": MANIFEST_VERSION,
    }
    shards = {}
    for split_index, (split, size) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, split_index])
        clips = [sample_clip(f"{split}-{i:06d}", rng) for i in range(size)]  # (cheap: rendering is in write)

        def write(path: Path, items: list[SyntheticClip], index: int, split_index: int = split_index) -> None:
            write_shard(path, items, (seed, split_index, index))

        shards[split] = split_shards(split, clips, clips_per_shard, write)
    return publish_shard_set(output_dir, config, shards, overwrite)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", default="data/synthetic")
    parser.add_argument("--train", type=int, default=DEFAULT_SPLITS["train"])
    parser.add_argument("--val", type=int, default=DEFAULT_SPLITS["val"])
    parser.add_argument("--test", type=int, default=DEFAULT_SPLITS["test"])
    parser.add_argument("--clips_per_shard", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    files = generate_synthetic_dataset(
        args.output_dir,
        {"train": args.train, "val": args.val, "test": args.test},
        args.clips_per_shard,
        args.seed,
        args.overwrite,
    )
    total = args.train + args.val + args.test
    elapsed = time.perf_counter() - start
    print(
        f"{total} clips in {sum(len(v) for v in files.values())} shards under {args.output_dir} "
        f"({elapsed:.1f} s, {total / elapsed * 60:.0f} clips/min)"
    )


if __name__ == "__main__":
    main()
