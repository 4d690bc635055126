"""Multi-scale clips at sentence boundaries (paper §3, Table 1).

Each scale cuts the source's sentences into runs of whole consecutive sentences whose durations average its
target (13.2 / 30.4 / 60.3 s in the paper). Within a scale clips never overlap; across scales they do, by
design: the same moment is seen at three temporal scales.

The planner is greedy, one pass per scale: a clip grows sentence by sentence and is closed as soon as adding
the next sentence would leave its duration further from the target than stopping now (ties close). Clips
then end within about half a sentence of the target, so their mean lands on it. The last clip of a source
holds what is left; when that is under half the target it is merged into the clip before (if the merged
clip stays within `max_duration`), so a long-scale clip is not a 10-second remainder. Clips whose duration
falls outside `[min_duration, max_duration]` (by default half and twice the scale's target) are dropped and
counted as `too_short` / `too_long`.

`Clip.index` is the clip's position among all planned clips of its (source, scale), *before* dropping: a
dropped clip leaves a gap, and a kept clip's index (hence its key) does not depend on the duration limits.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping

from .records import DEFAULT_SCALES, Clip, Sentence

DROP_REASONS = ("too_short", "too_long")


def _per_scale(name: str, value, scales: Mapping[str, float], factor: float) -> dict[str, float]:
    if value is None:
        return {scale: factor * target for scale, target in scales.items()}
    if isinstance(value, Mapping):
        missing = set(scales) - set(value)
        if missing:
            raise ValueError(f"{name} has no value for scale(s) {sorted(missing)}: {dict(value)}.")
        return {scale: float(value[scale]) for scale in scales}
    return dict.fromkeys(scales, float(value))


def _group(sentences: list[Sentence], target: float) -> list[list[Sentence]]:
    """Greedy runs of consecutive sentences whose durations stay closest to `target`."""
    groups, current = [], [sentences[0]]
    for sentence in sentences[1:]:
        start = current[0].start
        if abs(current[-1].end - start - target) <= abs(sentence.end - start - target):
            groups.append(current)
            current = [sentence]
        else:
            current.append(sentence)
    groups.append(current)
    return groups


def plan_clips(
    source_id: str,
    sentences: list[Sentence],
    scales: Mapping[str, float] = DEFAULT_SCALES,
    min_duration: float | Mapping[str, float] | None = None,
    max_duration: float | Mapping[str, float] | None = None,
) -> tuple[list[Clip], dict[str, int]]:
    """Plans the clips of one source at every scale; returns them and the number dropped by reason.

    `scales` maps a scale name to its target mean duration in seconds. `min_duration` / `max_duration` are
    seconds, for all scales or per scale (a mapping); None means half / twice each scale's target. Sentences
    must be in time order (as `split_sentences` gives them). Clips come scale by scale, in time order. The
    result depends only on the arguments.

    ```python
    >>> sentences = [Sentence(f"Sentence {i}.", 4.0 * i, 4.0 * i + 3.5, 2) for i in range(12)]
    >>> clips, dropped = plan_clips("video", sentences, scales={"short": 12.0, "medium": 40.0, "long": 120.0})
    >>> [(c.key, c.start, c.end, len(c.sentences)) for c in clips]  # doctest: +NORMALIZE_WHITESPACE
    [('video_short_0000', 0.0, 11.5, 3), ('video_short_0001', 12.0, 23.5, 3), ('video_short_0002', 24.0, 35.5, 3),
     ('video_short_0003', 36.0, 47.5, 3), ('video_medium_0000', 0.0, 47.5, 12)]
    >>> dropped  # the only long clip, 47.5 s, is under half of 120 s
    {'too_short': 1, 'too_long': 0}

    ```
    """
    if not scales:
        raise ValueError("scales must name at least one scale and its target duration.")
    for scale, target in scales.items():
        if not (isinstance(target, numbers.Real) and math.isfinite(target) and target > 0):
            raise ValueError(f"scales[{scale!r}] must be a positive duration in seconds, got {target!r}.")
    lows = _per_scale("min_duration", min_duration, scales, 0.5)
    highs = _per_scale("max_duration", max_duration, scales, 2.0)
    for scale in scales:
        if not lows[scale] < highs[scale]:
            raise ValueError(
                f"min_duration ({lows[scale]}) must be below max_duration ({highs[scale]}) for scale {scale!r}."
            )
    if any(b.start < a.start for a, b in itertools.pairwise(sentences)):
        raise ValueError(f"sentences of {source_id!r} are not in time order.")
    dropped = dict.fromkeys(DROP_REASONS, 0)
    if not sentences:
        return [], dropped
    clips = []
    for scale, target in scales.items():
        groups = _group(sentences, target)
        if len(groups) > 1:
            tail, before = groups[-1], groups[-2]
            merged = max(s.end for s in tail) - before[0].start
            if max(s.end for s in tail) - tail[0].start < target / 2 and merged <= highs[scale]:
                groups[-2:] = [before + tail]
        for index, group in enumerate(groups):
            end = max(s.end for s in group)
            if index + 1 < len(groups):  # overlapping word times never make clips of one scale overlap
                end = min(end, groups[index + 1][0].start)
            duration = end - group[0].start
            if duration < lows[scale]:
                dropped["too_short"] += 1
            elif duration > highs[scale]:
                dropped["too_long"] += 1
            else:
                clips.append(Clip(source_id, scale, index, group[0].start, end, list(group)))
    return clips, dropped


__all__ = ["DROP_REASONS", "plan_clips"]
