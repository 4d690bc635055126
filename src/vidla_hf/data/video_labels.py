"""Streamed labelled videos for classification: any `datasets` source with a label column → frames and label ids.

    source ─► load_video_text_stream (raw examples) ─► VideoLabelStream (workers: label, decode, views)
           ─► collate_video_labels (batches)

`VideoLabelStream` is `VideoTextStream` with labels instead of texts: the same epochs, seeding, resume state
and skipping of corrupt samples (undecodable video, malformed metadata, a sample without the label column);
what differs is the sample. The label is read from the example's columns merged with its JSON metadata (the
`json` member of a WebDataset sample), so it may be a JSON field (`label`), a `.cls` member or a dataset column,
given as a class name or an id. A label that is not one of the classes is not a corrupt sample but a wrong
label set: it stops the stream (`UnknownLabelError`).

Frames follow `processing.clip_views`: in training, `dense` or `segment` indices drawn per sample, then the
paper's multi-scale random square crop (scale 1.0 or 0.8 of the shorter side) and, only if asked, a random
horizontal flip (a flip turns "moves left" into "moves right": off by default); at test, every
`test_clips` × `test_crops` view of the clip, decoded once.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..processing.clip_views import (
    CLIP_SAMPLINGS,
    spatial_crop_boxes,
    train_frame_indices,
    view_frame_indices,
)
from ..processing.video_decoding import VideoDecodeError, read_video
from ..processing.video_processing_vidla import TRAINING_CROP_SCALES
from .streams import VideoTextStream, _video_source


class UnknownLabelError(LookupError):
    """A sample's label is not one of the classes: the label set and the data disagree, so the run stops."""


def label_id(value: Any, label2id: Mapping[str, int], column: str = "label") -> int:
    """The class id of a label given as a name, an id, or bytes holding either (a WebDataset `.cls` member).

    Example:

    ```python
    >>> from vidla_hf.data.video_labels import label_id
    >>> label2id = {"grows": 0, "shrinks": 1}
    >>> label_id("shrinks", label2id), label_id(1, label2id), label_id(b"0", label2id)
    (1, 1, 0)
    >>> label_id("spins", label2id)
    Traceback (most recent call last):
    vidla_hf.data.video_labels.UnknownLabelError: `label` 'spins' is not one of the 2 classes (grows, shrinks).

    ```
    """
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8").strip()
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, str) and value not in label2id and value.isdigit():
        value = int(value)
    if isinstance(value, str):
        if value in label2id:
            return label2id[value]
        names = list(label2id)
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise UnknownLabelError(f"`{column}` {value!r} is not one of the {len(names)} classes ({shown}).")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{column}` must be a class name or id, got {type(value).__name__} {value!r:.80}.")
    if not 0 <= value < len(label2id):
        raise UnknownLabelError(f"`{column}` id {value} is outside [0, {len(label2id)}).")
    return value


def manifest_labels(source: str) -> list[str] | None:
    """The class names (in id order) that `source`'s `manifest.json` lists under `labels` (the synthetic action
    dataset's does), or None when `source` is not a folder with such a manifest."""
    manifest = Path(source).expanduser() / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        labels = json.loads(manifest.read_text()).get("labels")
    except (ValueError, AttributeError):
        return None
    return list(labels) if isinstance(labels, list) else None


def random_square_crop(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The paper's multi-scale crop of `(T, H, W, 3)` frames: one square of side scale·min(H, W), scale ∈ {1.0,
    0.8}, at a random place, the same for every frame."""
    height, width = frames.shape[1:3]
    side = max(
        1, int(round(TRAINING_CROP_SCALES[int(rng.integers(len(TRAINING_CROP_SCALES)))] * min(height, width)))
    )
    top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
    return frames[:, top : top + side, left : left + side]


class VideoLabelStream(VideoTextStream):
    """Labelled samples of a streamed `datasets.IterableDataset`, decoded in DataLoader workers.

    Yields `{"key", "pixel_values_videos", "labels", "position", "skipped_keys"}`. `pixel_values_videos` is
    `(num_frames, 3, S, S)` in training and `(test_clips * test_crops, num_frames, 3, S, S)` otherwise (views
    clip-major: view `c * test_crops + m` is window `c`, crop `m`), S being the processor's crop size.
    `processor` is a `VidLAProcessor` or its video processor (only the video processor is used).
    """

    def __init__(
        self,
        dataset,
        processor,
        label2id: Mapping[str, int],
        label_column: str = "label",
        video_column: str = "mp4",
        metadata_column: str | None = "json",
        num_frames: int = 8,
        sampling: str = "segment",
        frame_stride: int = 4,
        training: bool = True,
        test_clips: int = 1,
        test_crops: int = 1,
        random_crop: bool = True,
        random_flip: bool = False,
        seed: int = 0,
        max_corrupt_fraction: float = 0.5,
    ):
        if sampling not in CLIP_SAMPLINGS:
            raise ValueError(f"`sampling` must be one of {CLIP_SAMPLINGS}, got {sampling!r}.")
        super().__init__(
            dataset,
            processor,
            video_column,
            None,
            None,
            metadata_column,
            num_frames,
            training,
            seed,
            max_corrupt_fraction,
        )
        self.video_processor = getattr(processor, "video_processor", processor)
        self.label2id = dict(label2id)
        self.label_column = label_column
        self.sampling, self.frame_stride = sampling, frame_stride
        self.test_clips, self.test_crops = test_clips, test_crops
        self.random_crop, self.random_flip = random_crop, random_flip

    def label(self, example: dict[str, Any]) -> int:
        """The example's class id; `KeyError` (a corrupt sample) when it has no label column."""
        fields = self.fields(example)
        if self.label_column not in fields or fields[self.label_column] is None:
            raise KeyError(f"Sample {example.get('__key__')!r} has no `{self.label_column}` label.")
        return label_id(fields[self.label_column], self.label2id, self.label_column)

    def _normalised(self, frames: np.ndarray, center_crop: bool) -> torch.Tensor:
        return self.video_processor(
            frames, do_sample_frames=False, do_center_crop=center_crop, return_tensors="pt"
        )["pixel_values_videos"][0]  # (T, 3, H, W)

    def views(self, video) -> torch.Tensor:
        """Every test view of `video`: `(clips * crops, T, 3, S, S)`, the union of their frames decoded once."""
        chosen = {}

        def union(metadata):
            chosen["views"] = view_frame_indices(
                metadata.total_num_frames, self.num_frames, self.sampling, self.frame_stride, self.test_clips
            )
            return np.unique(np.concatenate(chosen["views"]))

        frames, metadata = read_video(video, union, backend=self.video_processor.video_backend)
        resized = self._normalised(frames, center_crop=False)  # (U, 3, H', W'), shorter side S
        size = self.video_processor.crop_size["height"]
        boxes = spatial_crop_boxes(resized.shape[-2], resized.shape[-1], size, self.test_crops)
        views = []
        for indices in chosen["views"]:
            clip = resized[np.searchsorted(metadata.frames_indices, indices)]  # (T, 3, H', W')
            views += [clip[..., top : top + size, left : left + size] for top, left in boxes]
        return torch.stack(views)  # (V, T, 3, S, S)

    def prepare(self, example: dict[str, Any], sample_seed: int) -> dict[str, Any]:
        if example.get("__error__"):
            raise VideoDecodeError(example["__error__"])
        label = self.label(example)
        video = _video_source(example.get(self.video_column))
        if video is None:
            raise VideoDecodeError(f"Sample {example.get('__key__')!r} has no `{self.video_column}` video.")
        if not self.training:
            pixels = self.views(video)
        else:
            rng = np.random.default_rng(sample_seed)
            frames, _ = read_video(
                video,
                lambda m: train_frame_indices(
                    m.total_num_frames, self.num_frames, self.sampling, self.frame_stride, rng
                ),
                backend=self.video_processor.video_backend,
            )
            frames = random_square_crop(frames, rng) if self.random_crop else frames
            flip = self.random_flip and rng.random() < 0.5
            frames = np.ascontiguousarray(frames[:, :, ::-1]) if flip else frames
            pixels = self._normalised(frames, center_crop=True)
        return {"key": example.get("__key__"), "pixel_values_videos": pixels, "labels": label}


def collate_video_labels(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacks videos (`(B, T, 3, S, S)`, or `(B, V, T, 3, S, S)` with views) and labels, gathers keys,
    positions and skip counts."""
    return {
        "pixel_values_videos": torch.stack([s["pixel_values_videos"] for s in samples]),
        "labels": torch.tensor([s["labels"] for s in samples], dtype=torch.long),
        "keys": [s["key"] for s in samples],
        "positions": [s["position"] for s in samples],
        "skipped_keys": [key for s in samples for key in s["skipped_keys"]],
        "skipped": sum(len(s["skipped_keys"]) for s in samples),
    }


def check_label_column(stream: VideoLabelStream, source: str, split: str, max_examples: int = 32) -> int:
    """Reads the labels of the first `max_examples` raw examples of `stream` (no video is decoded) and raises
    `ValueError` if none has the label column (naming the columns they have) or one holds an unknown label.
    Returns the number of labels checked."""
    seen, labelled, columns = 0, 0, set()
    for example in stream.dataset.take(max_examples):
        seen += 1
        try:
            fields = stream.fields(example)
        except (ValueError, TypeError, UnicodeDecodeError):
            continue  # malformed metadata: a corrupt sample, skipped in training
        columns |= {k for k in fields if not k.startswith("__")}
        if fields.get(stream.label_column) is None:
            continue
        try:
            label_id(fields[stream.label_column], stream.label2id, stream.label_column)
        except (UnknownLabelError, TypeError) as error:
            raise ValueError(
                f"{source!r} ({split}) sample {example.get('__key__')!r}: {error} Check `--labels` and "
                "`--label_column`."
            ) from None
        labelled += 1
    if seen == 0:
        raise ValueError(f"{source!r} ({split}) holds no example.")
    if labelled == 0:
        raise ValueError(
            f"`--label_column` {stream.label_column!r} is in none of the first {seen} examples of {source!r} "
            f"({split}); their columns (JSON metadata fields included): {sorted(columns)}."
        )
    return labelled


__all__ = [
    "UnknownLabelError",
    "VideoLabelStream",
    "check_label_column",
    "collate_video_labels",
    "label_id",
    "manifest_labels",
    "random_square_crop",
]
