"""Accuracy over K options a question: the shared scoring of multiple choice and the reversed-order test."""

import torch

from .retrieval import _check_finite

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


def _check_labels(labels: torch.Tensor, name: str, num_videos: int, num_choices: int) -> None:
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"`{name}` must be an integer tensor of indices, got {labels!r}.")
    if labels.shape != (num_videos,):
        raise ValueError(
            f"`{name}` must have shape ({num_videos},), one per video, got {tuple(labels.shape)}."
        )
    outside = (labels < 0) | (labels >= num_choices)
    if bool(outside.any()):
        raise ValueError(
            f"`{name}` must be indices in [0, {num_choices}), got {int(outside.sum())} outside it "
            f"(first: {int(labels[outside][0])})."
        )


__all__ = ["TIE_TOLERANCE", "choice_accuracy"]
