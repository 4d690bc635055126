"""A multiple-choice test that only temporal modelling can pass: each caption against its clip and the same
clip played backwards.

Question i offers caption i two videos: clip i as the model sees it (its sampled frames) and the same frames in
reverse order. A model that pools frames without their order (frame averaging, CLIP4Clip's mean pooling) embeds
the two identically, so both options score the same and it is at chance, 50 %, by construction, whatever it has
learned. Ties are split evenly (`choice_accuracy`): a tie counts as the coin flip it is, never as a hit (an
`argmax` with the answer first) nor as a miss (the answer last).
"""

import torch
import torch.nn.functional as F

from .choices import TIE_TOLERANCE, choice_accuracy
from .retrieval import _check_finite


def reversed_order_accuracy(
    text_embeds: torch.Tensor,
    video_embeds: torch.Tensor,
    reversed_video_embeds: torch.Tensor,
    tie_tolerance: float = TIE_TOLERANCE,
) -> float:
    """Accuracy (%) of telling each clip from its time reversal by its caption (chance 50).

    Row i of the three `(N, D)` tensors: caption i, clip i, and clip i with its frames in reverse order (embed
    `pixel_values_videos.flip(1)`). Embeddings are L2-normalised here; cosine similarities are compared with
    `choice_accuracy`.

    Example (an order-blind "model": the reversal embeds like the clip, so every question is a tie):

    ```python
    >>> import torch
    >>> from vidla_hf.evaluation import reversed_order_accuracy
    >>> frames = torch.randn(4, 8, 16)  # (clips, frames, features)
    >>> pooled, pooled_reversed = frames.mean(1), frames.flip(1).mean(1)
    >>> reversed_order_accuracy(torch.randn(4, 16), pooled, pooled_reversed)
    50.0

    ```
    """
    for tensor, name in (
        (text_embeds, "text_embeds"),
        (video_embeds, "video_embeds"),
        (reversed_video_embeds, "reversed_video_embeds"),
    ):
        _check_finite(tensor, name)
        if tensor.ndim != 2 or tensor.shape != text_embeds.shape or tensor.shape[0] == 0:
            raise ValueError(
                "`text_embeds`, `video_embeds` and `reversed_video_embeds` must be (N, D) embeddings of the same "
                f"shape, got {tuple(text_embeds.shape)}, {tuple(video_embeds.shape)} and "
                f"{tuple(reversed_video_embeds.shape)}."
            )
    texts = F.normalize(text_embeds.double(), dim=-1)
    options = torch.stack([video_embeds, reversed_video_embeds], dim=1).double()  # (N, 2, D)
    scores = torch.einsum("nd,nkd->nk", texts, F.normalize(options, dim=-1))  # (N, 2)
    answers = torch.zeros(scores.shape[0], dtype=torch.long)  # the clip as played
    return choice_accuracy(scores, answers, tie_tolerance)


__all__ = ["reversed_order_accuracy"]
