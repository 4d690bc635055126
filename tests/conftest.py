import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

TINY_TOWER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
TINY_TEXT = {
    **TINY_TOWER,
    "vocab_size": 99,
    "max_position_embeddings": 16,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
ROOT = Path(__file__).parents[1]
# Training options that keep an `examples/pretrain.py` run to seconds (`--num_frames` first: some tests drop it).
FAST_TRAINING = ["--num_frames", "2", "--per_device_batch_size", "4", "--eval_max_samples", "8"]
FAST_TRAINING += ["--report_to", "none", "--logging_steps", "1", "--shuffle_buffer", "8"]


def tiny_vision_config(**overrides):
    from vidla_hf import VidLAVisionConfig

    fields = {
        **TINY_TOWER,
        "image_size": 8,
        "patch_size": 2,
        "num_frames": 4,
        "mst_levels": 2,
        "mst_tokens_per_level": 2,
        "mst_temporal_scale": 2,
    }
    fields.update(overrides)
    return VidLAVisionConfig(**fields)


def tiny_config(**vision_overrides):
    from vidla_hf import VidLAConfig

    return VidLAConfig(
        text_config=TINY_TEXT,
        vision_config=tiny_vision_config(**vision_overrides).to_dict(),
        projection_dim=16,
    )


def randomize_(model: torch.nn.Module, std: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Gives every parameter random values (including the zero-initialised ones), so no path is trivial."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("logit_scale"):
                continue
            noise = torch.randn(param.shape, generator=generator) * std
            param.copy_(noise + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    return model


@pytest.fixture(scope="session", autouse=True)
def session_temp_dir(tmp_path_factory):
    """Points `tempfile` (docstring examples use `tempfile.mkdtemp()`) and every subprocess (`TMPDIR`: torch
    elastic, Ray workers, FFmpeg) at one folder that is removed when the session ends, so that a test run leaves
    nothing behind in the system's temp folder."""
    import os
    import shutil
    import tempfile

    tmp_path_factory.getbasetemp()  # pytest's own folders stay where they are (failed tests' are kept)
    # Short, directly under the system's temp folder: Ray puts its Unix sockets in it (at most 107 characters).
    folder = Path(tempfile.mkdtemp(prefix="vidla-hf-tests-"))
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = str(folder), str(folder)
    yield folder
    tempfile.tempdir = saved_tempdir
    if saved_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved_env
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def text_inputs():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, 99, (3, 7), generator=generator)
    input_ids[:, 0], input_ids[:, -1] = 0, 2
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def run_without_vidla_hf(script: str, *args, cwd) -> object:
    """Runs `script` in a fresh Python in which `import vidla_hf` fails (so only Hub remote code can be used)
    and returns the JSON printed on its last line."""
    import json
    import os
    import subprocess

    guarded = (
        'import sys\nsys.modules["vidla_hf"] = None  # `import vidla_hf` now raises ImportError\n' + script
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(Path(cwd) / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", guarded, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def load_benchmark(name: str):
    """`benchmarks/<name>.py` imported as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now: each multi-process launch gets its own rendezvous port (accelerate's
    default 29500 may be held by another test running alongside, or by anything else on the machine)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accelerate_launch(args, num_processes: int = 1, timeout: int = 600, check: bool = True):
    """`accelerate launch` of a repository script on the CPU. Several CPU processes need the torchrun launcher
    (`--multi_gpu`) with ACCELERATE_USE_CPU=1: `--cpu` alone starts one process, whatever `--num_processes` says."""
    import os
    import subprocess

    mode = ["--multi_gpu"] if num_processes > 1 else ["--cpu"]
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *mode,
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    if num_processes > 1:
        launcher += ["--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port())]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(
        [*launcher, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray (2 CPUs, no dashboard) for every test that needs it: starting one takes ~30 s."""
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
