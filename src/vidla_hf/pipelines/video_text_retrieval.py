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
    * `pipe(video, texts=[...])` → the texts ranked: `[{"index", "text", "score", "similarity"}]`;
    * `pipe("a text query", index=video_index, top_k=10)` → the top-k videos of a gallery too large to embed
      per call, from a prebuilt index (`vidla_hf.evaluation.index.VideoIndex`, or any object with
      `search(queries, k) -> (similarities, ids)`): `[{"id", "score", "similarity"}]`, `score` the softmax
      of the model's logits over the retrieved videos.

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

    def _sanitize_parameters(self, videos=None, texts=None, index=None, top_k=None, **kwargs):
        check_keywords(kwargs, ("videos", "texts", "index", "top_k"), type(self).__name__)
        if index is not None and not callable(getattr(index, "search", None)):
            raise TypeError(f"`index` must have a `search(queries, k)` method, got {type(index).__name__}.")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}.")
        if top_k is not None and index is None:
            raise ValueError(
                "`top_k` applies to a search of `index=`; with `videos=`/`texts=` all are ranked."
            )
        postprocess = {"index": index, "top_k": top_k or 10} if index is not None else {}
        return {"videos": videos, "texts": texts, "index": index}, {}, postprocess

    def preprocess(self, query, videos=None, texts=None, index=None):
        # The keyword says what the query is: a video path is a string too.
        if sum(option is not None for option in (videos, texts, index)) != 1:
            raise ValueError(
                "Pass exactly one of `videos=[...]` (the query is a text), `texts=[...]` (a video) or "
                "`index=` (a text searched in a video index)."
            )
        if index is not None:
            if not isinstance(query, str):
                raise ValueError(f"With `index=`, the query must be a text, got {type(query).__name__}.")
            return {
                **self.processor(text=[query], return_tensors="pt"),
                "query_is_text": True,
                "search": True,
            }
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
        if model_inputs.pop("search", False):  # the query's embedding; the index is searched in postprocess
            model_inputs.pop("query_is_text")
            embedding = self.model.get_text_features(**model_inputs).pooler_output
            return {"embedding": torch.nn.functional.normalize(embedding.float(), dim=-1)}
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

    def postprocess(self, model_outputs, index=None, top_k=10):
        if index is not None:
            similarities, ids = index.search(model_outputs["embedding"].numpy(), top_k)
            similarity = torch.as_tensor(similarities[0], dtype=torch.float32)
            scores = (similarity * self.model.logit_scale.exp().float().cpu()).softmax(dim=-1)
            return [
                {"id": video_id, "score": score.item(), "similarity": sim.item()}
                for video_id, score, sim in zip(ids[0], scores, similarity, strict=True)
            ]
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
