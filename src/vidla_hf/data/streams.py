"""Streamed video-text data for training: any `datasets` source → decoded, tokenised batches.

    source ─► datasets.IterableDataset (streaming) ─► shuffle buffer ─► split_dataset_by_node
           ─► VideoTextStream (DataLoader workers: decode + process, skip and count corrupt samples)
           ─► collate_video_text (batches)

The stream never ends: each process cycles through its share epoch after epoch (reshuffled), so every
process produces as many batches as the training loop asks for and no rank waits on another.

Resuming is exact: `VideoTextStream` is stateful (`state_dict()` is the (epoch, index) of the last raw
example it handed out, per worker), and torchdata's `StatefulDataLoader` snapshots those states together
with its own round-robin position over the workers. A resumed stream skips the raw examples up to its
position without decoding them. Order is deterministic because the shuffle is seeded per epoch and the
per-sample augmentation is seeded by the sample's position. What the states cannot survive (another
source, seed, shuffle buffer, worker count or world size) is refused by the training loop's resume check.
"""

import copy
import glob
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from datasets.distributed import split_dataset_by_node

from ..processing.video_decoding import VideoDecodeError
from .tar_shards import count_tar_samples, expand_shard_urls, is_remote_source, iter_tar_shards


class CorruptStreamError(ValueError):
    """Too large a share of a stream's samples could not be used; training stops instead of skipping on."""


def resolve_tar_shards(source: str, split: str) -> list[str] | None:
    """Local WebDataset shards for `source`, or None if it is not local shards (a dataset id, or remote
    shards: `is_remote_source`).

    `source` is a `.tar` path or glob, or a folder: with a `manifest.json` (the synthetic and curated
    datasets), exactly the shards it lists for `split` (other files in the folder are never read);
    without one, its `<split>-*.tar` files.
    """
    if is_remote_source(source):
        return None
    folder = Path(source).expanduser()
    if source.endswith(".tar") or any(ch in source for ch in "*?["):
        files = sorted(glob.glob(os.path.expanduser(source)))
    elif (folder / "manifest.json").is_file():
        listed = json.loads((folder / "manifest.json").read_text()).get("files", {})
        if split not in listed:
            raise ValueError(
                f"{source!r} has no split {split!r}; its manifest lists {sorted(listed) or 'no splits'}."
            )
        files = [str(folder / name) for name in listed[split]]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise FileNotFoundError(f"Shards listed in {folder / 'manifest.json'} are missing: {missing[:3]}")
    elif folder.is_dir() and glob.glob(os.path.join(folder, f"{split}-*.tar")):
        files = sorted(glob.glob(os.path.join(folder, f"{split}-*.tar")))
    else:
        return None
    if not files:
        raise FileNotFoundError(f"No WebDataset shards match {source!r}.")
    return files


def count_examples(source: str, split: str = "train") -> int | None:
    """How many raw examples one pass over `source`'s `split` holds, or None when only reading it all would
    tell (a stream whose dataset info gives no `num_examples`). Corrupt samples count: training skips them.

    Local WebDataset shards (as `resolve_tar_shards` finds them) are counted from their tar headers; any other
    source answers from its dataset info (a Hub dataset's card, a local folder's README metadata), read
    without reading the data.
    """
    if is_remote_source(source):
        return None  # only reading every remote shard would tell
    shards = resolve_tar_shards(source, split)
    if shards is not None:
        return sum(count_tar_samples(shard) for shard in shards)
    splits = datasets.load_dataset_builder(source).info.splits or {}
    info = splits.get(split)
    return info.num_examples if info is not None and info.num_examples else None


def source_fingerprint(source: str, split: str) -> Any:
    """What identifies a training source's content for exact resume: local shards by name and size (the
    folder may move), anything else by its name."""
    shards = resolve_tar_shards(source, split)
    if shards is None:
        return source
    return [[os.path.basename(shard), os.path.getsize(shard)] for shard in shards]


def load_video_text_stream(
    source: str,
    split: str = "train",
    video_column: str = "mp4",
    shuffle_buffer: int = 0,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> datasets.IterableDataset:
    """A streamed `datasets.IterableDataset` for `source`, shuffled and split for this process.

    `source` is local WebDataset shards (a `.tar` glob, or a folder with `<split>-*.tar` such as the
    synthetic dataset), remote shards (URLs or `pipe:` commands with `{000..099}` ranges, see
    `tar_shards`; one that cannot be read becomes one skipped, counted example) or anything `datasets.load_dataset(source, split=split, streaming=True)` accepts
    (a Hub dataset id, a local dataset folder). A `datasets.Video` column is read as raw bytes: decoding
    is ours, in the DataLoader workers.
    """
    shards = expand_shard_urls(source) if is_remote_source(source) else resolve_tar_shards(source, split)
    if shards is not None:
        dataset = datasets.IterableDataset.from_generator(iter_tar_shards, gen_kwargs={"shards": shards})
    else:
        dataset = datasets.load_dataset(source, split=split, streaming=True)
        features = dataset.features or {}
        if isinstance(features.get(video_column), datasets.Video):
            dataset = dataset.cast_column(video_column, datasets.Video(decode=False))
    if shuffle_buffer > 1:
        dataset = dataset.shuffle(seed=seed, buffer_size=shuffle_buffer)
    if world_size > 1:
        dataset = split_dataset_by_node(dataset, rank=rank, world_size=world_size)
    return dataset


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8")  # UnicodeDecodeError for non-UTF-8 text: the sample is skipped
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be text, got {type(value).__name__}.")
    value = value.strip()
    return value or None


def _video_source(value: Any) -> Any:
    if isinstance(value, dict):  # datasets.Video(decode=False) / webdataset-style {"bytes", "path"}
        return value.get("bytes") or value.get("path")
    return value


class VideoTextStream(torch.utils.data.IterableDataset):
    """Decodes and processes a streamed `datasets.IterableDataset` in DataLoader workers.

    Yields `{"key", "pixel_values_videos", "caption_ids", "subtitle_ids", "position", "skipped_keys"}` per
    usable sample; `skipped_keys` names the corrupt samples dropped just before it (undecodable video,
    malformed metadata, missing or non-UTF-8 text), so they are counted by whoever consumes the stream. A sample with only one of the two texts uses it for both
    roles. If more than `max_corrupt_fraction` of the samples seen so far (after the first 20) are
    corrupt, it raises `CorruptStreamError`.

    `training` selects the processor's training augmentation (`random_flip=False`: without its horizontal flips,
    for texts that name directions); `frame_sampling` the processor's strategy
    (`"uniform"` segment centres or `"random"` one random frame per segment; None: the processor's default,
    random in training). Each sample's randomness is seeded by `seed` and the sample's position.
    """

    def __init__(
        self,
        dataset: datasets.IterableDataset,
        processor,
        video_column: str = "mp4",
        caption_column: str = "caption",
        subtitle_column: str = "subtitle",
        metadata_column: str | None = "json",
        num_frames: int = 12,
        training: bool = True,
        seed: int = 0,
        max_corrupt_fraction: float = 0.5,
        keep_metadata: bool = False,
        frame_sampling: str | None = None,
        random_flip: bool = True,
    ):
        super().__init__()
        if not 0.0 <= max_corrupt_fraction < 1.0:
            raise ValueError(f"`max_corrupt_fraction` must be in [0, 1), got {max_corrupt_fraction}.")
        self.dataset = dataset
        self.processor = processor
        self.video_column, self.caption_column, self.subtitle_column = (
            video_column,
            caption_column,
            subtitle_column,
        )
        self.metadata_column = metadata_column
        self.num_frames = num_frames
        self.training = training
        self.seed = seed
        self.max_corrupt_fraction = max_corrupt_fraction
        self.keep_metadata = keep_metadata
        self.frame_sampling = frame_sampling
        self.random_flip = random_flip
        self.position = (0, -1)  # (epoch, index) of the last example handed out

    def state_dict(self) -> dict[str, int]:
        """Where this (worker's) stream is: `StatefulDataLoader` snapshots it with every batch."""
        return {"epoch": self.position[0], "index": self.position[1]}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume after the example at `state`; the next `iter()` skips up to it without decoding."""
        self.position = (int(state["epoch"]), int(state["index"]))

    def fields(self, example: dict[str, Any]) -> dict[str, Any]:
        """The example's columns merged with the JSON object of `metadata_column`, if any."""
        fields = dict(example)
        metadata = example.get(self.metadata_column) if self.metadata_column else None
        if metadata is not None:
            if isinstance(metadata, (bytes, str)):
                metadata = json.loads(metadata)  # JSONDecodeError / UnicodeDecodeError: skipped
            if not isinstance(metadata, dict):
                raise TypeError(
                    f"`{self.metadata_column}` must hold a JSON object, got {type(metadata).__name__}."
                )
            fields = {**metadata, **fields}
        return fields

    def texts(self, example: dict[str, Any]) -> tuple[str, str]:
        fields = self.fields(example)
        caption = _text(fields.get(self.caption_column), self.caption_column)
        subtitle = _text(fields.get(self.subtitle_column), self.subtitle_column)
        if caption is None and subtitle is None:
            raise ValueError(f"Sample {example.get('__key__')!r} has neither a caption nor a subtitle.")
        return caption or subtitle, subtitle or caption

    def prepare(self, example: dict[str, Any], sample_seed: int) -> dict[str, Any]:
        if example.get("__error__"):
            raise VideoDecodeError(example["__error__"])
        caption, subtitle = self.texts(example)
        video = _video_source(example.get(self.video_column))
        if video is None:
            raise VideoDecodeError(f"Sample {example.get('__key__')!r} has no `{self.video_column}` video.")
        pixels = self.processor.video_processor(
            video,
            num_frames=self.num_frames,
            training=self.training,
            random_flip=self.random_flip,
            frame_sampling=self.frame_sampling,
            seed=sample_seed,
            return_tensors="pt",
        )["pixel_values_videos"][0]
        tokenizer = self.processor.tokenizer  # truncates to its own `model_max_length` (CLIP's 77)
        extra = {}
        if self.keep_metadata:
            extra["metadata"] = {
                k: v
                for k, v in self.fields(example).items()
                if k != self.video_column and isinstance(v, (str, int, float, list, dict))
            }
        return {
            **extra,
            "key": example.get("__key__"),
            "pixel_values_videos": pixels,
            "caption_ids": tokenizer(caption, truncation=True)["input_ids"],
            "subtitle_ids": tokenizer(subtitle, truncation=True)["input_ids"],
            "pad_token_id": tokenizer.pad_token_id,
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = torch.utils.data.get_worker_info()
        worker_id = worker.id if worker is not None else 0
        start_epoch, start_index = self.position
        seen = bad = 0
        skipped_keys: list[str] = []
        epoch = start_epoch
        # A private copy: `datasets` keeps the epoch in a tensor shared by every worker (for `set_epoch` from
        # the main process), so workers at different epochs would reshuffle with each other's seeds.
        dataset = copy.deepcopy(self.dataset)
        while True:
            dataset.set_epoch(epoch)
            used_this_epoch = raw_this_epoch = 0
            for index, example in enumerate(dataset):
                raw_this_epoch += 1
                if epoch == start_epoch and index <= start_index:
                    continue  # consumed before the resume point: not even decoded
                seen += 1
                sample_seed = int(
                    np.random.SeedSequence([self.seed, epoch, worker_id, index]).generate_state(1)[0]
                )
                try:
                    sample = self.prepare(example, sample_seed)
                except (VideoDecodeError, ValueError, TypeError, KeyError, UnicodeDecodeError) as error:
                    bad += 1
                    skipped_keys.append(str(example.get("__key__")))
                    if seen >= 20 and bad / seen > self.max_corrupt_fraction:
                        raise CorruptStreamError(
                            f"{bad} of {seen} samples could not be used (more than {self.max_corrupt_fraction:.0%}); "
                            f"last: {error}"
                        ) from error
                    continue
                used_this_epoch += 1
                self.position = (epoch, index)
                yield {**sample, "position": (worker_id, epoch, index), "skipped_keys": skipped_keys}
                skipped_keys = []
            if raw_this_epoch == 0:
                return  # this worker was given no shard (more workers than shards)
            if used_this_epoch == 0 and not (epoch == start_epoch and start_index >= 0):
                raise CorruptStreamError(
                    f"A whole pass over the stream gave no usable sample ({bad} corrupt)."
                )
            epoch += 1


def collate_video_text(samples: list[dict[str, Any]], pad_token_id: int | None = None) -> dict[str, Any]:
    """Stacks videos, pads both texts and gathers positions and skip counts.

    Texts are padded with `pad_token_id`, by default the one the samples' tokenizer uses (CLIP pads with
    its end-of-text token).
    """
    if pad_token_id is None:
        pad_token_id = samples[0]["pad_token_id"]

    def pad(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
        return ids, mask

    caption_ids, caption_mask = pad([s["caption_ids"] for s in samples])
    subtitle_ids, subtitle_mask = pad([s["subtitle_ids"] for s in samples])
    return {
        "pixel_values_videos": torch.stack([s["pixel_values_videos"] for s in samples]),
        "caption_ids": caption_ids,
        "caption_mask": caption_mask,
        "subtitle_ids": subtitle_ids,
        "subtitle_mask": subtitle_mask,
        "positions": [s["position"] for s in samples],
        "keys": [s["key"] for s in samples],
        "metadata": [s.get("metadata") for s in samples],
        "skipped_keys": [key for s in samples for key in s["skipped_keys"]],
        "skipped": sum(len(s["skipped_keys"]) for s in samples),
    }


__all__ = [
    "CorruptStreamError",
    "VideoTextStream",
    "collate_video_text",
    "count_examples",
    "count_tar_samples",
    "load_video_text_stream",
    "resolve_tar_shards",
    "source_fingerprint",
]
