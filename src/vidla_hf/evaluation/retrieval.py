"""Retrieval evaluation with the paper's Table 2 conventions: R@1/5/10 in %, median and mean rank.

Ranks are computed in chunks, so neither the similarity matrix nor the dual-softmax (DSL) one is ever
held whole: memory is O(chunk²) whatever the gallery size. DSL (Cheng et al., CAMoE) rescales each
similarity by a softmax over the *queries* for its gallery item, `s_ij · softmax_i(τ·s_ij)`; that needs
every query of the bank at once (it uses the other queries as a prior), so it is an evaluation-time
re-scoring of a whole query set, not something a single query can use. Results are always reported with
and without it.
"""

import math
import numbers

import torch
import torch.nn.functional as F


def _check_finite(tensor: torch.Tensor, name: str) -> None:
    """Raises `ValueError` naming `name` and counting its NaN / inf entries, if it has any.

    A NaN compares false with everything, so a NaN score would rank first and count as a hit (R@1 = 100):
    metrics are only computed from finite numbers.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(tensor).__name__}.")
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        nan = int(torch.isnan(tensor).sum())
        bad = int((~finite).sum())
        raise ValueError(
            f"`{name}` has {bad} non-finite entries ({nan} NaN, {bad - nan} inf) out of {tensor.numel()}; "
            "metrics need finite numbers."
        )


def _check_temperature(temperature, name: str = "dsl_temperature") -> float:
    """`temperature` as a float if it is a finite number > 0, else `TypeError` / `ValueError` naming `name`."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"`{name}` must be a finite number > 0, got {temperature!r}.")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {temperature!r}.")
    return float(temperature)


def _check_chunk_size(chunk_size) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"`chunk_size` must be an integer >= 1, got {chunk_size!r}.")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be an integer >= 1, got {chunk_size!r}.")


def metrics_from_ranks(ranks: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """R@k (%), median rank (MdR) and mean rank (MnR) from 1-based ranks of the matching items."""
    if not isinstance(ranks, torch.Tensor) or ranks.ndim != 1 or ranks.numel() == 0:
        raise ValueError(f"`ranks` must be a non-empty 1-D tensor of 1-based ranks, got {ranks!r}.")
    _check_finite(ranks, "ranks")
    if bool((ranks < 1).any()):
        raise ValueError(f"`ranks` must be 1-based (>= 1), got {int((ranks < 1).sum())} entries below 1.")
    ranks = ranks.double()
    metrics = {f"R@{k}": float((ranks <= k).double().mean() * 100) for k in ks}
    metrics["MdR"] = float(ranks.quantile(0.5))
    metrics["MnR"] = float(ranks.mean())
    return metrics


def retrieval_metrics(similarity: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Metrics for a dense (queries, gallery) similarity matrix where query i matches gallery item i.

    Ties count against the match (an item scoring equal to it ranks ahead of it).

    Example:

    ```python
    >>> import torch
    >>> from vidla_hf.evaluation import retrieval_metrics
    >>> retrieval_metrics(torch.tensor([[0.9, 0.1], [0.8, 0.2]]))
    {'R@1': 50.0, 'R@5': 100.0, 'R@10': 100.0, 'MdR': 1.5, 'MnR': 1.5}

    ```
    """
    if not isinstance(similarity, torch.Tensor):
        raise TypeError(f"`similarity` must be a torch.Tensor, got {type(similarity).__name__}.")
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1] or similarity.shape[0] == 0:
        raise ValueError(
            "`similarity` must be a non-empty square (queries, gallery) matrix, got "
            f"{tuple(similarity.shape)}."
        )
    _check_finite(similarity, "similarity")
    similarity = similarity.double()
    return metrics_from_ranks((similarity >= similarity.diagonal()[:, None]).sum(dim=1), ks)


def dual_softmax(similarity: torch.Tensor, temperature: float = 100.0) -> torch.Tensor:
    """Dense DSL re-scoring of a (queries, gallery) matrix: `s · softmax over queries (dim 0) of τ·s`."""
    temperature = _check_temperature(temperature, "temperature")
    _check_finite(similarity, "similarity")
    rescored = similarity * torch.softmax(similarity * temperature, dim=0)
    _check_finite(rescored, f"similarity re-scored with temperature={temperature}")  # τ·s overflowed
    return rescored


def _check_pair(queries: torch.Tensor, gallery: torch.Tensor, names=("queries", "gallery")) -> None:
    for tensor, name in zip((queries, gallery), names, strict=True):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(tensor).__name__}.")
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape != gallery.shape or queries.shape[0] == 0:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must be (N, D) embeddings of N >= 1 matching pairs, got "
            f"{tuple(queries.shape)} and {tuple(gallery.shape)}."
        )
    for tensor, name in zip((queries, gallery), names, strict=True):
        _check_finite(tensor, name)


@torch.no_grad()
def matched_ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    dsl_temperature: float | None = None,
    chunk_size: int = 4096,
) -> torch.Tensor:
    """1-based rank of gallery item i for query i, computed chunk by chunk (exactly; no N×N matrix).

    With `dsl_temperature`, similarities are DSL re-scored first: one pass accumulates, for every gallery
    item, the log-sum-exp of τ·s over all queries; a second pass ranks `s · exp(τ·s - lse)`.

    Raises `ValueError` for NaN / inf embeddings, similarities that overflow, `chunk_size < 1` and a
    `dsl_temperature` that is not a finite number > 0: a NaN score would otherwise count as a hit.
    """
    _check_chunk_size(chunk_size)
    if dsl_temperature is not None:
        dsl_temperature = _check_temperature(dsl_temperature)
    _check_pair(queries, gallery)
    gallery = gallery.to(queries.dtype)  # computed in the queries' dtype (float64 for exact comparisons)
    size = queries.shape[0]
    diagonal = (queries * gallery).sum(dim=1)  # (N,) s_ii
    if dsl_temperature is not None:
        lse = torch.full((size,), -torch.inf, dtype=queries.dtype)
        for q_start in range(0, size, chunk_size):
            q_block = queries[q_start : q_start + chunk_size]
            for g_start in range(0, size, chunk_size):
                block = (
                    q_block @ gallery[g_start : g_start + chunk_size].T * dsl_temperature
                )  # (chunk, chunk)
                g_range = slice(g_start, g_start + block.shape[1])
                lse[g_range] = torch.logaddexp(lse[g_range], torch.logsumexp(block, dim=0))
        if not bool(torch.isfinite(lse).all()):
            raise ValueError(
                f"`dsl_temperature`={dsl_temperature} times the similarities overflows: the DSL normaliser is "
                f"non-finite for {int((~torch.isfinite(lse)).sum())} of {size} gallery items."
            )
        matched = diagonal * torch.exp(diagonal * dsl_temperature - lse)
    else:
        matched = diagonal
    ranks = torch.ones(size, dtype=torch.long)  # 1 + the other items scoring at least as high
    non_finite = 0  # similarities that overflowed although the embeddings are finite
    for q_start in range(0, size, chunk_size):
        q_block = queries[q_start : q_start + chunk_size]
        q_index = torch.arange(q_start, q_start + q_block.shape[0])
        for g_start in range(0, size, chunk_size):
            scores = q_block @ gallery[g_start : g_start + chunk_size].T  # (chunk, chunk)
            if dsl_temperature is not None:
                scores = scores * torch.exp(scores * dsl_temperature - lse[g_start : g_start + chunk_size])
            non_finite += int((~torch.isfinite(scores)).sum())
            g_index = torch.arange(g_start, g_start + scores.shape[1])
            at_least = (scores >= matched[q_index, None]) & (q_index[:, None] != g_index[None, :])
            ranks[q_index] += at_least.sum(dim=1)
    if non_finite:
        raise ValueError(
            f"the similarities `queries @ gallery.T` have {non_finite} non-finite entries out of {size * size} "
            f"(the embeddings are finite but their products overflow {queries.dtype})."
        )
    return ranks


def evaluate_retrieval(
    text_embeds: torch.Tensor,
    video_embeds: torch.Tensor,
    dsl_temperature: float = 100.0,
    chunk_size: int = 4096,
) -> dict[str, dict[str, float]]:
    """Text→video and video→text metrics, with and without DSL, for matching rows of embeddings.

    Embeddings are L2-normalised here. Returns `{"text_to_video", "video_to_text", "text_to_video_dsl",
    "video_to_text_dsl"}`, each with R@1/5/10, MdR, MnR. NaN / inf embeddings, `chunk_size < 1` and a
    `dsl_temperature` that is not a finite number > 0 raise `ValueError` before anything is computed.
    """
    _check_chunk_size(chunk_size)
    dsl_temperature = _check_temperature(dsl_temperature)
    _check_pair(text_embeds, video_embeds, ("text_embeds", "video_embeds"))
    text_embeds = F.normalize(text_embeds.double(), dim=-1)
    video_embeds = F.normalize(video_embeds.double(), dim=-1)
    results = {}
    for name, queries, gallery in (
        ("text_to_video", text_embeds, video_embeds),
        ("video_to_text", video_embeds, text_embeds),
    ):
        results[name] = metrics_from_ranks(matched_ranks(queries, gallery, None, chunk_size))
        results[f"{name}_dsl"] = metrics_from_ranks(
            matched_ranks(queries, gallery, dsl_temperature, chunk_size)
        )
    return results


def paragraph(texts: list[str], separator: str = " ") -> str:
    """Paragraph-to-video retrieval (DiDeMo, ActivityNet): a video's descriptions joined into one query."""
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"`texts` must be a non-empty list of strings, got {texts!r}.")
    return separator.join(t.strip() for t in texts)


__all__ = [
    "dual_softmax",
    "evaluate_retrieval",
    "matched_ranks",
    "metrics_from_ranks",
    "paragraph",
    "retrieval_metrics",
]
