"""The efficient video tower equals the paper's dense masked attention (tests/dense_reference.py)."""

import pytest
import torch
from conftest import randomize_, tiny_vision_config
from dense_reference import dense_vision_forward, global_mask

from vidla_hf import VidLAVisionModel

# (name, image_size, patch_size, frames in the input, config overrides)
CASES = [
    # Paper Fig. 3 toy case: N=4, T=4, U=2, V=1, r=2.
    ("fig3", 4, 2, 4, {"num_frames": 4, "mst_levels": 2, "mst_tokens_per_level": 1, "mst_temporal_scale": 2}),
    # Paper defaults on a 7x7 grid: T=12, N=49, U=3, V=4, r=2.
    (
        "paper",
        14,
        2,
        12,
        {"num_frames": 12, "mst_levels": 3, "mst_tokens_per_level": 4, "mst_temporal_scale": 2},
    ),
    # Ablations (Tables 4 and 15).
    ("no_mst", 8, 2, 6, {"num_frames": 6, "mst_levels": 0}),
    ("no_hierarchy", 8, 2, 6, {"num_frames": 6, "mst_levels": 3, "mst_temporal_scale": 1}),
    ("no_local", 8, 2, 6, {"num_frames": 6, "use_local_temporal_attention": False}),
    (
        "r3_odd_frames",
        6,
        2,
        7,
        {"num_frames": 7, "mst_levels": 3, "mst_tokens_per_level": 2, "mst_temporal_scale": 3},
    ),
    # A frame count other than the table's: the temporal table is interpolated.
    ("interpolated", 8, 2, 9, {"num_frames": 4}),
    ("one_frame", 8, 2, 1, {"num_frames": 4}),
]


def build(image_size, patch_size, overrides, patch_attends_cls, attn_implementation):
    config = tiny_vision_config(
        image_size=image_size, patch_size=patch_size, patch_attends_cls=patch_attends_cls, **overrides
    )
    config._attn_implementation = attn_implementation
    return randomize_(VidLAVisionModel(config)).eval()


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("patch_attends_cls", [False, True])
@pytest.mark.parametrize(
    ("name", "image_size", "patch_size", "frames", "overrides"), CASES, ids=[c[0] for c in CASES]
)
def test_efficient_attention_equals_dense_paper_masks(
    name, image_size, patch_size, frames, overrides, patch_attends_cls, attn_implementation
):
    model = build(image_size, patch_size, overrides, patch_attends_cls, attn_implementation)
    video = torch.randn(2, frames, 3, image_size, image_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(pixel_values_videos=video)
    expected_hidden, expected_pooled = dense_vision_forward(model, video)
    torch.testing.assert_close(out.last_hidden_state, expected_hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.pooler_output, expected_pooled, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("patch_attends_cls", [False, True])
@pytest.mark.parametrize("mask_ratio", [0.5, 0.75])
def test_tube_masking_equals_dense_paper_masks(mask_ratio, patch_attends_cls, attn_implementation):
    model = build(14, 2, CASES[1][4], patch_attends_cls, attn_implementation)
    model.train()  # masking is a training-mode behaviour; dropout is 0 so training mode is deterministic
    video = torch.randn(2, 12, 3, 14, 14, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = model(pixel_values_videos=video, mask_ratio=mask_ratio)
    kept = out.kept_patch_indices
    assert kept.shape == (2, round(49 * (1 - mask_ratio)))
    assert not torch.equal(kept[0], kept[1]), "each video draws its own positions"
    expected_hidden, expected_pooled = dense_vision_forward(model, video, kept)
    torch.testing.assert_close(out.last_hidden_state, expected_hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.pooler_output, expected_pooled, atol=1e-5, rtol=1e-5)


def test_dense_reference_masks_match_figure_3():
    """Spot checks of the reference itself against the paper's Fig. 3 (N=4, T=4, U=2, V=1, r=2)."""
    mask = global_mask(4, 4, 2, 1, 2, patch_attends_cls=False) == 0
    cls, mst0, mst1, first_patch = 0, 1, 2, 3
    assert mask[cls].all()
    assert mask[mst0, 1:3].tolist() == [True, False]  # level 0 sees level 0 only
    assert mask[mst1, 1:3].tolist() == [True, True]  # level 1 sees levels 0 and 1
    assert mask[mst0, 3:].all()  # level 0: every frame
    frames_seen_by_mst1 = mask[mst1, 3:].view(4, 4).all(dim=1).tolist()
    assert frames_seen_by_mst1 == [True, False, True, False]  # level 1: frames 0 and 2
    assert not mask[1:, cls].any()  # nobody attends to [CLS]
    assert mask[first_patch, 1:3].all() and mask[first_patch, 3:7].all() and not mask[first_patch, 7:].any()
