"""The explicit CLIP → VidLA weight mapping.

VidLA keeps CLIP's submodule names wherever a weight is CLIP's, so every CLIP key maps to itself; the
table below still lists each family of keys so that an unexpected CLIP key is an error, not a silent drop.
Kept free of `vidla_hf` imports so that it can be copied into a Hub repository as remote code.
"""

from __future__ import annotations

import re

# (CLIP key pattern, VidLA key template). Every key of a `CLIPModel` state dict must match one row.
CLIP_TO_VIDLA_KEY_MAPPING: tuple[tuple[str, str], ...] = (
    (r"^text_model\.(embeddings|encoder|final_layer_norm)\.(.+)$", r"text_model.\1.\2"),
    (
        r"^vision_model\.embeddings\.(class_embedding|patch_embedding\.weight|position_embedding\.weight)$",
        r"vision_model.embeddings.\1",
    ),
    (r"^vision_model\.(pre_layrnorm|post_layernorm)\.(weight|bias)$", r"vision_model.\1.\2"),
    (
        r"^vision_model\.encoder\.layers\.(\d+)\.(self_attn\.[qkv]_proj|self_attn\.out_proj|layer_norm1|layer_norm2"
        r"|mlp\.fc1|mlp\.fc2)\.(weight|bias)$",
        r"vision_model.encoder.layers.\1.\2.\3",
    ),
    (r"^(visual_projection|text_projection)\.weight$", r"\1.weight"),
    (r"^logit_scale$", "logit_scale"),
)

# Parameters VidLA adds to CLIP: exactly the keys a converted CLIP checkpoint lacks.
VIDLA_NEW_PARAMETER_PATTERNS: tuple[str, ...] = (
    r"^vision_model\.embeddings\.temporal_embedding$",
    r"^vision_model\.embeddings\.mst_embedding$",
    r"^vision_model\.encoder\.layers\.\d+\.temporal_layer_norm\.(weight|bias)$",
    r"^vision_model\.encoder\.layers\.\d+\.temporal_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)$",
)


def convert_clip_key(key: str) -> str:
    """Maps one `CLIPModel` state-dict key to its VidLA name; raises `KeyError` for a key it does not know."""
    for pattern, template in CLIP_TO_VIDLA_KEY_MAPPING:
        if re.match(pattern, key):
            return re.sub(pattern, template, key)
    raise KeyError(f"CLIP state-dict key {key!r} has no VidLA counterpart.")


def convert_clip_state_dict(state_dict: dict) -> dict:
    """Renames a `CLIPModel` state dict to VidLA's names (see `CLIP_TO_VIDLA_KEY_MAPPING`)."""
    return {convert_clip_key(key): value for key, value in state_dict.items()}


def is_new_vidla_parameter(key: str) -> bool:
    """Whether `key` names a parameter VidLA adds on top of CLIP."""
    return any(re.match(pattern, key) for pattern in VIDLA_NEW_PARAMETER_PATTERNS)


__all__ = [
    "CLIP_TO_VIDLA_KEY_MAPPING",
    "VIDLA_NEW_PARAMETER_PATTERNS",
    "convert_clip_key",
    "convert_clip_state_dict",
    "is_new_vidla_parameter",
]
