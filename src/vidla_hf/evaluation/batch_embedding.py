"""Embedding a video library: `VideoEmbedder`, one model + processor mapping batches of videos or texts to
L2-normalised embeddings, for Ray Data's `map_batches` (an actor pool: the model loads once per actor) and
`datasets.map(batched=True)`.

A video that cannot be decoded does not stop the batch: its row gets `ok=False`, an `error` message and a
zero embedding, and the caller skips and lists it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class VideoEmbedder:
    """Holds a VidLA model and processor; `embedder(batch)` embeds the batch's `video` or `text` column.

    `model` is a `VidLAModel`, a folder or a Hub id (loaded with `AutoModel` / `AutoProcessor`; `processor`
    defaults to the one saved with it). Videos are anything the processor reads: paths, URLs, bytes or
    frames. `device` defaults to CUDA when present; `dtype` (e.g. `torch.bfloat16`) casts the model.
    Returns the batch's other columns unchanged plus `embedding` (B, D) float32, `ok` and `error`.

    Example (a tiny untrained model; a corrupt video is reported, not raised):

    ```python
    >>> import numpy as np
    >>> from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
    >>> from vidla_hf.data.mp4 import encode_mp4
    >>> from vidla_hf.evaluation.batch_embedding import VideoEmbedder
    >>> model = VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=2))
    >>> processor = VidLAProcessor(VidLAVideoProcessor(num_frames=2, size={"shortest_edge": 64},
    ...                                                crop_size=64), build_clip_tokenizer())
    >>> embedder = VideoEmbedder(model, processor)
    >>> out = embedder({"id": ["a", "b"], "video": [encode_mp4(np.zeros((8, 64, 64, 3), np.uint8)), b"junk"]})
    >>> out["embedding"].shape, out["ok"].tolist(), out["id"]
    ((2, 128), [True, False], ['a', 'b'])
    >>> embedder({"text": ["a red circle moves left"]})["embedding"].shape
    (1, 128)

    ```
    """

    def __init__(
        self,
        model: Any,
        processor: Any = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int = 16,
        num_threads: int | None = None,
    ):
        from transformers import AutoModel, AutoProcessor

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if num_threads is not None:
            torch.set_num_threads(num_threads)  # a Ray actor's CPUs
        if isinstance(model, (str, os.PathLike)):
            processor = processor or AutoProcessor.from_pretrained(model)
            model = AutoModel.from_pretrained(model)
        if processor is None:
            raise ValueError("Pass the `processor` with a model object (a folder or Hub id loads its own).")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device, dtype=dtype).eval() if dtype else model.to(self.device).eval()
        self.processor, self.batch_size = processor, batch_size
        self.dim = model.config.projection_dim

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """(N, D) float32 L2-normalised text embeddings."""
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.processor(text=list(texts[start : start + self.batch_size]), return_tensors="pt")
            text = self.model.get_text_features(**tokens.to(self.device)).pooler_output
            chunks.append(F.normalize(text.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    @torch.inference_mode()
    def embed_videos(self, videos: list[Any]) -> tuple[np.ndarray, list[str]]:
        """(N, D) float32 L2-normalised video embeddings and an error message per video ("" when embedded;
        a video that could not be decoded or processed keeps a zero row)."""
        embeddings = np.zeros((len(videos), self.dim), np.float32)
        errors = [""] * len(videos)
        pixels, rows = [], []
        for row, video in enumerate(videos):
            try:  # one at a time, so a corrupt video costs only itself
                pixels.append(self.processor(videos=[video], return_tensors="pt")["pixel_values_videos"][0])
                rows.append(row)
            except Exception as error:  # undecodable, truncated, unreadable: listed by the caller
                errors[row] = f"{type(error).__name__}: {error}"[:500]
        for start in range(0, len(rows), self.batch_size):
            batch = torch.stack(pixels[start : start + self.batch_size]).to(self.device, self.model.dtype)
            video = self.model.get_video_features(pixel_values_videos=batch).pooler_output
            embeddings[rows[start : start + self.batch_size]] = (
                F.normalize(video.float(), dim=-1).cpu().numpy()
            )
        return embeddings, errors

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        if ("video" in batch) == ("text" in batch):
            raise ValueError(
                f"A batch needs exactly one of the columns 'video' and 'text', got {sorted(batch)}."
            )
        if "text" in batch:
            texts = list(batch["text"])
            return {**batch, "embedding": self.embed_texts(texts), "ok": np.ones(len(texts), bool),
                    "error": [""] * len(texts)}  # fmt: skip
        embeddings, errors = self.embed_videos(list(batch["video"]))
        return {
            **batch,
            "embedding": embeddings,
            "ok": np.array([not error for error in errors], bool),
            "error": errors,
        }


__all__ = ["VideoEmbedder"]
