"""The two pipelines through transformers' real `pipeline()` factory, and as remote code."""

import json

import numpy as np
import pytest
import torch
from conftest import randomize_, run_without_vidla_hf
from transformers import pipeline
from video_fixtures import frame_pattern, write_mp4

from vidla_hf import (
    VideoTextRetrievalPipeline,
    VidLAConfig,
    VidLAModel,
    VidLAProcessor,
    VidLAVideoProcessor,
    ZeroShotVideoClassificationPipeline,
    build_clip_tokenizer,
)
from vidla_hf.processing import VideoDecodeError


@pytest.fixture(scope="module")
def model_and_processor():
    model = randomize_(VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=4)), std=0.05).eval()
    size = {"shortest_edge": 64}
    processor = VidLAProcessor(
        VidLAVideoProcessor(num_frames=4, size=size, crop_size={"height": 64, "width": 64}),
        build_clip_tokenizer(),
    )
    return model, processor


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [
        str(write_mp4(folder / f"v{i}.mp4", np.roll(frame_pattern(12, 64, 64), 8 * i, axis=2)))
        for i in range(3)
    ]


def reference_logits(model, processor, texts, videos):
    with torch.no_grad():
        return model(**processor(text=texts, videos=videos, return_tensors="pt")).logits_per_video


def test_zero_shot_classification(model_and_processor, videos):
    model, processor = model_and_processor
    classifier = pipeline("zero-shot-video-classification", model=model, processor=processor)
    assert isinstance(classifier, ZeroShotVideoClassificationPipeline)
    labels = ["cooking", "a dog", "dancing"]
    result = classifier(videos[0], candidate_labels=labels, hypothesis_template="a clip of {}")
    assert [r["score"] for r in result] == sorted((r["score"] for r in result), reverse=True)
    assert sum(r["score"] for r in result) == pytest.approx(1.0)
    expected = reference_logits(model, processor, [f"a clip of {label}" for label in labels], [videos[0]])[0]
    expected = dict(zip(labels, expected.softmax(-1).tolist(), strict=True))
    assert {r["label"]: r["score"] for r in result} == pytest.approx(expected, abs=1e-5)
    batched = classifier(videos, candidate_labels=labels)
    assert len(batched) == 3 and all(len(r) == 3 for r in batched)
    frames = frame_pattern(12, 64, 64)
    assert len(classifier(frames, candidate_labels=labels)) == 3


def test_zero_shot_bad_inputs(model_and_processor, tmp_path):
    model, processor = model_and_processor
    classifier = pipeline("zero-shot-video-classification", model=model, processor=processor)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        classifier(str(broken), candidate_labels=["a"])
    with pytest.raises(ValueError, match="candidate_labels"):
        classifier(str(broken), candidate_labels=[])
    with pytest.raises(ValueError, match="hypothesis_template"):
        classifier(frame_pattern(4, 64, 64), candidate_labels=["a"], hypothesis_template="no slot")


def test_retrieval_both_ways(model_and_processor, videos):
    model, processor = model_and_processor
    retriever = pipeline("video-text-retrieval", model=model, processor=processor)
    assert isinstance(retriever, VideoTextRetrievalPipeline)
    ranked = retriever("a bar moves right", videos=videos)
    logits = reference_logits(model, processor, ["a bar moves right"], videos)[:, 0]
    assert [r["index"] for r in ranked] == torch.argsort(logits, descending=True).tolist()
    assert ranked[0]["video"] == videos[ranked[0]["index"]]
    assert sum(r["score"] for r in ranked) == pytest.approx(1.0)
    texts = ["a red circle", "a bar moves right", "a blue square moves up"]
    ranked_texts = retriever(videos[1], texts=texts)
    logits = reference_logits(model, processor, texts, [videos[1]])[0]
    assert [r["text"] for r in ranked_texts] == [texts[i] for i in torch.argsort(logits, descending=True)]
    assert ranked_texts[0]["similarity"] == pytest.approx(
        (logits.max() / model.logit_scale.exp()).item(), abs=1e-5
    )
    with pytest.raises(ValueError, match="exactly one"):
        retriever("a query")
    with pytest.raises(ValueError, match="exactly one"):
        retriever("a query", videos=videos, texts=texts)
    with pytest.raises(ValueError, match="must be a text"):
        retriever(frame_pattern(4, 64, 64), videos=videos)


REMOTE_SCRIPT = """
import sys, json
sys.modules["vidla_hf"] = None  # `import vidla_hf` now raises ImportError
from transformers import pipeline
task, folder, video = sys.argv[1:4]
pipe = pipeline(task, model=folder, trust_remote_code=True)
assert type(pipe).__module__.startswith("transformers_modules"), type(pipe).__module__
if task == "zero-shot-video-classification":
    result = pipe(video, candidate_labels=["cooking", "a dog", "dancing"])
else:
    result = pipe("a bar moves right", videos=[video, video])
print(json.dumps(result))
"""


@pytest.mark.parametrize("task", ["zero-shot-video-classification", "video-text-retrieval"])
def test_saved_pipeline_runs_as_remote_code_without_vidla_hf(model_and_processor, videos, tmp_path, task):
    model, processor = model_and_processor
    pipe = pipeline(task, model=model, processor=processor)
    pipe.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert task in config["custom_pipelines"]
    remote = run_without_vidla_hf(REMOTE_SCRIPT, task, tmp_path, videos[0], cwd=tmp_path)
    local = (
        pipe(videos[0], candidate_labels=["cooking", "a dog", "dancing"])
        if task.startswith("zero")
        else pipe("a bar moves right", videos=[videos[0], videos[0]])
    )
    assert [r["score"] for r in remote] == pytest.approx([r["score"] for r in local], abs=1e-5)
