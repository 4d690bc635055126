"""Sentences with times from words with times (paper §3: punctuate the ASR, then split it into sentences)."""

from __future__ import annotations

from .records import Sentence, Word

SENTENCE_END = (".", "?", "!", "…")
_CLOSING = "\"')]}’”»"  # closing quotes and brackets after the final punctuation: `"Stop!"`, `(really?)`


def ends_sentence(form: str) -> bool:
    """Whether a word form ends a sentence: it ends with . ? ! or …, possibly followed by closing quotes.

    ```python
    >>> [ends_sentence(form) for form in ["world.", "why?", '"stop!"', "hello,", "3.5", "wait..."]]
    [True, True, True, False, False, True]

    ```
    """
    return form.rstrip(_CLOSING).endswith(SENTENCE_END)


def split_sentences(words: list[Word], punctuated: list[str] | None = None) -> list[Sentence]:
    """Splits a transcript into sentences after each word ending with . ? ! or … (`ends_sentence`).

    `punctuated` gives each word's punctuated form (from the punctuation model, one per word); None uses the
    words' own text (the transcript's own punctuation). A sentence's text is its forms joined with spaces, its
    start the first word's start and its end the last word's end (the latest end among its words, the same
    for well-formed ASR). Trailing words without final punctuation form a last sentence. Abbreviations such
    as "Mr." end a sentence too: the split follows the punctuation, as the paper's does.

    ```python
    >>> words = [Word("hello", 0.0, 0.5), Word("world", 0.6, 1.0), Word("bye", 2.0, 2.4)]
    >>> [(s.text, s.start, s.end, s.num_words) for s in split_sentences(words, ["Hello", "world.", "bye"])]
    [('Hello world.', 0.0, 1.0, 2), ('bye', 2.0, 2.4, 1)]

    ```
    """
    if punctuated is None:
        punctuated = [word.text for word in words]
    if len(punctuated) != len(words):
        raise ValueError(
            f"punctuated has {len(punctuated)} forms for {len(words)} words; expected one per word."
        )
    sentences, first = [], 0
    for index, form in enumerate(punctuated):
        if ends_sentence(form) or index == len(words) - 1:
            members = words[first : index + 1]
            text = " ".join(f for f in punctuated[first : index + 1] if f)
            end = max(word.end for word in members)
            sentences.append(Sentence(text, members[0].start, end, len(members)))
            first = index + 1
    return sentences


__all__ = ["SENTENCE_END", "ends_sentence", "split_sentences"]
