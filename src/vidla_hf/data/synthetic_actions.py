"""The embedded action-classification dataset: 8 actions of one shape that only their temporal ORDER tells apart.

Every clip has two 8-frame segments of one shape (random colour, shape, background and geometry):

* a *move*: the shape, at a fixed size, crosses a horizontal track, to the left or to the right;
* a *resize*: the shape, at a fixed place, grows or shrinks between two radii.

The label is the order of the segments and the direction of each, e.g. "moves left, then grows" or "shrinks,
then moves right" (`ACTIONS`; chance 1/8). Reversing a segment or swapping the two gives exactly the same
frames in another order, and the appearance is drawn independently of the label, so all 8 classes have the
same set of frames, frame for frame, for a given appearance: a model that averages (or otherwise pools)
frames without their order is at chance, and only the order of the frames tells the action (tested by
rendering every action with one appearance, and by a frame-mean classifier on the decoded clips).

Written as WebDataset tar shards (`<key>.mp4` + `<key>.json` with `label`, `label_id`, `caption`, the
segments and the appearance + `<key>.cls` with the label id) and a `manifest.json` holding `labels` (the
names, in id order): `datasets.load_dataset("webdataset", data_files=...)` reads them (`json` as a dict, `cls`
as an int), and so do the training streams (`--train_data data/synthetic_actions`). Deterministic given the
seed, byte for byte (one encoder thread).

    python -m vidla_hf.data.synthetic_actions --output_dir data/synthetic_actions
"""

import argparse
import json
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .mp4 import encode_mp4
from .shard_sets import publish_shard_set, split_shards
from .synthetic import COLORS, FRAME_SIZE, SHAPES, _add_member, _shape_mask

MOTIONS = ("left", "right")
RESIZES = ("grows", "shrinks")
ORDERS = ("move_first", "resize_first")
SEGMENT_FRAMES = 8
FPS = 8
DATASET_NAME = "synthetic_actions"
VERSION = 1
DEFAULT_SPLITS = {"train": 2048, "val": 256}


@dataclass(frozen=True)
class Action:
    order: str
    motion: str
    resize: str

    @property
    def name(self) -> str:
        move, resize = f"moves {self.motion}", self.resize
        return f"{move}, then {resize}" if self.order == "move_first" else f"{resize}, then {move}"


ACTIONS = tuple(Action(o, m, r) for o in ORDERS for m in MOTIONS for r in RESIZES)
LABELS = tuple(action.name for action in ACTIONS)


@dataclass(frozen=True)
class Appearance:
    """Everything about a clip but its action; drawn independently of the label."""

    color: str
    shape: str
    background: tuple[int, int, int]
    move_radius: float
    move_y: float
    track: tuple[float, float]  # the move's leftmost and rightmost centre
    resize_centre: tuple[float, float]
    radii: tuple[float, float]  # the resize's smallest and largest radius


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """A random appearance (always the same number of draws, whatever the action)."""
    color, shape = str(rng.choice(list(COLORS))), str(rng.choice(SHAPES))
    background = tuple(int(v) for v in rng.integers(10, 50, 3))
    move_radius = float(rng.uniform(6, 9))
    length = float(rng.uniform(28, 40))
    left = float(rng.uniform(move_radius + 1, FRAME_SIZE - move_radius - 1 - length))
    move_y = float(rng.uniform(move_radius + 2, FRAME_SIZE - move_radius - 2))
    small, large = float(rng.uniform(3, 5)), float(rng.uniform(12, 15))
    centre = tuple(float(v) for v in rng.uniform(large + 1, FRAME_SIZE - large - 1, 2))
    return Appearance(
        color, shape, background, move_radius, move_y, (left, left + length), centre, (small, large)
    )


def _frame(appearance: Appearance, cx: float, cy: float, radius: float) -> np.ndarray:
    frame = np.empty((FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    frame[:] = appearance.background
    frame[_shape_mask(appearance.shape, cx, cy, radius)] = COLORS[appearance.color]
    return frame


def render_action(action: Action, appearance: Appearance) -> np.ndarray:
    """(16, 64, 64, 3) uint8 frames: the two segments of `action`, 8 frames each, drawn with `appearance`."""
    steps = np.linspace(0.0, 1.0, SEGMENT_FRAMES)
    left, right = appearance.track
    xs = left + (right - left) * steps  # left to right
    move = [_frame(appearance, x, appearance.move_y, appearance.move_radius) for x in xs]
    small, large = appearance.radii
    resize = [_frame(appearance, *appearance.resize_centre, small + (large - small) * s) for s in steps]
    move = move[::-1] if action.motion == "left" else move
    resize = resize[::-1] if action.resize == "shrinks" else resize
    return np.stack(move + resize if action.order == "move_first" else resize + move)


def split_labels(size: int, rng: np.random.Generator) -> np.ndarray:
    """Balanced label ids for a split: every action `size // 8` or `size // 8 + 1` times, in random order."""
    return rng.permutation(np.arange(size) % len(ACTIONS))


def _write_shard(path: Path, keys: list[str], labels: list[int], seed: tuple[int, ...]) -> None:
    rng = np.random.default_rng(seed)
    partial = path.with_suffix(".tar.partial")
    with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as archive:
        for key, label in zip(keys, labels, strict=True):
            action, appearance = ACTIONS[label], sample_appearance(rng)
            video = encode_mp4(
                render_action(action, appearance), FPS, keyframe_interval=SEGMENT_FRAMES, threads=1
            )
            meta = {
                "label": action.name,
                "label_id": int(label),
                "caption": f"a {appearance.color} {appearance.shape} {action.name}",
                "order": action.order,
                "motion": action.motion,
                "resize": action.resize,
                "color": appearance.color,
                "shape": appearance.shape,
            }
            _add_member(archive, f"{key}.mp4", video)
            _add_member(archive, f"{key}.json", json.dumps(meta).encode("utf-8"))
            _add_member(archive, f"{key}.cls", str(int(label)).encode("ascii"))
    os.replace(partial, path)


def generate_action_dataset(
    output_dir: str | os.PathLike,
    splits: dict[str, int] | None = None,
    clips_per_shard: int = 256,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, list[str]]:
    """Generates (or reuses) the action dataset; returns `{split: [shard paths]}`.

    The folder rules are `shard_sets.publish_shard_set`'s (those of the synthetic video-text dataset): a set
    with the same (seed, sizes, shard size) is reused, a new one is staged and published by writing
    `manifest.json` last, and files it did not write are never touched. Splits use disjoint seeds.

    Example:

    ```python
    >>> import json, tempfile
    >>> from vidla_hf.data.synthetic_actions import generate_action_dataset
    >>> folder = tempfile.mkdtemp()
    >>> files = generate_action_dataset(folder, {"train": 8, "val": 4}, clips_per_shard=4)
    >>> len(files["train"]), len(files["val"])
    (2, 1)
    >>> json.load(open(folder + "/manifest.json"))["labels"][:2]
    ['moves left, then grows', 'moves left, then shrinks']

    ```
    """
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    for name, size in splits.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"Split {name!r} must have a positive number of clips, got {size!r}.")
    if isinstance(clips_per_shard, bool) or not isinstance(clips_per_shard, int) or clips_per_shard < 1:
        raise ValueError(f"`clips_per_shard` must be an int >= 1, got {clips_per_shard!r}.")
    config = {
        "dataset": DATASET_NAME,
        "version": VERSION,
        "seed": seed,
        "splits": splits,
        "clips_per_shard": clips_per_shard,
    }
    shards = {}
    for split_index, (split, size) in enumerate(splits.items()):
        labels = split_labels(size, np.random.default_rng([seed, split_index])).tolist()
        clips = [(f"{split}-{i:06d}", label) for i, label in enumerate(labels)]  # (key, label)

        def write(
            path: Path, items: list[tuple[str, int]], index: int, split_index: int = split_index
        ) -> None:
            _write_shard(
                path, [key for key, _ in items], [label for _, label in items], (seed, split_index, index)
            )

        shards[split] = split_shards(split, clips, clips_per_shard, write)
    extra = {"labels": list(LABELS), "label_column": "label"}
    return publish_shard_set(output_dir, config, shards, overwrite, extra)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", default="data/synthetic_actions")
    parser.add_argument("--train", type=int, default=DEFAULT_SPLITS["train"])
    parser.add_argument("--val", type=int, default=DEFAULT_SPLITS["val"])
    parser.add_argument("--clips_per_shard", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    sizes = {"train": args.train, "val": args.val}
    files = generate_action_dataset(args.output_dir, sizes, args.clips_per_shard, args.seed, args.overwrite)
    print(
        f"{sum(sizes.values())} clips in {sum(map(len, files.values()))} shards under {args.output_dir} "
        f"({time.perf_counter() - start:.1f} s)"
    )


__all__ = [
    "ACTIONS",
    "LABELS",
    "Action",
    "Appearance",
    "generate_action_dataset",
    "render_action",
    "sample_appearance",
]


if __name__ == "__main__":
    main()
