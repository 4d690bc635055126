"""The README's inference, evaluation and publishing snippets run as written (on a tiny stand-in for the
main job's model, in a scratch folder laid out like the repository after the main job)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.data.synthetic import generate_synthetic_dataset

ROOT = Path(__file__).parents[1]
SECTIONS = ("## Inference", "## Evaluation", "## Publishing to the Hub")


def blocks(language: str) -> list[str]:
    readme = ROOT.joinpath("README.md").read_text()
    found = []
    for section in SECTIONS:
        body = readme.split(section, 1)[1].split("\n## ", 1)[0]
        found += re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)
    return found


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workspace")
    model_dir = folder / "outputs" / "vidla-pretrain"
    VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=2)).save_pretrained(model_dir)
    size = {"shortest_edge": 64}
    VidLAProcessor(
        VidLAVideoProcessor(num_frames=2, size=size, crop_size={"height": 64, "width": 64}),
        build_clip_tokenizer(),
    ).save_pretrained(model_dir)
    generate_synthetic_dataset(folder / "data" / "synthetic", {"train": 4, "val": 8}, clips_per_shard=4)
    (folder / "examples").symlink_to(ROOT / "examples")
    return folder


def test_python_snippets_run(workspace):
    code = "\n".join(blocks("python"))
    assert "pipeline(" in code and "evaluate_retrieval" in code and "publish(" in code
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "model.safetensors" in result.stdout


def test_shell_snippets_run(workspace):
    commands = [
        line for block in blocks("bash") for line in block.replace("\\\n", " ").splitlines() if line.strip()
    ]
    assert any("evaluate.py" in c for c in commands) and any("publish.py" in c for c in commands)
    for command in commands:
        command = re.sub(r"^python ", f"{sys.executable} ", command.split("#")[0])
        result = subprocess.run(
            command,
            shell=True,
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert result.returncode == 0, (command, result.stderr[-4000:])
    assert (workspace / "results" / "retrieval.json").is_file()
    assert (workspace / "outputs" / "hub-repo" / "README.md").is_file()
