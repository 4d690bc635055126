"""Multi-view classification accuracy (the paper's Table 7 protocol): every video scored on `test_clips` temporal
windows × `test_crops` spatial crops, the views' probabilities (or logits) averaged, top-1 / top-5."""

from collections.abc import Mapping

import torch
from tqdm.auto import tqdm

from ..data.streams import load_video_text_stream
from ..data.video_labels import VideoLabelStream, collate_video_labels

VIEW_AVERAGES = ("probabilities", "logits")


def average_views(logits: torch.Tensor, view_average: str = "probabilities") -> torch.Tensor:
    """`(B, V, C)` per-view logits → `(B, C)` video scores: the mean of the views' softmax probabilities
    (SlowFast's test ensemble) or of their logits.

    Example:

    ```python
    >>> import torch
    >>> from vidla_hf.evaluation.classification import average_views
    >>> logits = torch.tensor([[[2.0, 0.0], [0.0, 4.0]]])  # one video, two views, two classes
    >>> average_views(logits, "logits").tolist()
    [[1.0, 2.0]]
    >>> average_views(torch.zeros(1, 3, 4)).tolist()
    [[0.25, 0.25, 0.25, 0.25]]

    ```
    """
    if view_average not in VIEW_AVERAGES:
        raise ValueError(f"`view_average` must be one of {VIEW_AVERAGES}, got {view_average!r}.")
    if logits.ndim != 3:
        raise ValueError(f"`logits` must have shape (videos, views, classes), got {tuple(logits.shape)}.")
    logits = logits.float()
    return (logits.softmax(dim=-1) if view_average == "probabilities" else logits).mean(dim=1)


def topk_accuracy(
    scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """Top-k accuracy in percent for each k, as `top{k}`; k is capped at the number of classes (with 3 classes
    `top5` is top-3, always 100). Ties count against the label: the classes scoring as high as the label rank
    before it.

    Example:

    ```python
    >>> import torch
    >>> from vidla_hf.evaluation.classification import topk_accuracy
    >>> scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    >>> topk_accuracy(scores, torch.tensor([1, 1, 0]), ks=(1, 2, 5))
    {'top1': 33.333333333333336, 'top2': 66.66666666666667, 'top5': 100.0}

    ```
    """
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(
            f"`scores` (N, C) and `labels` (N,) do not match: {tuple(scores.shape)}, {tuple(labels.shape)}."
        )
    own = scores.gather(1, labels[:, None])  # (N, 1)
    # Rank of the label: the classes scoring strictly higher, plus the tied ones before and after it.
    rank = (scores > own).sum(dim=1) + (scores == own).sum(dim=1) - 1  # (N,)
    results = {}
    for k in ks:
        results[f"top{k}"] = 100.0 * int((rank < min(k, scores.shape[1])).sum()) / len(rank)
    return results


@torch.no_grad()
def classify_views(
    model,
    processor,
    source: str,
    split: str,
    label2id: Mapping[str, int],
    label_column: str = "label",
    video_column: str = "mp4",
    metadata_column: str | None = "json",
    num_frames: int | None = None,
    sampling: str = "segment",
    frame_stride: int = 4,
    test_clips: int = 1,
    test_crops: int = 1,
    view_average: str = "probabilities",
    batch_size: int = 8,
    max_samples: int | None = None,
    num_workers: int = 1,
) -> dict:
    """One pass over `source`'s `split`: each video's `test_clips × test_crops` views (`VideoLabelStream`)
    scored by `model` (a `VidLAForVideoClassification`) and averaged by `average_views`. Returns `scores`
    `(N, C)`, `labels` `(N,)`, `keys` in stream order and the number of corrupt samples `skipped`.
    `processor` is a `VidLAProcessor` or its video processor; `batch_size` counts videos, whose views run
    together."""
    if view_average not in VIEW_AVERAGES:  # before any decoding
        raise ValueError(f"`view_average` must be one of {VIEW_AVERAGES}, got {view_average!r}.")
    dataset = load_video_text_stream(source, split, video_column=video_column)
    stream = VideoLabelStream(
        dataset,
        processor,
        label2id,
        label_column,
        video_column,
        metadata_column,
        num_frames=num_frames or getattr(processor, "video_processor", processor).num_frames,
        sampling=sampling,
        frame_stride=frame_stride,
        training=False,
        test_clips=test_clips,
        test_crops=test_crops,
    )
    loader = torch.utils.data.DataLoader(
        stream, batch_size=batch_size, collate_fn=collate_video_labels, num_workers=min(num_workers, 1)
    )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores, labels, keys, skipped = [], [], [], 0
    progress = tqdm(desc="classifying", unit="video")
    for batch in loader:
        first_pass = [i for i, p in enumerate(batch["positions"]) if p[1] == 0]
        if max_samples is not None:
            first_pass = first_pass[: max(0, max_samples - len(keys))]
        skipped += batch["skipped"] if first_pass else 0
        if not first_pass:
            break
        views = batch["pixel_values_videos"][first_pass]  # (b, V, T, 3, S, S)
        logits = model(pixel_values_videos=views.flatten(0, 1).to(device)).logits  # (b·V, C)
        scores.append(average_views(logits.view(*views.shape[:2], -1), view_average).cpu())  # (b, C)
        labels.append(batch["labels"][first_pass])
        keys += [batch["keys"][i] for i in first_pass]
        progress.update(len(first_pass))
    progress.close()
    model.train(was_training)
    if not keys:
        raise ValueError(f"No usable sample in {source!r} (split {split!r}).")
    return {"scores": torch.cat(scores), "labels": torch.cat(labels), "keys": keys, "skipped": skipped}


def evaluate_classifier(
    model, processor, source: str, split: str, label2id: Mapping[str, int], **options
) -> dict:
    """The multi-view test (`classify_views`, same options): top-1 and top-5 accuracy in percent, with the chance
    levels of a uniform guess, the number of videos and views per video, and the corrupt samples skipped.

    Example (a tiny untrained classifier, 8 clips of the synthetic action dataset):

    ```python
    >>> import shutil, tempfile
    >>> from vidla_hf import VidLAConfig, VidLAForVideoClassification, VidLAVideoProcessor
    >>> from vidla_hf.data.synthetic_actions import LABELS, generate_action_dataset
    >>> from vidla_hf.evaluation.classification import evaluate_classifier
    >>> data = tempfile.mkdtemp()
    >>> _ = generate_action_dataset(data, {"val": 8})
    >>> model = VidLAForVideoClassification(VidLAConfig.from_preset("vidla-tiny", id2label=dict(enumerate(LABELS))))
    >>> processor = VidLAVideoProcessor(num_frames=8, size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    >>> label2id = {name: i for i, name in enumerate(LABELS)}
    >>> out = evaluate_classifier(model, processor, data, "val", label2id, test_clips=2, test_crops=3)
    >>> out["num_videos"], out["views_per_video"], out["chance_top1"], 0 <= out["top1"] <= out["top5"] <= 100
    (8, 6, 12.5, True)
    >>> shutil.rmtree(data)

    ```
    """
    out = classify_views(model, processor, source, split, label2id, **options)
    num_classes = out["scores"].shape[1]
    return {
        **topk_accuracy(out["scores"], out["labels"], (1, 5)),
        "chance_top1": 100.0 / num_classes,
        "chance_top5": 100.0 * min(5, num_classes) / num_classes,
        "num_videos": len(out["keys"]),
        "views_per_video": options.get("test_clips", 1) * options.get("test_crops", 1),
        "view_average": options.get("view_average", "probabilities"),
        "skipped": out["skipped"],
    }


__all__ = ["VIEW_AVERAGES", "average_views", "classify_views", "evaluate_classifier", "topk_accuracy"]
