"""Publishing: the assembled repository, the model card, and one commit at the `HfApi` boundary."""

import doctest
import importlib
import json
import math
import os
import pkgutil
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import transformers
from conftest import run_without_vidla_hf, tiny_config
from huggingface_hub import EvalResult, HfApi, ModelCard
from video_fixtures import frame_pattern, write_mp4

import vidla_hf.hub
from vidla_hf import (
    VidLAConfig,
    VidLAForVideoClassification,
    VidLAModel,
    VidLAProcessor,
    VidLAVideoProcessor,
    build_clip_tokenizer,
)
from vidla_hf.hub import assemble_repo, build_model_card, eval_results_for_card, load_eval_results, publish

ROOT = Path(__file__).parents[1]
PUBLISH_SCRIPT = ROOT / "examples" / "publish.py"

RESULTS = {
    "task": "retrieval",
    "dataset": {"name": "org/msrvtt", "split": "test"},
    "num_samples": 10,
    "metrics": {"text_to_video": {"R@1": 41.5, "R@5": 70.0, "R@10": 80.25, "MdR": 2.0, "MnR": 9.5}},
}
CLASSIFICATION = {
    "task": "classification",
    "dataset": {"name": "k400", "split": "val"},
    "metrics": {"top1": 55.5, "top5": 80.0, "num_classes": 400},
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=2)).save_pretrained(folder)
    size = {"shortest_edge": 64}
    VidLAProcessor(
        VidLAVideoProcessor(num_frames=2, size=size, crop_size={"height": 64, "width": 64}),
        build_clip_tokenizer(),
    ).save_pretrained(folder)
    (folder / "training_args.json").write_text(
        json.dumps(
            {
                "init_from": "openai/clip-vit-base-patch16",
                "train_data": "org/webvid",
                "num_frames": 2,
                "max_steps": 7,
                "learning_rate": 2e-5,
            }
        )
    )
    (folder / "train_results.json").write_text(
        json.dumps(
            {"after": {"R@1": 12.0, "R@5": 30.0, "R@10": 50.0, "num_videos": 128}, "skipped_samples": 3}
        )
    )
    return folder


def test_card_metadata_round_trips(model_dir, tmp_path):
    files = assemble_repo(model_dir, tmp_path / "repo", "org/vidla-test", [RESULTS, CLASSIFICATION])
    card = ModelCard.load(tmp_path / "repo" / "README.md")
    data = card.data
    assert data.library_name == "transformers" and data.license == "apache-2.0"
    # a contrastive model has no labels of its own: no `video-classification` tag (see `CARD_TAGS`)
    assert data.pipeline_tag is None and "pipeline_tag" not in (tmp_path / "repo" / "README.md").read_text()
    assert {"video-text-retrieval", "zero-shot-video-classification"} <= set(data.tags)
    assert data.base_model == "openai/clip-vit-base-patch16" and data.datasets == ["org/webvid"]
    measured = {(r.dataset_name, r.metric_name): r.metric_value for r in data.eval_results}
    assert measured == {
        ("org/msrvtt", "text→video R@1"): 41.5,
        ("org/msrvtt", "text→video R@5"): 70.0,
        ("org/msrvtt", "text→video R@10"): 80.25,
        ("org/msrvtt", "text→video MdR"): 2.0,
        ("org/msrvtt", "text→video MnR"): 9.5,
        ("k400", "top1"): 55.5,
        ("k400", "top5"): 80.0,
    }
    text = card.text
    assert 'pipeline("zero-shot-video-classification"' in text and 'pipeline("video-text-retrieval"' in text
    assert "AutoModel.from_pretrained" in text and "AutoProcessor.from_pretrained" in text
    assert "`max_steps`: 7" in text and "3 corrupt" in text
    names = {str(f) for f in files}
    assert {
        "model.safetensors",
        "config.json",
        "processor_config.json",
        "modeling_vidla.py",
        "processing_vidla.py",
        "zero_shot_video_classification.py",
        "video_text_retrieval.py",
        "README.md",
    } <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]
    config = json.loads((tmp_path / "repo" / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel"}
    assert set(config["custom_pipelines"]) == {"zero-shot-video-classification", "video-text-retrieval"}
    assert [p.name for p in tmp_path.iterdir()] == ["repo"], "no staging folder is left beside it"


def test_a_classifier_card_says_video_classification(tmp_path):
    config = tiny_config()
    config.id2label, config.label2id = {0: "cooking", 1: "dancing", 2: "diving"}, None
    VidLAForVideoClassification(config).save_pretrained(tmp_path / "classifier")
    built = build_model_card(tmp_path / "classifier", "org/vidla-classifier")
    card = ModelCard(str(built))  # through the YAML and back
    assert card.data.pipeline_tag == "video-classification"
    assert "video-classification" in card.data.tags and "zero-shot-video-classification" not in card.data.tags
    text = card.text
    assert "A video classifier over 3 labels (cooking, dancing, diving)" in text
    assert 'pipeline("video-classification", model="org/vidla-classifier"' in text
    assert "AutoModelForVideoClassification.from_pretrained" in text
    assert "AutoModel.from_pretrained" not in text and "video-text-retrieval" not in str(card)


def test_a_classifier_is_published_as_a_classifier(model_dir, tmp_path):
    """The repository of a `VidLAForVideoClassification` folder holds its head and labels, bit for bit (read
    back with safetensors), names the classifier's Auto class, adds no custom pipeline, and files finetuned
    results under video-classification (not zero-shot)."""
    from safetensors.torch import load_file

    labels = {0: "cooking", 1: "dancing", 2: "diving"}
    classifier = VidLAForVideoClassification.from_pretrained(model_dir, id2label=labels)
    folder = tmp_path / "classifier"
    classifier.save_pretrained(folder)
    VidLAProcessor.from_pretrained(model_dir).save_pretrained(folder)
    results = {"task": "video_classification", "dataset": {"name": "org/actions"}, "metrics": {"top1": 61.0}}
    assemble_repo(folder, tmp_path / "repo", "org/vidla-classifier", [results])
    config = json.loads((tmp_path / "repo" / "config.json").read_text())
    assert config["architectures"] == ["VidLAForVideoClassification"] and "custom_pipelines" not in config
    assert "AutoModelForVideoClassification" in config["auto_map"]
    assert {int(k): v for k, v in config["id2label"].items()} == labels
    published = load_file(tmp_path / "repo" / "model.safetensors")
    original = classifier.state_dict()
    assert {"classifier.weight", "classifier.bias"} <= set(published) and set(published) == set(original)
    assert all(torch.equal(published[k], original[k]) for k in published)
    card = ModelCard.load(tmp_path / "repo" / "README.md")
    assert card.data.pipeline_tag == "video-classification"
    entry = card.data.eval_results[0]
    assert (entry.task_type, entry.metric_value) == ("video-classification", 61.0)


def test_no_results_no_model_index(model_dir, tmp_path):
    assemble_repo(model_dir, tmp_path / "repo", "org/vidla-test")
    card_text = (tmp_path / "repo" / "README.md").read_text()
    assert "model-index" not in card_text and "No evaluation results were provided" in card_text
    assert ModelCard.load(tmp_path / "repo" / "README.md").data.eval_results is None


@pytest.mark.parametrize(
    ("result", "match"),
    [
        ({**RESULTS, "task": "captioning"}, "task"),
        ({**RESULTS, "dataset": {"split": "test"}}, "dataset.name"),
        ({**RESULTS, "metrics": {"text_to_video": {"R@1": "high"}}}, "not a number"),
        ({**CLASSIFICATION, "metrics": {"top1": [55]}}, "not a number"),
        ({**RESULTS, "metrics": {}}, "metrics"),
        ([], "non-empty"),
    ],
)
def test_malformed_results_raise(result, match):
    with pytest.raises(ValueError, match=match):
        load_eval_results(result)


class RecordingApi(HfApi):
    """The real `HfApi`, with the three calls publishing may make recorded instead of sent."""

    def __init__(self):
        super().__init__(token="hf_test")
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        self.calls.append(
            (
                "create_commit",
                repo_id,
                {
                    **kwargs,
                    "files": sorted(op.path_in_repo for op in operations),
                    "sizes": {op.path_in_repo: op.upload_info.size for op in operations},
                },
            )
        )
        return "commit"

    def upload_file(self, *args, **kwargs):
        pytest.fail("publishing must be a single create_commit")

    upload_folder = upload_file


def test_push_is_one_commit_with_the_dry_run_files(model_dir, tmp_path):
    api = RecordingApi()
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps([RESULTS]))
    assert (
        publish(model_dir, "org/vidla-test", private=True, revision="v1", eval_results=results_path, api=api)
        == "commit"
    )
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "create_commit"]
    assert api.calls[0][2]["private"] is True and api.calls[1][2]["branch"] == "v1"
    commit = api.calls[2][2]
    assert commit["revision"] == "v1"
    dry = publish(model_dir, "org/vidla-test", eval_results=results_path, dry_run=tmp_path / "dry")
    expected = sorted(str(p.relative_to(dry)) for p in dry.rglob("*") if p.is_file())
    assert commit["files"] == [f for f in expected if f != ".vidla_publish"], "the marker is never pushed"
    assert commit["sizes"]["model.safetensors"] == (dry / "model.safetensors").stat().st_size
    assert not list(model_dir.parent.glob("*.hub-upload")), "the staging folder is removed"
    with pytest.raises(ValueError, match="repo_id"):
        publish(model_dir, "no-namespace", api=api)


REMOTE = """
import sys, json
sys.modules["vidla_hf"] = None
from transformers import pipeline
pipe = pipeline("zero-shot-video-classification", model=sys.argv[1], trust_remote_code=True)
print(json.dumps(pipe(sys.argv[2], candidate_labels=["a", "b"])))
"""


def test_dry_run_folder_works_as_remote_code(model_dir, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(PUBLISH_SCRIPT),
            "--model_dir",
            str(model_dir),
            "--repo_id",
            "org/x",
            "--dry_run",
            str(tmp_path / "repo"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    video = write_mp4(tmp_path / "v.mp4", frame_pattern(6, 64, 64))
    scores = run_without_vidla_hf(REMOTE, tmp_path / "repo", video, cwd=tmp_path)
    assert sorted(r["label"] for r in scores) == ["a", "b"]


# Nothing lost: publish never deletes or replaces a folder it did not write, and a failure changes nothing.


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under `folder` (hidden ones included): file bytes, None for a folder."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def training_runs(tmp_path):
    """A folder of training runs, as `outputs/` looks after a few: checkpoints, logs, arguments, notes."""
    runs = tmp_path / "outputs"
    run = runs / "vidla-run"
    (run / "checkpoint-100").mkdir(parents=True)
    (run / "checkpoint-100" / "optimizer.bin").write_bytes(bytes(range(256)) * 4)
    (run / "logs").mkdir()
    (run / "logs" / "events.out").write_bytes(b"\x00\x01loss")
    (run / "training_args.json").write_text('{"max_steps": 100}')
    (runs / "other-run").mkdir()
    (runs / "other-run" / "notes.txt").write_text("keep me")
    return runs


@pytest.mark.parametrize("overwrite", [False, True])
def test_dry_run_never_replaces_a_folder_it_did_not_write(model_dir, training_runs, overwrite):
    before = tree(training_runs.parent)
    run = training_runs / "vidla-run"
    for target in (run, training_runs, run / "training_args.json"):
        with pytest.raises(
            ValueError, match=re.escape(f"`dry_run` {'folder ' if target.is_dir() else ''}")
        ) as error:
            publish(model_dir, "org/x", dry_run=target, **({"overwrite": True} if overwrite else {}))
        assert repr(str(target)) in str(error.value)
        reason = "not written by publish" if overwrite else "is not empty"
        assert (reason if target.is_dir() else "is a file or a link, not a folder") in str(error.value)
    assert tree(training_runs.parent) == before, "byte-identical, and nothing left beside it"


def test_publish_script_refuses_a_training_run(model_dir, training_runs):
    before = tree(training_runs.parent)
    run = training_runs / "vidla-run"
    command = [sys.executable, str(PUBLISH_SCRIPT), "--model_dir", str(model_dir), "--repo_id", "org/x"]
    for flags, reason in (([], "is not empty"), (["--overwrite"], "was not written by publish")):
        done = subprocess.run(
            [*command, "--dry_run", str(run), *flags], capture_output=True, text=True, timeout=300
        )
        assert done.returncode != 0 and f"`dry_run` folder {str(run)!r} {reason}" in done.stderr
        assert tree(training_runs.parent) == before


def test_dry_run_refuses_the_model_folder_its_inside_and_its_parents(model_dir, tmp_path):
    model = tmp_path / "outputs" / "run"
    shutil.copytree(model_dir, model)
    before = tree(tmp_path)
    for target, relation in (
        (model, "is"),
        (model / "hub-repo", "is inside"),
        (model / ".." / "run", "is"),
        (tmp_path / "outputs", "contains"),
        (tmp_path, "contains"),
    ):
        for overwrite in ({}, {"overwrite": True}):
            with pytest.raises(ValueError, match=f"{relation} the model folder") as error:
                publish(model, "org/x", dry_run=target, **overwrite)
            assert str(error.value).startswith(f"`dry_run` {str(target)!r}")
    assert tree(tmp_path) == before


def test_overwrite_replaces_only_a_folder_publish_wrote(model_dir, tmp_path):
    out = tmp_path / "hub-repo"
    out.mkdir()  # an empty folder is fine without overwrite
    publish(model_dir, "org/x", dry_run=out)
    first = tree(out)
    assert "model.safetensors" in first and ".vidla_publish" in first
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # a new folder's, not the staging's 0700
    with pytest.raises(ValueError, match="is not empty"):
        publish(model_dir, "org/x", dry_run=out, eval_results=RESULTS)
    assert tree(out) == first
    publish(model_dir, "org/x", dry_run=out, eval_results=RESULTS, overwrite=True)
    second = tree(out)
    assert set(second) == set(first) | {"eval_results.json"}
    assert ModelCard.load(out / "README.md").data.eval_results[0].metric_value == 41.5
    assert second["model.safetensors"] == first["model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["hub-repo"], "the old folder and the staging are gone"
    (out / "my-notes.md").write_text("added by hand")
    with pytest.raises(ValueError, match=r"1 file\(s\) that publish did not write \(my-notes.md\)"):
        publish(model_dir, "org/x", dry_run=out, overwrite=True)
    assert (out / "my-notes.md").read_text() == "added by hand" and tree(out)["README.md"] == second[
        "README.md"
    ]
    with pytest.raises(ValueError, match="only applies with `dry_run`"):
        publish(model_dir, "org/x", overwrite=True, api=RecordingApi())


def test_a_failure_midway_leaves_the_earlier_folder_as_it_was(model_dir, tmp_path):
    """A real write failure (the file size limit, as on a full disk) while the new weights are written."""
    resource = pytest.importorskip("resource")
    import signal

    out = tmp_path / "hub-repo"
    publish(model_dir, "org/x", dry_run=out)
    before = tree(tmp_path)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, limit[1]))
    try:
        with pytest.raises(Exception, match="File too large"):
            publish(model_dir, "org/x", dry_run=out, eval_results=RESULTS, overwrite=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert (model_dir / "model.safetensors").stat().st_size > 256 * 1024, "the limit did bite"
    assert tree(tmp_path) == before, "the old folder byte-identical, no staging left beside it"


# Nothing false: only Hub ids in the card's metadata, no local paths, no NaN.


@pytest.fixture
def run_layout(model_dir, tmp_path, monkeypatch):
    """`proj/outputs/run` (a model folder) and `proj/webvid/clips` (local shards) seen from elsewhere."""
    proj = tmp_path / "home" / "x" / "proj"
    run = proj / "outputs" / "run"
    run.mkdir(parents=True)
    shutil.copyfile(model_dir / "config.json", run / "config.json")
    (proj / "webvid" / "clips").mkdir(parents=True)
    (proj / "webvid" / "clips" / "train-00000.tar").write_bytes(b"")
    monkeypatch.chdir(tmp_path)

    def with_args(**training_args):
        (run / "training_args.json").write_text(json.dumps({"max_steps": 7, **training_args}))
        return run

    with_args.proj = proj
    return with_args


@pytest.mark.parametrize(
    ("train_data", "datasets", "described"),
    [
        ("/home/x/data/synthetic", None, "local data (synthetic)"),  # gone since: nothing more is known
        ("{proj}/webvid/clips", None, "local WebDataset shards (clips)"),
        ("data/synthetic", None, "local WebDataset shards (synthetic)"),  # the scripts' default
        ("./my_shards/", None, "local data (my_shards)"),
        (
            "/data/webvid/train-{00000..00009}.tar",
            None,
            "local WebDataset shards (webvid/train-{00000..00009}.tar)",
        ),
        ("webvid/clips", None, "local WebDataset shards (clips)"),  # relative to the run's project folder
        ("org/webvid", ["org/webvid"], "org/webvid"),
    ],
)
def test_card_datasets_are_hub_ids_never_local_paths(run_layout, train_data, datasets, described):
    run = run_layout(
        train_data=train_data.replace("{proj}", str(run_layout.proj)),
        init_from="/home/x/checkpoints/clip-b16",
    )
    card = build_model_card(run, "org/x")
    assert card.data.datasets == datasets
    assert f"- `train_data`: {described}\n" in card.text
    assert card.data.base_model is None and "- `init_from`: a local checkpoint (clip-b16)\n" in card.text
    assert "/home/x" not in str(card) and str(run.parent) not in str(card)


def test_card_dataset_name_and_eval_datasets(run_layout):
    run = run_layout(train_data="data/synthetic", init_from="openai/clip-vit-base-patch16")
    local_eval = {**RESULTS, "dataset": {"name": "/home/x/data/synthetic", "split": "val"}}
    card = build_model_card(run, "org/x", [local_eval, CLASSIFICATION], dataset_name="org/webvid-10m")
    assert card.data.datasets == ["org/webvid-10m"] and card.data.base_model == "openai/clip-vit-base-patch16"
    datasets = {(r.dataset_type, r.dataset_name) for r in card.data.eval_results}
    assert datasets == {("local data (synthetic)",) * 2, ("k400", "k400")}
    assert "/home/x" not in str(card)
    for bad in ("not a dataset id", "org/name/extra", ""):
        with pytest.raises(
            ValueError, match=re.escape(f"`dataset_name` is not a valid Hub repo id: {bad!r}")
        ):
            build_model_card(run, "org/x", dataset_name=bad)


NON_FINITE = [float("nan"), float("inf"), -float("inf")]


@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_metrics_never_reach_the_card(model_dir, value):
    retrieval = {**RESULTS, "metrics": {"text_to_video": {"R@1": value, "R@5": 70.0}}}
    classification = {**CLASSIFICATION, "metrics": {"top1": 55.5, "top5": value}}
    for bad, metric in ((retrieval, "'text_to_video R@1'"), (classification, "'top5'")):
        message = re.escape(f"metric {metric} is {value!r}, not a finite number")
        for build in (
            load_eval_results,
            eval_results_for_card,
            lambda r: build_model_card(model_dir, "org/x", r),
        ):
            with pytest.raises(ValueError, match=message):
                build([bad])


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", '"NaN"', '"inf"'])
def test_non_finite_metrics_in_json_files_are_refused(tmp_path, literal):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS).replace("41.5", literal))
    assert math.isnan(json.loads("NaN")), "Python's json reads the NaN literal as a float"
    with pytest.raises(ValueError, match="metric 'text_to_video R@1' is .*not a (finite )?number"):
        load_eval_results(path)


def test_non_finite_train_results_are_refused(model_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(model_dir, run)
    (run / "train_results.json").write_text('{"after": {"R@1": NaN, "R@5": 3.0, "R@10": 5.0}}')
    with pytest.raises(
        ValueError, match=r"train_results.json'?: `after\['R@1'\]` is nan, not a finite number"
    ):
        build_model_card(run, "org/x")


# Hub repo ids are checked by huggingface_hub's own rules, before anything is loaded or written.


@pytest.mark.parametrize(
    "repo_id", ["not a repo id", "org/name/extra", "", "-bad-/x", "org/" + "a" * 97, "a" * 97, "org/x.git"]
)
def test_invalid_repo_ids_fail_before_any_work(model_dir, tmp_path, monkeypatch, repo_id):
    def tripwire(*args, **kwargs):
        pytest.fail("the model was loaded before `repo_id` was checked")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", tripwire)
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", tripwire)
    api = RecordingApi()
    for kwargs in ({"dry_run": tmp_path / "repo"}, {"api": api}):
        with pytest.raises(
            ValueError, match=re.escape(f"`repo_id` is not a valid Hub repo id: {repo_id!r}.")
        ):
            publish(model_dir, repo_id, **kwargs)
    assert api.calls == [] and list(tmp_path.iterdir()) == []
    assert not list(model_dir.parent.glob(".*hub-upload*"))


def test_repo_id_must_be_a_namespaced_string(model_dir):
    with pytest.raises(ValueError, match=re.escape("`repo_id` must look like 'namespace/name', got 'name'.")):
        publish(model_dir, "name", api=RecordingApi())
    with pytest.raises(TypeError, match="`repo_id` must be a Hub repo id string, got NoneType"):
        publish(model_dir, None, api=RecordingApi())


def test_hub_doctests_are_not_skipped():
    modules = [vidla_hf.hub] + [
        importlib.import_module(f"vidla_hf.hub.{info.name}")
        for info in pkgutil.iter_modules(vidla_hf.hub.__path__)
    ]
    examples = {
        module.__name__: [e for test in doctest.DocTestFinder().find(module) for e in test.examples]
        for module in modules
    }
    for name in ("vidla_hf.hub.publishing", "vidla_hf.hub.model_card", "vidla_hf.hub.eval_results"):
        assert len(examples[name]) >= 2, f"{name} has no runnable example"
    skipped = [e.source for found in examples.values() for e in found if e.options.get(doctest.SKIP)]
    assert sum(map(len, examples.values())) >= 15 and not skipped


# The card comes from a template shipped in the package; its metadata is read back by huggingface_hub itself.


def test_card_eval_results_round_trip_through_huggingface_hub(model_dir, tmp_path):
    retrieval = {
        "task_type": "video-text-retrieval",
        "task_name": "Text-video retrieval",
        "dataset_type": "org/msrvtt",
        "dataset_name": "org/msrvtt",
        "dataset_split": "test",
    }
    classification = {
        "task_type": "zero-shot-video-classification",
        "task_name": "Zero-shot video classification",
        "dataset_type": "k400",
        "dataset_name": "k400",
        "dataset_split": "val",
    }
    expected = [
        EvalResult(**retrieval, metric_type=kind, metric_name=f"text→video {metric}", metric_value=value)
        for kind, metric, value in (
            ("r_at_1", "R@1", 41.5),
            ("r_at_5", "R@5", 70.0),
            ("r_at_10", "R@10", 80.25),
            ("mdr", "MdR", 2.0),
            ("mnr", "MnR", 9.5),
        )
    ] + [
        EvalResult(**classification, metric_type=name, metric_name=name, metric_value=value)
        for name, value in (("top1", 55.5), ("top5", 80.0))
    ]
    assert eval_results_for_card([RESULTS, CLASSIFICATION]) == expected
    card = build_model_card(model_dir, "org/vidla-test", [RESULTS, CLASSIFICATION])
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.eval_results == expected
    assert loaded.data.model_name == "vidla-test" and str(loaded) == str(card)
    assert "{{" not in loaded.text and "{%" not in loaded.text and "{#" not in loaded.text
    assert loaded.text.startswith("\n# vidla-test\n\n") and loaded.text.endswith("not for real videos.\n")


def test_card_template_ships_in_the_wheel(model_dir, tmp_path):
    """The package as pip installs it (a wheel built from pyproject.toml, not this editable checkout)
    holds the template, and renders the card from its own copy."""
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", "dist", "."]
    done = subprocess.run(build, cwd=source, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (source / "dist").glob("vidla_hf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "vidla_hf/hub/model_card.md.jinja" in names, "package data missing from pyproject.toml"
        shipped = archive.read("vidla_hf/hub/model_card.md.jinja")
    assert shipped == vidla_hf.hub.model_card.MODEL_CARD_TEMPLATE.read_bytes()
    installed = tmp_path / "installed"
    install = [*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(installed), str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    render = (
        "import sys; from pathlib import Path; from vidla_hf.hub import build_model_card, model_card; "
        "assert Path(model_card.__file__).is_relative_to(sys.argv[1]), model_card.__file__; "
        "print(build_model_card(sys.argv[2], 'org/x').text)"
    )
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run(
        [sys.executable, "-c", render, str(installed), str(model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("\n# x\n") and "## Limitations" in done.stdout
