"""The VidLA pretraining objective (paper eq. 3): info-NCE video↔subtitle + video↔caption.

    L = 1/B Σ_i L_vs^i + 1/B Σ_i L_vc^i,   L_vt^i = -log softmax_j(v_i·t_j/τ)_i - log softmax_j(t_i·v_j/τ)_i

One definition of info-NCE serves training and `VidLAModel.forward(return_loss=True)`: `info_nce` and
`gather_with_grad` live in `vidla_hf.modeling.modeling_vidla` (which must stay self-contained for Hub remote
code) and own every line of distributed code, open_clip-style: the negatives are the *global* batch, gathered
with gradient. This module composes the two terms (gathering the videos once for both, through
`global_info_nce`) and re-exports both functions.
"""

from torch import nn

from ..modeling.modeling_vidla import gather_with_grad, global_info_nce, info_nce


class VidLALoss(nn.Module):
    """Eq. 3 over the global batch: `info_nce(video, subtitle) + info_nce(video, caption)`.

    `forward(video_embeds, caption_embeds, subtitle_embeds, logit_scale)` takes this process's L2-normalised
    embeddings `(B, D)` and the inverse temperature `exp(logit_scale)` (clamp it first, as CLIP does); under
    `torch.distributed` every process must call it with the same `B` (see `info_nce`). Returns the total loss
    and its two parts. `local_loss=True`: open_clip's local loss (each process its own rows against the
    gathered columns; the same gradients under DDP, logits `world` times smaller, see `info_nce`).

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

    def __init__(self, local_loss: bool = False):
        super().__init__()
        self.local_loss = local_loss

    def forward(self, video_embeds, caption_embeds, subtitle_embeds, logit_scale):
        if not video_embeds.shape[0] == caption_embeds.shape[0] == subtitle_embeds.shape[0]:
            raise ValueError(
                "VidLALoss needs one caption and one subtitle per video, got "
                f"{video_embeds.shape[0]} videos, {caption_embeds.shape[0]} captions and "
                f"{subtitle_embeds.shape[0]} subtitles."
            )
        videos = gather_with_grad(video_embeds)  # (world·B, D), gathered once for both terms
        parts = {
            name: global_info_nce(
                videos,
                gather_with_grad(texts),
                logit_scale,
                (video_embeds, texts) if self.local_loss else None,
            )
            for name, texts in (("subtitle", subtitle_embeds), ("caption", caption_embeds))
        }
        return parts["subtitle"] + parts["caption"], parts


__all__ = ["VidLALoss", "gather_with_grad", "info_nce"]
