"""VidLA processor: the video processor and CLIP's tokenizer behind one call.

Kept free of `vidla_hf` imports (siblings only) so that it works as Hub remote code.
"""

from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin, Unpack

from .input_checks import check_keywords, check_local_folder
from .video_processing_vidla import VidLAVideoProcessorKwargs

# A VERY_LARGE_INTEGER `model_max_length` means the tokenizer declares no context length.
UNDECLARED_CONTEXT_LENGTH = 10**6


class VidLAProcessorKwargs(ProcessingKwargs, total=False):
    videos_kwargs: VidLAVideoProcessorKwargs


class VidLAProcessor(ProcessorMixin):
    r"""
    Wraps a [`VidLAVideoProcessor`] and a CLIP tokenizer.

    `processor(text=..., videos=..., return_tensors="pt")` returns `input_ids` and `attention_mask`
    (padded to the longest text, truncated to the tokenizer's context `model_max_length`, CLIP's 77 tokens: a
    500-word subtitle keeps its first 75 tokens between [BOS] and [EOS]) and `pixel_values_videos`
    `(batch, frames, 3, 224, 224)`. Either input may be left out. The empty string is a valid text: it encodes
    to `[BOS, EOS]` and gets an embedding like any other text. Keyword arguments of the video processor
    (`num_frames`, `training`, `seed`, `video_backend`, ...) go to it, those of the tokenizer (`padding`,
    `max_length`, ...) to the tokenizer; `videos_kwargs={...}` / `text_kwargs={...}` also work. An unknown
    keyword is a `TypeError` naming the closest known one. Every argument is checked before any video is
    decoded. A call keeps nothing on the processor, so one instance may serve several threads at once; only
    the tokenizer keeps its padding and truncation settings between calls (transformers' tokenizers do), so
    threads sharing a processor should pass the same text options.

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

    valid_processor_kwargs = VidLAProcessorKwargs
    # The tokenizer's defaults: pad to the longest text, truncate to the tokenizer's own `model_max_length`.
    text_kwargs = {"padding": True, "truncation": True}

    def __init__(self, video_processor=None, tokenizer=None, **kwargs):
        super().__init__(video_processor, tokenizer, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As `ProcessorMixin.from_pretrained`, but a path-like argument (`./run`, `/abs/run`, `~/run`,
        `run/`) that does not exist fails at once instead of being looked up on the Hub; `~` is expanded."""
        return super().from_pretrained(check_local_folder(pretrained_model_name_or_path), *args, **kwargs)

    def __call__(self, text=None, videos=None, **kwargs: Unpack[VidLAProcessorKwargs]) -> BatchFeature:
        """`ProcessorMixin.__call__`, with the text first: `processor("a dog")`, `processor(text, videos)`."""
        return super().__call__(text=text, videos=videos, **kwargs)

    def prepare_inputs_layout(self, images=None, text=None, videos=None, audio=None, **kwargs):
        # One text is a batch of one, as one video is.
        return images, [text] if isinstance(text, str) else text, videos, audio

    def validate_inputs(self, images=None, text=None, videos=None, audio=None, **kwargs) -> None:
        if text is None and videos is None:
            raise ValueError("Pass `text`, `videos` or both.")
        self._check_keywords(kwargs)
        for modality, value in (("images", images), ("audio", audio)):
            if value is not None:
                raise ValueError(f"{type(self).__name__} takes `text` and `videos`, got `{modality}`.")
        merged = self._merge_kwargs(tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        self.video_processor.check_call_kwargs(merged["videos_kwargs"])
        if text is not None:
            self._check_text(text, merged["text_kwargs"])

    def _check_keywords(self, kwargs: dict) -> None:
        modality_keys = {
            "text_kwargs": set(VidLAProcessorKwargs.__annotations__["text_kwargs"].__annotations__),
            "videos_kwargs": set(self.video_processor.valid_kwargs.__annotations__),
        }
        modality_keys["common_kwargs"] = modality_keys["text_kwargs"] | modality_keys["videos_kwargs"]
        processor_keys = {
            key for key in VidLAProcessorKwargs.__annotations__ if not key.endswith("_kwargs")
        } | {"images", "audio"}
        accepted = set(modality_keys) | modality_keys["common_kwargs"] | processor_keys
        check_keywords(kwargs, accepted, f"{type(self).__name__}.__call__()")
        for group, keys in modality_keys.items():
            check_keywords(kwargs.get(group) or {}, keys, f"`{group}` of {type(self).__name__}.__call__()")

    def _check_text(self, texts, text_kwargs: dict) -> None:
        if not isinstance(texts, (list, tuple)):
            raise TypeError(f"`text` must be a string or a list of strings, got {type(texts).__name__}.")
        if not texts:
            raise ValueError(
                f"`text` is an empty {type(texts).__name__}: pass a string or a list of at least one string "
                '(the empty string "" is a valid text).'
            )
        for index, item in enumerate(texts):
            if not isinstance(item, str):
                raise TypeError(f"`text[{index}]` must be a string, got {type(item).__name__} ({item!r}).")
        if text_kwargs.get("add_special_tokens") is False:
            raise ValueError(
                "`add_special_tokens` must be True (the default), got False: the text tower pools the [EOS] "
                "token, so a text without it gets the embedding of another token (and an empty text no "
                "tokens at all)."
            )
        max_length = text_kwargs.get("max_length")
        context = getattr(self.tokenizer, "model_max_length", None) or UNDECLARED_CONTEXT_LENGTH
        upper = context if context < UNDECLARED_CONTEXT_LENGTH else None
        if max_length is not None and (max_length < 2 or (upper is not None and max_length > upper)):
            accepted = f"between 2 and {upper} (the tokenizer's context)" if upper else ">= 2"
            raise ValueError(
                f"`max_length` must be {accepted}, with room for [BOS] and [EOS], got {max_length!r}."
            )


__all__ = ["VidLAProcessor"]
