"""Curation statistics: one record per source, aggregated into `stats.json` and printed like the paper's
Table 1 (per scale: clips, mean length, sentences, subtitle words before/after summary, captions, caption
words before/after), plus the sources skipped by reason and where the time went.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .records import Clip

CLIP_FIELDS = ("sentences", "words", "summary_words", "captions", "caption_words", "caption_summary_words")


def _words(text: str) -> int:
    return len(text.split())


def clip_stats(clip: Clip) -> dict[str, Any]:
    """One clip's line in its source's record: what Table 1 averages."""
    return {
        "key": clip.key,
        "scale": clip.scale,
        "duration": clip.end - clip.start,
        "sentences": len(clip.sentences),
        "words": _words(clip.raw_subtitle),
        "summary_words": _words(clip.subtitle),
        "captions": len(clip.frame_captions),
        "caption_words": sum(map(_words, clip.frame_captions)),
        "caption_summary_words": _words(clip.caption),
    }


def aggregate(records: list[dict[str, Any]], failed: dict[str, str], scales: list[str]) -> dict[str, Any]:
    """The contents of `stats.json` from the sources' records (and the sources that failed this run).

    Example:

    ```python
    >>> from vidla_hf.data.curation.stats import aggregate
    >>> records = [{"id": "a", "status": "skipped", "reason": "undecodable_video"},
    ...            {"id": "b", "status": "ok", "duration": 60.0, "caption_frames": 6, "clips": [
    ...                {"scale": "short", "duration": 12.0, "sentences": 2, "words": 30, "summary_words": 30,
    ...                 "captions": 1, "caption_words": 9, "caption_summary_words": 9}]}]
    >>> stats = aggregate(records, {}, ["short", "long"])
    >>> stats["sources"]["skipped"], stats["scales"]["short"]["clips"], stats["scales"]["long"]["clips"]
    ({'undecodable_video': 1}, 1, 0)

    ```
    """
    curated = [r for r in records if r["status"] == "ok"]
    table = {}
    for scale in scales:
        clips = [c for r in curated for c in r.get("clips", []) if c["scale"] == scale]
        row = {"clips": len(clips), "hours": sum(c["duration"] for c in clips) / 3600}
        row["mean_duration"] = sum(c["duration"] for c in clips) / len(clips) if clips else 0.0
        for field in CLIP_FIELDS:
            row[field] = sum(c[field] for c in clips) / len(clips) if clips else 0.0
        table[scale] = row
    timings: Counter = Counter()
    dropped: Counter = Counter()
    repairs: Counter = Counter()
    for record in records:
        timings.update(record.get("timings", {}))
        dropped.update(record.get("dropped_clips", {}))
        repairs.update(record.get("asr_repairs", {}))
    total_time = sum(timings.values())
    splits: dict[str, dict[str, int]] = {}
    for record in curated:
        split = splits.setdefault(record.get("split", "train"), {"sources": 0, "clips": 0})
        split["sources"] += 1
        split["clips"] += len(record.get("clips", []))
    return {
        "sources": {
            "listed": len(records) + len(failed),
            "curated": len(curated),
            "skipped": dict(sorted(Counter(r["reason"] for r in records if r["status"] != "ok").items())),
            "failed": dict(sorted(failed.items())),
        },
        "source_minutes": sum(r.get("duration", 0.0) for r in curated) / 60,
        "caption_frames": sum(r.get("caption_frames", 0) for r in curated),
        "scales": table,
        "splits": dict(sorted(splits.items())),
        "clips_dropped": dict(sorted(dropped.items())),
        "asr_repairs": {k: v for k, v in sorted(repairs.items()) if v},
        "words_beyond_video": sum(r.get("words_beyond_video", 0) for r in records),
        "stage_seconds": dict(sorted(timings.items())),
        "stage_share": {k: v / total_time for k, v in sorted(timings.items())} if total_time else {},
    }


def format_table(stats: dict[str, Any], short_scale: str | None = None) -> str:
    """`stats` as text: Table 1 of the paper (an asterisk marks the unsummarised short clips), then the
    sources, the dropped clips and the time per stage."""
    header = [
        "Scale",
        "# clips",
        "Length (s)",
        "# sent",
        "# words",
        "Summ. # words",
        "# cap",
        "# words",
        "Summ. # words",
    ]
    lines = [
        f"{'':10}{'':>9}{'':>11}{'Subtitle':>24}{'':>15}{'Caption':>22}",
        f"{header[0]:10}{header[1]:>9}{header[2]:>11}{header[3]:>8}{header[4]:>9}{header[5]:>15}"
        f"{header[6]:>7}{header[7]:>9}{header[8]:>15}",
    ]
    for scale, row in stats["scales"].items():
        star = "*" if scale == short_scale else " "
        lines.append(
            f"{scale:10}{row['clips']:>9}{row['mean_duration']:>11.1f}{row['sentences']:>8.1f}{row['words']:>9.1f}"
            f"{row['summary_words']:>14.1f}{star}{row['captions']:>7.1f}{row['caption_words']:>9.1f}"
            f"{row['caption_summary_words']:>14.1f}{star}"
        )
    if short_scale:
        lines.append("* texts of short clips are not summarised (as in the paper's Table 1)")
    sources = stats["sources"]
    skipped = ", ".join(f"{reason}: {n}" for reason, n in sources["skipped"].items()) or "none"
    lines.append(
        f"Sources: {sources['listed']} listed, {sources['curated']} curated "
        f"({stats['source_minutes']:.1f} min, {stats['caption_frames']} frames captioned); "
        f"skipped: {skipped}; failed: {len(sources['failed'])}"
    )
    if stats.get("splits"):
        lines.append(
            "Splits: "
            + ", ".join(
                f"{k} {v['clips']} clips of {v['sources']} source{'s' * (v['sources'] != 1)}"
                for k, v in stats["splits"].items()
            )
        )
    if any(stats["clips_dropped"].values()):
        lines.append(
            "Clips dropped by duration: " + ", ".join(f"{k} {v}" for k, v in stats["clips_dropped"].items())
        )
    if stats["stage_share"]:
        lines.append(
            "Time per stage: "
            + ", ".join(
                f"{k} {100 * v:.0f}%" for k, v in sorted(stats["stage_share"].items(), key=lambda kv: -kv[1])
            )
        )
    return "\n".join(lines)


__all__ = ["aggregate", "clip_stats", "format_table"]
