"""PyTorch VidLA: a CLIP text tower and a video tower with hierarchical temporal attention.

Paper: "VidLA: Video-Language Alignment at Scale" (arXiv 2403.14870), §4, equations 1-2.

Token layout of the video tower (public: hidden states are returned in it):
    [CLS] + U·V [MST] (level-major) + T·N patches (frame-major; patch (t, n) at 1 + U·V + t·N + n)

Each layer runs (1) spatially-local temporal attention over the patches, (2) global spatio-temporal
attention with the paper's asymmetric masks, (3) CLIP's MLP. The (1+UV+TN)² mask of step 2 is never
built: it is split into dense problems (see `VidLAGlobalAttention`).

The objective (paper eq. 3) lives here too, with every line of distributed code (`gather_with_grad`,
`info_nce`): `VidLAModel.forward(return_loss=True)` and `vidla_hf.training.VidLALoss` both use it. Kept free of
`vidla_hf` imports so that this file, `configuration_vidla.py` and `convert_clip.py` work as Hub remote code.
"""

import copy
import errno
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import CLIPModel, PreTrainedConfig, PreTrainedModel, initialization
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.clip.modeling_clip import (
    CLIPMLP,
    CLIPAttention,
    CLIPPreTrainedModel,
    CLIPTextModel,
    eager_attention_forward,
)
from transformers.utils import ModelOutput, cached_file
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_vidla import (
    VidLAConfig,
    VidLATextConfig,
    VidLAVisionConfig,
    check_local_folder,
    check_mask_ratio,
    route_overrides,
)
from .convert_clip import convert_clip_state_dict, is_new_vidla_parameter


@dataclass
class VidLAVisionModelOutput(BaseModelOutputWithPooling):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, 1 + U·V + T·N', hidden_size)`):
        Tokens in the paper's layout: [CLS], the [MST] tokens level-major, then patches frame-major.
    pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        The post-layernormed [CLS] token (projected to `projection_dim` by `VidLAModel.get_video_features`).
    kept_patch_indices (`torch.LongTensor` of shape `(batch_size, N')`, *optional*):
        With tube token masking, the spatial positions (row-major in the patch grid) kept in every frame.
    """

    kept_patch_indices: torch.LongTensor | None = None


@dataclass
class VidLAOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `return_loss` is `True`):
        The paper's info-NCE (`info_nce`): `L_video→text + L_text→video`, both directions *summed* (eq. 3), i.e.
        twice CLIP's `image_text_contrastive_loss` on the same logits; over the global batch when
        `torch.distributed` is initialised.
    logits_per_video (`torch.FloatTensor` of shape `(video_batch_size, text_batch_size)`):
        Scaled cosine similarities between every video and every text.
    logits_per_text (`torch.FloatTensor` of shape `(text_batch_size, video_batch_size)`):
        The transpose of `logits_per_video`.
    text_embeds (`torch.FloatTensor` of shape `(text_batch_size, projection_dim)`): L2-normalised.
    video_embeds (`torch.FloatTensor` of shape `(video_batch_size, projection_dim)`): L2-normalised.
    """

    loss: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: VidLAVisionModelOutput | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(
            self[k] if k not in ("text_model_output", "vision_model_output") else getattr(self, k).to_tuple()
            for k in self.keys()
        )


class _GatherWithGrad(torch.autograd.Function):
    """`all_gather` along dim 0 whose backward sums the gradient from every process and keeps this process's
    slice (`torch.distributed.all_gather` itself carries no gradient, nor does accelerate's `gather`)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.batch = dist.get_rank(), tensor.shape[0]
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return torch.cat(gathered, dim=0)  # (world·B, D)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.contiguous()
        # Every process's share of the gradient of its copy of the global loss, summed; gloo has no
        # reduce_scatter, and all_reduce + slice is the same.
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.batch : (ctx.rank + 1) * ctx.batch]  # (B, D)


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All processes' `tensor`s concatenated along dim 0, differentiable; `tensor` itself when
    `torch.distributed` is not initialised or has one process. Every process must pass the same batch size."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def info_nce(
    video_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor, local_loss: bool = False
) -> torch.Tensor:
    r"""One info-NCE term of the paper's objective (eq. 3), over the global batch:

        L_vt = 1/B Σ_i [ -log softmax_j(s·v_i·t_j)_i - log softmax_j(s·t_i·v_j)_i ],   s = 1/τ

    Both directions are *summed*, as in the paper: this is twice CLIP's `image_text_contrastive_loss` (which
    averages them) on the same logits, and `2·log(B)` at chance.

    All distributed code of the objective is here (open_clip's `ClipLoss` with `gather_with_grad=True`): when
    `torch.distributed` is initialised, both embeddings are gathered from every process with `gather_with_grad`
    first, so the negatives are the global batch and every process returns the same loss. It is then a
    collective call: every process must make it, with the same batch size. With DDP averaging the parameter
    gradients, this gives exactly the gradient of one process holding the whole batch.

    With `local_loss=True` (open_clip's `local_loss`), each process computes only its own rows against the
    gathered columns, `(B, world·B)` logits instead of `(world·B, world·B)`, and returns the mean over its
    rows: the losses differ by process (their mean is the global loss) but, with DDP averaging, the
    gradients are the same.

    Args:
        video_embeds (`torch.Tensor` of shape `(batch_size, dim)`): This process's L2-normalised video embeddings.
        text_embeds (`torch.Tensor` of shape `(batch_size, dim)`): The matching L2-normalised text embeddings
            (text `i` describes video `i`).
        logit_scale (`torch.Tensor`): The inverse temperature `1/τ = exp(VidLAModel.logit_scale)`, not its log.

    Example:

    ```python
    >>> import math, torch
    >>> from vidla_hf.modeling.modeling_vidla import info_nce
    >>> embeds = torch.eye(4)  # 4 orthonormal videos, each described exactly by its text
    >>> round(info_nce(embeds, embeds, torch.tensor(0.0)).item() / math.log(4), 4)  # τ = ∞: chance, 2·log(B)
    2.0
    >>> info_nce(embeds, embeds, torch.tensor(100.0)).item() < 1e-6
    True

    ```
    """
    if video_embeds.shape[0] != text_embeds.shape[0]:
        raise ValueError(
            f"info-NCE needs as many texts as videos (text i describes video i), got {text_embeds.shape[0]} texts "
            f"and {video_embeds.shape[0]} videos."
        )
    rows = (video_embeds, text_embeds) if local_loss else None
    return global_info_nce(gather_with_grad(video_embeds), gather_with_grad(text_embeds), logit_scale, rows)


def global_info_nce(
    videos: torch.Tensor,
    texts: torch.Tensor,
    logit_scale: torch.Tensor,
    rows: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """`info_nce` on embeddings already gathered over the global batch, `(world·B, D)` each: lets the training
    objective gather the videos once for both of its text types. `rows=(video_embeds, text_embeds)`, this
    process's own `(B, D)`, gives the local loss (see `info_nce`)."""
    if rows is None:
        logits_per_video = logit_scale * videos @ texts.T  # (world·B, world·B)
        labels = torch.arange(logits_per_video.shape[0], device=logits_per_video.device)
        return F.cross_entropy(logits_per_video, labels) + F.cross_entropy(logits_per_video.T, labels)
    row_videos, row_texts = rows
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    offset = dist.get_rank() * row_videos.shape[0] if distributed else 0  # this process's rows, globally
    labels = torch.arange(row_videos.shape[0], device=row_videos.device) + offset
    logits_per_video = logit_scale * row_videos @ texts.T  # (B, world·B)
    logits_per_text = logit_scale * row_texts @ videos.T  # (B, world·B)
    return F.cross_entropy(logits_per_video, labels) + F.cross_entropy(logits_per_text, labels)


def summary_attention_mask(
    config: VidLAVisionConfig,
    num_frames: int,
    patches_per_frame: int,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor | None:
    """The rows of the global attention mask for the 1 + U·V [CLS]/[MST] queries, as an additive mask.

    Returns `(1, 1, 1 + U·V, 1 + U·V + T·N)` (broadcast over batch and heads), or `None` without [MST]
    tokens ([CLS] attends to everything). [MST] tokens of level u attend to [MST] tokens of levels <= u and
    to patches of frames t with t mod r**u == 0, never to [CLS] (paper: M^MST and M^CLS).
    """
    num_mst = config.num_mst_tokens
    if num_mst == 0:
        return None
    num_summary = config.num_summary_tokens
    mst_level = torch.arange(num_mst, device=device) // config.mst_tokens_per_level  # (UV,)
    patch_frame = torch.arange(num_frames * patches_per_frame, device=device) // patches_per_frame  # (TN,)
    level_stride = config.mst_temporal_scale**mst_level  # (UV,)
    allowed = torch.zeros(num_summary, num_summary + patch_frame.numel(), dtype=torch.bool, device=device)
    allowed[0] = True
    allowed[1:, 1:num_summary] = mst_level[:, None] >= mst_level[None, :]
    allowed[1:, num_summary:] = patch_frame[None, :] % level_stride[:, None] == 0
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[None, None]


class CorruptCheckpointError(OSError):
    """A weights file of the checkpoint being loaded is truncated, empty or not a safetensors file."""


class CheckpointSaveError(OSError):
    """`save_pretrained` could not write the checkpoint (full disk, file size limit, ...); the target folder was
    left as it was."""


def check_pixel_values_videos(pixel_values_videos: Any, config: VidLAVisionConfig) -> None:
    """Raises unless `pixel_values_videos` is a float tensor of shape (B, T, C, H, W) that this tower takes."""
    channels, size = config.num_channels, config.image_size
    expected = f"(B, T, {channels}, {size}, {size}) = (batch, frames, channels, height, width)"
    if not isinstance(pixel_values_videos, torch.Tensor):
        raise TypeError(
            f"`pixel_values_videos` must be a torch.Tensor of shape {expected}, "
            f"got {type(pixel_values_videos).__name__}."
        )
    if not pixel_values_videos.is_floating_point():
        raise TypeError(
            f"`pixel_values_videos` has dtype {pixel_values_videos.dtype}: the model takes float frames resized to "
            f"{size}x{size} and normalised with CLIP's mean/std, not raw pixel values. Prepare videos with the "
            "processor: `VidLAProcessor(...)(videos=..., return_tensors='pt')` or `VidLAVideoProcessor`."
        )
    shape = tuple(pixel_values_videos.shape)
    if len(shape) == 5 and shape[1] >= 1 and shape[2:] == (channels, size, size):
        return
    if len(shape) == 4 and shape[1:] == (channels, size, size):
        hint = " A batch of images is a batch of 1-frame videos: pass `pixel_values[:, None]`."
    elif len(shape) == 5 and shape[2] != channels and shape[-1] == channels:
        hint = " The channels look last (B, T, H, W, C): permute to channels-first, or use the processor."
    else:
        hint = ""
    raise ValueError(f"`pixel_values_videos` must have shape {expected}, got {shape}.{hint}")


def reject_output_attentions(kwargs: dict, *configs: Any) -> None:
    """Raises if attention maps are requested (by argument or by config): the video tower has none to return."""
    requested = kwargs.get("output_attentions")
    if requested is None:
        requested = any(getattr(config, "output_attentions", False) for config in configs)
    if requested:
        raise ValueError(
            f"`output_attentions={requested!r}` is not supported by the VidLA video tower, which accepts only False "
            "(the default, also for `config.output_attentions`): its attention is factorised (temporal attention "
            "per spatial position, then the [CLS]/[MST] queries and one dense attention per frame), so there is "
            "no single (sequence x sequence) attention map to return. `output_hidden_states=True` works; the text "
            "tower's attentions come from `VidLATextModel` or `VidLAModel.get_text_features`."
        )


def check_num_frames(num_frames: Any) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"`num_frames` must be a positive int, got {num_frames!r}.")


def check_clip_model_type(model_type: Any, source: str, name: str | None = None) -> None:
    """`VidLAModel.from_clip` takes CLIP checkpoints only: a VidLA one would lose its temporal weights."""
    if isinstance(model_type, str) and model_type.startswith("vidla"):
        raise ValueError(
            f"`clip`: {source} is a VidLA checkpoint (model_type {model_type!r}), not a CLIP one; `from_clip` would "
            f"keep only its CLIP weights and start VidLA's own afresh. Load it with "
            f"`VidLAModel.from_pretrained({repr(name) if name else 'folder_or_hub_id'})`."
        )
    if model_type != "clip":
        raise ValueError(
            f"`clip`: {source} has model_type {model_type!r}; `from_clip` takes a CLIP checkpoint (model_type 'clip')."
        )


def _with_variant(filename: str, variant: str | None) -> str:
    if variant is None:
        return filename
    stem, extension = filename.rsplit(".", 1)
    return f"{stem}.{variant}.{extension}"


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """Why safetensors cannot open the file at `path` (its own header and size checks), or None."""
    try:
        with safe_open(os.fspath(path), framework="pt"):
            return None
    except (SafetensorError, OSError) as error:
        return f"safetensors cannot read it ({error})"


def find_corrupt_weights(pretrained_model_name_or_path: Any, kwargs: dict) -> tuple[str, str] | None:
    """The first weights file of a local folder or an already downloaded Hub checkpoint that
    `safetensors_problem` rejects, as (path, problem); None if there is none (or nothing to check)."""
    if pretrained_model_name_or_path is None or kwargs.get("state_dict") is not None:
        return None
    lookup = {
        key: kwargs[key] for key in ("cache_dir", "revision", "subfolder") if kwargs.get(key) is not None
    }
    variant = kwargs.get("variant")

    def local_file(filename: str) -> str | None:
        try:
            return cached_file(
                pretrained_model_name_or_path,
                filename,
                local_files_only=True,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
                **lookup,
            )
        except OSError:  # not a valid Hub id nor a folder (transformers raises OSError): nothing to check
            return None

    candidates = [local_file(_with_variant("model.safetensors", variant))]
    index = local_file(_with_variant("model.safetensors.index.json", variant))
    if index is not None:
        try:
            with open(index, encoding="utf-8") as file:
                shards = sorted(set(json.load(file)["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return index, "the shard index is not valid JSON with a `weight_map`"
        candidates += [local_file(shard) for shard in shards]
    for candidate in candidates:
        if candidate is not None and (problem := safetensors_problem(candidate)) is not None:
            return candidate, problem
    return None


def _current_umask() -> int:
    """The process umask: on Linux read from /proc without changing it; elsewhere (no /proc) set and restored."""
    try:
        status = Path("/proc/self/status").read_text(encoding="utf-8", errors="replace")
    except OSError:  # no /proc (macOS, Windows): the fallback below
        status = ""
    for line in status.splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_weights(folder: Path, written: set[str], variant: str | None) -> None:
    """Removes weights files of an earlier save (e.g. shards of a sharded save) that this save did not write,
    so that the folder holds exactly one checkpoint."""
    tag = re.escape(f".{variant}") if variant else ""
    pattern = re.compile(
        rf"model{tag}(-\d{{5}}-of-\d{{5}})?\.safetensors|model\.safetensors\.index{tag}\.json"
    )
    if not any(pattern.fullmatch(name) for name in written):
        return
    for item in folder.iterdir():
        if item.name not in written and pattern.fullmatch(item.name) and item.is_file():
            item.unlink()


def _io_errno(error: BaseException) -> int | None:
    """The OS error number behind `error`: an OSError's, or the `(os error N)` of a safetensors write error."""
    if isinstance(error, OSError):
        return error.errno
    match = re.search(r"\(os error (\d+)\)", str(error))
    return int(match.group(1)) if match else None


class VidLAVisionEmbeddings(nn.Module):
    """CLIP's patch, [CLS] and spatial position embeddings, plus temporal position embeddings and [MST] tokens."""

    def __init__(self, config: VidLAVisionConfig):
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.class_embedding = nn.Parameter(torch.randn(self.embed_dim))
        self.patch_embedding = nn.Conv2d(
            config.num_channels,
            self.embed_dim,
            kernel_size=self.patch_size,
            stride=self.patch_size,
            bias=False,
        )
        self.num_patches = (self.image_size // self.patch_size) ** 2
        self.num_positions = self.num_patches + 1
        self.position_embedding = nn.Embedding(self.num_positions, self.embed_dim)
        self.position_ids = nn.Buffer(torch.arange(self.num_positions).expand((1, -1)), persistent=False)
        # Zero-initialised so that a model converted from CLIP starts out frame-agnostic.
        self.temporal_embedding = nn.Parameter(torch.zeros(config.num_frames, self.embed_dim))
        self.mst_embedding = (
            nn.Parameter(torch.randn(config.num_mst_tokens, self.embed_dim))
            if config.num_mst_tokens
            else None
        )

    def temporal_position_embeddings(self, num_frames: int) -> torch.Tensor:
        """The `(num_frames, hidden_size)` temporal table, linearly interpolated if the frame count differs."""
        table = self.temporal_embedding
        if num_frames == table.shape[0]:
            return table
        table = table.T.unsqueeze(0)  # (1, d, T_table)
        table = F.interpolate(table, size=num_frames, mode="linear", align_corners=False)
        return table.squeeze(0).T  # (T, d)

    @torch.no_grad()
    def resize_temporal_embedding(self, num_frames: int) -> None:
        """Resamples the temporal table to `num_frames` entries (e.g. 12 for pretraining → 32 for finetuning)."""
        if num_frames == self.temporal_embedding.shape[0]:
            return
        resized = self.temporal_position_embeddings(num_frames).detach().clone()
        self.temporal_embedding = nn.Parameter(resized, requires_grad=self.temporal_embedding.requires_grad)

    def forward(
        self, pixel_values_videos: torch.Tensor, kept_patch_indices: torch.LongTensor | None = None
    ) -> torch.Tensor:
        batch_size, num_frames = pixel_values_videos.shape[:2]
        frames = pixel_values_videos.flatten(0, 1).to(
            dtype=self.patch_embedding.weight.dtype
        )  # (B·T, C, H, W)
        patch_embeds = self.patch_embedding(frames).flatten(2).transpose(1, 2)  # (B·T, N, d)
        position_embeds = self.position_embedding(self.position_ids)[0]  # (1 + N, d)
        patch_embeds = patch_embeds + position_embeds[1:]
        patch_embeds = patch_embeds.view(
            batch_size, num_frames, self.num_patches, self.embed_dim
        )  # (B, T, N, d)
        patch_embeds = patch_embeds + self.temporal_position_embeddings(num_frames)[None, :, None]
        if kept_patch_indices is not None:
            index = kept_patch_indices[:, None, :, None].expand(-1, num_frames, -1, self.embed_dim)
            patch_embeds = patch_embeds.gather(2, index)  # (B, T, N', d)
        class_embeds = (self.class_embedding + position_embeds[0]).expand(batch_size, 1, -1)  # (B, 1, d)
        tokens = [class_embeds]
        if self.mst_embedding is not None:
            tokens.append(self.mst_embedding.expand(batch_size, -1, -1))  # (B, UV, d)
        tokens.append(patch_embeds.flatten(1, 2))  # (B, T·N', d)
        return torch.cat(tokens, dim=1)  # (B, 1 + UV + T·N', d)


class VidLAZeroInitLinear(nn.Linear):
    """A linear layer that `VidLAPreTrainedModel._init_weights` starts at zero (weight and bias)."""


class VidLAVisualProjection(nn.Linear):
    """`VidLAForVideoClassification.visual_projection`: `VidLAModel`'s video projection (the same weight name and
    initialisation), its own class so that `_init_weights` reaches it under remote code too."""


class VidLAClassifierLinear(nn.Linear):
    """`VidLAForVideoClassification.classifier`: scores the L2-normalised video embedding against one weight row
    per label."""


class VidLATemporalAttention(CLIPAttention):
    """Spatially-local temporal attention (paper eq. 1): run on `(B·N, T, d)`, i.e. each spatial position
    attends over time. Its own q/k/v/out projections; `out_proj` starts at zero (see `_init_weights`)."""

    def __init__(self, config: VidLAVisionConfig):
        super().__init__(config)
        self.out_proj = VidLAZeroInitLinear(self.embed_dim, self.embed_dim)


class VidLAGlobalAttention(CLIPAttention):
    """Global spatio-temporal attention with the paper's asymmetric masks, computed as dense sub-problems.

    Uses the CLIP layer's own projections (names match CLIP's `self_attn`). With S = 1 + U·V summary tokens:
    - the S [CLS]/[MST] queries attend to all keys under the small `(S, S + T·N)` mask;
    - the patch queries of frame t attend to `[MST keys ; patch keys of frame t]` (plus the [CLS] key when
      `patch_attends_cls`), one dense attention per (video, frame) — no mask at all.
    """

    def forward(
        self,
        hidden_states: torch.Tensor,
        summary_attention_mask: torch.Tensor | None,
        num_frames: int,
        **kwargs,
    ) -> tuple[torch.Tensor, None]:
        batch_size, seq_len, _ = hidden_states.shape
        num_summary = self.config.num_summary_tokens
        patches_per_frame = self.config.patches_per_frame(seq_len, num_frames)
        context_start = 0 if self.config.patch_attends_cls else 1
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attention_kwargs = {"scaling": self.scale, "dropout": 0.0 if not self.training else self.dropout}

        heads_shape = (batch_size, seq_len, self.num_heads, self.head_dim)
        queries = self.q_proj(hidden_states).view(heads_shape)  # (B, S + T·N, h, hd)
        keys = self.k_proj(hidden_states).view(heads_shape)
        values = self.v_proj(hidden_states).view(heads_shape)

        # 1) [CLS]/[MST] queries against every key, with the small mask.
        summary_output, _ = attention_interface(
            self,
            queries[:, :num_summary].transpose(1, 2),  # (B, h, S, hd)
            keys.transpose(1, 2),  # (B, h, S + T·N, hd)
            values.transpose(1, 2),
            summary_attention_mask,
            **attention_kwargs,
        )  # (B, S, h, hd)

        # 2) Patch queries per frame against [context ; own frame], with no mask.
        frame_shape = (batch_size * num_frames, patches_per_frame, self.num_heads, self.head_dim)
        num_context = num_summary - context_start

        def per_frame_keys(states: torch.Tensor) -> torch.Tensor:
            frame_states = states[:, num_summary:].reshape(frame_shape)  # (B·T, N, h, hd)
            if num_context == 0:
                return frame_states.transpose(1, 2)
            context = states[:, context_start:num_summary]  # (B, C, h, hd)
            context = context[:, None].expand(-1, num_frames, -1, -1, -1)  # (B, T, C, h, hd)
            context = context.reshape(batch_size * num_frames, num_context, self.num_heads, self.head_dim)
            return torch.cat([context, frame_states], dim=1).transpose(1, 2)  # (B·T, h, C + N, hd)

        patch_output, _ = attention_interface(
            self,
            queries[:, num_summary:].reshape(frame_shape).transpose(1, 2),  # (B·T, h, N, hd)
            per_frame_keys(keys),
            per_frame_keys(values),
            None,
            **attention_kwargs,
        )  # (B·T, N, h, hd)

        summary_output = summary_output.reshape(batch_size, num_summary, self.embed_dim)  # (B, S, d)
        patch_output = patch_output.reshape(batch_size, seq_len - num_summary, self.embed_dim)  # (B, T·N, d)
        attn_output = self.out_proj(torch.cat([summary_output, patch_output], dim=1))  # (B, S + T·N, d)
        return attn_output, None


class VidLAEncoderLayer(GradientCheckpointingLayer):
    """Temporal attention (optional), then global spatio-temporal attention, then CLIP's MLP."""

    def __init__(self, config: VidLAVisionConfig):
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        if config.use_local_temporal_attention:
            self.temporal_layer_norm = nn.LayerNorm(self.embed_dim, eps=config.layer_norm_eps)
            self.temporal_attn = VidLATemporalAttention(config)
        self.self_attn = VidLAGlobalAttention(config)
        self.layer_norm1 = nn.LayerNorm(self.embed_dim, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)
        self.layer_norm2 = nn.LayerNorm(self.embed_dim, eps=config.layer_norm_eps)

    def temporal_forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Eq. 1: patch (t, n) attends to (t', n) for every t'; [CLS]/[MST] pass through unchanged."""
        batch_size, seq_len, dim = hidden_states.shape
        num_summary = self.config.num_summary_tokens
        patches_per_frame = self.config.patches_per_frame(seq_len, num_frames)
        summary, patches = hidden_states[:, :num_summary], hidden_states[:, num_summary:]
        by_position = patches.reshape(batch_size, num_frames, patches_per_frame, dim).transpose(
            1, 2
        )  # (B, N, T, d)
        by_position = by_position.reshape(batch_size * patches_per_frame, num_frames, dim)  # (B·N, T, d)
        attended, _ = self.temporal_attn(self.temporal_layer_norm(by_position))
        attended = attended.view(batch_size, patches_per_frame, num_frames, dim).transpose(
            1, 2
        )  # (B, T, N, d)
        patches = patches + attended.reshape(batch_size, num_frames * patches_per_frame, dim)  # (B, T·N, d)
        return torch.cat([summary, patches], dim=1)

    def forward(
        self,
        hidden_states: torch.Tensor,
        summary_attention_mask: torch.Tensor | None,
        num_frames: int,
        **kwargs,
    ) -> torch.Tensor:
        if self.config.use_local_temporal_attention:
            hidden_states = self.temporal_forward(hidden_states, num_frames)

        residual = hidden_states
        hidden_states, _ = self.self_attn(
            self.layer_norm1(hidden_states), summary_attention_mask, num_frames=num_frames, **kwargs
        )
        hidden_states = residual + hidden_states

        residual = hidden_states
        hidden_states = residual + self.mlp(self.layer_norm2(hidden_states))
        return hidden_states


class VidLAEncoder(nn.Module):
    def __init__(self, config: VidLAVisionConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList([VidLAEncoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        summary_attention_mask: torch.Tensor | None,
        num_frames: int,
        **kwargs,
    ) -> BaseModelOutput:
        hidden_states = inputs_embeds
        for layer in self.layers:
            hidden_states = layer(hidden_states, summary_attention_mask, num_frames, **kwargs)
        return BaseModelOutput(last_hidden_state=hidden_states)


class VidLAPreTrainedModel(CLIPPreTrainedModel):
    """Shared base: CLIP's initialisation for CLIP's modules, plus VidLA's own (see `_init_weights`)."""

    config: VidLAConfig
    base_model_prefix = "vidla"
    input_modalities = ("video", "text")
    _no_split_modules = [
        "CLIPTextEmbeddings",
        "CLIPEncoderLayer",
        "VidLAVisionEmbeddings",
        "VidLAEncoderLayer",
    ]
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False  # the summary queries need an arbitrary additive mask
    _supports_flex_attn = False
    _supports_attention_backend = True
    _can_record_outputs = {"hidden_states": VidLAEncoderLayer}

    @torch.no_grad()
    def _init_weights(self, module):
        """CLIP's scheme, plus: [MST] tokens random, temporal position table zero, and the temporal attention's
        *output* projection zero — so every temporal block starts as the identity (residual only) yet its
        q/k/v still get gradient once `out_proj` moves. This is how we read the paper's "projection matrices
        of spatially local temporal attention initialised with zero": zeroing q/k/v too would freeze the block.
        """
        super()._init_weights(module)
        factor = self.config.initializer_factor
        if isinstance(module, VidLAVisionEmbeddings):
            initialization.normal_(module.class_embedding, mean=0.0, std=module.embed_dim**-0.5 * factor)
            initialization.normal_(
                module.patch_embedding.weight, std=module.config.initializer_range * factor
            )
            initialization.normal_(
                module.position_embedding.weight, std=module.config.initializer_range * factor
            )
            initialization.copy_(module.position_ids, torch.arange(module.num_positions).expand((1, -1)))
            initialization.zeros_(module.temporal_embedding)
            if module.mst_embedding is not None:
                initialization.normal_(module.mst_embedding, std=module.embed_dim**-0.5 * factor)
        elif isinstance(module, VidLAZeroInitLinear):
            # Dispatched on the linear layer itself: transformers skips `_init_weights` for remote-code modules
            # that own no parameters directly, such as the attention module around it.
            initialization.zeros_(module.weight)
            initialization.zeros_(module.bias)
        elif isinstance(module, VidLAModel):
            # CLIP's `_init_weights` leaves the temperature alone: a checkpoint without it got uninitialised memory.
            initialization.constant_(module.logit_scale, module.config.logit_scale_init_value)
            initialization.normal_(module.text_projection.weight, std=module.text_embed_dim**-0.5 * factor)
            initialization.normal_(
                module.visual_projection.weight, std=module.vision_embed_dim**-0.5 * factor
            )
        elif isinstance(module, VidLAVisualProjection):
            # Dispatched on the layer itself, as `VidLAZeroInitLinear` is: the classifier owns no parameter directly.
            initialization.normal_(module.weight, std=module.in_features**-0.5 * factor)
        elif isinstance(module, VidLAClassifierLinear):
            # The features are L2-normalised: this std gives logits of std ~1/sqrt(projection_dim) per class.
            initialization.normal_(module.weight, std=module.in_features**-0.5 * factor)
            initialization.zeros_(module.bias)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, num_frames: int | None = None, **kwargs):
        """`PreTrainedModel.from_pretrained`, plus:

        - `num_frames=` resamples the temporal position table of the loaded checkpoint to a new frame count
          (e.g. a 12-frame pretrained model finetuned at 32 frames); only `VidLAModel`, `VidLAVisionModel` and
          `VidLAForVideoClassification` take it (a text tower has no frames);
        - a name that can only be a local path (starts with `.`, `/` or `~`, ends with a separator, ...; see
          `check_local_folder`) but does not exist raises `NoSuchFolderError` ("no such folder: <path>") at once,
          instead of becoming a Hub lookup; `~` is expanded;
        - a truncated or corrupt weights file raises `CorruptCheckpointError` naming the file.
        """
        if num_frames is not None:
            check_num_frames(num_frames)
            if not issubclass(cls, (VidLAModel, VidLAVisionModel, VidLAForVideoClassification)):
                raise TypeError(
                    f"`num_frames={num_frames}`: {cls.__name__} has no video tower, so no frames to resize; "
                    "`num_frames` is for VidLAModel, VidLAVisionModel and VidLAForVideoClassification."
                )
        pretrained_model_name_or_path = check_local_folder(pretrained_model_name_or_path)
        config = kwargs.get("config")
        if (
            num_frames is None
            and pretrained_model_name_or_path is not None
            and isinstance(config, (VidLAConfig, VidLAVisionConfig))
        ):
            # `AutoModel.from_pretrained(path, num_frames=N)` hands the frame count to the config (a field of it):
            # load at the checkpoint's count, then resize, as `num_frames=` here does.
            hub = (
                "cache_dir",
                "force_download",
                "proxies",
                "token",
                "revision",
                "local_files_only",
                "subfolder",
            )
            saved, _ = PreTrainedConfig.get_config_dict(
                pretrained_model_name_or_path, **{k: kwargs[k] for k in hub if k in kwargs}
            )
            saved = (saved.get("vision_config") or {}) if isinstance(config, VidLAConfig) else saved
            wanted = config.num_frames
            if isinstance(saved.get("num_frames"), int) and saved["num_frames"] != wanted:
                config = copy.deepcopy(config)
                config.num_frames = saved["num_frames"]
                kwargs["config"], num_frames = config, wanted
        try:
            model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except Exception as error:
            corrupt = find_corrupt_weights(pretrained_model_name_or_path, kwargs)
            if corrupt is None:
                raise
            path, problem = corrupt
            raise CorruptCheckpointError(
                f"cannot load the weights file {path}: {problem}. It is truncated or corrupt; save or download "
                "the checkpoint again."
            ) from error
        if num_frames is not None:
            model.resize_num_frames(num_frames)
        return model

    def save_pretrained(
        self, save_directory: str | os.PathLike, is_main_process: bool = True, *args, **kwargs
    ):
        """`PreTrainedModel.save_pretrained`, all or nothing: everything is written into a staging folder next to
        `save_directory` and moved in (`os.replace`) only once complete, so a failure (full disk, ...) leaves an
        earlier save there intact and raises `CheckpointSaveError` naming the folder. Files get the permissions of
        any normal write (`0o666 & ~umask`; safetensors alone writes 0600). Weights files of an earlier save
        that this one does not overwrite (e.g. old shards) are removed. `~` is expanded."""
        if kwargs.get("distributed_checkpoint") or not self.should_save_on_this_rank(is_main_process):
            # Several ranks write (or this one writes nothing): no staging, transformers coordinates them.
            return super().save_pretrained(save_directory, is_main_process, *args, **kwargs)
        target = Path(os.path.expanduser(os.fspath(save_directory)))
        if target.is_file():
            raise NotADirectoryError(errno.ENOTDIR, "save_pretrained needs a folder, not a file", str(target))
        target.mkdir(parents=True, exist_ok=True)
        if kwargs.get("push_to_hub"):
            kwargs.setdefault("repo_id", target.resolve().name)  # transformers' default, not the staging name
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
        try:
            super().save_pretrained(staging, is_main_process, *args, **kwargs)
            written = sorted(staging.iterdir())
            mode = 0o666 & ~_current_umask()
            for item in written:
                if item.is_file():
                    os.chmod(item, mode)
            for item in written:
                if item.is_dir() and (target / item.name).is_dir():
                    shutil.rmtree(target / item.name)
                os.replace(item, target / item.name)
            _remove_stale_weights(target, {item.name for item in written}, kwargs.get("variant"))
        except Exception as error:
            code = _io_errno(error)
            if code is None and not isinstance(error, OSError):
                raise
            message = (
                f"could not save {type(self).__name__} to {target}: {os.strerror(code) if code else error}. "
                f"Nothing in {target} was changed; the partial save was removed."
            )
            raise (CheckpointSaveError(code, message) if code else CheckpointSaveError(message)) from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class VidLAVisionModel(VidLAPreTrainedModel):
    """The VidLA video tower without projection.

    Example:

    ```python
    >>> import torch
    >>> from vidla_hf import VidLAConfig, VidLAVisionModel
    >>> config = VidLAConfig.from_preset("vidla-tiny").vision_config
    >>> model = VidLAVisionModel(config).eval()
    >>> video = torch.randn(2, 8, 3, 64, 64)  # (batch, frames, 3, H, W)
    >>> out = model(pixel_values_videos=video)
    >>> out.last_hidden_state.shape  # 1 [CLS] + 4 [MST] + 8 frames x 16 patches
    torch.Size([2, 133, 128])

    ```"""

    config: VidLAVisionConfig
    main_input_name = "pixel_values_videos"
    input_modalities = ("video",)
    _input_embed_layer = "patch_embedding"

    def __init__(self, config: VidLAVisionConfig):
        super().__init__(config)
        self.embeddings = VidLAVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = VidLAEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def resize_num_frames(self, num_frames: int) -> None:
        """Resamples the temporal position table to `num_frames` entries and records it in the config."""
        check_num_frames(num_frames)
        self.embeddings.resize_temporal_embedding(num_frames)
        self.config.num_frames = num_frames

    def sample_kept_patches(
        self, batch_size: int, mask_ratio: float, device: torch.device
    ) -> torch.LongTensor:
        """Tube masking: per video, a random sorted subset of `round(N·(1 - mask_ratio))` spatial positions."""
        num_patches = self.embeddings.num_patches
        num_kept = max(1, round(num_patches * (1.0 - mask_ratio)))
        noise = torch.rand(batch_size, num_patches, device=device)
        return noise.argsort(dim=1)[:, :num_kept].sort(dim=1).values  # (B, N')

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values_videos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        **kwargs,
    ) -> VidLAVisionModelOutput:
        r"""
        pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, num_frames, 3, height, width)`):
            Normalised frames; `num_frames` may differ from `config.num_frames` (1 for an image).
        mask_ratio (`float`, *optional*):
            Tube masking ratio for this call (defaults to `config.mask_ratio`). Only applied in training mode.
        """
        if pixel_values_videos is None:
            raise ValueError("You have to specify `pixel_values_videos`.")
        check_pixel_values_videos(pixel_values_videos, self.config)
        reject_output_attentions(kwargs, self.config)
        batch_size, num_frames = pixel_values_videos.shape[:2]
        mask_ratio = check_mask_ratio(self.config.mask_ratio if mask_ratio is None else mask_ratio)
        kept_patch_indices = None
        if self.training and mask_ratio > 0:
            kept_patch_indices = self.sample_kept_patches(batch_size, mask_ratio, pixel_values_videos.device)

        hidden_states = self.embeddings(pixel_values_videos, kept_patch_indices)
        hidden_states = self.pre_layrnorm(hidden_states)
        patches_per_frame = self.config.patches_per_frame(hidden_states.shape[1], num_frames)
        mask = summary_attention_mask(
            self.config, num_frames, patches_per_frame, hidden_states.dtype, hidden_states.device
        )
        encoder_outputs = self.encoder(hidden_states, mask, num_frames, **kwargs)

        last_hidden_state = encoder_outputs.last_hidden_state
        pooled_output = self.post_layernorm(last_hidden_state[:, 0])
        return VidLAVisionModelOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled_output,
            kept_patch_indices=kept_patch_indices,
        )


class VidLATextModel(VidLAPreTrainedModel, CLIPTextModel):
    """The VidLA text tower: CLIP's text transformer, unchanged (so CLIP weights load as they are).

    Example:

    ```python
    >>> import torch
    >>> from vidla_hf import VidLAConfig, VidLATextModel
    >>> model = VidLATextModel(VidLAConfig.from_preset("vidla-tiny").text_config).eval()
    >>> model(input_ids=torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407]])).pooler_output.shape
    torch.Size([1, 128])

    ```"""

    config: VidLATextConfig
    main_input_name = "input_ids"
    input_modalities = ("text",)
    _input_embed_layer = "token_embedding"
    _can_record_outputs = CLIPPreTrainedModel._can_record_outputs


class VidLAModel(VidLAPreTrainedModel):
    """VidLA: video and text towers with projections into a shared space, scored by scaled cosine similarity.

    Example:

    ```python
    >>> import torch
    >>> from vidla_hf import VidLAConfig, VidLAModel
    >>> model = VidLAModel(VidLAConfig.from_preset("vidla-tiny")).eval()
    >>> videos = torch.randn(2, 8, 3, 64, 64)
    >>> input_ids = torch.tensor([[49406, 320, 1125, 49407], [49406, 320, 2368, 49407]])
    >>> with torch.inference_mode():
    ...     out = model(input_ids=input_ids, pixel_values_videos=videos)
    >>> out.logits_per_video.shape
    torch.Size([2, 2])

    ```"""

    config: VidLAConfig
    main_input_name = "input_ids"

    def __init__(self, config: VidLAConfig):
        super().__init__(config)
        self.projection_dim = config.projection_dim
        self.text_embed_dim = config.text_config.hidden_size
        self.vision_embed_dim = config.vision_config.hidden_size
        self.text_model = VidLATextModel._from_config(config.text_config)
        self.vision_model = VidLAVisionModel._from_config(config.vision_config)
        self.visual_projection = nn.Linear(self.vision_embed_dim, self.projection_dim, bias=False)
        self.text_projection = nn.Linear(self.text_embed_dim, self.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        """The text tower's token embedding, as `CLIPModel` (accelerate's FSDP2 shards it as its own unit)."""
        return self.text_model.embeddings.token_embedding

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_model.embeddings.token_embedding = value

    def resize_num_frames(self, num_frames: int) -> None:
        """Resamples the video tower's temporal position table to `num_frames` entries."""
        self.vision_model.resize_num_frames(num_frames)

    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Text tower outputs whose `pooler_output` is the projected (not normalised) text embedding, as in
        `CLIPModel.get_text_features`."""
        text_outputs = self.text_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            return_dict=True,
            **kwargs,
        )
        text_outputs.pooler_output = self.text_projection(text_outputs.pooler_output)
        return text_outputs

    @can_return_tuple
    def get_video_features(
        self, pixel_values_videos: torch.Tensor, mask_ratio: float | None = None, **kwargs
    ) -> VidLAVisionModelOutput:
        """Video tower outputs whose `pooler_output` is the projected (not normalised) video embedding, as in
        `CLIPModel.get_image_features`."""
        vision_outputs = self.vision_model(
            pixel_values_videos=pixel_values_videos, mask_ratio=mask_ratio, return_dict=True, **kwargs
        )
        vision_outputs.pooler_output = self.visual_projection(vision_outputs.pooler_output)
        return vision_outputs

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        return_loss: bool | None = None,
        mask_ratio: float | None = None,
        **kwargs,
    ) -> VidLAOutput:
        r"""
        return_loss (`bool`, *optional*): Whether to return the paper's info-NCE loss (`info_nce`; video `i`
            matches text `i`). Unlike CLIP, the two directions are *summed* (paper eq. 3), so the loss is twice
            `CLIPModel`'s on the same logits. When `torch.distributed` is initialised, the embeddings of every
            process are gathered (with gradient) and the loss is over the global batch, as open_clip does: every
            process must then call `forward(return_loss=True)`, with the same batch size.
        mask_ratio (`float`, *optional*): Tube masking ratio for this call (training mode only).
        """
        if input_ids is None or pixel_values_videos is None:
            raise ValueError("`VidLAModel.forward` needs both `input_ids` and `pixel_values_videos`.")
        check_pixel_values_videos(pixel_values_videos, self.vision_model.config)
        reject_output_attentions(kwargs, self.config, self.vision_model.config)
        vision_outputs = self.get_video_features(pixel_values_videos, mask_ratio=mask_ratio, **kwargs)
        text_outputs = self.get_text_features(input_ids, attention_mask, position_ids, **kwargs)
        video_embeds = F.normalize(vision_outputs.pooler_output, dim=-1)
        text_embeds = F.normalize(text_outputs.pooler_output, dim=-1)
        logits_per_text = text_embeds @ video_embeds.T * self.logit_scale.exp()
        logits_per_video = logits_per_text.T
        loss = info_nce(video_embeds, text_embeds, self.logit_scale.exp()) if return_loss else None
        return VidLAOutput(
            loss=loss,
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_text,
            text_embeds=text_embeds,
            video_embeds=video_embeds,
            text_model_output=text_outputs,
            vision_model_output=vision_outputs,
        )

    @classmethod
    def from_clip(cls, clip: CLIPModel | str | os.PathLike, **overrides) -> "VidLAModel":
        """Builds a VidLA model from an HF `CLIPModel` (an instance, a local folder or a Hub id).

        Every CLIP weight is copied through `convert_clip_state_dict`; the keys the converted checkpoint
        lacks must be exactly VidLA's new parameters, which keep their `_init_weights` values ([MST] random,
        temporal table zero, temporal `out_proj` zero). `overrides` are any VidLA config fields, e.g.
        `num_frames=32, mst_levels=0`.

        Example:

        ```python
        >>> from transformers import CLIPConfig, CLIPModel
        >>> from vidla_hf import VidLAModel
        >>> clip = CLIPModel(CLIPConfig(
        ...     text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
        ...     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        ...                        image_size=32, patch_size=8), projection_dim=16))
        >>> model = VidLAModel.from_clip(clip, num_frames=4)
        >>> model.config.vision_config.num_frames
        4

        ```
        """
        if isinstance(clip, (str, os.PathLike)):
            clip = check_local_folder(clip)
            config_dict, _ = PreTrainedConfig.get_config_dict(clip)
            check_clip_model_type(config_dict.get("model_type"), repr(os.fspath(clip)), os.fspath(clip))
            clip = CLIPModel.from_pretrained(clip)
        elif isinstance(clip, (PreTrainedConfig, PreTrainedModel)) and not isinstance(clip, CLIPModel):
            config = clip if isinstance(clip, PreTrainedConfig) else clip.config
            check_clip_model_type(config.model_type, f"the given {type(clip).__name__}")
        if not isinstance(clip, CLIPModel):
            raise TypeError(f"`clip` must be a CLIPModel, a folder or a Hub id, got {type(clip).__name__}.")
        routed = route_overrides(overrides)
        config = VidLAConfig(
            text_config={**clip.config.text_config.to_dict(), **routed["text_config"]},
            vision_config={**clip.config.vision_config.to_dict(), **routed["vision_config"]},
            projection_dim=clip.config.projection_dim,
            logit_scale_init_value=clip.config.logit_scale_init_value,
            **routed["top"],
        )
        for sub_config in (config.text_config, config.vision_config):
            sub_config.model_type = type(sub_config).model_type
        config._attn_implementation = clip.config._attn_implementation
        model = cls(config)
        state_dict = convert_clip_state_dict(clip.state_dict())
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        expected_missing = {key for key in model.state_dict() if is_new_vidla_parameter(key)}
        if unexpected or set(missing) != expected_missing:
            raise RuntimeError(
                "CLIP → VidLA conversion mismatch: unexpected keys "
                f"{sorted(unexpected)}, missing non-VidLA keys {sorted(set(missing) - expected_missing)}, "
                f"VidLA keys wrongly present {sorted(expected_missing - set(missing))}."
            )
        return model.to(dtype=clip.dtype)


def check_class_text_embeds(text_embeds: Any, num_labels: int, projection_dim: int) -> None:
    """Raises unless `text_embeds` is a finite float `(num_labels, projection_dim)` matrix with no zero row."""
    if not isinstance(text_embeds, torch.Tensor) or not text_embeds.is_floating_point():
        raise TypeError(
            f"`text_embeds` must be a float torch.Tensor of shape (num_labels, projection_dim) = ({num_labels}, "
            f"{projection_dim}), one text embedding per label, got {type(text_embeds).__name__}"
            + (f" of dtype {text_embeds.dtype}." if isinstance(text_embeds, torch.Tensor) else ".")
        )
    shape = tuple(text_embeds.shape)
    if len(shape) != 2 or shape[1] != projection_dim:
        raise ValueError(
            f"`text_embeds` must have shape (num_labels, projection_dim) = ({num_labels}, {projection_dim}), "
            f"got {shape}: text embeddings of this model (`VidLAModel.get_text_features`), one row per label."
        )
    if shape[0] != num_labels:
        raise ValueError(
            f"`text_embeds` has {shape[0]} rows but the classifier has num_labels={num_labels}: pass one text "
            f"embedding per label, in label order, or build the classifier with num_labels={shape[0]} (and its "
            "id2label)."
        )
    if not bool(torch.isfinite(text_embeds).all()):
        raise ValueError("`text_embeds` holds NaN or infinite values.")
    zero = (text_embeds.norm(dim=-1) == 0).nonzero().flatten().tolist()
    if zero:
        raise ValueError(
            f"`text_embeds` rows {zero} are zero vectors, which have no direction to score against."
        )


def check_classification_labels(labels: Any, batch_size: int, config: PreTrainedConfig) -> None:
    """Raises unless `labels` suits the loss: integer `labels` (single-label classification, cross-entropy) must
    be `(batch_size,)` class indices in `[0, num_labels)`, or -100 (ignored); float targets (regression,
    multi-label) are left to transformers' `ForSequenceClassificationLoss`."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`labels` must be a torch.Tensor, got {type(labels).__name__}.")
    if labels.is_floating_point() or config.problem_type not in (None, "single_label_classification"):
        return
    if config.num_labels < 2:
        return  # num_labels == 1 is regression: transformers' loss takes the targets as they are
    if tuple(labels.shape) != (batch_size,):
        raise ValueError(
            f"`labels` must hold one class index per video, shape ({batch_size},), got {tuple(labels.shape)}."
        )
    outside = ((labels < 0) | (labels >= config.num_labels)) & (labels != -100)
    if bool(outside.any()):
        raise ValueError(
            f"`labels` must be class indices in [0, {config.num_labels}) (or -100, ignored), got "
            f"{labels[outside].tolist()}."
        )


def check_scale(scale: Any) -> float:
    """The inverse temperature `scale` as a float, or raises unless it is a finite positive number."""
    if isinstance(scale, torch.Tensor) and scale.numel() == 1:
        scale = scale.item()
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(
            f"`scale` must be a positive float (e.g. `VidLAModel.logit_scale.exp()`), got {scale!r}."
        )
    if not 0 < scale < float("inf"):
        raise ValueError(f"`scale` must be a finite positive float, got {scale}.")
    return float(scale)


class VidLAForVideoClassification(VidLAPreTrainedModel):
    """VidLA's video tower with a classification head: [CLS] → visual projection → L2-normalise → linear layer.

    The head scores the normalised video embedding against one weight row per label, which is exactly
    `VidLAModel`'s zero-shot score when the rows are the labels' normalised text embeddings times the inverse
    temperature: `from_zero_shot` starts it there, `init_classifier_from_text` sets it on any classifier.

    Its config is a `VidLAConfig` (with `num_labels` / `id2label` / `label2id`), so a `VidLAModel` folder loads
    directly: `VidLAForVideoClassification.from_pretrained(vidla_folder, num_labels=..., id2label=...)` keeps the
    video tower and its projection, drops the text tower, and reports the head as newly initialised.
    `labels` give transformers' loss for `...ForVideoClassification` models: cross-entropy for class indices
    (`config.problem_type` may choose regression or multi-label instead).

    Example:

    ```python
    >>> import torch
    >>> from vidla_hf import VidLAConfig, VidLAForVideoClassification
    >>> config = VidLAConfig.from_preset("vidla-tiny", id2label={0: "cooking", 1: "dancing", 2: "diving"})
    >>> model = VidLAForVideoClassification(config).eval()
    >>> videos = torch.randn(2, 8, 3, 64, 64)  # (batch, frames, 3, H, W)
    >>> out = model(pixel_values_videos=videos, labels=torch.tensor([0, 2]))
    >>> out.logits.shape, out.loss.shape
    (torch.Size([2, 3]), torch.Size([]))

    ```"""

    config: VidLAConfig
    main_input_name = "pixel_values_videos"
    input_modalities = ("video",)
    # What a `VidLAModel` checkpoint holds beyond this model: dropped on load, without a warning.
    _keys_to_ignore_on_load_unexpected = [r"^text_model\.", r"^text_projection\.", r"^logit_scale$"]

    def __init__(self, config: VidLAConfig):
        super().__init__(config)
        if set(config.label2id or {}) != set(config.id2label.values()):
            # `from_pretrained(..., id2label=...)` sets `id2label` alone: keep `label2id` its inverse.
            config.label2id = {label: index for index, label in config.id2label.items()}
        self.num_labels = config.num_labels
        self.vision_model = VidLAVisionModel._from_config(config.vision_config)
        self.visual_projection = VidLAVisualProjection(
            config.vision_config.hidden_size, config.projection_dim, bias=False
        )
        self.classifier = VidLAClassifierLinear(config.projection_dim, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.vision_model.get_input_embeddings()

    def resize_num_frames(self, num_frames: int) -> None:
        """Resamples the video tower's temporal position table to `num_frames` entries."""
        self.vision_model.resize_num_frames(num_frames)

    @torch.no_grad()
    def init_classifier_from_text(self, text_embeds: torch.Tensor, scale: float | torch.Tensor) -> None:
        """Sets the head to zero-shot classification: weight row `i` = `scale` × the normalised `text_embeds[i]`,
        bias zero. With a `VidLAModel`'s text embeddings of the labels (e.g. `vidla_hf.evaluation.class_embeddings`,
        prompt templates averaged as CLIP does) and `scale = model.logit_scale.exp()` (the inverse temperature,
        not its log), the logits are that model's zero-shot `logits_per_video`.

        Args:
            text_embeds (`torch.Tensor` of shape `(num_labels, projection_dim)`): One text embedding per label, in
                label order (normalised here).
            scale (`float` or `torch.Tensor`): The inverse temperature, `VidLAModel.logit_scale.exp()`.

        Example:

        ```python
        >>> import torch
        >>> from vidla_hf import VidLAConfig, VidLAForVideoClassification
        >>> model = VidLAForVideoClassification(VidLAConfig.from_preset("vidla-tiny", num_labels=2))
        >>> model.init_classifier_from_text(torch.eye(2, 128), scale=100.0)
        >>> model.classifier.weight[:, :3].tolist(), model.classifier.bias.tolist()
        ([[100.0, 0.0, 0.0], [0.0, 100.0, 0.0]], [0.0, 0.0])

        ```"""
        check_class_text_embeds(text_embeds, self.config.num_labels, self.config.projection_dim)
        scale = check_scale(scale)
        weight = F.normalize(text_embeds.detach().float(), dim=-1) * scale  # (num_labels, D)
        self.classifier.weight.copy_(weight.to(self.classifier.weight))
        self.classifier.bias.zero_()

    @classmethod
    def from_zero_shot(
        cls, model: VidLAModel, class_embeds: torch.Tensor, labels: list[str] | tuple[str, ...]
    ) -> "VidLAForVideoClassification":
        """A classifier of `labels` that starts as `model`'s zero-shot classifier: a copy of its video tower and
        projection, and the head from `init_classifier_from_text(class_embeds, model.logit_scale.exp())`.

        Args:
            model (`VidLAModel`): The contrastive model (left unchanged; the classifier copies its weights).
            class_embeds (`torch.Tensor` of shape `(len(labels), projection_dim)`): The labels' text embeddings,
                e.g. `vidla_hf.evaluation.class_embeddings(model, processor, labels, templates)`.
            labels (`list[str]`): The class names, in the order of `class_embeds`; they become `config.id2label`.

        Example:

        ```python
        >>> import torch
        >>> from vidla_hf import (VidLAConfig, VidLAForVideoClassification, VidLAModel, VidLAProcessor,
        ...                       VidLAVideoProcessor, build_clip_tokenizer)
        >>> from vidla_hf.evaluation import class_embeddings
        >>> model = VidLAModel(VidLAConfig.from_preset("vidla-tiny")).eval()
        >>> processor = VidLAProcessor(VidLAVideoProcessor(), build_clip_tokenizer())
        >>> labels = ["cooking", "dancing"]
        >>> embeds = class_embeddings(model, processor, labels, templates=("a video of {}.", "a photo of {}."))
        >>> classifier = VidLAForVideoClassification.from_zero_shot(model, embeds, labels).eval()
        >>> classifier.config.id2label
        {0: 'cooking', 1: 'dancing'}
        >>> videos = torch.randn(1, 8, 3, 64, 64)
        >>> with torch.inference_mode():
        ...     video_embeds = model.get_video_features(videos).pooler_output
        ...     logits = classifier(pixel_values_videos=videos).logits
        >>> zero_shot = model.logit_scale.exp() * torch.nn.functional.normalize(video_embeds, dim=-1) @ embeds.T
        >>> torch.allclose(logits, zero_shot, atol=1e-5)
        True

        ```"""
        if not isinstance(model, VidLAModel):
            raise TypeError(
                f"`model` must be a VidLAModel (video and text towers), got {type(model).__name__}; to classify "
                "with another classifier's head, use `init_classifier_from_text`."
            )
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
            raise TypeError(f"`labels` must be a list of class names, got {type(labels).__name__}.")
        for index, label in enumerate(labels):
            if not isinstance(label, str) or not label:
                raise TypeError(f"`labels[{index}]` must be a non-empty string, got {label!r}.")
        repeated = sorted(label for label, count in Counter(labels).items() if count > 1)
        if repeated:
            raise ValueError(f"`labels` must be distinct (they become `id2label`), repeated: {repeated}.")
        if len(labels) < 2:
            raise ValueError(f"`labels` must name at least 2 classes to choose between, got {list(labels)}.")
        check_class_text_embeds(class_embeds, len(labels), model.config.projection_dim)
        config = copy.deepcopy(model.config)
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: index for index, label in enumerate(labels)}
        classifier = cls(config)
        classifier.vision_model.load_state_dict(model.vision_model.state_dict())
        classifier.visual_projection.load_state_dict(model.visual_projection.state_dict())
        classifier.to(device=model.logit_scale.device, dtype=model.visual_projection.weight.dtype)
        classifier.init_classifier_from_text(class_embeds, model.logit_scale.exp())
        return classifier.train(model.training)

    @can_return_tuple
    def forward(
        self,
        pixel_values_videos: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        mask_ratio: float | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        r"""
        pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, num_frames, 3, height, width)`):
            Normalised frames (`VidLAVideoProcessor`).
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, config.num_labels)` for the cross-entropy loss (float targets for
            `problem_type` regression or multi-label, as every transformers classifier takes them).
        mask_ratio (`float`, *optional*): Tube masking ratio for this call (training mode only).
        """
        if pixel_values_videos is None:
            raise ValueError("You have to specify `pixel_values_videos`.")
        check_pixel_values_videos(pixel_values_videos, self.vision_model.config)
        reject_output_attentions(kwargs, self.config, self.vision_model.config)
        if labels is not None:
            check_classification_labels(labels, pixel_values_videos.shape[0], self.config)
        vision_outputs = self.vision_model(
            pixel_values_videos=pixel_values_videos, mask_ratio=mask_ratio, return_dict=True, **kwargs
        )
        video_embeds = F.normalize(self.visual_projection(vision_outputs.pooler_output), dim=-1)  # (B, D)
        logits = self.classifier(video_embeds)  # (B, num_labels)
        loss = self.loss_function(labels, logits, self.config, **kwargs) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=vision_outputs.hidden_states)


__all__ = [
    "CheckpointSaveError",
    "CorruptCheckpointError",
    "VidLAForVideoClassification",
    "VidLAGlobalAttention",
    "VidLAModel",
    "VidLAOutput",
    "VidLAPreTrainedModel",
    "VidLATemporalAttention",
    "VidLATextModel",
    "VidLAVisionEmbeddings",
    "VidLAVisionModel",
    "VidLAVisionModelOutput",
    "gather_with_grad",
    "global_info_nce",
    "info_nce",
    "summary_attention_mask",
]
