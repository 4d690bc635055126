"""Word-level transcripts from a manifest row: YT-Temporal-style ASR or a subtitles file (WebVTT / SRT).

Bad input never stops a run: what can be repaired is repaired and counted, what cannot raises
`SourceSkipped` with a stable reason (`bad_asr`, `missing_subtitles`, `bad_subtitles`, `asr_beyond_video`)
that the pipeline counts in `stats.json`.
"""

from __future__ import annotations

import html
import itertools
import math
import numbers
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .records import SourceSkipped, Word

ASR_REPAIRS = ("negative_times", "end_before_start", "unsorted", "empty_words")

_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})$")
_INLINE_TIMESTAMP = re.compile(r"<((?:\d+:)?\d{1,2}:\d{1,2}[.,]\d{1,3})>")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # HTML-like tags (<c>, <i>, <font ...>) and ASS overrides ({\an8})
_ANNOTATION = re.compile(r"\[[^\]]*\]")  # "[Music]", "[Upbeat music]": not speech


def _is_time(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def words_from_asr(asr: list[dict]) -> tuple[list[Word], dict[str, int]]:
    """Validates and repairs word-level ASR (`[{"word", "start", "end"}]`, times in seconds).

    Repairs, each counted in the returned dict (all keys of `ASR_REPAIRS` are always present):
    `negative_times` (words with a negative time, clamped to 0), `end_before_start` (words ending before they
    start: the end is set to the start, keeping the start, which orders the words), `unsorted` (words that
    start before their predecessor; the words are then stably sorted by start) and `empty_words` (blank words,
    dropped). Anything else (not a list, missing keys, non-numeric or non-finite times, no words) raises
    `SourceSkipped("bad_asr")`.

    ```python
    >>> words, repairs = words_from_asr([{"word": "world", "start": 1.0, "end": 0.5},
    ...                                  {"word": "hello", "start": -0.2, "end": 0.4}])
    >>> [(w.text, w.start, w.end) for w in words]
    [('hello', 0.0, 0.4), ('world', 1.0, 1.0)]
    >>> repairs
    {'negative_times': 1, 'end_before_start': 1, 'unsorted': 1, 'empty_words': 0}

    ```
    """
    # Ray Data may hand a list column over as a 1-D numpy array of dicts.
    is_array = isinstance(asr, np.ndarray) and asr.ndim == 1
    if isinstance(asr, (str, bytes)) or not (isinstance(asr, Sequence) or is_array):
        raise SourceSkipped("bad_asr", f"asr is a {type(asr).__name__}, expected a list of words")
    repairs = dict.fromkeys(ASR_REPAIRS, 0)
    words = []
    for index, item in enumerate(asr):
        if not isinstance(item, dict) or not {"word", "start", "end"} <= item.keys():
            raise SourceSkipped(
                "bad_asr", f"word {index} is not a dict with word, start and end: {item!r:.80}"
            )
        text, start, end = item["word"], item["start"], item["end"]
        if not isinstance(text, str) or not _is_time(start) or not _is_time(end):
            raise SourceSkipped(
                "bad_asr", f"word {index} has a non-string word or a non-finite time: {item!r:.80}"
            )
        text, start, end = text.strip(), float(start), float(end)
        if not text:
            repairs["empty_words"] += 1
            continue
        if start < 0 or end < 0:
            repairs["negative_times"] += 1
            start, end = max(start, 0.0), max(end, 0.0)
        if end < start:
            repairs["end_before_start"] += 1
            end = start
        words.append(Word(text, start, end))
    if not words:
        raise SourceSkipped("bad_asr", "no words")
    repairs["unsorted"] = sum(b.start < a.start for a, b in itertools.pairwise(words))
    if repairs["unsorted"]:
        words.sort(key=lambda word: word.start)
    return words, repairs


def clamp_to_duration(words: list[Word], duration: float) -> tuple[list[Word], int]:
    """Fits words to a video shorter than its transcript: drops words starting at or after `duration`, clamps
    ends; returns the kept words and the number dropped. Raises `SourceSkipped("asr_beyond_video")` when no
    word is left.

    ```python
    >>> words, dropped = clamp_to_duration([Word("a", 0.0, 1.0), Word("b", 1.5, 3.0), Word("c", 4.0, 5.0)], 2.0)
    >>> [(w.text, w.start, w.end) for w in words], dropped
    ([('a', 0.0, 1.0), ('b', 1.5, 2.0)], 1)

    ```
    """
    if not (_is_time(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}.")
    kept = [Word(w.text, w.start, min(w.end, duration)) for w in words if w.start < duration]
    if not kept:
        raise SourceSkipped(
            "asr_beyond_video", f"all {len(words)} words start after the video's end ({duration:.2f} s)"
        )
    return kept, len(words) - len(kept)


def _seconds(stamp: str) -> float:
    match = _TIMESTAMP.match(stamp.strip())
    if match is None:
        raise ValueError(stamp)
    hours, minutes, seconds, fraction = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def _spread(text: str, start: float, end: float) -> list[Word]:
    """Words of `text` over [start, end], each getting time in proportion to its number of characters."""
    tokens = _ANNOTATION.sub(" ", html.unescape(_TAG.sub("", text))).split()
    tokens = [token for token in tokens if token not in (">>", "-", "–")]  # speaker-change markers
    total = sum(len(token) for token in tokens)
    words, done = [], 0
    for token in tokens:
        word_start = start + (end - start) * done / total
        done += len(token)
        words.append(Word(token, word_start, start + (end - start) * done / total))
    return words


def _cue_words(line: str, start: float, end: float) -> list[Word]:
    """Words of a cue's text; inline timestamps (`<00:00:01.500>`, YouTube) split it into segments that are
    each interpolated on their own."""
    pieces = _INLINE_TIMESTAMP.split(line)  # text, stamp, text, stamp, ..., text
    times = [start] + [min(max(_seconds(stamp), start), end) for stamp in pieces[1::2]] + [end]
    times = list(itertools.accumulate(times, max))  # out-of-order stamps: no word ends before it starts
    words = []
    for text, (segment_start, segment_end) in zip(pieces[0::2], itertools.pairwise(times), strict=True):
        words += _spread(text, segment_start, segment_end)
    return words


def _plain(line: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", line)).split())


def words_from_subtitles(path: str) -> list[Word]:
    """Words with times from a WebVTT or SRT file, as video downloaders (yt-dlp) save them.

    Each cue's text is spread over the cue's time by character length (word `i` of characters `c_i` starts
    at `start + (end - start) * sum(c_j, j < i) / sum(c_j)`, spaces not counted); inline word timestamps of
    YouTube auto-captions (`<00:00:01.500><c> word</c>`) split a cue into segments interpolated separately. Tags,
    HTML entities, `[Music]`-style annotations and `>>` speaker marks are removed. YouTube's rolling captions
    repeat the previous cue's line above the new one: a line equal to a line of the previous cue is skipped,
    so words are not duplicated (a speaker saying exactly the same line twice in a row is lost with it).

    Raises `SourceSkipped("missing_subtitles")` when the file cannot be read and
    `SourceSkipped("bad_subtitles")` when it has a malformed timing line or no words.

    ```python
    >>> import tempfile, os
    >>> srt = "1\\n00:00:01,000 --> 00:00:03,000\\nHello big world.\\n"
    >>> with tempfile.NamedTemporaryFile("w", suffix=".srt", delete=False) as file:
    ...     _ = file.write(srt)
    >>> [(w.text, w.start, w.end) for w in words_from_subtitles(file.name)]
    [('Hello', 1.0, 1.7142857142857144), ('big', 1.7142857142857144, 2.142857142857143), ('world.', 2.142857142857143, 3.0)]
    >>> os.remove(file.name)

    ```
    """
    try:
        content = Path(path).read_bytes().decode("utf-8-sig", errors="replace")
    except (OSError, TypeError, ValueError) as error:
        raise SourceSkipped("missing_subtitles", f"{path}: {error}") from error
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # A WebVTT cue ends at an empty line (YouTube's cues contain lines of one space); an SRT cue at a blank one.
    is_vtt = content.lstrip().startswith("WEBVTT")
    timings = [index for index, line in enumerate(lines) if "-->" in line]
    cues = []
    for number, index in enumerate(timings):
        start_stamp, _, rest = lines[index].partition("-->")
        try:
            start, end = _seconds(start_stamp), _seconds(rest.split()[0] if rest.split() else "")
        except ValueError as error:
            raise SourceSkipped("bad_subtitles", f"{path}: malformed timing line {lines[index]!r}") from error
        text = []
        for line in lines[index + 1 : timings[number + 1] if number + 1 < len(timings) else len(lines)]:
            if line == "" or (not is_vtt and not line.strip()):
                break
            text.append(line)
        if number + 1 < len(timings) and text and text[-1].strip().isdigit():
            text.pop()  # the next cue's number, with no blank line before it
        cues.append((start, max(end, start), [line for line in text if _plain(line)]))
    cues.sort(key=lambda cue: cue[0])
    words, previous = [], set()
    for start, end, text in cues:
        new_lines = [line for line in text if _plain(line) not in previous]
        previous = {_plain(line) for line in text}
        words += _cue_words(" ".join(new_lines), start, end)
    if not words:
        raise SourceSkipped("bad_subtitles", f"{path}: no cue with words")
    words.sort(key=lambda word: word.start)
    return words


__all__ = ["ASR_REPAIRS", "clamp_to_duration", "words_from_asr", "words_from_subtitles"]
