"""The VidLA objective (paper eq. 3) with negatives gathered across processes, open_clip-style.

    L = 1/B Σ_i L_vs^i + 1/B Σ_i L_vc^i,   L_vt^i = -log softmax_j(v_i·t_j/τ)_i - log softmax_j(t_i·v_j/τ)_i

for subtitles s and captions c, over the *global* batch. `all_gather` carries no gradient (nor does
accelerate's `gather`), so embeddings are gathered with `gather_with_grad`, whose backward sums the
gradient from every process and keeps this process's slice. Every process computes the same global loss;
with DDP averaging the parameter gradients this gives exactly the gradient of one process holding the
whole batch (tested with two real processes).
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.batch = dist.get_rank(), tensor.shape[0]
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return torch.cat(gathered, dim=0)  # (world·B, D)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.contiguous()
        dist.all_reduce(
            grad, op=dist.ReduceOp.SUM
        )  # gloo has no reduce_scatter; all_reduce + slice is the same
        return grad[ctx.rank * ctx.batch : (ctx.rank + 1) * ctx.batch]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All processes' `tensor`s concatenated along dim 0, differentiable; identity without distribution.

    Every process must pass the same batch size.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def info_nce(
    video_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Both directions of info-NCE for matched rows of L2-normalised embeddings, averaged over the batch."""
    logits = logit_scale * video_embeds @ text_embeds.T  # (B, B)
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)


class VidLALoss(nn.Module):
    """Eq. 3 over the global batch: info-NCE video↔subtitle + video↔caption.

    `forward(video_embeds, caption_embeds, subtitle_embeds, logit_scale)` takes the *local* normalised
    embeddings `(B, D)` and the inverse temperature `exp(logit_scale)` (clamp it first, as CLIP does).
    Returns the total loss and its two parts.

    Example:

    ```python
    >>> import torch, torch.nn.functional as F
    >>> from vidla_hf.training import VidLALoss
    >>> v, c, s = (F.normalize(torch.randn(4, 8), dim=-1) for _ in range(3))
    >>> total, parts = VidLALoss()(v, c, s, torch.tensor(100.0))
    >>> sorted(parts)
    ['caption', 'subtitle']

    ```
    """

    def forward(self, video_embeds, caption_embeds, subtitle_embeds, logit_scale):
        videos = gather_with_grad(video_embeds)
        parts = {
            "subtitle": info_nce(videos, gather_with_grad(subtitle_embeds), logit_scale),
            "caption": info_nce(videos, gather_with_grad(caption_embeds), logit_scale),
        }
        return parts["subtitle"] + parts["caption"], parts


__all__ = ["VidLALoss", "gather_with_grad", "info_nce"]
