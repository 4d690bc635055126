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

from .retrieval import _check_finite
from .zero_shot import _check_labels

# Cosine similarities closer than this are a tie. A clip and its reversal pooled without order differ by float32
# rounding only (~1e-7); a model that prefers one of them by less than this has no real preference either.
TIE_TOLERANCE = 1e-5


def choice_accuracy(
    scores: torch.Tensor, answers: torch.Tensor, tie_tolerance: float = TIE_TOLERANCE
) -> float:
    """Accuracy (%) of picking the best-scoring of K options, ties broken uniformly at random, in expectation.

    `scores` is `(N, K)`, `answers` `(N,)` the index of each question's right option. A question earns `1/m`
    when its answer is among the `m` options within `tie_tolerance` of the best score, else 0. NaN / inf scores
    raise `ValueError`.

    Example:

    ```python
    >>> import torch
    >>> from vidla_hf.evaluation import choice_accuracy
    >>> scores = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.7]])  # right, tied, wrong
    >>> choice_accuracy(scores, torch.tensor([0, 0, 0]))
    50.0

    ```
    """
    _check_finite(scores, "scores")
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"`scores` must be a non-empty (N, K) matrix, got {tuple(scores.shape)}.")
    _check_labels(answers, "answers", scores.shape[0], scores.shape[1])
    if (
        isinstance(tie_tolerance, bool)
        or not isinstance(tie_tolerance, (int, float))
        or not tie_tolerance >= 0
    ):
        raise ValueError(f"`tie_tolerance` must be a number >= 0, got {tie_tolerance!r}.")
    scores = scores.double()
    best = scores.max(dim=1, keepdim=True).values
    tied = scores >= best - tie_tolerance  # (N, K) the options a random tie-break may pick
    answer_tied = tied.gather(1, answers[:, None]).squeeze(1)
    credit = answer_tied.double() / tied.sum(dim=1).double()
    return float(credit.mean() * 100)


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


__all__ = ["TIE_TOLERANCE", "choice_accuracy", "reversed_order_accuracy"]
