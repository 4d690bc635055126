"""`zero-shot-video-classification`: score a video against label names through a prompt template.

Kept free of `vidla_hf` imports so that it works as Hub remote code (`trust_remote_code=True`).
"""

from collections import Counter
from string import Formatter

import torch
from transformers import Pipeline

from .pipeline_checks import check_batch_size, check_keywords, is_frame_list

TASK = "zero-shot-video-classification"


def check_texts(values, name: str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    if (
        not isinstance(values, (list, tuple))
        or not values
        or not all(isinstance(v, str) and v for v in values)
    ):
        raise ValueError(f"`{name}` must be a non-empty list of non-empty strings, got {values!r}.")
    return list(values)


def check_labels(candidate_labels) -> list[str]:
    labels = check_texts(candidate_labels, "candidate_labels")
    duplicates = sorted(label for label, count in Counter(labels).items() if count > 1)
    if duplicates:
        raise ValueError(
            f"`candidate_labels` must be distinct, got {duplicates} more than once in {labels!r}: the scores "
            "are a softmax over the labels, so a repeated label splits its score."
        )
    return labels


def check_template(template) -> str:
    """A template with exactly one positional placeholder (`{}` or `{0}`); `{{`/`}}` are literal braces."""
    try:
        fields = [field for _, field, _, _ in Formatter().parse(template) if field is not None]
    except (TypeError, ValueError, AttributeError):
        fields = None
    if fields not in ([""], ["0"]):
        raise ValueError(
            "`hypothesis_template` must be a string with exactly one '{}' where the label goes (write '{{' "
            f"and '}}' for literal braces), got {template!r}."
        )
    return template


class ZeroShotVideoClassificationPipeline(Pipeline):
    """Zero-shot video classification with a VidLA model: `pipe(video, candidate_labels=[...])`.

    `video` is a path, bytes, frames (numpy `(T, H, W, C)`, torch `(T, C, H, W)`, a list of PIL images), or
    a list of videos; labels (distinct) are put through `hypothesis_template` ("a video of {}.") and scored by
    the model's video-text logits. Returns `[{"label", "score"}]` sorted by score (scores sum to 1), or one
    such list per video.

    Example (a tiny untrained model, so the scores themselves mean nothing):

    ```python
    >>> import tempfile
    >>> import numpy as np
    >>> from transformers import pipeline
    >>> from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor
    >>> from vidla_hf.processing import build_clip_tokenizer
    >>> from vidla_hf.data.mp4 import encode_mp4
    >>> folder = tempfile.mkdtemp()  # a model folder, as training writes it
    >>> VidLAModel(VidLAConfig.from_preset("vidla-tiny")).save_pretrained(folder)
    >>> video_processor = VidLAVideoProcessor(num_frames=8, size={"shortest_edge": 64}, crop_size=64)
    >>> _ = VidLAProcessor(video_processor, build_clip_tokenizer()).save_pretrained(folder)  # file list
    >>> video = encode_mp4(np.zeros((16, 64, 64, 3), np.uint8))  # MP4 bytes; a path or frames work too
    >>> classifier = pipeline("zero-shot-video-classification", model=folder)
    >>> result = classifier(video, candidate_labels=["cooking", "dancing", "a cat"])
    >>> sorted(r["label"] for r in result), round(sum(r["score"] for r in result), 4)
    (['a cat', 'cooking', 'dancing'], 1.0)
    >>> [len(r) for r in classifier([video, video], candidate_labels=["cooking", "dancing"])]
    [2, 2]

    ```
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, *args, batch_size=None, **kwargs):
        check_batch_size(batch_size, TASK)
        super().__init__(*args, batch_size=batch_size, **kwargs)

    def __call__(self, videos, **kwargs):
        check_batch_size(kwargs.get("batch_size"), TASK)
        if is_frame_list(videos):  # one video given as its frames, not a batch of one-frame videos
            return super().__call__([list(videos)], **kwargs)[0]
        if isinstance(videos, tuple):
            videos = list(videos)
        if isinstance(videos, list) and not videos:
            raise ValueError("`videos` is an empty list: pass a video or a list of at least one video.")
        return super().__call__(videos, **kwargs)

    def _sanitize_parameters(self, candidate_labels=None, hypothesis_template=None, **kwargs):
        check_keywords(kwargs, ("candidate_labels", "hypothesis_template"), type(self).__name__)
        preprocess_params = {}
        if candidate_labels is not None:
            preprocess_params["candidate_labels"] = check_labels(candidate_labels)
        if hypothesis_template is not None:
            preprocess_params["hypothesis_template"] = check_template(hypothesis_template)
        return preprocess_params, {}, {}

    def preprocess(self, video, candidate_labels=None, hypothesis_template="a video of {}."):
        labels = check_labels(candidate_labels)
        inputs = self.processor(
            text=[hypothesis_template.format(label) for label in labels], videos=[video], return_tensors="pt"
        )
        inputs["candidate_labels"] = labels
        return inputs

    def _forward(self, model_inputs):
        labels = model_inputs.pop("candidate_labels")
        outputs = self.model(**model_inputs)
        return {"candidate_labels": labels, "logits": outputs.logits_per_video[0]}

    def postprocess(self, model_outputs):
        scores = model_outputs["logits"].float().softmax(dim=-1)
        order = torch.argsort(scores, descending=True).tolist()
        return [{"label": model_outputs["candidate_labels"][i], "score": scores[i].item()} for i in order]

    def save_pretrained(self, save_directory, **kwargs):
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)


__all__ = ["ZeroShotVideoClassificationPipeline"]
