"""The temporal-design ablations (issue 15, benchmarks/ablations.py): the reversed-order test can be trusted (frame
averaging is exactly at chance on it, ties are split rather than won or lost, and an order-aware scorer can pass
it), the variants are the configurations the paper's tables name, and a tiny run of the benchmark gives finite
numbers, its table and its JSON."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import load_benchmark, randomize_

from vidla_hf.data.synthetic import (
    FRAMES_PER_EVENT,
    caption_for,
    generate_synthetic_dataset,
    render_clip,
    sample_clip,
    short_clips,
)
from vidla_hf.evaluation import choice_accuracy, multiple_choice_accuracy, reversed_order_accuracy


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("ablations")


@pytest.fixture(scope="module")
def processor(bench):
    return bench.build_processor()


@pytest.fixture(scope="module")
def clips():
    """Rendered synthetic clips of every scale (1, 2 and 4 events) and their captions."""
    rng = np.random.default_rng(0)
    found = []
    for index in range(12):
        clip = sample_clip(f"c{index}", rng, scale=("short", "medium", "long")[index % 3])
        found.append({"frames": render_clip(clip, rng), "caption": clip.caption, "events": clip.events})
    return found


def videos_of(bench, clips, processor) -> torch.Tensor:
    """(N, 8, 3, 64, 64): each clip at 8 uniform frames, as the benchmark evaluates it."""
    from vidla_hf.processing.frame_sampling import uniform_frame_indices

    return torch.stack(
        [bench.normalise(c["frames"][uniform_frame_indices(len(c["frames"]), 8)], processor) for c in clips]
    )


# --- (a) The reversed-order test ------------------------------------------------------------------------------


def test_ties_are_split_evenly_never_won_or_lost():
    """Hand-counted: a question earns 1/m when its answer is among m options tied at the top."""
    tied_pair = torch.tensor([[0.3, 0.3]])
    assert choice_accuracy(tied_pair, torch.tensor([0])) == 50.0
    assert choice_accuracy(tied_pair, torch.tensor([1])) == 50.0
    # Multiple choice on embeddings scores the same way: identical options tie, whichever position the answer has
    # (an argmax would count the tie as a hit with the answer first and a miss with it last).
    assert multiple_choice_accuracy(torch.ones(1, 2), torch.ones(1, 2, 2), torch.tensor([0])) == 50.0
    assert multiple_choice_accuracy(torch.ones(1, 2), torch.ones(1, 2, 2), torch.tensor([1])) == 50.0
    three_options = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # two tie at the top, one far below
    assert multiple_choice_accuracy(torch.tensor([[1.0, 0.0]]), three_options, torch.tensor([1])) == 50.0
    assert multiple_choice_accuracy(torch.tensor([[1.0, 0.0]]), three_options, torch.tensor([2])) == 0.0
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.0, 0.0],  # right: 1
            [0.1, 0.9, 0.0, 0.0],  # wrong: 0
            [0.5, 0.5, 0.5, 0.5],  # four-way tie: 1/4
            [0.5, 0.5, 0.5, 0.1],  # three-way tie with the answer: 1/3
            [0.4, 0.5, 0.5, 0.1],  # tie the answer is not in: 0
            [0.5, 0.5 + 1e-7, 0.0, 0.0],  # within the tolerance: a two-way tie, 1/2
        ]
    )
    expected = (1 + 0 + 1 / 4 + 1 / 3 + 0 + 1 / 2) / 6 * 100
    assert choice_accuracy(scores, torch.zeros(6, dtype=torch.long)) == pytest.approx(expected)
    assert choice_accuracy(scores[-1:], torch.tensor([0]), tie_tolerance=0.0) == 0.0
    # Top-k: the answer's chance of landing among the first k places when its ties are ordered at random.
    assert choice_accuracy(scores, torch.zeros(6, dtype=torch.long), k=2) == pytest.approx(
        (1 + 1 + 2 / 4 + 2 / 3 + 0 + 1) / 6 * 100
    )
    assert choice_accuracy(scores, torch.zeros(6, dtype=torch.long), k=4) == 100.0
    with pytest.raises(ValueError, match="`k`"):
        choice_accuracy(scores, torch.zeros(6, dtype=torch.long), k=0)


def test_bad_scores_raise():
    with pytest.raises(ValueError, match="non-finite"):
        choice_accuracy(torch.tensor([[math.nan, 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="indices"):
        choice_accuracy(torch.tensor([[1.0, 0.0]]), torch.tensor([2]))
    with pytest.raises(ValueError, match="same shape"):
        reversed_order_accuracy(torch.ones(2, 4), torch.ones(2, 4), torch.ones(3, 4))


def test_frame_averaged_clip_is_exactly_at_chance_on_the_reversed_order_test(bench, clips, processor):
    """CLIP's image tower on each frame, averaged: a clip and its reversal embed alike, so even a caption
    embedding equal to the clip's own embedding cannot tell them apart (50 %, not 0 or 100). The same frames
    concatenated in order (an order-aware representation) pass the same test."""
    torch.manual_seed(0)
    clip = bench.tiny_clip(32).eval()
    model = bench.MeanPooledCLIP(clip)
    videos = videos_of(bench, clips, processor)
    with torch.no_grad():
        pooled = model.get_video_features(videos).pooler_output
        pooled_reversed = model.get_video_features(videos.flip(1)).pooler_output
        # The independent reference: CLIP itself on one frame at a time, normalised, averaged by hand.
        frames = [
            [
                F.normalize(clip.get_image_features(pixel_values=f[None]).pooler_output[0], dim=-1)
                for f in video
            ]
            for video in videos
        ]
        by_hand = torch.stack([torch.stack(per_clip).mean(0) for per_clip in frames])
        captions = bench.embed_texts(model, processor, [c["caption"] for c in clips])
    torch.testing.assert_close(pooled, by_hand, rtol=1e-5, atol=1e-6)
    assert reversed_order_accuracy(captions, pooled, pooled_reversed) == 50.0
    assert (
        reversed_order_accuracy(pooled, pooled, pooled_reversed) == 50.0
    )  # a perfect caption does no better
    ordered, ordered_reversed = (
        videos.flatten(1),
        videos.flip(1).flatten(1),
    )  # the frames in order, concatenated
    assert reversed_order_accuracy(ordered, ordered, ordered_reversed) == 100.0


def test_the_reversed_clip_of_every_scale_is_a_different_video(clips, bench, processor):
    """The test has no degenerate question: the reversal of each clip's sampled frames is not the clip itself."""
    videos = videos_of(bench, clips, processor)
    assert all(not torch.equal(video, video.flip(0)) for video in videos)


# --- (b) The variants --------------------------------------------------------------------------------------------

# The paper's rows (Tables 4 and 15): (U, V, r, local temporal attention); U = 0 means no [MST] tokens.
PAPER_ROWS = {
    "no_mst": (0, None, None, False),
    "mst": (1, 4, 1, False),
    "mst_hierarchy": (3, 4, 2, False),
    "mst_local": (1, 4, 1, True),
    "full": (3, 4, 2, True),
    "mst_2_4_2": (2, 4, 2, True),
    "mst_2_4_3": (2, 4, 3, True),
    "mst_3_4_3": (3, 4, 3, True),
    "full_short_clips": (3, 4, 2, True),
}


def test_each_variant_is_the_configuration_it_claims(bench):
    from vidla_hf import VidLAModel

    torch.manual_seed(0)
    clip = bench.tiny_clip(32)
    before = {k: v.clone() for k, v in clip.state_dict().items()}
    assert set(bench.VARIANTS) == {*PAPER_ROWS, "clip_init", "mean_pool"}
    for name, (levels, tokens, scale, local) in PAPER_ROWS.items():
        model = bench.build_variant(name, clip)
        assert isinstance(model, VidLAModel), name
        config = model.config.vision_config
        assert (config.mst_levels, config.use_local_temporal_attention) == (levels, local), name
        if levels:
            assert (config.mst_tokens_per_level, config.mst_temporal_scale) == (tokens, scale), name
        assert config.num_frames == 8 and not config.patch_attends_cls, name
        # From the same initialisation: the CLIP weights are the CLIP's.
        torch.testing.assert_close(
            model.vision_model.embeddings.patch_embedding.weight,
            clip.vision_model.embeddings.patch_embedding.weight,
        )
        torch.testing.assert_close(model.text_projection.weight, clip.text_projection.weight)
    assert bench.VARIANTS["full_short_clips"].short_clips_only
    assert not any(v.short_clips_only for n, v in bench.VARIANTS.items() if n != "full_short_clips")
    mean_pool = bench.build_variant("mean_pool", clip)
    assert isinstance(mean_pool, bench.MeanPooledCLIP) and mean_pool.clip is not clip
    with torch.no_grad():  # training the mean-pooled variant must not change the shared initialisation
        mean_pool.clip.visual_projection.weight.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in clip.state_dict().items())


def test_mean_pooling_ignores_frame_order_and_the_full_model_does_not(bench, clips, processor):
    """Shuffling the frames moves the mean-pooled embedding by rounding only (~1e-7), the full model's by far
    more (its [CLS] is mostly its own residual at random weights, so "far more" is ~1e-3 here)."""
    torch.manual_seed(0)
    clip = bench.tiny_clip(32).eval()
    videos = videos_of(bench, clips, processor)[:4]
    shuffled = videos[:, torch.randperm(8)]
    mean_pool = bench.MeanPooledCLIP(clip)
    full = randomize_(bench.build_variant("full", clip)).eval()  # temporal weights away from their zero init
    with torch.no_grad():  # a temporal position table of the patch embeddings' scale, as training grows it
        full.vision_model.embeddings.temporal_embedding.normal_(std=1.0)

    def moved(model) -> torch.Tensor:
        with torch.no_grad():
            before, after = (
                F.normalize(model.get_video_features(v).pooler_output, dim=-1) for v in (videos, shuffled)
            )
        return (before - after).norm(dim=-1)  # (4,) relative change of each clip's embedding

    assert moved(mean_pool).max() < 1e-5
    assert moved(full).min() > 1e-4


def test_normalise_matches_the_video_processor(bench, clips, processor):
    """The benchmark's own normalisation of 64-pixel frames is the video processor's evaluation path."""
    frames = clips[2]["frames"]  # 32 frames
    expected = processor.video_processor(videos=[frames], return_tensors="pt")["pixel_values_videos"][0]
    from vidla_hf.processing.frame_sampling import uniform_frame_indices

    got = bench.normalise(frames[uniform_frame_indices(len(frames), 8)], processor)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_short_clips_are_the_events_of_the_same_frames(clips):
    rng = np.random.default_rng(1)
    for clip in clips:
        cut = short_clips(clip["frames"], clip["events"], rng)
        assert len(cut) == len(clip["events"])
        np.testing.assert_array_equal(np.concatenate([frames for frames, _, _ in cut]), clip["frames"])
        assert ", then ".join(caption for _, caption, _ in cut) == clip["caption"]
        assert all(len(frames) == FRAMES_PER_EVENT for frames, _, _ in cut)
        assert [caption for _, caption, _ in cut] == [caption_for([e]) for e in clip["events"]]
    with pytest.raises(ValueError, match="frames"):
        short_clips(clips[0]["frames"][:5], clips[0]["events"], rng)


def test_frame_places_name_the_third_the_shape_is_in(bench):
    frames = np.full((3, 64, 64, 3), 30, np.uint8)
    frames[0, 2:12, 4:14] = (230, 40, 40)  # top left
    frames[1, 28:36, 50:60] = (40, 80, 240)  # middle right
    frames[2, 27:37, 27:37] = (40, 200, 60)  # centre
    assert bench.frame_places(frames) == ["top left", "right", "centre"]
    assert bench.frame_places(np.full((1, 64, 64, 3), 30, np.uint8)) == [None]


# --- (c) A tiny run ------------------------------------------------------------------------------------------


def test_a_tiny_run_gives_finite_numbers_its_table_and_its_json(bench, tmp_path, capsys):
    data = tmp_path / "synthetic"
    generate_synthetic_dataset(data, {"train": 24, "val": 8, "test": 8}, clips_per_shard=24)
    output = tmp_path / "out" / "ablations.json"
    variants = ["clip_init", "mean_pool", "full", "full_short_clips"]
    results = bench.main(
        ["--data", str(data), "--steps", "2", "--clip_steps", "2", "--batch_size", "4", "--width", "32"]
        + ["--seeds", "0", "1", "--jobs", "1", "--output", str(output), "--plot", "", "--variants", *variants]
    )
    printed = capsys.readouterr().out
    assert json.loads(output.read_text()) == json.loads(json.dumps(results))
    assert sorted(p.name for p in output.parent.iterdir()) == ["ablations.json"]  # no temporary file left
    assert [row["variant"] for row in results["variants"]] == variants
    assert results["data"] == {
        "train_clips": 24,
        "short_clips": results["data"]["short_clips"],
        "held_out_clips": 16,
    }
    assert results["data"]["short_clips"] > 24  # 1, 2 or 4 events a clip
    for row in results["variants"]:
        assert [run["seed"] for run in row["runs"]] == [0, 1]
        for key in bench.METRICS:
            assert math.isfinite(row[key]["mean"]) and math.isfinite(row[key]["std"]), (row["variant"], key)
        assert row["label"] in printed
    by_name = {row["variant"]: row for row in results["variants"]}
    for order_blind in ("clip_init", "mean_pool"):  # in the real pipeline too, not just in the unit above
        assert [run["reversed_mc"] for run in by_name[order_blind]["runs"]] == [50.0, 50.0]
    assert results["chance"] == {"R@1": 100 / 16, "R@5": 500 / 16, "mc": 20.0, "reversed_mc": 50.0}
    assert bench.format_table(results) in printed


def test_non_finite_numbers_raise_instead_of_printing(bench):
    run = {"variant": "full", "seed": 0, "R@1": 1.0, "R@5": 2.0, "mc": 3.0, "reversed_mc": math.nan}
    with pytest.raises(ValueError, match="reversed_mc"):
        bench.summarise([run], ["full"])
    row = bench.summarise([{**run, "reversed_mc": 50.0}], ["full"])[0]
    row["R@1"]["mean"] = math.inf
    results = {"chance": {"R@1": 1.0, "R@5": 5.0, "mc": 20.0, "reversed_mc": 50.0}, "variants": [row]}
    with pytest.raises(ValueError, match="finite"):
        bench.format_table(results)


def test_the_plot_is_written(bench, tmp_path):
    # matplotlib comes with the test extra (bench): a missing one fails here rather than skipping the plot
    stat = {"mean": 40.0, "std": 2.0}
    rows = [
        {"variant": name, "label": name, "paper": "", **{key: stat for key in bench.METRICS}}
        for name in ("mean_pool", "full")
    ]
    results = {"chance": {"R@1": 1.0, "R@5": 5.0, "mc": 20.0, "reversed_mc": 50.0}, "variants": rows}
    results["settings"] = {"seeds": [0, 1, 2]}
    bench.plot(results, str(tmp_path / "plot.png"))
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
