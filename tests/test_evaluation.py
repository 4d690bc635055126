import doctest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import accelerate_launch

import vidla_hf.evaluation.embeddings
from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.data.synthetic import generate_synthetic_dataset
from vidla_hf.evaluation import (
    KINETICS700_TEMPLATES,
    UCF101_TEMPLATES,
    class_embeddings,
    dual_softmax,
    evaluate_retrieval,
    matched_ranks,
    multiple_choice_accuracy,
    paragraph,
    retrieval_metrics,
    select_templates,
    zero_shot_accuracy,
)

ROOT = Path(__file__).parents[1]


def numpy_ranks(similarity: np.ndarray) -> np.ndarray:
    """Reference: rank of the diagonal item in each row, ties against it, by sorting."""
    ranks = []
    for i, row in enumerate(similarity):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j != i))  # ties: others first
        ranks.append(
            order.index(i)
            + 1
            + sum(
                1 for j in range(len(row)) if j != i and row[j] == row[i] and order.index(j) > order.index(i)
            )
        )
    return np.array(ranks)


def numpy_dsl(similarity: np.ndarray, temperature: float) -> np.ndarray:
    weights = np.exp(temperature * similarity - (temperature * similarity).max(axis=0, keepdims=True))
    return similarity * weights / weights.sum(axis=0, keepdims=True)


@pytest.mark.parametrize("size", [1, 7, 33])
@pytest.mark.parametrize("chunk_size", [1, 4, 64])
@pytest.mark.parametrize("temperature", [None, 1.0, 100.0])
def test_chunked_ranks_equal_the_dense_computation(size, chunk_size, temperature):
    generator = torch.Generator().manual_seed(size)
    queries = F.normalize(torch.randn(size, 6, generator=generator, dtype=torch.float64), dim=-1)
    gallery = F.normalize(queries + torch.randn(size, 6, generator=generator, dtype=torch.float64), dim=-1)
    similarity = (queries @ gallery.T).numpy()
    dense = similarity if temperature is None else numpy_dsl(similarity, temperature)
    assert matched_ranks(queries, gallery, temperature, chunk_size).tolist() == numpy_ranks(dense).tolist()
    if temperature is not None:
        np.testing.assert_allclose(
            dual_softmax(torch.from_numpy(similarity), temperature).numpy(), dense, rtol=1e-12
        )


def test_ties_count_against_the_match():
    queries = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert matched_ranks(queries, queries.clone()).tolist() == [2, 2]


def test_metrics_by_hand():
    similarity = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.1], [0.3, 0.2, 0.1]])  # ranks 1, 2, 3
    assert retrieval_metrics(similarity) == {
        "R@1": pytest.approx(100 / 3),
        "R@5": 100.0,
        "R@10": 100.0,
        "MdR": 2.0,
        "MnR": 2.0,
    }
    with pytest.raises(ValueError, match="square"):
        retrieval_metrics(torch.zeros(2, 3))
    results = evaluate_retrieval(torch.eye(3), torch.eye(3))
    assert set(results) == {"text_to_video", "video_to_text", "text_to_video_dsl", "video_to_text_dsl"}
    assert all(r["R@1"] == 100.0 for r in results.values())
    with pytest.raises(ValueError, match="matching pairs"):
        evaluate_retrieval(torch.eye(3), torch.eye(4))


def test_paragraph_queries():
    assert paragraph(["A man walks in. ", "He sits down."]) == "A man walks in. He sits down."
    with pytest.raises(ValueError):
        paragraph([])


def test_zero_shot_and_multiple_choice_by_hand():
    classes = torch.eye(3)
    videos = torch.tensor([[1.0, 0.1, 0.0], [0.0, 0.2, 1.0], [0.9, 1.0, 0.0]])
    assert zero_shot_accuracy(videos, classes, torch.tensor([0, 2, 0]), ks=(1, 2)) == {
        "top1": pytest.approx(200 / 3),
        "top2": 100.0,
    }
    # A video equally similar to classes 1 and 2 (and not to 0): each label earns half a top-1 hit, a full top-2.
    between = torch.tensor([[0.0, 1.0, 1.0]])
    for label in (1, 2):
        tie = zero_shot_accuracy(between, classes, torch.tensor([label]), ks=(1, 2))
        assert tie == {"top1": 50.0, "top2": 100.0}, (label, tie)
    assert zero_shot_accuracy(between, classes, torch.tensor([0]), ks=(1, 2, 3)) == {
        "top1": 0.0,
        "top2": 0.0,
        "top3": 100.0,
    }
    options = torch.stack([torch.eye(3), torch.eye(3), torch.eye(3)])  # option k is axis k
    assert multiple_choice_accuracy(videos, options, torch.tensor([0, 2, 1])) == 100.0
    assert multiple_choice_accuracy(videos, options, torch.tensor([1, 2, 1])) == pytest.approx(200 / 3)


def test_prompt_ensemble_is_the_normalised_mean_of_normalised_prompts():
    model = VidLAModel(VidLAConfig.from_preset("vidla-tiny")).eval()
    processor = VidLAProcessor(VidLAVideoProcessor(), build_clip_tokenizer())
    templates = ("a video of {}.", "a photo of {}.")
    ensemble = class_embeddings(model, processor, ["dancing", "cooking"], templates)
    tokenizer = build_clip_tokenizer()
    with torch.no_grad():
        for row, name in enumerate(["dancing", "cooking"]):
            single = [
                F.normalize(
                    model.get_text_features(**tokenizer(t.format(name), return_tensors="pt")).pooler_output[
                        0
                    ],
                    dim=-1,
                )
                for t in templates
            ]
            torch.testing.assert_close(ensemble[row], F.normalize(torch.stack(single).mean(0), dim=-1))


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model = VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=2))
    size = {"shortest_edge": 64}
    processor = VidLAProcessor(
        VidLAVideoProcessor(num_frames=2, size=size, crop_size={"height": 64, "width": 64}),
        build_clip_tokenizer(),
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    data = tmp_path_factory.mktemp("data")
    generate_synthetic_dataset(data, {"train": 4, "val": 12}, clips_per_shard=6)
    return folder, data


def evaluate(folder, data, output, task, num_processes=1):
    accelerate_launch(
        [
            "examples/evaluate.py",
            "--model",
            folder,
            "--data",
            data,
            "--task",
            task,
            "--output",
            output,
            "--batch_size",
            "4",
            "--num_options",
            "4",
        ],
        num_processes,
    )
    return json.loads(Path(output).read_text())


@pytest.mark.parametrize("task", ["retrieval", "classification", "multiple_choice"])
def test_evaluate_script_writes_results(trained_folder, tmp_path, task):
    results = evaluate(*trained_folder, tmp_path / "results.json", task)
    assert results["task"] == task and results["num_samples"] == 12 and results["skipped_samples"] == 0
    if task == "retrieval":
        assert set(results["metrics"]) == {
            "text_to_video",
            "video_to_text",
            "text_to_video_dsl",
            "video_to_text_dsl",
        }
    elif task == "classification":
        assert {"top1", "top5", "num_classes"} == set(results["metrics"])
        assert results["templates"] == "video"  # the synthetic dataset is none that CLIP has templates for
    else:
        assert results["metrics"]["num_options"] == 4


def test_two_processes_gather_the_same_embeddings_as_one(trained_folder, tmp_path):
    one = evaluate(*trained_folder, tmp_path / "one.json", "retrieval")
    two = evaluate(*trained_folder, tmp_path / "two.json", "retrieval", num_processes=2)
    assert two["num_samples"] == one["num_samples"] == 12
    for direction, metrics in one["metrics"].items():
        assert two["metrics"][direction] == pytest.approx(metrics), direction


def test_evaluate_script_picks_the_kinetics_700_templates_for_a_kinetics_400_dataset(
    trained_folder, tmp_path
):
    folder, data = trained_folder
    kinetics = tmp_path / "kinetics-400"
    kinetics.symlink_to(data, target_is_directory=True)
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "examples/evaluate.py", "--model", str(folder), "--data", str(kinetics)]
        + ["--task", "classification", "--batch_size", "4", "--output", str(output)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["templates"] == "kinetics700" and results["metrics"]["num_classes"] > 1


# The "Kinetics700" and "UCF101" lists of openai/CLIP `data/prompts.md`, written as the patterns they follow.
CLIP_KINETICS700 = [
    f"a {medium} of {who}{{}}."
    for medium in ("photo", "video", "example", "demonstration")
    for who in ("", "a person ", "a person using ", "a person doing ", "a person during ")
    + ("a person performing ", "a person practicing ")
]
CLIP_UCF101 = [
    f"a {medium} of {article} person {action}{{}}."
    for action in ("", "using ", "doing ", "during ", "performing ", "practicing ")
    for article in ("a", "the")
    for medium in ("photo", "video", "example", "demonstration")
]


def test_template_sets_are_clips_and_chosen_per_dataset():
    assert list(KINETICS700_TEMPLATES) == CLIP_KINETICS700 and len(CLIP_KINETICS700) == 28
    assert list(UCF101_TEMPLATES) == CLIP_UCF101 and len(CLIP_UCF101) == 48
    assert CLIP_UCF101[:5] == [
        "a photo of a person {}.",
        "a video of a person {}.",
        "a example of a person {}.",
        "a demonstration of a person {}.",
        "a photo of the person {}.",
    ]
    for templates, dataset in (
        ("auto", "/data/Kinetics-400/val"),
        ("auto", "org/kinetics_400"),
        ("auto", "shards/kinetics700-val-*.tar"),
        ("kinetics400", None),
        ("Kinetics-600", None),
        ("kinetics700", "data/synthetic"),
    ):
        assert select_templates(templates, dataset) == ("kinetics700", KINETICS700_TEMPLATES), templates
    assert select_templates("auto", "UCF-101/test") == ("ucf101", UCF101_TEMPLATES)
    assert select_templates("UCF101") == ("ucf101", UCF101_TEMPLATES)
    assert select_templates("auto", "data/synthetic") == ("video", ("a video of {}.",))
    assert select_templates("auto", None) == ("video", ("a video of {}.",))
    assert select_templates("video", "kinetics400") == ("video", ("a video of {}.",))  # a set named wins
    for bad in ("kinetics", "k400", "hmdb51", ""):
        with pytest.raises(
            ValueError, match=rf"`templates` must be a template set or dataset among .*got {bad!r}"
        ):
            select_templates(bad)
    with pytest.raises(ValueError, match="names several datasets"):
        select_templates("auto", "ucf101-and-kinetics400")


def test_evaluate_script_refuses_an_unknown_template_set_before_loading_anything(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "evaluate.py"), "--model", str(tmp_path / "missing")]
        + ["--task", "classification", "--templates", "kinetics"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "--templates must be a template set or dataset among" in done.stderr
    assert "got 'kinetics'" in done.stderr


# Nothing false: a NaN compares false with everything, so a NaN score ranks first and counts as a hit.
# Every metric refuses non-finite inputs and settings instead of reporting R@1 = 100.

NON_FINITE = [float("nan"), float("inf"), -float("inf")]


def pairs(size: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    queries = F.normalize(torch.randn(size, 4, generator=generator, dtype=torch.float64), dim=-1)
    return queries, F.normalize(
        queries + 0.3 * torch.randn(size, 4, generator=generator, dtype=torch.float64)
    )


def with_bad_entry(tensor: torch.Tensor, value: float) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[1] = value
    return tensor


@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_embeddings_and_similarities_raise(value):
    queries, gallery = pairs()
    kind = "1 NaN, 0 inf" if value != value else "0 NaN, 1 inf"
    similarity = queries @ gallery.T
    bad_similarity = with_bad_entry(similarity, value)
    cases = [
        (lambda: retrieval_metrics(bad_similarity), "similarity", 25),
        (lambda: dual_softmax(bad_similarity), "similarity", 25),
        (lambda: matched_ranks(with_bad_entry(queries, value), gallery), "queries", 20),
        (lambda: matched_ranks(queries, with_bad_entry(gallery, value), 100.0), "gallery", 20),
        (lambda: evaluate_retrieval(with_bad_entry(queries, value), gallery), "text_embeds", 20),
        (lambda: evaluate_retrieval(queries, with_bad_entry(gallery, value)), "video_embeds", 20),
        (
            lambda: zero_shot_accuracy(with_bad_entry(queries, value), gallery, torch.arange(5)),
            "video_embeds",
            20,
        ),
        (
            lambda: zero_shot_accuracy(queries, with_bad_entry(gallery, value), torch.arange(5)),
            "class_embeds",
            20,
        ),
        (
            lambda: multiple_choice_accuracy(
                queries, with_bad_entry(gallery[:, None], value), torch.zeros(5).long()
            ),
            "option_embeds",
            20,
        ),
    ]
    for call, name, size in cases:
        with pytest.raises(
            ValueError, match=rf"^`{name}` has 1 non-finite entries \({kind}\) out of {size};"
        ):
            call()


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), -float("inf")])
def test_dsl_temperature_must_be_finite_and_positive(temperature):
    queries, gallery = pairs()
    message = rf"^`dsl_temperature` must be a finite number > 0, got {temperature!r}\.$"
    with pytest.raises(ValueError, match=message):
        matched_ranks(queries, gallery, temperature)
    with pytest.raises(ValueError, match=message):
        evaluate_retrieval(queries, gallery, temperature)
    with pytest.raises(ValueError, match=message.replace("dsl_temperature", "temperature")):
        dual_softmax(queries @ gallery.T, temperature)


@pytest.mark.parametrize(
    ("chunk_size", "error"), [(0, ValueError), (-4, ValueError), (2.5, TypeError), (True, TypeError)]
)
def test_chunk_size_must_be_a_positive_integer(chunk_size, error):
    queries, gallery = pairs()
    for call in (
        lambda: matched_ranks(queries, gallery, None, chunk_size),
        lambda: evaluate_retrieval(queries, gallery, chunk_size=chunk_size),
    ):
        with pytest.raises(error, match=rf"^`chunk_size` must be an integer >= 1, got {chunk_size!r}\.$"):
            call()


def test_overflowing_similarities_raise():
    queries, gallery = pairs()
    with pytest.raises(
        ValueError, match=r"similarities `queries @ gallery.T` have 25 non-finite entries out of 25"
    ):
        matched_ranks(queries * 1e160, gallery * 1e160)  # finite embeddings, products beyond float64
    # finite similarities (|s| <= 1e6) and a finite temperature whose product overflows
    with pytest.raises(ValueError, match=r"DSL normaliser is non-finite for 5 of 5 gallery items"):
        matched_ranks(queries * 1e3, gallery * 1e3, 1e306)
    with pytest.raises(ValueError, match=r"re-scored with temperature=1e\+306"):
        dual_softmax(queries @ gallery.T * 1e6, 1e306)


def test_empty_inputs_and_out_of_range_labels_raise():
    with pytest.raises(ValueError, match="non-empty square"):
        retrieval_metrics(torch.zeros(0, 0))
    with pytest.raises(ValueError, match="N >= 1 matching pairs"):
        evaluate_retrieval(torch.zeros(0, 4), torch.zeros(0, 4))
    videos, classes = torch.eye(3), torch.eye(3)
    with pytest.raises(
        ValueError, match=r"`labels` must be indices in \[0, 3\), got 1 outside it \(first: 3\)"
    ):
        zero_shot_accuracy(videos, classes, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="non-empty"):
        zero_shot_accuracy(torch.zeros(0, 3), classes, torch.zeros(0).long())
    with pytest.raises(TypeError, match="`answers` must be an integer tensor"):
        multiple_choice_accuracy(videos, torch.stack([classes] * 3), torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(
        ValueError, match=r"`answers` must be indices in \[0, 3\), got 1 outside it \(first: -1\)"
    ):
        multiple_choice_accuracy(videos, torch.stack([classes] * 3), torch.tensor([0, -1, 2]))


def test_evaluate_script_checks_its_options_before_loading_anything(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "evaluate.py"), "--model", str(tmp_path / "missing")]
        + ["--dsl_temperature", "nan"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "--dsl_temperature must be a finite number > 0, got nan" in done.stderr


def test_embedding_doctests_are_not_skipped():
    module = vidla_hf.evaluation.embeddings
    examples = [e for test in doctest.DocTestFinder().find(module) for e in test.examples]
    assert len(examples) >= 5 and not [e.source for e in examples if e.options.get(doctest.SKIP)]
