"""The paper's summarisation prompt (A.4) and fitting texts into CLIP's 77-token context.

Every text the curation writes for training goes through `fit_clip_context`: summaries, the short clips'
unsummarised subtitles and the `--summarizer none` ablation (`join_and_truncate`).
"""

from __future__ import annotations

from functools import lru_cache

from ...processing.tokenization import CLIP_CONTEXT_LENGTH

# The prompt of the paper's appendix A.4, verbatim, with "<input text>" as `{text}`. The paper's wording says
# "and use any external information" (it surely meant "or use"); it is kept exactly as published so that the
# summaries follow the paper's recipe.
SUMMARY_PROMPT = (
    "Summarize the following sentences into a single sentence, not exceeding 25 words. "
    "Do not output any additional text and use any external information.\n{text}"
)
_END_PUNCTUATION = (".", "?", "!", "…")


def join_texts(texts: list[str]) -> str:
    """Joins sentences or frame captions into one text, ending each with a full stop when it has none.

    Frame captions ("a man riding a bike") carry no final punctuation; without it, joined captions run
    together into one ambiguous sentence.

    ```python
    >>> join_texts(["a man riding a bike", "  a dog on the grass ", "What now?"])
    'a man riding a bike. a dog on the grass. What now?'

    ```
    """
    parts = [" ".join(text.split()) for text in texts]
    return " ".join(part if part.endswith(_END_PUNCTUATION) else f"{part}." for part in parts if part)


def summary_prompt(texts: list[str]) -> str:
    """The user message that asks the LLM to summarise `texts` (the paper's prompt, A.4).

    ```python
    >>> print(summary_prompt(["the ball rolls left", "It stops."]))
    Summarize the following sentences into a single sentence, not exceeding 25 words. Do not output any additional text and use any external information.
    the ball rolls left. It stops.

    ```
    """
    return SUMMARY_PROMPT.format(text=join_texts(texts))


@lru_cache(maxsize=1)
def clip_tokenizer():
    """CLIP's tokenizer, built offline once per process (`vidla_hf.processing.build_clip_tokenizer`)."""
    from vidla_hf.processing import build_clip_tokenizer

    return build_clip_tokenizer()


def count_clip_tokens(text: str, tokenizer=None) -> int:
    """Number of CLIP tokens of `text`, including the start and end tokens."""
    tokenizer = tokenizer if tokenizer is not None else clip_tokenizer()
    return len(tokenizer(text, verbose=False)["input_ids"])


def fit_clip_context(text: str, max_tokens: int = CLIP_CONTEXT_LENGTH, tokenizer=None) -> str:
    """`text` with whitespace normalised, cut at a word boundary to at most `max_tokens` CLIP tokens.

    The longest prefix of whole words that fits is kept, in its original casing (CLIP itself lowercases).
    Only a single word longer than the context is cut inside the word, through CLIP's own decoding.

    ```python
    >>> fit_clip_context("  a  photo\\n of a cat ")
    'a photo of a cat'
    >>> count_clip_tokens(fit_clip_context("word " * 200))
    77

    ```
    """
    if max_tokens < 3:
        raise ValueError(
            f"max_tokens must leave room for a word beside the start and end tokens, got {max_tokens}."
        )
    tokenizer = tokenizer if tokenizer is not None else clip_tokenizer()
    words = text.split()
    text = " ".join(words)
    if count_clip_tokens(text, tokenizer) <= max_tokens:
        return text
    # Binary search for the longest prefix that fits: it has `low` words (fits(low), not fits(high + 1)).
    low, high = 0, len(words) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if count_clip_tokens(" ".join(words[:middle]), tokenizer) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    if low > 0:
        return " ".join(words[:low])
    ids = tokenizer(words[0], add_special_tokens=False, verbose=False)["input_ids"][: max_tokens - 2]
    while ids and count_clip_tokens(tokenizer.decode(ids).strip(), tokenizer) > max_tokens:
        ids = ids[:-1]
    return tokenizer.decode(ids).strip()


def join_and_truncate(texts: list[str], max_tokens: int = CLIP_CONTEXT_LENGTH) -> str:
    """The `--summarizer none` ablation: the texts joined (`join_texts`) and cut to CLIP's context.

    ```python
    >>> join_and_truncate(["a cat sits", "a cat sleeps"])
    'a cat sits. a cat sleeps.'
    >>> count_clip_tokens(join_and_truncate(["a long sentence about many things"] * 20)) <= 77
    True

    ```
    """
    return fit_clip_context(join_texts(texts), max_tokens)


__all__ = [
    "CLIP_CONTEXT_LENGTH",
    "SUMMARY_PROMPT",
    "clip_tokenizer",
    "count_clip_tokens",
    "fit_clip_context",
    "join_and_truncate",
    "join_texts",
    "summary_prompt",
]
