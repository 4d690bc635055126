"""Serving embeddings from an `export_onnx` folder with onnxruntime: the processor, two sessions, numpy out."""

import json
import os
from pathlib import Path

import numpy as np

from ..modeling import NoSuchFolderError
from ..processing import VidLAProcessor
from ..processing.video_inputs import is_single_video
from .folders import METADATA_FILE


class OnnxEmbedder:
    """L2-normalised video and text embeddings from the two exported towers, run by onnxruntime (numpy in and
    out; no model code). Retrieval is a dot product: `texts @ videos.T` are cosine similarities, and
    `logit_scale * texts @ videos.T` are `VidLAModel`'s `logits_per_text`.

    `folder` is a folder written by `export_onnx`; `providers` are onnxruntime's execution providers (CPU by
    default). `embed_videos` / `embed_texts` take what `VidLAProcessor` takes; `run_video_tower` /
    `run_text_tower` take its outputs, checked against what the graphs accept.

    Example (a tiny random model, exported first):

    ```python
    >>> import tempfile
    >>> import numpy as np
    >>> from vidla_hf import VidLAConfig, VidLAModel
    >>> from vidla_hf.export import OnnxEmbedder, export_onnx
    >>> folder = tempfile.mkdtemp() + "/onnx"
    >>> _ = export_onnx(VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=2)), folder)
    >>> embedder = OnnxEmbedder(folder)
    >>> videos = embedder.embed_videos([np.zeros((9, 48, 64, 3), np.uint8), np.full((3, 64, 64, 3), 200, np.uint8)])
    >>> texts = embedder.embed_texts(["a cat", "a dog runs across the park"])
    >>> videos.shape, texts.shape, videos.dtype
    ((2, 128), (2, 128), dtype('float32'))
    >>> np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    True
    >>> (texts @ videos.T).shape  # cosine similarities, (texts, videos)
    (2, 2)

    ```
    """

    def __init__(self, folder: str | os.PathLike, providers=("CPUExecutionProvider",), session_options=None):
        import onnxruntime

        folder = Path(os.path.expanduser(os.fspath(folder)))
        if not folder.is_dir():
            raise NoSuchFolderError(
                f"no such ONNX export folder: {folder.absolute()} (write one with `export_onnx`).",
                str(folder.absolute()),
            )
        if not (folder / METADATA_FILE).is_file():
            raise ValueError(
                f"{str(folder)!r} is not an ONNX export folder: it has no {METADATA_FILE} (write one with "
                "`vidla_hf.export.export_onnx` or `examples/export_onnx.py`)."
            )
        self.folder = folder
        self.metadata = json.loads((folder / METADATA_FILE).read_text())
        self.processor = VidLAProcessor.from_pretrained(folder)
        self.num_frames = self.metadata["num_frames"]
        self.dynamic_frames = self.metadata["dynamic_frames"]
        self.max_text_length = self.metadata["max_text_length"]
        self.logit_scale = self.metadata["logit_scale"]
        self.video_session, self.text_session = (
            onnxruntime.InferenceSession(
                str(folder / self.metadata[tower]["file"]),
                sess_options=session_options,
                providers=list(providers),
            )
            for tower in ("video_tower", "text_tower")
        )
        # ["batch", T or "frames", 3, S, S], read from the graph itself.
        self._video_shape = self.video_session.get_inputs()[0].shape

    def run_video_tower(self, pixel_values_videos: np.ndarray) -> np.ndarray:
        """`(B, T, 3, S, S)` processed frames (`pixel_values_videos` of the processor) → `(B, D)` embeddings."""
        pixels = np.asarray(pixel_values_videos)
        _, frames, *frame_shape = self._video_shape
        fixed = frames if isinstance(frames, int) else None
        expected = f"(batch, {fixed or 'frames'}, {', '.join(map(str, frame_shape))})"
        if not np.issubdtype(pixels.dtype, np.floating):
            raise TypeError(
                f"`pixel_values_videos` has dtype {pixels.dtype}: the video tower takes float frames normalised "
                "by the processor, not raw pixels (use `embed_videos` for videos)."
            )
        if pixels.ndim != 5 or list(pixels.shape[2:]) != frame_shape or pixels.shape[0] < 1:
            raise ValueError(f"`pixel_values_videos` must have shape {expected}, got {pixels.shape}.")
        if fixed is not None and pixels.shape[1] != fixed:
            raise ValueError(
                f"`pixel_values_videos` has {pixels.shape[1]} frames but this export takes exactly {fixed} "
                f"{expected}. Sample {fixed} frames, or export again with `num_frames={pixels.shape[1]}` or "
                "`dynamic_frames=True`."
            )
        inputs = {"pixel_values_videos": pixels.astype(np.float32, copy=False)}
        return self.video_session.run(None, inputs)[0]

    def run_text_tower(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """`(B, L)` token ids and attention mask (the processor's) → `(B, D)` embeddings; L ≤ `max_text_length`."""
        input_ids, attention_mask = np.asarray(input_ids), np.asarray(attention_mask)
        for name, array in (("input_ids", input_ids), ("attention_mask", attention_mask)):
            if not np.issubdtype(array.dtype, np.integer):
                raise TypeError(f"`{name}` must hold integers, got dtype {array.dtype}.")
        if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape or 0 in input_ids.shape:
            raise ValueError(
                "`input_ids` and `attention_mask` must both have shape (batch, sequence), got "
                f"{input_ids.shape} and {attention_mask.shape}."
            )
        if input_ids.shape[1] > self.max_text_length:
            raise ValueError(
                f"texts of {input_ids.shape[1]} tokens are longer than the text tower's {self.max_text_length}: "
                "tokenise with truncation (the processor does)."
            )
        inputs = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        return self.text_session.run(None, inputs)[0]

    def embed_videos(self, videos, batch_size: int = 8, num_frames: int | None = None) -> np.ndarray:
        """`(N, D)` float32 embeddings of `videos` (one or a list: paths, bytes, file objects, frame arrays, PIL
        lists, as `VidLAProcessor` takes), in order, decoded `batch_size` at a time. `num_frames` (default: the
        export's) other than the export's needs a `dynamic_frames=True` export."""
        _check_batch_size(batch_size)
        if num_frames is not None and not self.dynamic_frames and num_frames != self.num_frames:
            raise ValueError(
                f"`num_frames={num_frames!r}`: this export takes exactly {self.num_frames} frames per video; "
                "export with `dynamic_frames=True` to choose per call."
            )
        videos = [videos] if is_single_video(videos) else videos
        if len(videos) == 0:
            raise ValueError("`videos` is empty: pass at least one video.")
        frames = self.num_frames if num_frames is None else num_frames
        embeds = [
            self.run_video_tower(
                self.processor(
                    videos=videos[start : start + batch_size], num_frames=frames, return_tensors="np"
                )["pixel_values_videos"]
            )
            for start in range(0, len(videos), batch_size)
        ]
        return np.concatenate(embeds)

    def embed_texts(self, texts, batch_size: int = 256) -> np.ndarray:
        """`(N, D)` float32 embeddings of `texts` (a string or a list of them), in order, tokenised `batch_size`
        at a time (padded to the longest of the batch, truncated to `max_text_length` tokens)."""
        _check_batch_size(batch_size)
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, (list, tuple)) or len(texts) == 0:
            raise ValueError(f"`texts` must be a string or a non-empty list of strings, got {texts!r:.100}.")
        embeds = []
        for start in range(0, len(texts), batch_size):
            tokens = self.processor(text=list(texts[start : start + batch_size]), return_tensors="np")
            embeds.append(self.run_text_tower(tokens["input_ids"], tokens["attention_mask"]))
        return np.concatenate(embeds)


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")


__all__ = ["OnnxEmbedder"]
