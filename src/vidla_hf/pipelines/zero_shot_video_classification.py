"""`zero-shot-video-classification`: score a video against label names through a prompt template.

Kept free of `vidla_hf` imports so that it works as Hub remote code (`trust_remote_code=True`).
"""

import torch
from transformers import Pipeline


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


class ZeroShotVideoClassificationPipeline(Pipeline):
    """Zero-shot video classification with a VidLA model: `pipe(video, candidate_labels=[...])`.

    `video` is a path, bytes, frames (numpy `(T, H, W, C)`, torch `(T, C, H, W)`, a list of PIL images), or
    a list of videos; labels are put through `hypothesis_template` ("a video of {}.") and scored by the
    model's video-text logits. Returns `[{"label", "score"}]` sorted by score (scores sum to 1), or one
    such list per video.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> import vidla_hf  # registers the task  # doctest: +SKIP
    >>> classifier = pipeline("zero-shot-video-classification", model="org/vidla-b16")  # doctest: +SKIP
    >>> classifier("clip.mp4", candidate_labels=["cooking", "dancing"])  # doctest: +SKIP
    [{'label': 'dancing', 'score': 0.93}, {'label': 'cooking', 'score': 0.07}]
    ```
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __call__(self, videos, **kwargs):
        return super().__call__(videos, **kwargs)

    def _sanitize_parameters(self, candidate_labels=None, hypothesis_template=None, **kwargs):
        preprocess_params = {}
        if candidate_labels is not None:
            preprocess_params["candidate_labels"] = candidate_labels
        if hypothesis_template is not None:
            preprocess_params["hypothesis_template"] = hypothesis_template
        return preprocess_params, {}, {}

    def preprocess(self, video, candidate_labels=None, hypothesis_template="a video of {}."):
        labels = check_texts(candidate_labels, "candidate_labels")
        if "{}" not in hypothesis_template:
            raise ValueError(f"`hypothesis_template` must contain '{{}}', got {hypothesis_template!r}.")
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
