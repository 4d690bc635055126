"""The records that flow through the curation pipeline (paper §3, A.4): words with times, sentences, clips.

Plain dataclasses with `to_dict`/`from_dict`, so that Ray Data rows (dicts of Python values) carry them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The paper's mean clip durations per scale, in seconds (Table 1).
DEFAULT_SCALES: dict[str, float] = {"short": 13.2, "medium": 30.4, "long": 60.3}


class SourceSkipped(Exception):
    """A source video that cannot be used; `reason` is a short stable key counted in stats.json."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Sentence:
    text: str
    start: float
    end: float
    num_words: int


@dataclass
class Clip:
    """Consecutive whole sentences of one source at one scale; texts are filled in by later stages."""

    source_id: str
    scale: str
    index: int
    start: float
    end: float
    sentences: list[Sentence]
    frame_captions: list[str] = field(default_factory=list)
    caption: str = ""
    subtitle: str = ""

    @property
    def key(self) -> str:
        """The WebDataset key: unique per source, scale and position, stable across runs."""
        return f"{self.source_id}_{self.scale}_{self.index:04d}"

    @property
    def raw_subtitle(self) -> str:
        return " ".join(s.text for s in self.sentences)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Clip:
        return cls(**{**data, "sentences": [Sentence(**s) for s in data["sentences"]]})


__all__ = ["DEFAULT_SCALES", "Clip", "Sentence", "SourceSkipped", "Word"]
