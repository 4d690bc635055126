"""The paper's video tower written literally: dense (1+UV+TN)² masks from §4, built entry by entry.

Independent of `vidla_hf`'s attention code — it only reads the model's weights — so the efficient model
can be checked against it. Slow on purpose (Python loops over mask entries).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

NEG_INF = float("-inf")


def temporal_mask(num_frames: int, num_patches: int) -> torch.Tensor:
    """M̃ ∈ R^{TN×TN}: 0 if mod(|j - i|, N) == 0 else -inf (eq. before eq. 1)."""
    size = num_frames * num_patches
    mask = torch.full((size, size), NEG_INF)
    for i in range(size):
        for j in range(size):
            if abs(j - i) % num_patches == 0:
                mask[i, j] = 0.0
    return mask


def global_mask(num_frames, num_patches, levels, tokens_per_level, scale, patch_attends_cls) -> torch.Tensor:
    """M = [M^CLS; M^MST; M^PATCH] ∈ R^{(1+UV+TN)×(1+UV+TN)}.

    M^PATCH = [0, M̃^G] is the paper's matrix (patches see [CLS]); with `patch_attends_cls=False` its
    [CLS] column is -inf, as the paper's text says.
    """
    uv, tn = levels * tokens_per_level, num_frames * num_patches
    size = 1 + uv + tn
    mask = torch.full((size, size), NEG_INF)
    mask[0, :] = 0.0  # M^CLS: all zeros
    for i in range(uv):  # M^MST = [-inf·1, M̃^{MST,self}, M̃^{MST,patch}]
        for j in range(uv):
            if i // tokens_per_level >= j // tokens_per_level:
                mask[1 + i, 1 + j] = 0.0
        for j in range(tn):
            if (j // num_patches) % (scale ** (i // tokens_per_level)) == 0:
                mask[1 + i, 1 + uv + j] = 0.0
    for i in range(tn):  # M^PATCH = [0, M̃^G]
        mask[1 + uv + i, : 1 + uv] = 0.0
        if not patch_attends_cls:
            mask[1 + uv + i, 0] = NEG_INF
        for j in range(tn):
            if i // num_patches == j // num_patches:
                mask[1 + uv + i, 1 + uv + j] = 0.0
    return mask


def masked_attention(x: torch.Tensor, mask: torch.Tensor, attn) -> torch.Tensor:
    """MMSA(Z, M) = softmax(QKᵀ/√d_head + M)V, multi-head, then the output projection."""
    batch, seq, dim = x.shape
    heads = attn.num_heads
    head_dim = dim // heads

    def split(t):
        return t.view(batch, seq, heads, head_dim).transpose(1, 2)

    q, k, v = split(attn.q_proj(x)), split(attn.k_proj(x)), split(attn.v_proj(x))
    scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + mask
    out = torch.softmax(scores, dim=-1) @ v
    return attn.out_proj(out.transpose(1, 2).reshape(batch, seq, dim))


def interpolate_table(table: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Linear resampling of a (T_table, d) table to (num_frames, d), half-pixel centres (numpy)."""
    source = table.detach().double().numpy()
    length = source.shape[0]
    positions = np.clip((np.arange(num_frames) + 0.5) * length / num_frames - 0.5, 0, length - 1)
    columns = [np.interp(positions, np.arange(length), source[:, c]) for c in range(source.shape[1])]
    return torch.from_numpy(np.stack(columns, axis=1)).to(table.dtype)


@torch.no_grad()
def dense_vision_forward(model, pixel_values_videos, kept_patch_indices=None):
    """Returns (last_hidden_state, pooler_output) of a `VidLAVisionModel` computed with the dense masks."""
    config = model.config
    emb = model.embeddings
    batch, frames = pixel_values_videos.shape[:2]
    dim, patch = config.hidden_size, config.patch_size
    x = F.conv2d(pixel_values_videos.flatten(0, 1), emb.patch_embedding.weight, stride=patch)
    x = x.flatten(2).transpose(1, 2)  # (B·T, N, d)
    num_patches = x.shape[1]
    pos = emb.position_embedding.weight
    x = x.reshape(batch, frames, num_patches, dim) + pos[1:]
    x = x + interpolate_table(emb.temporal_embedding, frames)[None, :, None]
    if kept_patch_indices is not None:
        x = torch.stack([x[b][:, kept_patch_indices[b]] for b in range(batch)])
        num_patches = x.shape[2]
    uv = config.mst_levels * config.mst_tokens_per_level
    parts = [(emb.class_embedding + pos[0]).expand(batch, 1, dim)]
    if uv:
        parts.append(emb.mst_embedding.expand(batch, uv, dim))
    parts.append(x.reshape(batch, frames * num_patches, dim))
    z = model.pre_layrnorm(torch.cat(parts, dim=1))

    m_tilde = temporal_mask(frames, num_patches)
    m_global = global_mask(
        frames,
        num_patches,
        config.mst_levels,
        config.mst_tokens_per_level,
        config.mst_temporal_scale,
        config.patch_attends_cls,
    )
    for layer in model.encoder.layers:
        if config.use_local_temporal_attention:  # eq. 1
            patches = z[:, 1 + uv :]
            patches = (
                masked_attention(layer.temporal_layer_norm(patches), m_tilde, layer.temporal_attn) + patches
            )
            z = torch.cat([z[:, : 1 + uv], patches], dim=1)
        z = masked_attention(layer.layer_norm1(z), m_global, layer.self_attn) + z  # eq. 2
        z = layer.mlp(layer.layer_norm2(z)) + z
    return z, model.post_layernorm(z[:, 0])
