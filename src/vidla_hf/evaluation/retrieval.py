"""Retrieval metrics with the conventions of the paper's Table 2: R@1/5/10 in %, median and mean rank."""

import torch


def retrieval_metrics(similarity: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Metrics for queries (rows) against a gallery (columns) where query i matches gallery item i.

    Ranks start at 1; ties are counted pessimistically (a gallery item scoring equal to the match ranks
    ahead of it). Returns `R@k` in percent, `MdR` and `MnR`.

    Example:

    ```python
    >>> import torch
    >>> from vidla_hf.evaluation import retrieval_metrics
    >>> retrieval_metrics(torch.tensor([[0.9, 0.1], [0.8, 0.2]]))
    {'R@1': 50.0, 'R@5': 100.0, 'R@10': 100.0, 'MdR': 1.5, 'MnR': 1.5}

    ```
    """
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(
            f"`similarity` must be a square (queries, gallery) matrix, got {tuple(similarity.shape)}."
        )
    similarity = similarity.float()
    matched = similarity.diagonal()[:, None]
    ranks = (similarity >= matched).sum(dim=1).float()  # 1 = the match scores highest
    metrics = {f"R@{k}": float((ranks <= k).float().mean() * 100) for k in ks}
    metrics["MdR"] = (
        float(ranks.median())
        if ranks.numel() % 2
        else float(ranks.sort().values[ranks.numel() // 2 - 1 : ranks.numel() // 2 + 1].mean())
    )
    metrics["MnR"] = float(ranks.mean())
    return metrics


__all__ = ["retrieval_metrics"]
