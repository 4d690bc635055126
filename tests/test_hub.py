"""Publishing: the assembled repository, the model card, and one commit at the `HfApi` boundary."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_without_vidla_hf
from huggingface_hub import HfApi, ModelCard
from video_fixtures import frame_pattern, write_mp4

from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.hub import assemble_repo, load_eval_results, publish

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
    assert data.pipeline_tag == "video-classification" and "video-text-retrieval" in data.tags
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
    assert not (tmp_path / "repo.partial").exists()


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
    assert commit["files"] == expected
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
    script = Path(__file__).parents[1] / "examples" / "publish.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
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
