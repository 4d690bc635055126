import os
import time

import numpy as np
import pytest
import torch
from conftest import run_without_vidla_hf
from transformers import AutoProcessor
from video_fixtures import frame_pattern, write_mp4

from vidla_hf import VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer


@pytest.fixture(scope="module")
def processor():
    return VidLAProcessor(
        VidLAVideoProcessor(num_frames=4, size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}),
        build_clip_tokenizer(),
    )


def test_text_and_videos_together(processor, tmp_path):
    path = write_mp4(tmp_path / "v.mp4", frame_pattern(20, 64, 96))
    batch = processor(
        text=["a photo of a cat", "a bar moves right"],
        videos=[str(path), path.read_bytes()],
        return_tensors="pt",
    )
    assert set(batch) == {"input_ids", "attention_mask", "pixel_values_videos"}
    assert batch["input_ids"][0].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert batch["attention_mask"].tolist()[0] == [1] * 7
    assert batch["pixel_values_videos"].shape == (2, 4, 3, 64, 64)
    torch.testing.assert_close(batch["pixel_values_videos"][0], batch["pixel_values_videos"][1])


def test_long_and_empty_text(processor):
    subtitle = " ".join(f"word{i}" for i in range(500))
    batch = processor(text=[subtitle, ""], return_tensors="pt")
    assert batch["input_ids"].shape == (2, 77)
    assert batch["input_ids"][0, -1] == 49407
    assert batch["input_ids"][1, :2].tolist() == [49406, 49407] and batch["attention_mask"][1].sum() == 2


def test_video_kwargs_reach_the_video_processor(processor):
    video = np.random.default_rng(0).integers(0, 256, (30, 64, 64, 3), dtype=np.uint8)
    out = processor(videos=video, num_frames=6, training=True, seed=1, return_tensors="pt")[
        "pixel_values_videos"
    ]
    assert out.shape == (1, 6, 3, 64, 64)
    again = processor(videos=video, num_frames=6, training=True, seed=1, return_tensors="pt")[
        "pixel_values_videos"
    ]
    torch.testing.assert_close(out, again)


def test_bad_calls(processor):
    with pytest.raises(ValueError, match="text"):
        processor()
    with pytest.raises(TypeError, match="text"):
        processor(text=[1, 2])


def test_auto_processor_round_trip(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is VidLAProcessor and type(loaded.video_processor) is VidLAVideoProcessor
    video = np.random.default_rng(0).integers(0, 256, (9, 80, 60, 3), dtype=np.uint8)
    for key in ("input_ids", "pixel_values_videos"):
        torch.testing.assert_close(
            loaded(text="a dog", videos=video, return_tensors="pt")[key],
            processor(text="a dog", videos=video, return_tensors="pt")[key],
        )


REMOTE_SCRIPT = """
import sys, json, torch
sys.modules["vidla_hf"] = None  # `import vidla_hf` now raises ImportError
from transformers import AutoModel, AutoProcessor
folder, video = sys.argv[1], sys.argv[2]
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
inputs = processor(text=["a bar moves right", "a photo of a cat"], videos=[video], return_tensors="pt")
with torch.no_grad():
    print(json.dumps(model(**inputs).logits_per_video.tolist()))
"""


def test_model_and_processor_as_remote_code_without_vidla_hf(processor, tmp_path):
    from vidla_hf import VidLAConfig

    model = VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=4)).eval()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert {
        "processing_vidla.py",
        "video_processing_vidla.py",
        "video_decoding.py",
        "frame_sampling.py",
    } <= set(os.listdir(tmp_path))
    video = write_mp4(tmp_path / "v.mp4", frame_pattern(20, 64, 96))
    remote = run_without_vidla_hf(REMOTE_SCRIPT, tmp_path, video, cwd=tmp_path)
    inputs = processor(
        text=["a bar moves right", "a photo of a cat"], videos=[str(video)], return_tensors="pt"
    )
    with torch.no_grad():
        expected = model(**inputs).logits_per_video
    torch.testing.assert_close(torch.tensor(remote), expected)


# "Nothing lost, nothing false": every argument is used or refused, naming it, its value and what is accepted.

VIDEO = np.random.default_rng(0).integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("kwargs", "typo", "meant"),
    [
        ({"videos": VIDEO, "num_frame": 8}, "num_frame", "num_frames"),
        ({"videos": VIDEO, "trainng": True}, "trainng", "training"),
        ({"text": "a dog", "trainng": True}, "trainng", "training"),
        ({"text": "a dog", "max_lenght": 10}, "max_lenght", "max_length"),
        ({"text": "a dog", "videos_kwargs": {"num_frame": 8}}, "num_frame", "num_frames"),
    ],
)
def test_misspelt_keywords_raise_naming_the_close_valid_one(processor, kwargs, typo, meant):
    with pytest.raises(
        TypeError, match=rf"unexpected keyword argument '{typo}' \(did you mean '{meant}'\?\)"
    ):
        processor(return_tensors="pt", **kwargs)


def test_keywords_transformers_passes_still_reach_their_processor(processor):
    tokenizer = processor.tokenizer
    batch = processor(
        text=["a dog", "a cat runs"],
        videos=[VIDEO, VIDEO],
        return_tensors="np",
        device="cpu",
        padding="max_length",
        max_length=12,
        return_metadata=True,
        images=None,
        audio=None,
    )
    assert isinstance(batch["input_ids"], np.ndarray) and batch["input_ids"].shape == (2, 12)
    expected = tokenizer(["a dog", "a cat runs"], padding="max_length", max_length=12)["input_ids"]
    assert batch["input_ids"].tolist() == expected
    assert batch["pixel_values_videos"].shape == (2, 4, 3, 64, 64)
    # transformers' per-modality dictionaries (dropped silently before): `num_frames` reaches the videos.
    nested = processor(
        text="a dog",
        videos=VIDEO,
        videos_kwargs={"num_frames": 3},
        text_kwargs={"padding": "max_length", "max_length": 9},
        common_kwargs={"return_tensors": "pt"},
    )
    assert nested["pixel_values_videos"].shape == (1, 3, 3, 64, 64)
    assert (
        nested["input_ids"].tolist() == tokenizer(["a dog"], padding="max_length", max_length=9)["input_ids"]
    )
    with pytest.raises(ValueError, match="takes `text` and `videos`, got `images`"):
        processor(text="a dog", images=[VIDEO[0]])


def test_num_frames_zero_or_negative_raises_at_construction_and_per_call(processor):
    for bad in (0, -1):
        with pytest.raises(ValueError, match=rf"`num_frames` must be an int >= 1 .*got {bad}"):
            VidLAProcessor(VidLAVideoProcessor(num_frames=bad), processor.tokenizer)
        with pytest.raises(ValueError, match=rf"`num_frames` must be an int >= 1 .*got {bad}"):
            processor(videos=VIDEO, num_frames=bad, return_tensors="pt")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"videos": []}, ValueError, r"`videos` is empty \(list of length 0\): pass at least one video"),
        ({"videos": np.zeros((0, 64, 64, 3), np.uint8)}, ValueError, r"has shape \(0, 64, 64, 3\)"),
        ({"videos": [VIDEO, []]}, ValueError, r"`videos\[1\]` is an empty list of frames"),
        ({"videos": torch.full((4, 3, 64, 64), float("nan"))}, ValueError, "49152 NaN and 0 infinite"),
        (
            {"text": []},
            ValueError,
            r"`text` is an empty list: pass a string or a list of at least one string",
        ),
        ({"text": ["a", 3]}, TypeError, r"`text\[1\]` must be a string, got int \(3\)"),
        ({"text": [""], "add_special_tokens": False}, ValueError, "`add_special_tokens` must be True"),
        ({"text": "a dog", "max_length": 1}, ValueError, r"`max_length` must be between 2 and 77 .*got 1"),
        ({"text": "a dog", "max_length": 0}, ValueError, r"`max_length` must be between 2 and 77 .*got 0"),
        ({"text": "a dog", "max_length": 78}, ValueError, r"`max_length` must be between 2 and 77 .*got 78"),
    ],
)
def test_empty_and_invalid_inputs_raise(processor, kwargs, error, match):
    with pytest.raises(error, match=match):
        processor(return_tensors="pt", **kwargs)


def test_shortest_texts_the_tokenizer_allows_keep_bos_and_eos(processor):
    # CLIP's own encoding of "" is [BOS, EOS]; max_length=2 leaves exactly that of any text.
    batch = processor(text=["", "a photo of a cat"], max_length=2, return_tensors="pt")
    assert batch["input_ids"].tolist() == [[49406, 49407], [49406, 49407]]


TYPO_PATHS = ["./runs/typo", "/abs/typo", "~/typo", "runs/typo/", "runs/exp/typo"]


@pytest.mark.parametrize("path", TYPO_PATHS)
@pytest.mark.parametrize("loader", [VidLAProcessor, VidLAVideoProcessor])
def test_a_missing_local_path_fails_at_once_naming_the_folder(loader, path, tmp_path, monkeypatch):
    from vidla_hf.processing.input_checks import NoSuchFolderError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expanded = os.path.abspath(os.path.expanduser(path))
    assert expanded.startswith((str(tmp_path), "/abs"))
    started = time.perf_counter()
    with pytest.raises(NoSuchFolderError) as caught:
        loader.from_pretrained(path)
    assert time.perf_counter() - started < 1.0
    assert str(caught.value).startswith(f"no such folder: {expanded} (from {path!r}).")
    assert caught.value.path == expanded
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, FileNotFoundError)


def test_hub_ids_and_existing_folders_are_not_taken_for_missing_paths(processor, tmp_path, monkeypatch):
    from vidla_hf.processing.input_checks import NoSuchFolderError, looks_like_local_path

    assert all(looks_like_local_path(p) for p in TYPO_PATHS)
    assert not any(looks_like_local_path(p) for p in ["org/name", "name", "openai/clip-vit-base-patch16"])
    # `org/name` goes to the Hub (here offline: transformers' own error, not ours).
    with pytest.raises(OSError) as caught:
        VidLAProcessor.from_pretrained("org/name", local_files_only=True)
    assert not isinstance(caught.value, NoSuchFolderError)
    processor.save_pretrained(tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for path in ("./run", "run/", "~/run", str(tmp_path / "run")):  # transformers itself does not expand `~`
        assert type(VidLAProcessor.from_pretrained(path)) is VidLAProcessor
        assert VidLAVideoProcessor.from_pretrained(path).num_frames == 4


@pytest.mark.parametrize("path", ["./runs/typo", "/abs/typo", "~/typo"])
def test_auto_processor_with_a_missing_path_fails_fast_without_the_hub(path):
    """`AutoProcessor` and `pipeline()` find the class in the folder, so our check cannot run; transformers
    rejects these strings as Hub ids at once (a misleading message, but no network wait)."""
    started = time.perf_counter()
    with pytest.raises(OSError, match="Repo id must"):
        AutoProcessor.from_pretrained(path)
    assert time.perf_counter() - started < 5.0


def test_one_processor_serves_concurrent_calls_as_if_each_were_alone(processor):
    """Threads share one `VidLAProcessor`, each with its own texts, videos and video options; the reference is
    each call made alone, one after another, on a processor of its own. (The text options are the same in
    every thread: a transformers tokenizer keeps its padding/truncation settings as state of its own.)"""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    calls = [{"num_frames": 3 + s % 3, "training": s % 2 == 0, "seed": s} for s in range(6)]
    texts = [["a dog", "a cat runs after a ball"][: 1 + s % 2] + ["word " * (10 * s)] for s in range(6)]
    videos = [np.random.default_rng(s).integers(0, 256, (20, 48, 64, 3), dtype=np.uint8) for s in range(6)]

    def call(instance, index):
        return instance(text=texts[index], videos=videos[index], return_tensors="pt", **calls[index])

    processor(text="warm up", return_tensors="pt")
    fresh = [VidLAProcessor(processor.video_processor, build_clip_tokenizer()) for _ in calls]
    expected = [call(fresh[index], index) for index in range(len(calls))]
    barrier = Barrier(len(calls))

    def call_together(index):
        barrier.wait()  # all threads start at once, so their calls interleave
        return [call(processor, index) for _ in range(3)]

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        results = list(pool.map(call_together, range(len(calls))))
    for index, repeats in enumerate(results):
        for batch in repeats:
            assert batch.keys() == expected[index].keys()
            for key, value in batch.items():
                assert torch.equal(value, expected[index][key]), (calls[index], key)
