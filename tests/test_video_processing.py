import io

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoVideoProcessor, CLIPImageProcessor
from video_fixtures import frame_pattern, write_mp4

from vidla_hf import VidLAVideoProcessor
from vidla_hf.processing import read_video, uniform_frame_indices


def random_video(frames=20, height=120, width=160, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


def smooth_video(frames=20, height=120, width=160):
    """Smooth content, so that different resampling kernels agree closely."""
    y, x = np.mgrid[0:height, 0:width]
    video = np.stack(
        [
            np.stack([(x * 255 // width + 7 * t) % 256, y * 255 // height, np.full_like(x, 40 + t)], -1)
            for t in range(frames)
        ]
    )
    return video.astype(np.uint8)


@pytest.mark.parametrize(("height", "width"), [(120, 160), (300, 140), (224, 224), (97, 131)])
def test_eval_mode_equals_clips_image_processor_on_the_sampled_frames(height, width):
    video = smooth_video(20, height, width)
    ours = VidLAVideoProcessor(num_frames=6)(video, return_tensors="pt")["pixel_values_videos"]
    assert ours.shape == (1, 6, 3, 224, 224) and ours.dtype == torch.float32
    clip = CLIPImageProcessor()  # shortest edge 224 (bicubic), centre crop 224, CLIP mean/std
    frames = [Image.fromarray(frame) for frame in video[uniform_frame_indices(20, 6)]]
    reference = torch.from_numpy(np.stack(clip(frames, return_tensors="np")["pixel_values"]))
    difference = (ours[0] - reference).abs()
    assert difference.mean() < 0.01 and difference.max() < 0.15, (difference.mean(), difference.max())


@pytest.mark.parametrize("training", [False, True])
def test_pixels_are_those_of_transformers_own_video_pipeline(training):
    """Frames resized a few at a time and written straight into the batch give exactly the pixels of
    transformers' `BaseVideoProcessor._preprocess` (grouped resize, centre crop, fused rescale and normalise)
    on the same sampled frames; in training, of the same crop and flip applied to the whole resized video."""
    from transformers.image_utils import SizeDict
    from transformers.video_processing_utils import BaseVideoProcessor

    videos = [random_video(30, 240, 320), random_video(9, 97, 131, seed=1), smooth_video(7, 300, 140)]
    videos.append(torch.from_numpy(random_video(11, 70, 90, seed=2)).permute(0, 3, 1, 2).double() * 0.7)
    processor = VidLAVideoProcessor(num_frames=6)
    out = processor(videos, training=training, seed=4, return_tensors="pt", return_metadata=True)
    frames = [
        torch.as_tensor(video[metadata.frames_indices])
        if isinstance(video, torch.Tensor)
        else torch.from_numpy(video[metadata.frames_indices]).permute(0, 3, 1, 2).contiguous()
        for video, metadata in zip(videos, out["video_metadata"], strict=True)
    ]
    options = {
        "size": SizeDict(shortest_edge=224),
        "resample": processor.resample,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": tuple(processor.image_mean),
        "image_std": tuple(processor.image_std),
    }
    if training:  # the crops and flips drawn, read back from the generator the processor seeds the same way
        generator = torch.Generator().manual_seed(int(np.random.default_rng(4).integers(2**62)))
        cropped = []
        for video in frames:
            video = processor.resize(video, size=options["size"], resample=processor.resample)
            top, left, side, flip = processor._draw_crop(*video.shape[-2:], generator)
            video = processor.resize(
                video[..., top : top + side, left : left + side],
                size=SizeDict(height=224, width=224),
                resample=processor.resample,
            )
            cropped.append(video.flip(-1) if flip else video)
        frames, options["size"] = cropped, SizeDict(height=224, width=224)
    reference = BaseVideoProcessor._preprocess(
        processor,
        frames,
        do_resize=not training,
        do_center_crop=True,
        crop_size=SizeDict(height=224, width=224),
        return_tensors="pt",
        **options,
    )["pixel_values_videos"]
    assert out["pixel_values_videos"].shape == (4, 6, 3, 224, 224)
    assert torch.equal(out["pixel_values_videos"], reference)


def test_batches_videos_of_different_lengths_and_sizes():
    videos = [random_video(3, 50, 70), random_video(40, 300, 200, seed=1), random_video(1, 224, 224, seed=2)]
    out = VidLAVideoProcessor()(videos, return_tensors="pt")["pixel_values_videos"]
    assert out.shape == (3, 12, 3, 224, 224)
    short = VidLAVideoProcessor()(videos[0], return_tensors="pt")["pixel_values_videos"][0]
    torch.testing.assert_close(out[0], short)
    # 3 frames sampled to 12 repeat each frame four times.
    torch.testing.assert_close(short[0], short[3])
    assert not torch.equal(short[3], short[4])


def test_every_input_type_gives_the_same_pixels(tmp_path):
    path = write_mp4(tmp_path / "v.mp4", frame_pattern(16, 64, 96))
    decoded, _ = read_video(path, backend="pyav")
    processor = VidLAVideoProcessor(num_frames=4, video_backend="pyav")
    expected = processor(decoded, return_tensors="pt")["pixel_values_videos"]
    inputs = {
        "path": str(path),
        "pathlib": path,
        "bytes": path.read_bytes(),
        "file": io.BytesIO(path.read_bytes()),
        "torch_uint8": torch.from_numpy(decoded).permute(0, 3, 1, 2),
        "torch_float": torch.from_numpy(decoded).permute(0, 3, 1, 2).float(),
        "pil": [Image.fromarray(frame) for frame in decoded],
    }
    for name, video in inputs.items():
        actual = processor(video, return_tensors="pt")["pixel_values_videos"]
        if (
            name == "torch_float"
        ):  # uint8 frames are clamped and rounded after bicubic resizing, floats are not
            assert (actual - expected).abs().mean() < 0.01
        else:
            torch.testing.assert_close(actual, expected, msg=name)


def test_grayscale_and_rgba_are_converted():
    video = random_video(4, 64, 64)
    processor = VidLAVideoProcessor(num_frames=4)
    gray = video[..., :1]
    torch.testing.assert_close(
        processor(gray, return_tensors="pt")["pixel_values_videos"],
        processor(np.repeat(gray, 3, axis=-1), return_tensors="pt")["pixel_values_videos"],
    )
    opaque = np.concatenate([video, np.full_like(video[..., :1], 255)], axis=-1)
    torch.testing.assert_close(
        processor(opaque, return_tensors="pt")["pixel_values_videos"],
        processor(video, return_tensors="pt")["pixel_values_videos"],
    )
    transparent = np.concatenate([video, np.zeros_like(video[..., :1])], axis=-1)
    white = np.full_like(video, 255)
    torch.testing.assert_close(
        processor(transparent, return_tensors="pt")["pixel_values_videos"],
        processor(white, return_tensors="pt")["pixel_values_videos"],
    )
    pil_gray = [Image.fromarray(frame[..., 0], mode="L") for frame in gray]
    pil_rgba = [Image.fromarray(frame, mode="RGBA") for frame in transparent]
    torch.testing.assert_close(
        processor(pil_gray, return_tensors="pt")["pixel_values_videos"],
        processor(gray, return_tensors="pt")["pixel_values_videos"],
    )
    torch.testing.assert_close(
        processor(pil_rgba, return_tensors="pt")["pixel_values_videos"],
        processor(white, return_tensors="pt")["pixel_values_videos"],
    )


@pytest.mark.parametrize(
    ("video", "error", "match"),
    [
        (np.zeros((64, 64, 3), np.uint8), ValueError, r"\(64, 64, 3\)"),  # an image, not a video
        (np.zeros((4, 64, 64, 2), np.uint8), ValueError, r"\(4, 64, 64, 2\)"),
        (np.zeros((4, 64, 64, 3), np.float64), ValueError, "uint8"),
        (torch.zeros(4, 64, 64, 3, dtype=torch.uint8), ValueError, r"\(4, 64, 64, 3\)"),  # channels last
        (torch.zeros(4, 3, 64, 64, dtype=torch.int32), ValueError, "int32"),
        (np.zeros((0, 64, 64, 3), np.uint8), ValueError, "at least one"),
        ([42], TypeError, "int"),
    ],
)
def test_bad_inputs_raise_naming_what_was_wrong(video, error, match):
    with pytest.raises(error, match=match):
        VidLAVideoProcessor()(video, return_tensors="pt")


def test_bad_options_raise():
    with pytest.raises(ValueError, match="frame_sampling"):
        VidLAVideoProcessor(frame_sampling="middle")
    with pytest.raises(ValueError, match="video_backend"):
        VidLAVideoProcessor()(random_video(), video_backend="opencv")


def gradient_video(frames=8, height=120, width=200):
    """Every frame the same horizontal ramp: the crop and flip applied can be read back from the pixels."""
    ramp = np.linspace(0, 255, width).astype(np.uint8)
    return np.broadcast_to(ramp[None, None, :, None], (frames, height, width, 3)).copy()


def test_training_augmentation_is_seeded_shared_by_frames_and_follows_the_paper():
    processor = VidLAVideoProcessor(num_frames=4)
    video = gradient_video()
    first = processor(video, training=True, seed=3, return_tensors="pt")["pixel_values_videos"][0]
    again = processor(video, training=True, seed=3, return_tensors="pt")["pixel_values_videos"][0]
    torch.testing.assert_close(first, again)
    for frame in first[1:]:
        torch.testing.assert_close(frame, first[0])  # one crop and flip for the whole video
    flips, spans = set(), set()
    for seed in range(40):
        row = processor(video, training=True, seed=seed, return_tensors="pt")["pixel_values_videos"][
            0, 0, 0, 112
        ]
        flips.add(bool(row[0] > row[-1]))
        spans.add(round(float((row.max() - row.min()) / (row.max() - row.min()).new_tensor(1)), 1))
    assert flips == {True, False}
    # Resized to 224 on the shorter side the ramp is 373 wide; a 224 crop sees 224/373 of it, a 179 crop 179/373.
    eval_row = processor(video, return_tensors="pt")["pixel_values_videos"][0, 0, 0, 112]
    assert (eval_row[1:] >= eval_row[:-1] - 1e-4).all(), "evaluation never flips"
    assert len(spans) >= 2, spans


def test_random_flip_off_keeps_the_crop_and_never_flips():
    """`random_flip=False` (for texts that name directions): the same crops as with flipping, never mirrored."""
    processor = VidLAVideoProcessor(num_frames=2)
    video = gradient_video()
    flipped_seeds = 0
    for seed in range(12):
        with_flip = processor(video, training=True, seed=seed, return_tensors="pt")["pixel_values_videos"][0]
        without = processor(video, training=True, random_flip=False, seed=seed, return_tensors="pt")
        without = without["pixel_values_videos"][0]
        row = without[0, 0, 112]
        assert (row[1:] >= row[:-1] - 1e-4).all(), f"seed {seed}: mirrored although random_flip=False"
        was_flipped = bool(with_flip[0, 0, 112, 0] > with_flip[0, 0, 112, -1])
        flipped_seeds += was_flipped
        torch.testing.assert_close(without, with_flip.flip(-1) if was_flipped else with_flip)
    assert 0 < flipped_seeds < 12


def test_training_samples_random_frames_and_eval_uniform():
    video = np.stack([np.full((32, 32, 3), t, np.uint8) for t in range(40)])  # frame t has value t
    processor = VidLAVideoProcessor(
        num_frames=4, do_normalize=False, do_rescale=False, do_resize=False, do_center_crop=False
    )

    def values(**kw):
        return processor(video, return_tensors="pt", **kw)["pixel_values_videos"][0, :, 0, 0, 0].tolist()  # noqa: E731

    assert values() == uniform_frame_indices(40, 4).tolist()
    draws = {tuple(values(training=True, seed=s)) for s in range(10)}
    assert len(draws) > 5 and all(all(10 * i <= v < 10 * (i + 1) for i, v in enumerate(d)) for d in draws)
    assert values(training=True, seed=1) == values(training=True, seed=1)


def test_auto_video_processor_round_trip(tmp_path):
    processor = VidLAVideoProcessor(
        num_frames=5, crop_size={"height": 112, "width": 112}, size={"shortest_edge": 112}
    )
    processor.save_pretrained(tmp_path)
    loaded = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is VidLAVideoProcessor and loaded.num_frames == 5
    video = random_video()
    torch.testing.assert_close(
        loaded(video, return_tensors="pt")["pixel_values_videos"],
        processor(video, return_tensors="pt")["pixel_values_videos"],
    )
    assert loaded(video, return_tensors="pt")["pixel_values_videos"].shape == (1, 5, 3, 112, 112)


# "Nothing lost, nothing false": bad arguments raise, naming the argument and the value, before any decoding.


@pytest.mark.parametrize("num_frames", [0, -3, 2.5, True, "8"])
def test_num_frames_must_be_a_positive_int_at_construction_and_per_call(num_frames):
    with pytest.raises(ValueError, match=rf"`num_frames` must be an int >= 1.*got {num_frames!r}"):
        VidLAVideoProcessor(num_frames=num_frames)
    with pytest.raises(ValueError, match=rf"`num_frames` must be an int >= 1.*got {num_frames!r}"):
        VidLAVideoProcessor(num_frames=4)(random_video(8, 32, 32), num_frames=num_frames, return_tensors="pt")


def test_num_frames_given_per_call_is_the_number_of_frames_returned():
    processor = VidLAVideoProcessor(num_frames=4, size={"shortest_edge": 32}, crop_size=32)
    for num_frames in (1, 3, 7):
        out = processor(random_video(10, 32, 32), num_frames=num_frames, return_tensors="pt")
        assert out["pixel_values_videos"].shape == (1, num_frames, 3, 32, 32)


@pytest.mark.parametrize(
    ("kwargs", "typo", "meant"),
    [({"num_frame": 8}, "num_frame", "num_frames"), ({"trainng": True}, "trainng", "training")],
)
def test_misspelt_keywords_raise_naming_the_close_valid_one(kwargs, typo, meant):
    expected = rf"unexpected keyword argument '{typo}' \(did you mean '{meant}'\?\)"
    with pytest.raises(TypeError, match=expected):
        VidLAVideoProcessor(**kwargs)
    with pytest.raises(TypeError, match=expected):
        VidLAVideoProcessor()(random_video(4, 32, 32), return_tensors="pt", **kwargs)


def test_keywords_transformers_passes_still_work():
    processor = VidLAVideoProcessor(
        num_frames=2, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    out = processor(
        random_video(6, 32, 32),
        return_tensors="pt",
        device="cpu",
        do_sample_frames=True,
        return_metadata=True,
        do_convert_rgb=True,
        data_format="channels_first",
        video_backend="pyav",
        frame_sampling="uniform",
        seed=0,
    )
    assert out["pixel_values_videos"].shape == (1, 2, 3, 32, 32)
    assert out["video_metadata"][0].frames_indices.tolist() == uniform_frame_indices(6, 2).tolist()


def test_fps_sampling_is_refused_rather_than_ignored():
    with pytest.raises(ValueError, match=r"`fps` sampling is not supported, got fps=2"):
        VidLAVideoProcessor()(random_video(), fps=2, return_tensors="pt")
    with pytest.raises(ValueError, match="fps"):
        VidLAVideoProcessor(fps=2)


@pytest.mark.parametrize(
    ("videos", "match"),
    [
        (
            np.zeros((0, 32, 48, 3), np.uint8),
            r"`videos` has shape \(0, 32, 48, 3\): a video needs at least one",
        ),
        (torch.zeros(0, 3, 32, 48, dtype=torch.uint8), r"`videos` has shape \(0, 3, 32, 48\)"),
        (
            [random_video(4, 32, 32), np.zeros((0, 32, 32, 3), np.uint8)],
            r"`videos\[1\]` has shape \(0, 32, 32, 3\)",
        ),
        ([random_video(4, 32, 32), []], r"`videos\[1\]` is an empty list of frames"),
        ([], r"`videos` is empty \(list of length 0\): pass at least one video \(a path"),
        (np.zeros((0, 4, 32, 32, 3), np.uint8), r"`videos` is empty \(ndarray of length 0\)"),
    ],
)
def test_videos_without_frames_and_empty_batches_raise(videos, match):
    with pytest.raises(ValueError, match=match):
        VidLAVideoProcessor(num_frames=2)(videos, return_tensors="pt")


@pytest.mark.parametrize(
    ("bad", "counts"),
    [
        (float("nan"), "1 NaN and 0 infinite"),
        (float("inf"), "0 NaN and 1 infinite"),
        (-float("inf"), "0 NaN and 1 infinite"),
    ],
)
def test_non_finite_float_pixels_raise(bad, counts):
    # Frame 4 is not among the 2 sampled of 5 (1 and 3): whether a call fails must not depend on sampling.
    video = torch.full((5, 3, 32, 32), 128.0)
    video[4, 1, 4, 7] = bad
    processor = VidLAVideoProcessor(num_frames=2)
    expected = rf"`videos` has {counts} pixel values \(shape \(5, 3, 32, 32\), the first in frame 4\)"
    with pytest.raises(ValueError, match=expected):
        processor(video, return_tensors="pt")
    with pytest.raises(ValueError, match=rf"`videos\[1\]` has {counts}"):
        processor([torch.zeros(2, 3, 32, 32), video], return_tensors="pt")


def test_the_whole_batch_is_checked_before_any_video_is_decoded(tmp_path, monkeypatch):
    from vidla_hf.processing import video_processing_vidla

    path = write_mp4(tmp_path / "v.mp4", frame_pattern(8, 32, 32))

    def must_not_decode(*args, **kwargs):
        raise AssertionError("a video was decoded before the batch was checked")

    monkeypatch.setattr(video_processing_vidla, "read_video", must_not_decode)
    processor = VidLAVideoProcessor(num_frames=2)
    with pytest.raises(ValueError, match=r"`videos\[1\]` has shape \(0, 32, 32, 3\)"):
        processor([path, np.zeros((0, 32, 32, 3), np.uint8)], return_tensors="pt")
    with pytest.raises(ValueError, match=r"missing\.mp4' does not exist"):
        processor([path, tmp_path / "missing.mp4"], return_tensors="pt")
    with pytest.raises(ValueError, match=r"`num_frames` must be an int >= 1"):
        processor([path], num_frames=0, return_tensors="pt")


def test_one_processor_serves_concurrent_calls_as_if_each_were_alone(tmp_path):
    """Threads share one processor: each call's frame generator, crop/flip generator and backend are its own.
    The reference is every call made alone, one after another, each on a fresh processor."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from vidla_hf.processing import available_backends

    options = {"num_frames": 4, "size": {"shortest_edge": 48}, "crop_size": {"height": 48, "width": 48}}
    path = write_mp4(tmp_path / "v.mp4", frame_pattern(40, 64, 96))
    calls = [(random_video(30, 60, 80, seed=s), {"training": True, "seed": s}) for s in range(4)]
    calls += [(random_video(25, 70, 50, seed=9), {"training": True, "frame_sampling": "uniform", "seed": 1})]
    calls += [(str(path), {"video_backend": backend}) for backend in available_backends()]
    calls += [(path.read_bytes(), {"video_backend": "pyav", "training": True, "seed": 5})]
    calls += [([random_video(9, 64, 64, seed=3), str(path)], {"training": True, "seed": 2})]

    def call(processor, index):
        videos, kwargs = calls[index]
        out = processor(videos, return_tensors="pt", return_metadata=True, **kwargs)
        return out["pixel_values_videos"], [
            (m.video_backend, m.frames_indices.tolist()) for m in out["video_metadata"]
        ]

    expected = [call(VidLAVideoProcessor(**options), index) for index in range(len(calls))]
    shared = VidLAVideoProcessor(**options)
    barrier = Barrier(len(calls))

    def call_together(index):
        barrier.wait()  # all threads start at once, so their calls interleave
        return [call(shared, index) for _ in range(3)]

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        results = list(pool.map(call_together, range(len(calls))))
    for index, (repeats, (pixels, metadata)) in enumerate(zip(results, expected, strict=True)):
        for actual_pixels, actual_metadata in repeats:
            assert actual_metadata == metadata, (calls[index][1], actual_metadata, metadata)
            assert torch.equal(actual_pixels, pixels), calls[index][1]
    for (_, kwargs), (_, metadata) in zip(calls, expected, strict=True):
        assert "video_backend" not in kwargs or metadata[0][0] == kwargs["video_backend"]
