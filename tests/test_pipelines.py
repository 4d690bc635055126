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


# "Nothing lost, nothing false": every input is scored as given or refused, naming the argument and the value.


@pytest.fixture(scope="module")
def classifier(model_and_processor):
    model, processor = model_and_processor
    return pipeline("zero-shot-video-classification", model=model, processor=processor)


@pytest.fixture(scope="module")
def retriever(model_and_processor):
    model, processor = model_and_processor
    return pipeline("video-text-retrieval", model=model, processor=processor)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"candidate_labels": ["a", "b", "a"]},
            ValueError,
            r"`candidate_labels` must be distinct, got \['a'\]",
        ),
        ({"candidate_labels": []}, ValueError, "`candidate_labels` must be a non-empty list"),
        ({"candidate_labels": ["a"], "hypothesis_template": "{} and {}"}, ValueError, "exactly one '{}'"),
        ({"candidate_labels": ["a"], "hypothesis_template": "a {x}"}, ValueError, "exactly one '{}'"),
        ({"candidate_labels": ["a"], "hypothesis_template": "a {"}, ValueError, "exactly one '{}'"),
        ({"candidate_label": ["a"]}, TypeError, r"'candidate_label' \(did you mean 'candidate_labels'\?\)"),
        ({"candidate_labels": ["a"], "batch_size": 2}, ValueError, r"`batch_size` must be 1 .*got 2"),
    ],
)
def test_zero_shot_bad_arguments_raise_before_decoding(classifier, tmp_path, kwargs, error, match):
    missing = str(tmp_path / "never-read.mp4")  # reaching the decoder would raise VideoDecodeError instead
    with pytest.raises(error, match=match):
        classifier(missing, **kwargs)


def test_zero_shot_templates_with_literal_braces_and_an_indexed_slot(classifier, model_and_processor, videos):
    model, processor = model_and_processor
    result = classifier(videos[0], candidate_labels=["a", "b"], hypothesis_template="{{clip}} of {0}")
    expected = (
        reference_logits(model, processor, ["{clip} of a", "{clip} of b"], [videos[0]])[0]
        .softmax(-1)
        .tolist()
    )
    assert {r["label"]: r["score"] for r in result} == pytest.approx(
        {"a": expected[0], "b": expected[1]}, abs=1e-5
    )


def test_a_list_of_pil_frames_is_one_video(classifier, retriever, model_and_processor):
    from PIL import Image

    model, processor = model_and_processor
    frames = frame_pattern(6, 64, 64)
    pil_frames = [Image.fromarray(frame) for frame in frames]
    labels = ["cooking", "a dog"]
    result = classifier(pil_frames, candidate_labels=labels, hypothesis_template="{}")
    expected = reference_logits(model, processor, labels, [frames])[0].softmax(-1).tolist()
    assert {r["label"]: r["score"] for r in result} == pytest.approx(
        dict(zip(labels, expected, strict=True)), abs=1e-5
    )
    ranked = retriever(pil_frames, texts=labels)
    assert [r["text"] for r in ranked] == [
        labels[i] for i in torch.argsort(torch.tensor(expected), descending=True)
    ]


def test_empty_batches_and_batching_raise(classifier, retriever, videos):
    with pytest.raises(ValueError, match="`videos` is an empty list"):
        classifier([], candidate_labels=["a"])
    with pytest.raises(ValueError, match="The query is an empty list"):
        retriever([], texts=["a"])
    # Batching several inputs into one forward pass used to mix their candidates (each result kept one label).
    for pipe, kwargs in ((classifier, {"candidate_labels": ["a", "b"]}), (retriever, {"videos": videos})):
        with pytest.raises(ValueError, match=r"`batch_size` must be 1 \(or None\) .*got 2"):
            pipe(videos[:2] if pipe is classifier else ["a", "b"], batch_size=2, **kwargs)
        with pytest.raises(ValueError, match=r"`batch_size` must be 1 \(or None\) .*got 4"):
            pipeline(pipe.task, model=pipe.model, processor=pipe.processor, batch_size=4)


def test_retrieval_bad_keywords_and_path_candidates(retriever, videos):
    from pathlib import Path

    with pytest.raises(TypeError, match=r"'video' \(did you mean 'videos'\?\)"):
        retriever("a query", video=videos)
    ranked = retriever("a query", videos=[Path(v) for v in videos])
    assert sorted(r["video"] for r in ranked) == sorted(videos)  # paths, not None


def test_retrieval_queries_are_not_paired_with_the_gallery(retriever, model_and_processor, videos):
    """Two text queries against three videos: each query is ranked over the whole gallery, as on its own."""
    model, processor = model_and_processor
    queries = ["a bar moves right", "a red circle"]
    rankings = retriever(queries, videos=videos)
    assert len(rankings) == 2
    logits = reference_logits(model, processor, queries, videos)  # (videos, texts)
    for query_index, ranking in enumerate(rankings):
        assert [r["index"] for r in ranking] == torch.argsort(
            logits[:, query_index], descending=True
        ).tolist()
