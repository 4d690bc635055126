"""Argument checks shared by the two pipelines.

Kept free of `vidla_hf` imports so that it works as Hub remote code.
"""

import difflib
from collections.abc import Iterable, Mapping

from transformers.image_utils import is_pil_image


def check_keywords(kwargs: Mapping, accepted: Iterable[str], where: str) -> None:
    """A `TypeError` naming each keyword of `kwargs` not in `accepted`, the closest accepted one, and all."""
    accepted = sorted(accepted)
    unknown = sorted(set(kwargs) - set(accepted))
    if not unknown:
        return
    described = []
    for key in unknown:
        close = difflib.get_close_matches(key, accepted, n=1)
        described.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    noun = "argument" if len(described) == 1 else "arguments"
    raise TypeError(
        f"{where} got an unexpected keyword {noun} {', '.join(described)}; "
        f"accepted keywords: {', '.join(accepted)}."
    )


def check_batch_size(batch_size, task: str) -> None:
    """Each input already runs as one forward pass over all its candidates; batching inputs would mix them."""
    if batch_size is not None and batch_size != 1:
        raise ValueError(
            f"`batch_size` must be 1 (or None) for {task}, got {batch_size!r}: each input is scored against "
            "all its candidates in one forward pass already, and inputs are not batched together."
        )


def is_frame_list(inputs) -> bool:
    """A list of PIL images is one video (its frames), not a list of one-frame videos."""
    return isinstance(inputs, (list, tuple)) and len(inputs) > 0 and is_pil_image(inputs[0])


__all__ = ["check_batch_size", "check_keywords", "is_frame_list"]
