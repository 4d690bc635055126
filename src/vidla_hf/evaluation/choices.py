"""Accuracy over K options a question: the shared scoring of multiple choice and the reversed-order test."""

import torch

from .retrieval import _check_finite

# Cosine similarities closer than this are a tie. A clip and its reversal pooled without order differ by float32
# rounding only (~1e-7); a model that prefers one of them by less than this has no real preference either.
TIE_TOLERANCE = 1e-5


def choice_accuracy(
    scores: torch.Tensor, answers: torch.Tensor, tie_tolerance: float = TIE_TOLERANCE, k: int = 1
) -> float:
    """Accuracy (%) of the answer being among the `k` best-scoring of K options, ties broken uniformly at random,
    in expectation.

    `scores` is `(N, K)`, `answers` `(N,)` the index of each question's right option. A question whose answer has
    `g` options scoring more than `tie_tolerance` above it and `m` options (itself included) within
    `tie_tolerance` of its score earns `clamp((k - g) / m, 0, 1)`: the chance that a random order of the tied
    options puts the answer among the first `k`. For `k=1`: `1/m` when the answer ties at the top, else 0.
    NaN / inf scores raise `ValueError`.

    Example:

    ```python
    >>> import torch
    >>> from vidla_hf.evaluation import choice_accuracy
    >>> scores = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.7]])  # right, tied, wrong
    >>> choice_accuracy(scores, torch.tensor([0, 0, 0]))
    50.0
    >>> round(choice_accuracy(torch.tensor([[0.9, 0.5, 0.5, 0.5]]), torch.tensor([1]), k=2), 1)  # 3 tie for 2nd
    33.3

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
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be an integer >= 1, got {k!r}.")
    scores = scores.double()
    answer_scores = scores.gather(1, answers[:, None])  # (N, 1)
    better = (scores > answer_scores + tie_tolerance).sum(dim=1)  # (N,) options certainly ranked above
    tied = ((scores - answer_scores).abs() <= tie_tolerance).sum(dim=1)  # (N,) the answer and its ties
    credit = ((k - better).double() / tied.double()).clamp(0.0, 1.0)
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
