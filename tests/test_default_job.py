"""The embedded default job learns, the README's figures come from a recorded run, and the quickstart is
deterministic and says what its numbers are."""

import json
import os
import subprocess
import sys

from conftest import ROOT, accelerate_launch

from vidla_hf.data.synthetic import generate_synthetic_dataset


def test_a_shortened_default_job_learns_far_above_chance(tmp_path):
    data = tmp_path / "synthetic"
    generate_synthetic_dataset(data, {"train": 512, "val": 64}, clips_per_shard=64)
    output = tmp_path / "run"
    # The default recipe (tiny-cpu) and options, only shorter and on a smaller val split.
    accelerate_launch(
        [
            "examples/pretrain.py",
            "--train_data",
            str(data),
            "--output_dir",
            str(output),
            "--max_steps",
            "80",
            "--eval_steps",
            "1000",
            "--eval_max_samples",
            "64",
            "--report_to",
            "none",
        ]
    )
    results = json.loads((output / "train_results.json").read_text())
    before, after = results["before"], results["after"]
    assert after["num_videos"] == 64
    chance = {"R@5": 100 * 5 / 64, "R@10": 100 * 10 / 64}
    assert after["R@10"] >= 2 * chance["R@10"], after
    assert after["R@5"] >= 2 * chance["R@5"], after
    assert after["R@5"] > before["R@5"] + 5 and after["R@10"] > before["R@10"] + 10, (before, after)


def test_readme_figures_are_those_of_the_recorded_run():
    result = subprocess.run(
        [sys.executable, "docs/render_results.py", "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    recorded = json.loads((ROOT / "docs" / "results" / "main_job.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert f"| after {recorded['run']['steps']} steps | {recorded['after']['R@1']:.1f} |" in readme


def test_quickstart_is_deterministic_and_says_when_its_weights_are_untrained(tmp_path):
    data = tmp_path / "synthetic"
    generate_synthetic_dataset(data, {"train": 2, "val": 4}, clips_per_shard=4)
    command = [
        sys.executable,
        str(ROOT / "examples" / "quickstart.py"),
        "--model",
        "none",
        "--data",
        str(data),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first, second = (
        subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env) for _ in range(2)
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout == second.stdout
    assert first.stdout.startswith("UNTRAINED") and "say nothing about retrieval" in first.stdout
