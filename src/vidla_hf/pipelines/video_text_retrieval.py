"""`video-text-retrieval`: rank videos for a text query, or texts for a video query.

Kept free of `vidla_hf` imports so that it works as Hub remote code (`trust_remote_code=True`).
"""

import os

import torch
from transformers import Pipeline

from .pipeline_checks import check_batch_size, check_keywords, is_frame_list

TASK = "video-text-retrieval"


class VideoTextRetrievalPipeline(Pipeline):
    """Retrieval with a VidLA model.

    * `pipe("a text query", videos=[...])` → the videos ranked: `[{"index", "video", "score", "similarity"}]`
      (`video` is the input when it is a path, else `None`);
    * `pipe(video, texts=[...])` → the texts ranked: `[{"index", "text", "score", "similarity"}]`.

    `similarity` is the cosine similarity, `score` the softmax of the model's logits over the candidates. A
    list of queries gives one ranking per query, each over the whole gallery (queries and candidates are not
    paired, so their numbers need not match). A list of PIL images is one video query (its frames).

    Example (a tiny untrained model, so the order itself means nothing):

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
    >>> videos = [encode_mp4(np.full((16, 64, 64, 3), level, np.uint8)) for level in (0, 128, 255)]
    >>> retriever = pipeline("video-text-retrieval", model=folder)
    >>> ranked = retriever("a red circle moves left", videos=videos)
    >>> sorted(r["index"] for r in ranked), sorted(ranked[0])
    ([0, 1, 2], ['index', 'score', 'similarity', 'video'])
    >>> texts = ["a red circle moves left", "a blue square moves up"]
    >>> sorted(r["text"] for r in retriever(videos[0], texts=texts)) == sorted(texts)
    True

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

    def __call__(self, query, **kwargs):
        check_batch_size(kwargs.get("batch_size"), TASK)
        if is_frame_list(query):  # one video query given as its frames, not a list of one-frame queries
            return super().__call__([list(query)], **kwargs)[0]
        if isinstance(query, tuple):
            query = list(query)
        if isinstance(query, list) and not query:
            raise ValueError(
                "The query is an empty list: pass a query (a text or a video) or a list of them."
            )
        return super().__call__(query, **kwargs)

    def _sanitize_parameters(self, videos=None, texts=None, **kwargs):
        check_keywords(kwargs, ("videos", "texts"), type(self).__name__)
        return {"videos": videos, "texts": texts}, {}, {}

    def preprocess(self, query, videos=None, texts=None):
        # The keyword says what the query is: a video path is a string too.
        if (videos is None) == (texts is None):
            raise ValueError(
                "Pass exactly one of `videos=[...]` (the query is a text) or `texts=[...]` (a video)."
            )
        if videos is not None:
            if not isinstance(query, str):
                raise ValueError(f"With `videos=`, the query must be a text, got {type(query).__name__}.")
            if not isinstance(videos, (list, tuple)) or not videos:
                raise ValueError(f"`videos` must be a non-empty list of videos, got {videos!r:.200}.")
            inputs = self.processor(text=[query], videos=list(videos), return_tensors="pt")
            candidates = [os.fspath(v) if isinstance(v, (str, os.PathLike)) else None for v in videos]
            return {**inputs, "query_is_text": True, "candidates": candidates}
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or not texts:
            raise ValueError(f"`texts` must be a non-empty list of strings, got {texts!r:.200}.")
        inputs = self.processor(text=list(texts), videos=[query], return_tensors="pt")
        return {**inputs, "query_is_text": False, "candidates": list(texts)}

    def _forward(self, model_inputs):
        query_is_text = model_inputs.pop("query_is_text")
        candidates = model_inputs.pop("candidates")
        outputs = self.model(**model_inputs)
        logits = outputs.logits_per_text[0] if query_is_text else outputs.logits_per_video[0]
        similarity = logits / self.model.logit_scale.exp()
        return {
            "query_is_text": query_is_text,
            "candidates": candidates,
            "logits": logits,
            "similarity": similarity,
        }

    def postprocess(self, model_outputs):
        scores = model_outputs["logits"].float().softmax(dim=-1)
        key = "video" if model_outputs["query_is_text"] else "text"
        order = torch.argsort(scores, descending=True).tolist()
        return [
            {
                "index": i,
                key: model_outputs["candidates"][i],
                "score": scores[i].item(),
                "similarity": model_outputs["similarity"][i].item(),
            }
            for i in order
        ]

    def save_pretrained(self, save_directory, **kwargs):
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)


__all__ = ["VideoTextRetrievalPipeline"]
