"""Classification finetuning (issue 13): the synthetic action dataset needs temporal order, a short real finetune
learns it, the multi-view test averages exactly the views it should, dense and segment sampling pick the frames
they should, and bad inputs fail before any heavy work."""

import io
import json
import math
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import accelerate_launch, randomize_, tiny_config
from video_fixtures import frame_pattern, write_mp4

from vidla_hf import (
    VidLAConfig,
    VidLAForVideoClassification,
    VidLAModel,
    VidLAProcessor,
    VidLAVideoProcessor,
    build_clip_tokenizer,
)
from vidla_hf.data.streams import load_video_text_stream
from vidla_hf.data.synthetic_actions import (
    ACTIONS,
    LABELS,
    Action,
    generate_action_dataset,
    render_action,
    sample_appearance,
)
from vidla_hf.data.video_labels import UnknownLabelError, VideoLabelStream, label_id
from vidla_hf.evaluation.classification import classify_views
from vidla_hf.processing import read_video
from vidla_hf.processing.clip_views import (
    dense_frame_indices,
    dense_window_starts,
    segment_frame_indices,
    spatial_crop_boxes,
    train_frame_indices,
    view_frame_indices,
)
from vidla_hf.training import classification
from vidla_hf.training.classification_args import ClassificationArguments, parse_classification_args

LABEL2ID = {name: i for i, name in enumerate(LABELS)}


def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p)."""
    return sum(math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(successes, trials + 1))


def chance_ceiling(trials: int, p: float, alpha: float) -> int:
    """The smallest number of hits a guesser at rate `p` reaches with probability below `alpha`."""
    return next(k for k in range(trials + 1) if binomial_tail(k, trials, p) < alpha)


@pytest.fixture(scope="module")
def actions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("actions")
    generate_action_dataset(folder, {"train": 768, "val": 128}, clips_per_shard=128, seed=1)
    return folder


def decoded(folder, split) -> tuple[np.ndarray, np.ndarray]:
    """Every clip of a split, all 16 frames, decoded from its MP4, and the `.cls` label ids."""
    frames, labels = [], []
    for example in load_video_text_stream(str(folder), split):
        frames.append(read_video(example["mp4"])[0])
        labels.append(int(example["cls"]))
    return np.stack(frames), np.array(labels)


# --- (a) The dataset: only the order of the frames tells the action ---------------------------------------


def test_every_action_shows_the_same_frames_and_its_reverse_twin_is_its_time_reversal():
    rng = np.random.default_rng(0)
    twin = {"left": "right", "right": "left", "grows": "shrinks", "shrinks": "grows"}
    for _ in range(20):
        appearance = sample_appearance(rng)
        clips = {action: render_action(action, appearance) for action in ACTIONS}
        multisets = {action: sorted(frame.tobytes() for frame in clip) for action, clip in clips.items()}
        first = multisets[ACTIONS[0]]
        assert all(m == first for m in multisets.values()), "the 8 actions must show the same frames"
        assert len({clip.tobytes() for clip in clips.values()}) == 8, "in 8 different orders"
        for action, clip in clips.items():
            order = "resize_first" if action.order == "move_first" else "move_first"
            reverse = Action(order, twin[action.motion], twin[action.resize])
            np.testing.assert_array_equal(clip[::-1], clips[reverse])


def fit_logistic_regression(train_x, train_y, test_x, num_classes=8) -> np.ndarray:
    """Multinomial logistic regression (standardised features, L2 1e-3, L-BFGS); predictions for `test_x`."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a = torch.tensor((train_x - mean) / std)
    b = torch.tensor((test_x - mean) / std)
    weight = torch.zeros(a.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, line_search_fn="strong_wolfe")
    targets = torch.tensor(train_y)

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(a @ weight + bias, targets) + 1e-3 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return (b @ weight + bias).argmax(1).numpy()


def test_a_frame_averaging_classifier_is_at_chance_and_the_same_one_on_ordered_frames_is_not(actions):
    """On the decoded MP4s: the mean over frames of 8x8-pooled pixels is at chance on held-out clips, while the
    same classifier on the same features kept in frame order (concatenated) solves the task."""
    train_frames, train_y = decoded(actions, "train")
    val_frames, val_y = decoded(actions, "val")
    assert np.bincount(train_y).tolist() == [96] * 8 and np.bincount(val_y).tolist() == [16] * 8

    def pooled(frames):  # (N, 16, 64, 64, 3) -> (N, 16, 192): 8x8 blocks averaged
        return frames.reshape(len(frames), 16, 8, 8, 8, 8, 3).mean(axis=(3, 5)).reshape(len(frames), 16, -1)

    train_pooled, val_pooled = pooled(train_frames), pooled(val_frames)
    averaged = fit_logistic_regression(train_pooled.mean(1), train_y, val_pooled.mean(1))
    ordered = fit_logistic_regression(train_pooled.reshape(768, -1), train_y, val_pooled.reshape(128, -1))
    # A guesser at 1/8 reaches 30 of 128 with probability < 1e-3 (binomial tail): averaging must stay below.
    ceiling = chance_ceiling(128, 1 / 8, 1e-3)
    assert ceiling == 30
    assert (averaged == val_y).sum() < ceiling, (averaged == val_y).mean()
    assert (ordered == val_y).mean() >= 0.9


def test_generation_is_deterministic_reused_and_read_by_datasets(tmp_path, actions):
    sizes = {"train": 10, "val": 6}
    first = generate_action_dataset(tmp_path / "a", sizes, clips_per_shard=4, seed=3)
    second = generate_action_dataset(tmp_path / "b", sizes, clips_per_shard=4, seed=3)
    assert [len(first["train"]), len(first["val"])] == [3, 2]
    for a, b in zip(first["train"] + first["val"], second["train"] + second["val"], strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    manifest = tmp_path / "a" / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    assert generate_action_dataset(tmp_path / "a", sizes, clips_per_shard=4, seed=3) == first
    assert manifest.stat().st_mtime_ns == stamp, "a finished dataset is reused, not rewritten"
    content = json.loads(manifest.read_text())
    assert content["labels"] == list(LABELS) and content["label_column"] == "label"
    other = generate_action_dataset(tmp_path / "c", sizes, clips_per_shard=4, seed=4)
    assert Path(other["train"][0]).read_bytes() != Path(first["train"][0]).read_bytes()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match="not written by the synthetic_actions generator"):
        generate_action_dataset(tmp_path / "d", sizes)

    stream = datasets.load_dataset(
        "webdataset", data_files={"val": first["val"]}, split="val", streaming=True
    )
    examples = list(stream.cast_column("mp4", datasets.Video(decode=False)))
    assert len(examples) == 6
    for example in examples:
        meta = example["json"]
        assert example["cls"] == meta["label_id"] == LABEL2ID[meta["label"]]
        assert meta["caption"] == f"a {meta['color']} {meta['shape']} {meta['label']}"
        assert read_video(example["mp4"]["bytes"])[0].shape == (16, 64, 64, 3)


# --- (b) A short real finetune learns what frame averaging cannot ----------------------------------------


def test_a_short_finetune_from_scratch_is_far_above_chance_and_saves_a_pipeline_model(tmp_path, actions):
    output = tmp_path / "run"
    # The default job (tiny preset from scratch, segment sampling, 2 x 3 test views), 300 steps instead of 500.
    accelerate_launch(
        [
            "examples/finetune_classification.py",
            "--train_data",
            str(actions),
            "--output_dir",
            str(output),
            "--max_steps",
            "300",
        ]  # fmt: skip
    )
    results = json.loads((output / "train_results.json").read_text())
    final = results["final"]
    assert results["labels"] == list(LABELS)
    assert (final["num_videos"], final["views_per_video"], final["chance_top1"]) == (128, 6, 12.5)
    # Chance is 1/8, for a guesser and for any model blind to frame order (test above); a guesser reaches 37 of
    # 128 with probability < 1e-6.
    hits = round(final["top1"] * 128 / 100)
    assert hits >= chance_ceiling(128, 1 / 8, 1e-6) == 37, final
    assert final["top5"] >= final["top1"] and results["run"]["steps"] == 300
    losses = [json.loads(line)["loss"] for line in (output / "losses.jsonl").read_text().splitlines()]
    assert len(losses) == 300 and np.mean(losses[-20:]) < np.mean(losses[:20]) - 0.5

    from transformers import pipeline

    video = next(iter(load_video_text_stream(str(actions), "val")))["mp4"]
    (tmp_path / "clip.mp4").write_bytes(video)
    scores = pipeline("video-classification", model=str(output))(str(tmp_path / "clip.mp4"), top_k=8)
    assert sorted(s["label"] for s in scores) == sorted(LABELS)
    assert math.isclose(sum(s["score"] for s in scores), 1.0, rel_tol=1e-4)


# --- (c) The multi-view test averages exactly its views ---------------------------------------------------


def write_labelled_shard(path, videos: list[tuple[np.ndarray, str]], folder) -> str:
    """A WebDataset shard of real MP4s (`<key>.mp4` + `<key>.json` with a `label`)."""
    with tarfile.open(path, "w") as archive:
        for index, (frames, label) in enumerate(videos):
            data = write_mp4(folder / f"{index}.mp4", frames).read_bytes()
            for name, payload in (
                (f"{index:04d}.mp4", data),
                (f"{index:04d}.json", json.dumps({"label": label}).encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
    return str(path)


@pytest.fixture(scope="module")
def landscape(tmp_path_factory):
    """Two 20-frame 16x24 videos (so three 16 px crops differ) with labels, and a random tiny classifier."""
    folder = tmp_path_factory.mktemp("landscape")
    videos = [
        (np.roll(frame_pattern(20, 16, 24), 5 * i, axis=2), label) for i, label in enumerate(["b", "c"])
    ]
    shard = write_labelled_shard(folder / "val-00000.tar", videos, folder)
    config = tiny_config(image_size=16, patch_size=4, num_frames=4)
    config.id2label = {0: "a", 1: "b", 2: "c"}
    model = randomize_(VidLAForVideoClassification(config), seed=2).eval()
    processor = VidLAVideoProcessor(
        num_frames=4, size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
    )
    return shard, model, processor


@pytest.mark.parametrize(
    ("sampling", "windows"),
    [
        # 20 frames in 4 segments of 5: the frames at 1/4 and 3/4 of each segment
        ("segment", [[1, 6, 11, 16], [3, 8, 13, 18]]),
        # 4 frames 3 apart = a 10-frame window; the first and the last of the 11 possible starts
        ("dense", [[0, 3, 6, 9], [10, 13, 16, 19]]),
    ],
)
@pytest.mark.parametrize("view_average", ["logits", "probabilities"])
def test_multi_view_scores_are_the_mean_of_the_single_views_computed_by_hand(
    landscape, sampling, windows, view_average
):
    shard, model, processor = landscape
    out = classify_views(
        model, processor, shard, "val", {"a": 0, "b": 1, "c": 2}, sampling=sampling, frame_stride=3,
        test_clips=2, test_crops=3, view_average=view_average, batch_size=2,
    )  # fmt: skip
    assert out["labels"].tolist() == [1, 2] and out["skipped"] == 0
    expected = []
    for example in load_video_text_stream(shard, "val"):
        frames = read_video(example["mp4"])[0]  # all 20 frames, (20, 16, 24, 3)
        views = []
        for indices in windows:
            clip = processor(
                frames[indices], do_sample_frames=False, do_center_crop=False, return_tensors="pt"
            )
            clip = clip["pixel_values_videos"]  # (1, 4, 3, 16, 24): already 16 px high
            for left in (0, 4, 8):  # left, centre, right 16 px crops of 24 px
                with torch.no_grad():
                    views.append(model(pixel_values_videos=clip[..., left : left + 16]).logits[0])
        views = torch.stack(views)  # (6, 3)
        assert not torch.allclose(views[0], views[1]) and not torch.allclose(
            views[0], views[3]
        )  # views differ
        expected.append((views if view_average == "logits" else views.softmax(-1)).mean(0))
    torch.testing.assert_close(out["scores"], torch.stack(expected), atol=1e-5, rtol=1e-5)


# --- (d) Dense and segment sampling pick the frames they should --------------------------------------------


def test_frame_indices_against_hand_computed_ones():
    assert dense_frame_indices(100, 8, 4, start=10).tolist() == [10, 14, 18, 22, 26, 30, 34, 38]
    assert dense_frame_indices(10, 4, 4, start=0).tolist() == [0, 4, 8, 9]  # short video: last frame repeated
    assert dense_window_starts(100, 8, 4, 5) == [0, 17, 35, 53, 71]  # window 29: starts 0..71, evenly
    assert dense_window_starts(100, 8, 4, 1) == [35]  # one view: the centre window
    assert segment_frame_indices(30, 4, 0.5).tolist() == [3, 11, 18, 26]  # = uniform (segment centres)
    assert [v.tolist() for v in view_frame_indices(12, 3, "segment", 1, 3)] == [
        [0, 4, 8],
        [2, 6, 10],
        [3, 7, 11],
    ]
    assert [v.tolist() for v in view_frame_indices(40, 4, "dense", 8, 3)] == [
        [0, 8, 16, 24], [7, 15, 23, 31], [15, 23, 31, 39],  # window 25, starts 0, 7, 15
    ]  # fmt: skip
    assert spatial_crop_boxes(224, 300, 224, 3) == [(0, 0), (0, 38), (0, 76)]
    assert spatial_crop_boxes(300, 224, 224, 3) == [(0, 0), (38, 0), (76, 0)]
    assert spatial_crop_boxes(230, 300, 224, 1) == [(3, 38)]
    starts = set()
    for seed in range(200):
        dense = train_frame_indices(50, 5, "dense", 3, np.random.default_rng(seed))
        assert np.diff(dense).tolist() == [3, 3, 3, 3]  # contiguous at stride 3
        starts.add(int(dense[0]))
        segment = train_frame_indices(50, 5, "segment", 3, np.random.default_rng(seed))
        assert all(
            10 * j <= i < 10 * (j + 1) for j, i in enumerate(segment)
        )  # one frame per 10-frame segment
    assert starts == set(range(0, 38))  # window 13: every start in [0, 37] is drawn


def recovered_indices(pixels: torch.Tensor, reference: torch.Tensor) -> list[int]:
    """Which frame of `reference` (all frames, processed) each frame of `pixels` is: the nearest one."""
    distances = (pixels.flatten(1)[:, None] - reference.flatten(1)[None]).abs().mean(-1)  # (T, all)
    return distances.argmin(1).tolist()


@pytest.mark.parametrize("sampling", ["dense", "segment"])
def test_the_stream_decodes_the_frames_its_sampling_picks(tmp_path, sampling):
    """End to end on a real MP4 whose frames identify themselves: what the stream feeds the model."""
    shard = write_labelled_shard(tmp_path / "train-00000.tar", [(frame_pattern(30, 16, 16), "b")], tmp_path)
    processor = VidLAVideoProcessor(
        num_frames=4, size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
    )
    frames = read_video((tmp_path / "0.mp4").read_bytes())[0]
    reference = processor(frames, do_sample_frames=False, return_tensors="pt")["pixel_values_videos"][0]
    dataset = load_video_text_stream(shard, "train")
    options = {"num_frames": 4, "sampling": sampling, "frame_stride": 3, "random_crop": False}
    training = VideoLabelStream(dataset, processor, {"a": 0, "b": 1}, **options)
    picked = [
        recovered_indices(s["pixel_values_videos"], reference)
        for _, s in zip(range(40), training, strict=False)
    ]
    for indices in picked:
        if sampling == "dense":  # a 10-frame window at a random start
            assert np.diff(indices).tolist() == [3, 3, 3] and 0 <= indices[0] <= 20, indices
        else:  # 30 frames in 4 segments, floor(j * 30 / 4) to floor((j + 1) * 30 / 4)
            assert all(
                lo <= i < hi
                for (lo, hi), i in zip([(0, 7), (7, 15), (15, 22), (22, 30)], indices, strict=True)
            )
    assert len({tuple(i) for i in picked}) > 5, "every epoch draws again"
    test = VideoLabelStream(dataset, processor, {"a": 0, "b": 1}, training=False, test_clips=2, **options)
    views = next(iter(test))["pixel_values_videos"]
    expected = {"dense": [[0, 3, 6, 9], [20, 23, 26, 29]], "segment": [[1, 9, 16, 24], [5, 13, 20, 28]]}
    assert [recovered_indices(view, reference) for view in views] == expected[sampling]


# --- (e) Bad inputs fail clearly, before the model is built -------------------------------------------------


@pytest.fixture
def no_model(monkeypatch):
    def tripwire(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(classification, "build_classifier", tripwire)


def run(tmp_path, *options) -> dict:
    argv = ["--output_dir", str(tmp_path / "out"), "--num_workers", "0", *options]
    return classification.classification_function(parse_classification_args("", argv))


def test_an_unknown_label_fails_before_the_model_is_built(tmp_path, actions, no_model):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS[:7]))  # "shrinks, then moves right" left out
    with pytest.raises(ValueError, match=r"'shrinks, then moves right' is not one of the 7 classes"):
        run(tmp_path, "--train_data", str(actions), "--labels", str(labels), "--label_check_examples", "64")


def test_a_missing_label_column_names_the_columns_there_are(tmp_path, actions, no_model):
    with pytest.raises(
        ValueError, match=r"`--label_column` 'action' is in none of the first 32 .*'label_id'"
    ):
        run(tmp_path, "--train_data", str(actions), "--label_column", "action")


def test_labels_are_needed_when_the_data_has_no_manifest(tmp_path, actions, no_model):
    with pytest.raises(ValueError, match="give the class names in id order with `--labels`"):
        run(tmp_path, "--train_data", str(actions / "train-*.tar"), "--eval_data", str(actions / "val-*.tar"))


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--sampling", "uniform"], r"`--sampling` must be one of dense, segment; got 'uniform'"),
        (["--view_average", "max"], r"`--view_average` must be one of probabilities, logits"),
    ],
)
def test_bad_choices_fail_when_the_command_line_is_parsed(argv, match):
    with pytest.raises(ValueError, match=match):
        parse_classification_args("", argv)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--zero_shot_init"], "`--zero_shot_init` needs `--init_from`"),
        (["--test_clips", "0"], "`--test_clips` must be >= 1"),
        (["--frame_stride", "0"], "`--frame_stride` must be >= 1"),
    ],
)
def test_bad_values_fail_before_any_data_is_read(tmp_path, monkeypatch, argv, match):
    monkeypatch.setattr(
        classification, "load_video_text_stream", lambda *a, **k: pytest.fail("data was read")
    )
    with pytest.raises(ValueError, match=match):
        run(tmp_path, "--train_data", "nowhere", *argv)


def test_a_non_empty_output_dir_is_refused(tmp_path, no_model):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty"):
        run(tmp_path, "--train_data", "nowhere")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_a_label_outside_the_classes_stops_the_stream_instead_of_being_skipped(actions):
    processor = VidLAVideoProcessor(
        num_frames=4, size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}
    )
    partial = {name: i for i, name in enumerate(LABELS[:2])}
    stream = VideoLabelStream(load_video_text_stream(str(actions), "val"), processor, partial, num_frames=4)
    with pytest.raises(UnknownLabelError, match="is not one of the 2 classes"):
        list(zip(range(128), stream, strict=False))


def test_label_values_as_names_ids_and_cls_bytes():
    assert [label_id(v, LABEL2ID) for v in (LABELS[3], 3, np.int64(3), b"3", b" 3\n", "3")] == [3] * 6
    assert label_id("1", {"1": 0, "0": 1}) == 0  # a name that looks like an id is a name
    with pytest.raises(UnknownLabelError, match=r"id 8 is outside \[0, 8\)"):
        label_id(8, LABEL2ID)
    with pytest.raises(TypeError, match="class name or id, got bool"):
        label_id(True, LABEL2ID)


def tiny_vidla_folder(folder) -> VidLAModel:
    """A saved untrained `vidla-tiny` with its processor (64 px), as pretraining saves a model."""
    vidla = VidLAModel(VidLAConfig.from_preset("vidla-tiny"))
    vidla.save_pretrained(folder)
    size = {"shortest_edge": 64}, {"height": 64, "width": 64}
    video_processor = VidLAVideoProcessor(num_frames=8, size=size[0], crop_size=size[1])
    VidLAProcessor(video_processor, build_clip_tokenizer()).save_pretrained(folder)
    return vidla


# --- The model a run starts from ----------------------------------------------------------------------------


def test_from_scratch_the_position_tables_start_at_the_patch_embeddings_scale(tmp_path):
    model, processor = classification.build_classifier(ClassificationArguments(), list(LABELS))
    embeddings = model.vision_model.embeddings
    expected = 0.02 * math.sqrt(3 * 16 * 16)  # initializer_range · sqrt(channels · patch²)
    for table in (embeddings.position_embedding.weight, embeddings.temporal_embedding):
        assert abs(table.std().item() - expected) < 0.1 * expected
    torch.testing.assert_close(model.classifier.weight.norm(dim=-1), torch.full((8,), math.exp(2.6592)))
    assert model.config.id2label == dict(enumerate(LABELS)) and processor.video_processor.num_frames == 8


def test_a_vidla_folder_gives_its_video_tower_and_the_zero_shot_head_its_text_embeddings(tmp_path):
    from vidla_hf.evaluation import class_embeddings

    vidla = tiny_vidla_folder(tmp_path / "vidla")
    model, processor = classification.build_classifier(
        ClassificationArguments(init_from=str(tmp_path / "vidla")), list(LABELS)
    )
    for name, tensor in vidla.vision_model.state_dict().items():
        assert torch.equal(model.vision_model.state_dict()[name], tensor), name  # position tables included
    assert torch.equal(model.visual_projection.weight, vidla.visual_projection.weight)
    torch.testing.assert_close(model.classifier.weight.norm(dim=-1), torch.full((8,), math.exp(2.6592)))
    args = ClassificationArguments(init_from=str(tmp_path / "vidla"), zero_shot_init=True, templates="video")
    zero_shot, _ = classification.build_classifier(args, list(LABELS))
    expected = class_embeddings(vidla.eval(), processor, list(LABELS), ("a video of {}.",))
    torch.testing.assert_close(
        zero_shot.classifier.weight, expected * vidla.logit_scale.exp(), atol=1e-5, rtol=1e-5
    )
    assert zero_shot.training
    zero_shot.save_pretrained(tmp_path / "classifier")
    processor.save_pretrained(tmp_path / "classifier")
    with pytest.raises(ValueError, match="classifier of other classes"):
        classification.build_classifier(
            ClassificationArguments(init_from=str(tmp_path / "classifier")), ["x", "y"]
        )


def test_labels_read_as_names_from_json_or_as_ids_from_cls_members_agree(actions):
    dataset = load_video_text_stream(str(actions), "val")
    by_name = VideoLabelStream(dataset, None, LABEL2ID, label_column="label")
    by_id = VideoLabelStream(dataset, None, LABEL2ID, label_column="cls", metadata_column=None)
    examples = list(dataset.take(16))
    assert [by_name.label(e) for e in examples] == [by_id.label(e) for e in examples]
    assert {type(e["cls"]) for e in examples} == {bytes}  # the raw member, b"3"


# --- Runs in this process: divergence, the zero-shot start ------------------------------------------------


def test_a_non_finite_loss_stops_the_run_and_nothing_is_saved(tmp_path, actions, monkeypatch):
    from vidla_hf.training import TrainingDivergedError

    build = classification.build_classifier

    def poisoned(args, labels):
        model, processor = build(args, labels)
        with torch.no_grad():
            model.classifier.bias.fill_(float("nan"))
        return model, processor

    monkeypatch.setattr(classification, "build_classifier", poisoned)
    with pytest.raises(TrainingDivergedError, match="The loss became nan at step 1"):
        run(tmp_path, "--train_data", str(actions), "--per_device_batch_size", "2", "--max_steps", "3")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_a_zero_shot_start_is_evaluated_before_and_after_finetuning(tmp_path, actions):
    from transformers import AutoModelForVideoClassification

    tiny_vidla_folder(tmp_path / "vidla")
    results = run(
        tmp_path, "--train_data", str(actions), "--init_from", str(tmp_path / "vidla"), "--zero_shot_init",
        "--max_steps", "2", "--per_device_batch_size", "2", "--eval_max_samples", "8", "--test_clips", "1",
        "--test_crops", "1", "--sampling", "dense", "--frame_stride", "2",
    )  # fmt: skip
    assert (results["initial"]["num_videos"], results["final"]["num_videos"]) == (8, 8)
    assert results["initial"]["views_per_video"] == 1 and results["run"]["sampling"] == "dense"
    saved = json.loads((tmp_path / "out" / "train_results.json").read_text())
    assert saved["final"] == results["final"] and saved["initial"] == results["initial"]
    model = AutoModelForVideoClassification.from_pretrained(tmp_path / "out")
    assert type(model) is VidLAForVideoClassification and list(model.config.id2label.values()) == list(LABELS)
    assert len((tmp_path / "out" / "losses.jsonl").read_text().splitlines()) == 2


def test_two_processes_resume_a_finetune_exactly_from_its_checkpoint(tmp_path, actions):
    """2 processes (DDP, gloo): a run stopped after step 2 and resumed from its checkpoint logs the losses,
    trains the weights and reaches the accuracy of the same run uninterrupted; a checkpoint written with other
    options refuses to resume."""
    from safetensors.torch import load_file

    common = ["examples/finetune_classification.py", "--train_data", actions, "--max_steps", "4"]
    common += [
        "--per_device_batch_size",
        "2",
        "--num_workers",
        "1",
        "--shuffle_buffer",
        "8",
        "--num_frames",
        "4",
    ]
    common += ["--eval_max_samples", "8", "--test_clips", "1", "--test_crops", "1", "--logging_steps", "1"]
    accelerate_launch([*common, "--output_dir", tmp_path / "whole", "--checkpointing_steps", "100"], 2)
    split = [*common, "--output_dir", tmp_path / "split", "--checkpointing_steps", "2"]
    accelerate_launch([*split, "--stop_at_step", "2"], 2)
    assert not (tmp_path / "split" / "train_results.json").exists()
    refused = accelerate_launch([*split, "--resume_from_checkpoint", "latest", "--seed", "7"], 2, check=False)
    assert refused.returncode != 0 and "--seed: checkpoint 42, now 7" in refused.stderr
    accelerate_launch([*split, "--resume_from_checkpoint", "latest"], 2)

    def losses(run):
        return [json.loads(line) for line in (tmp_path / run / "losses.jsonl").read_text().splitlines()]

    assert [row["step"] for row in losses("split")] == [1, 2, 3, 4]
    for whole, resumed in zip(losses("whole"), losses("split"), strict=True):
        assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-5) and resumed["lr"] == whole["lr"]
    whole, resumed = (
        load_file(tmp_path / "whole" / "model.safetensors"),
        load_file(tmp_path / "split" / "model.safetensors"),
    )
    for key, tensor in whole.items():
        if not key.endswith("k_proj.bias"):  # softmax ignores a key bias: its gradient is rounding noise
            torch.testing.assert_close(resumed[key], tensor, rtol=1e-4, atol=1e-6)
    results = {
        run: json.loads((tmp_path / run / "train_results.json").read_text()) for run in ("whole", "split")
    }
    assert results["split"]["final"] == results["whole"]["final"]
    assert (results["split"]["run"]["resumed_from_step"], results["split"]["run"]["num_processes"]) == (2, 2)
