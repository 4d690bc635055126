"""The curation's three models, each a small wrapper over transformers' Auto classes (paper §3, A.4).

- `Punctuator`: a token-classification model restores the ASR's punctuation (a BERT model in the paper);
- `FrameCaptioner`: an image-to-text model captions frames (BLIP-2 OPT-2.7B in the paper);
- `Summarizer`: a chat LLM summarises a clip's captions or subtitles with the paper's prompt (Llama-2-13B-chat).

Each takes a Hub id or a local folder, loads once (a Ray actor builds one per worker) and runs greedy,
deterministic inference in batches. `check_model` (from `model_checks`) validates a model option before any
heavy work starts. transformers and torch are imported inside the functions, so importing this module stays
light. Torch's thread count is left to the caller (a Ray actor gets its `num_cpus`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping

import numpy as np

from .model_checks import check_model
from .prompts import CLIP_CONTEXT_LENGTH, fit_clip_context, join_and_truncate, summary_prompt
from .records import Word

# Label names of punctuation models mapped to the mark they add after a word. Covers named labels (PERIOD,
# COMMA, ...; optionally BIO-prefixed), one-character labels (oliverguhr/fullstop-punctuation-multilang-large:
# "0", ".", ",", "?", "-", ":") and mark-plus-case labels (felflare/bert-restore-punctuation: "OU", ".O",
# ",U", ...; a trailing "U" upper-cases the word's first letter).
_NO_MARK = {"O", "0", "", "NONE", "NO_PUNCT", "NOPUNCT", "SPACE", "_", "EMPTY"}
_NAMED_MARKS = {
    **dict.fromkeys(["PERIOD", "FULLSTOP", "FULL_STOP", "DOT", "STOP"], "."),
    **dict.fromkeys(["COMMA"], ","),
    **dict.fromkeys(["QUESTION", "QUESTIONMARK", "QUESTION_MARK", "QMARK"], "?"),
    **dict.fromkeys(["EXCLAMATION", "EXCLAMATIONMARK", "EXCLAMATION_MARK", "EXCLAIM", "EXCL"], "!"),
    **dict.fromkeys(["COLON"], ":"),
    **dict.fromkeys(["SEMICOLON"], ";"),
    **dict.fromkeys(["DASH", "HYPHEN"], "-"),
    **dict.fromkeys(["ELLIPSIS"], "…"),
}
_MARKS = ".,?!:;-'…"
_STRIP = ".,?!:;…"


def punctuation_for_label(label: str) -> tuple[str, bool]:
    """The mark a punctuation label adds after its word, and whether it capitalises the word.

    ```python
    >>> [punctuation_for_label(label) for label in ["O", "PERIOD", "B-COMMA", "?", "0", ".U", "OU"]]
    [('', False), ('.', False), (',', False), ('?', False), ('', False), ('.', True), ('', True)]

    ```
    """
    name = re.sub(r"^[BIES]-", "", label.strip()).upper()
    if len(name) == 2 and name[1] in "OU" and (name[0] in _MARKS or name[0] == "O"):
        return ("" if name[0] == "O" else name[0]), name[1] == "U"
    if name in _NO_MARK:
        return "", False
    if name in _NAMED_MARKS:
        return _NAMED_MARKS[name], False
    if len(name) == 1 and name in _MARKS:
        return name, False
    raise ValueError(f"unknown punctuation label {label!r}")


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _greedy(generation_config, max_new_tokens: int):
    """The model's generation config (its end tokens, banned tokens, ...) made greedy and deterministic.

    A chat model's sampling defaults (Llama-2-chat: temperature 0.6, top-p 0.9) are set to transformers'
    neutral values rather than None, which `generate` would fill back in from the model's own config.
    """
    config = copy.deepcopy(generation_config)
    config.do_sample, config.num_beams, config.max_new_tokens = False, 1, max_new_tokens
    config.temperature, config.top_p, config.top_k = 1.0, 1.0, 50
    return config


class Punctuator:
    """Restores punctuation of a transcript with a token-classification model (Hub id or local folder).

    Words are tokenised pre-split (`is_split_into_words=True`) and each word takes the label of its first
    sub-token; the label's mark is appended to the word with its own trailing punctuation removed. Long
    transcripts run in windows of `window` words; each window predicts `window - 2 * overlap` words and sees
    `overlap` words of context on each side. `label_map` overrides the mapping of label names to marks
    (e.g. for a model whose config only says LABEL_0, LABEL_1, ...).

    ```python
    >>> import tempfile
    >>> from vidla_hf.data.curation.tiny_models import build_tiny_models
    >>> models = build_tiny_models(tempfile.mkdtemp())  # random weights: the marks it adds mean nothing
    >>> punctuate = Punctuator(models["punctuation_model"])
    >>> forms = punctuate([Word("hello", 0.0, 0.4), Word("world", 0.5, 0.9)])  # each word, maybe with a mark
    >>> [form.rstrip(".,?!:;-'…").lower() for form in forms]
    ['hello', 'world']

    ```
    """

    def __init__(
        self,
        model: str,
        *,
        label_map: Mapping[str, str] | None = None,
        window: int = 256,
        overlap: int = 32,
        batch_size: int = 8,
        device: str | None = None,
    ):
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        if not 0 <= 2 * overlap < window:
            raise ValueError(f"overlap must be in [0, window / 2), got window={window}, overlap={overlap}.")
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if not self.tokenizer.is_fast:
            raise ValueError(f"punctuation model {model!r} needs a fast tokenizer (for word_ids).")
        self.device = _device(device)
        self.model = AutoModelForTokenClassification.from_pretrained(model).eval().to(self.device)
        self.window, self.overlap, self.batch_size = window, overlap, batch_size
        self.labels = {}
        for index, label in self.model.config.id2label.items():
            if label_map is not None:
                if label not in label_map:
                    raise ValueError(f"label_map has no entry for label {label!r} of {model!r}.")
                self.labels[int(index)] = (label_map[label], False)
                continue
            try:
                self.labels[int(index)] = punctuation_for_label(label)
            except ValueError:
                raise ValueError(
                    f"{model!r} has label {label!r}, which names no punctuation mark; pass label_map="
                    f"{{label: mark}} for its labels {list(self.model.config.id2label.values())}."
                ) from None
        # 512 also keeps RoBERTa-style models (514 positions, 2 reserved) in range when the tokenizer has no limit.
        limit = getattr(self.model.config, "max_position_embeddings", 512)
        self.max_length = min(self.tokenizer.model_max_length, limit, 512)

    def _predict(self, windows: list[list[str]]) -> list[list[int | None]]:
        import torch

        encoding = self.tokenizer(
            windows,
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            logits = self.model(**encoding.to(self.device)).logits  # (windows, tokens, labels)
        predicted = logits.argmax(-1).tolist()
        labels = []
        for row, words in enumerate(windows):
            first = [None] * len(words)  # words cut off by truncation keep no label
            for position, word_id in enumerate(encoding.word_ids(row)):
                if word_id is not None and first[word_id] is None:
                    first[word_id] = predicted[row][position]
            labels.append(first)
        return labels

    def __call__(self, words: list[Word]) -> list[str]:
        """One punctuated form per word."""
        bare = [word.text.rstrip(_STRIP) or word.text for word in words]
        step = self.window - 2 * self.overlap
        spans = []  # (context start, context end, first word predicted)
        for start in range(0, len(bare), step):
            spans.append((max(0, start - self.overlap), min(len(bare), start + step + self.overlap), start))
        forms = list(bare)
        for batch in range(0, len(spans), self.batch_size):
            chunk = spans[batch : batch + self.batch_size]
            labels = self._predict([bare[lo:hi] for lo, hi, _ in chunk])
            for (lo, _, start), window_labels in zip(chunk, labels, strict=True):
                for offset, label in enumerate(window_labels):
                    index = lo + offset
                    if label is None or not start <= index < start + step:
                        continue
                    mark, capitalise = self.labels[label]
                    form = bare[index][:1].upper() + bare[index][1:] if capitalise else bare[index]
                    forms[index] = form + mark
        return forms


class FrameCaptioner:
    """Captions images with an image-to-text model (BLIP-2 in the paper): greedy, `max_new_tokens` tokens.

    Loads `AutoProcessor` + `AutoModelForImageTextToText`, so any transformers image-text-to-text model
    works; `prompt` is passed as text for models that need one (None for BLIP-2's plain captioning).

    ```python
    >>> import tempfile
    >>> from vidla_hf.data.curation.tiny_models import build_tiny_models
    >>> models = build_tiny_models(tempfile.mkdtemp())  # random weights: its captions are not meaningful
    >>> caption = FrameCaptioner(models["captioner"], max_new_tokens=8)
    >>> captions = caption([np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)])
    >>> len(captions), all(isinstance(text, str) for text in captions)
    (2, True)

    ```
    """

    def __init__(
        self,
        model: str,
        *,
        prompt: str | None = None,
        max_new_tokens: int = 30,
        batch_size: int = 16,
        device: str | None = None,
        dtype=None,
    ):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(model)
        self.device = _device(device)
        kwargs = {"dtype": dtype} if dtype is not None else {}
        self.model = AutoModelForImageTextToText.from_pretrained(model, **kwargs).eval().to(self.device)
        self.prompt, self.max_new_tokens, self.batch_size = prompt, max_new_tokens, batch_size

    def _caption(self, images: list) -> list[str]:
        import torch

        text = [self.prompt] * len(images) if self.prompt is not None else None
        inputs = self.processor(images=images, text=text, return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            # BLIP-2 hands generation to its language model: pass the captioner's own config along explicitly.
            config = _greedy(self.model.generation_config, self.max_new_tokens)
            output = self.model.generate(**inputs, generation_config=config)  # (images, tokens)
        prompt = inputs.get("input_ids")
        if prompt is not None and torch.equal(output[:, : prompt.shape[1]], prompt):  # decoder-only: drop it
            output = output[:, prompt.shape[1] :]
        return [
            " ".join(text.split()) for text in self.processor.batch_decode(output, skip_special_tokens=True)
        ]

    def __call__(self, images: list[np.ndarray]) -> list[str]:
        """One caption per image; images are (H, W, 3) uint8 arrays."""
        from PIL import Image

        for index, image in enumerate(images):
            if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3):
                raise ValueError(
                    f"images[{index}] must be an (H, W, 3) array, got {getattr(image, 'shape', image)}."
                )
            if image.dtype != np.uint8:
                raise ValueError(f"images[{index}] must be uint8, got {image.dtype}.")
        pictures = [Image.fromarray(image) for image in images]
        captions = []
        for start in range(0, len(pictures), self.batch_size):
            captions += self._caption(pictures[start : start + self.batch_size])
        return captions


class Summarizer:
    """Summarises groups of texts into one sentence each with a chat LLM and the paper's prompt (A.4).

    The prompt (`prompts.SUMMARY_PROMPT`, verbatim from the paper) is the user message of the model's chat
    template; generation is greedy and batched with left padding. Each summary is cut to CLIP's context
    (`max_text_tokens`, start and end tokens included). An empty generation falls back to the joined input,
    cut the same way (`join_and_truncate`); `summarize_with_fallbacks` says which did.

    ```python
    >>> import tempfile
    >>> from vidla_hf.data.curation.prompts import count_clip_tokens
    >>> from vidla_hf.data.curation.tiny_models import build_tiny_models
    >>> models = build_tiny_models(tempfile.mkdtemp())  # random weights: its summaries are not meaningful
    >>> summaries = Summarizer(models["summarizer"]).summarize([["a man rides a bike", "a man stops"]])
    >>> len(summaries), count_clip_tokens(summaries[0]) <= 77
    (1, True)

    ```
    """

    def __init__(
        self,
        model: str,
        max_text_tokens: int = CLIP_CONTEXT_LENGTH,
        *,
        max_new_tokens: int = 64,
        batch_size: int = 8,
        device: str | None = None,
        dtype=None,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
        if not self.tokenizer.chat_template:
            raise ValueError(f"summarizer {model!r} has no chat template; use a chat model.")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = _device(device)
        kwargs = {"dtype": dtype} if dtype is not None else {}
        self.model = AutoModelForCausalLM.from_pretrained(model, **kwargs).eval().to(self.device)
        self.max_text_tokens, self.max_new_tokens, self.batch_size = (
            max_text_tokens,
            max_new_tokens,
            batch_size,
        )

    def prompts(self, groups: list[list[str]]) -> list[str]:
        """The chat-templated model inputs, one per group (with the generation prompt)."""
        return [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": summary_prompt(texts)}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for texts in groups
        ]

    def _generate(self, prompts: list[str]) -> list[str]:
        import torch

        # The template already holds the special tokens (e.g. Llama's <s>): do not add them twice.
        inputs = self.tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            config = _greedy(self.model.generation_config, self.max_new_tokens)
            config.pad_token_id = self.tokenizer.pad_token_id
            output = self.model.generate(**inputs, generation_config=config)  # (groups, prompt + new tokens)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [
            " ".join(text.split())
            for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        ]

    def summarize_with_fallbacks(self, groups: list[list[str]]) -> tuple[list[str], list[bool]]:
        """Summaries, and for each whether it fell back to the joined input (empty generation). An empty group
        gives an empty summary without calling the model."""
        todo = [index for index, texts in enumerate(groups) if any(text.strip() for text in texts)]
        summaries, fallbacks = [""] * len(groups), [False] * len(groups)
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            for index, text in zip(
                batch, self._generate(self.prompts([groups[i] for i in batch])), strict=True
            ):
                if not text:
                    summaries[index], fallbacks[index] = (
                        join_and_truncate(groups[index], self.max_text_tokens),
                        True,
                    )
                else:
                    summaries[index] = fit_clip_context(text, self.max_text_tokens)
        return summaries, fallbacks

    def summarize(self, groups: list[list[str]]) -> list[str]:
        """One summary per group of texts, each within `max_text_tokens` CLIP tokens."""
        return self.summarize_with_fallbacks(groups)[0]


__all__ = [
    "FrameCaptioner",
    "Punctuator",
    "Summarizer",
    "check_model",
    "join_and_truncate",
    "punctuation_for_label",
]
