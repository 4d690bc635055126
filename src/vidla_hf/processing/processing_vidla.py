"""VidLA processor: the video processor and CLIP's tokenizer behind one call.

Kept free of `vidla_hf` imports (siblings only) so that it works as Hub remote code.
"""

from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .video_processing_vidla import VidLAVideoProcessorKwargs

CLIP_CONTEXT_LENGTH = 77


class VidLAProcessor(ProcessorMixin):
    r"""
    Wraps a [`VidLAVideoProcessor`] and a CLIP tokenizer.

    `processor(text=..., videos=..., return_tensors="pt")` returns `input_ids` and `attention_mask`
    (padded to the longest text, truncated to CLIP's 77 tokens: a 500-word subtitle keeps its first 75
    tokens between [BOS] and [EOS]) and `pixel_values_videos` `(batch, frames, 3, 224, 224)`. Either input
    may be left out. The empty string is a valid text: it encodes to `[BOS, EOS]` and gets an embedding like
    any other text. Keyword arguments of the video processor (`num_frames`, `training`, `seed`,
    `video_backend`, ...) go to it; the rest go to the tokenizer.

    Example:

    ```python
    >>> import numpy as np
    >>> from vidla_hf import VidLAProcessor, VidLAVideoProcessor
    >>> from vidla_hf.processing import build_clip_tokenizer
    >>> processor = VidLAProcessor(VidLAVideoProcessor(num_frames=4), build_clip_tokenizer())
    >>> batch = processor(text=["a cat", "a dog runs"], videos=[np.zeros((9, 240, 320, 3), np.uint8)] * 2,
    ...                   return_tensors="pt")
    >>> batch["input_ids"].shape, batch["pixel_values_videos"].shape
    (torch.Size([2, 5]), torch.Size([2, 4, 3, 224, 224]))

    ```
    """

    def __init__(self, video_processor=None, tokenizer=None, **kwargs):
        super().__init__(video_processor, tokenizer, **kwargs)

    def __call__(self, text=None, videos=None, return_tensors=None, **kwargs) -> BatchFeature:
        if text is None and videos is None:
            raise ValueError("Pass `text`, `videos` or both.")
        video_keys = set(VidLAVideoProcessorKwargs.__annotations__)
        video_kwargs = {k: v for k, v in kwargs.items() if k in video_keys}
        text_kwargs = {k: v for k, v in kwargs.items() if k not in video_keys}
        data = {}
        if text is not None:
            texts = [text] if isinstance(text, str) else text
            if (
                not isinstance(texts, (list, tuple))
                or not texts
                or not all(isinstance(t, str) for t in texts)
            ):
                raise TypeError(
                    f"`text` must be a string or a non-empty list of strings, got {type(text).__name__}."
                )
            text_kwargs = {
                "padding": True,
                "truncation": True,
                "max_length": CLIP_CONTEXT_LENGTH,
                **text_kwargs,
            }
            data.update(self.tokenizer(list(texts), return_tensors=return_tensors, **text_kwargs))
        if videos is not None:
            data.update(self.video_processor(videos, return_tensors=return_tensors, **video_kwargs))
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values_videos"]


__all__ = ["VidLAProcessor"]
