"""`video-text-retrieval`: rank videos for a text query, or texts for a video query.

Kept free of `vidla_hf` imports so that it works as Hub remote code (`trust_remote_code=True`).
"""

import torch
from transformers import Pipeline


class VideoTextRetrievalPipeline(Pipeline):
    """Retrieval with a VidLA model.

    * `pipe("a text query", videos=[...])` → the videos ranked: `[{"index", "video", "score", "similarity"}]`
      (`video` is the input when it is a path, else `None`);
    * `pipe(video, texts=[...])` → the texts ranked: `[{"index", "text", "score", "similarity"}]`.

    `similarity` is the cosine similarity, `score` the softmax of the model's logits over the candidates.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> retriever = pipeline("video-text-retrieval", model="org/vidla-b16")  # doctest: +SKIP
    >>> retriever("a dog catches a frisbee", videos=["a.mp4", "b.mp4"])[0]["video"]  # doctest: +SKIP
    'b.mp4'
    ```
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __call__(self, query, **kwargs):
        return super().__call__(query, **kwargs)

    def _sanitize_parameters(self, videos=None, texts=None, **kwargs):
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
                raise ValueError(f"`videos` must be a non-empty list of videos, got {type(videos).__name__}.")
            inputs = self.processor(text=[query], videos=list(videos), return_tensors="pt")
            candidates = [v if isinstance(v, str) else None for v in videos]
            return {**inputs, "query_is_text": True, "candidates": candidates}
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or not texts:
            raise ValueError(f"`texts` must be a non-empty list of strings, got {texts!r}.")
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
