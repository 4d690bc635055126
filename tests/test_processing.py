import os

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
