"""Publishing a trained VidLA folder to the Hub: safetensors, remote code, pipelines and an honest model card.

All Hub I/O of the library lives here. `assemble_repo` writes exactly what would be pushed; `publish`
pushes it as a single commit (`HfApi.create_commit`), or with `dry_run` only writes the folder.

Nothing is lost: an existing folder is replaced only if it is empty, or if `overwrite=True` and it was
written by `assemble_repo` (it holds the `.vidla_publish` marker listing what was written, and nothing
else); the new folder is built beside it and swapped in by renames, so a failure leaves the old one as it
was. Nothing is false: only Hub ids go into the card's metadata (local data is described by its folder
name, never its path), and only finite measured numbers into its `model-index`.
"""

import inspect
import json
import math
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

EVAL_TASKS = {
    "retrieval": ("video-text-retrieval", "Text-video retrieval"),
    "classification": ("zero-shot-video-classification", "Zero-shot video classification"),
    "multiple_choice": ("multiple-choice", "Zero-shot multiple choice"),
}
RETRIEVAL_DIRECTIONS = {
    "text_to_video": "text→video",
    "video_to_text": "video→text",
    "text_to_video_dsl": "text→video (DSL)",
    "video_to_text_dsl": "video→text (DSL)",
}
PIPELINE_TASKS = ("zero-shot-video-classification", "video-text-retrieval")
PUBLISH_MARKER = ".vidla_publish"  # written into every folder `assemble_repo` writes; never pushed
SYNTHETIC_DATA = "data/synthetic"  # the training scripts' default data: local WebDataset shards
GLOB_CHARACTERS = "*?[{"


def _check_repo_id(repo_id: Any, argument: str = "repo_id", namespace: bool = True) -> None:
    """huggingface_hub's own repo id rules (`validate_repo_id`), plus a namespace where the card links to it."""
    if not isinstance(repo_id, str):
        raise TypeError(
            f"`{argument}` must be a Hub repo id string, got {type(repo_id).__name__}: {repo_id!r}."
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"`{argument}` is not a valid Hub repo id: {repo_id!r}. {error}") from None
    if namespace and "/" not in repo_id:
        raise ValueError(f"`{argument}` must look like 'namespace/name', got {repo_id!r}.")


def _dataset_ids(dataset_name: Any) -> list[str] | None:
    """`dataset_name` (one Hub dataset id or a list of them) as a validated list."""
    if dataset_name is None:
        return None
    names = [dataset_name] if isinstance(dataset_name, str) else dataset_name
    if not isinstance(names, (list, tuple)) or not names:
        raise TypeError(f"`dataset_name` must be a Hub dataset id or a list of them, got {dataset_name!r}.")
    for name in names:
        _check_repo_id(name, "dataset_name", namespace=False)
    return list(names)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_metric(where: str, name: str, value: Any) -> None:
    if not _is_number(value):
        raise ValueError(
            f"{where}: metric {name!r} is {value!r}, not a number (retrieval metrics may be an object of "
            "numbers)."
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(
            f"{where}: metric {name!r} is {value!r}, not a finite number; a NaN or infinite result cannot go "
            "in a model card."
        )


def load_eval_results(source: str | os.PathLike | dict | list) -> list[dict]:
    """Reads and validates the results written by `examples/evaluate.py` (one object or a list of them).

    Raises `ValueError` naming what is malformed: an unknown task, a missing dataset name, metrics that
    are not finite numbers (NaN and Infinity, which Python's `json` accepts, included).
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            results = json.loads(Path(source).read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"`eval_results` file {str(source)!r} is not valid JSON: {error}") from None
    elif isinstance(source, (dict, list)):
        results = source
    else:
        raise TypeError(
            f"`eval_results` must be a JSON file path, an object or a list of objects, got {type(source).__name__}."
        )
    results = [results] if isinstance(results, dict) else results
    if not isinstance(results, list) or not results:
        raise ValueError("Evaluation results must be a JSON object or a non-empty list of them.")
    for index, result in enumerate(results):
        where = f"evaluation result #{index}"
        if not isinstance(result, dict):
            raise ValueError(f"{where} is not an object.")
        if result.get("task") not in EVAL_TASKS:
            raise ValueError(
                f"{where}: `task` must be one of {sorted(EVAL_TASKS)}, got {result.get('task')!r}."
            )
        dataset = result.get("dataset")
        if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str) or not dataset["name"]:
            raise ValueError(f"{where}: `dataset.name` is missing.")
        metrics = result.get("metrics")
        if not isinstance(metrics, dict) or not metrics:
            raise ValueError(f"{where}: `metrics` must be a non-empty object.")
        for name, value in metrics.items():
            if result["task"] == "retrieval" and isinstance(value, dict) and value:
                for metric, number in value.items():
                    _check_metric(where, f"{name} {metric}", number)
            else:
                _check_metric(where, name, value)
    return results


def _search_dirs(model_dir: str | os.PathLike | None) -> list[Path]:
    """Where a relative path of the training run may point: the working directory, the model folder and
    every folder above it (a run started in `proj/` wrote `proj/outputs/run` and read `proj/data/...`)."""
    dirs = [Path.cwd()]
    if model_dir is not None:
        model_dir = Path(model_dir).resolve()
        dirs += [model_dir, *model_dir.parents]
    return dirs


def _hub_id(value: Any, search_dirs: list[Path]) -> str | None:
    """`value` if it names a Hub repo rather than local files. Local: absolute, `~` and `./` paths, shard
    globs, anything found under `search_dirs`, and the training scripts' default synthetic folder."""
    if not isinstance(value, str) or not value or value.startswith((".", "/", "~", "\\")):
        return None
    if os.path.isabs(value) or any(c in value for c in GLOB_CHARACTERS) or ".tar" in value:
        return None
    if value.rstrip("/") == SYNTHETIC_DATA:
        return None
    try:
        validate_repo_id(value)
    except HFValidationError:
        return None
    if any((folder / value).exists() for folder in search_dirs):
        return None
    return value


def _local_name(value: str) -> str:
    """The last part of a local path (with its folder for a shard pattern): no directories above it."""
    path = Path(value.rstrip("/\\") or value)
    name = path.name or path.expanduser().resolve().name or "/"
    if any(c in name for c in GLOB_CHARACTERS) and path.parent.name:
        name = f"{path.parent.name}/{name}"
    return name


def _describe_data(value: str, search_dirs: list[Path]) -> str:
    """A Hub dataset id as it is; local data as 'local WebDataset shards (name)' or 'local data (name)'."""
    if _hub_id(value, search_dirs):
        return value
    found = [folder / value for folder in search_dirs if (folder / value).is_dir()]
    shards = (
        ".tar" in value or value.rstrip("/") == SYNTHETIC_DATA or any(any(f.glob("*.tar")) for f in found)
    )
    return f"local {'WebDataset shards' if shards else 'data'} ({_local_name(value)})"


def eval_results_for_card(
    results: list[dict], model_dir: str | os.PathLike | None = None
) -> list[EvalResult]:
    """`EvalResult`s for the card's `model-index`, one per measured metric (nothing added, nothing rounded).

    Results are validated first (`load_eval_results`). A dataset name that is a local path (relative ones
    are looked up from the working directory and from `model_dir` and the folders above it) is described
    by its folder name, not its path: only Hub ids go into the metadata as ids.
    """
    results = load_eval_results(results)
    search_dirs = _search_dirs(model_dir)
    entries = []
    for result in results:
        task_type, task_name = EVAL_TASKS[result["task"]]
        dataset = result["dataset"]
        dataset_label = _describe_data(dataset["name"], search_dirs)
        common = {
            "task_type": task_type,
            "task_name": task_name,
            "dataset_type": dataset_label,
            "dataset_name": dataset_label,
            "dataset_split": dataset.get("split"),
        }
        for name, value in result["metrics"].items():
            if isinstance(value, dict):
                for metric, number in value.items():
                    entries.append(
                        EvalResult(
                            **common,
                            metric_type=metric.lower().replace("@", "_at_"),
                            metric_name=f"{RETRIEVAL_DIRECTIONS.get(name, name)} {metric}",
                            metric_value=number,
                        )
                    )
            elif not name.startswith("num_"):
                entries.append(EvalResult(**common, metric_type=name, metric_name=name, metric_value=value))
    return entries


def _results_table(entries: list[EvalResult]) -> str:
    rows = ["| task | dataset | split | metric | value |", "|---|---|---|---|---|"]
    for entry in entries:
        rows.append(
            f"| {entry.task_name} | {entry.dataset_name} | {entry.dataset_split or ''} | "
            f"{entry.metric_name} | {entry.metric_value:.2f} |"
        )
    return "\n".join(rows)


def _read_run_file(path: Path) -> dict | None:
    """A JSON object the training run wrote next to the weights, or None if there is none."""
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(f"{str(path)!r} must hold a JSON object, got {type(content).__name__}.")
    return content


def _check_model_dir(model_dir: Path) -> None:
    if not (model_dir / "config.json").is_file():
        raise ValueError(
            f"`model_dir` {str(model_dir)!r} has no config.json: not a saved VidLA model folder."
        )


def build_model_card(
    model_dir: str | os.PathLike,
    repo_id: str,
    eval_results: list[dict] | None = None,
    license: str = "apache-2.0",
    dataset_name: str | list[str] | None = None,
) -> ModelCard:
    """The model card: metadata (library, pipeline tag, tags, base model, datasets, license, model-index from
    the measured `eval_results` only), usage for AutoModel, the processor and both pipelines, and the
    training details read from the run's `training_args.json` / `train_results.json`.

    `datasets` holds `dataset_name` (Hub dataset ids) if given, else the run's `train_data` if that is a
    Hub id; local training data is described by its folder name only ("local WebDataset shards
    (synthetic)"), never by its path.
    """
    _check_repo_id(repo_id)
    datasets = _dataset_ids(dataset_name)
    model_dir = Path(model_dir)
    _check_model_dir(model_dir)
    search_dirs = _search_dirs(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    train_file = model_dir / "train_results.json"
    training_args = _read_run_file(model_dir / "training_args.json")
    train_results = _read_run_file(train_file)
    after = (train_results or {}).get("after")
    if after:
        for key in ("R@1", "R@5", "R@10"):
            value = after.get(key) if isinstance(after, dict) else None
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(
                    f"{str(train_file)!r}: `after[{key!r}]` is {value!r}, not a finite number; the card would "
                    "report it."
                )
    base_model = _hub_id((training_args or {}).get("init_from"), search_dirs)
    if datasets is None:
        datasets = [d for d in ((training_args or {}).get("train_data"),) if _hub_id(d, search_dirs)]
    entries = eval_results_for_card(eval_results, model_dir) if eval_results else None
    name = repo_id.split("/")[-1]
    vision = config["vision_config"]
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="video-classification",
        tags=[
            "vidla",
            "video-text-retrieval",
            "zero-shot-video-classification",
            "video",
            "clip",
            "custom_code",
        ],
        license=license,
        base_model=base_model,
        datasets=datasets or None,
        model_name=name,
        eval_results=entries,
    )
    sections = [
        f"# {name}",
        "A [VidLA](https://arxiv.org/abs/2403.14870) video-language alignment model built with "
        "vidla_hf: a CLIP text tower and a video tower with hierarchical temporal attention "
        f"and multi-scale [MST] tokens ({vision['mst_levels']} levels × {vision['mst_tokens_per_level']} tokens, "
        f"temporal scale {vision['mst_temporal_scale']}), {vision['num_frames']} frames of "
        f"{vision['image_size']}×{vision['image_size']} px, patch {vision['patch_size']}, hidden size "
        f"{vision['hidden_size']}, {vision['num_hidden_layers']} layers.",
        "## Usage",
        "```python\nfrom transformers import AutoModel, AutoProcessor, pipeline\n\n"
        f'model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)\n'
        f'processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)\n'
        'inputs = processor(text=["a dog catches a frisbee"], videos=["clip.mp4"], return_tensors="pt")\n'
        "outputs = model(**inputs)  # outputs.logits_per_video, video_embeds, text_embeds\n\n"
        f'classifier = pipeline("zero-shot-video-classification", model="{repo_id}", trust_remote_code=True)\n'
        'classifier("clip.mp4", candidate_labels=["cooking", "dancing"])\n\n'
        f'retriever = pipeline("video-text-retrieval", model="{repo_id}", trust_remote_code=True)\n'
        'retriever("a dog catches a frisbee", videos=["a.mp4", "b.mp4"])\n```\n'
        "With `pip install vidla_hf` and `import vidla_hf`, `trust_remote_code` is not needed.",
        "## Evaluation",
        _results_table(entries)
        if entries
        else "No evaluation results were provided with this upload, so none are claimed here.",
        "## Training",
    ]
    if training_args:
        keys = (
            "init_from",
            "config",
            "train_data",
            "num_frames",
            "max_steps",
            "per_device_batch_size",
            "gradient_accumulation_steps",
            "learning_rate",
            "min_learning_rate",
            "weight_decay",
            "mask_ratio",
            "freeze_text_tower",
            "lora_rank",
            "mixed_precision",
            "seed",
        )
        shown = dict(training_args)
        if isinstance(shown.get("train_data"), str):
            shown["train_data"] = _describe_data(shown["train_data"], search_dirs)
        if isinstance(shown.get("init_from"), str) and not base_model:
            shown["init_from"] = f"a local checkpoint ({_local_name(shown['init_from'])})"
        sections.append("\n".join(f"- `{k}`: {shown.get(k)}" for k in keys if k in shown))
    else:
        sections.append(
            "The training run's arguments were not found next to the weights (`training_args.json`)."
        )
    if after:
        sections.append(
            f"Zero-shot text→video retrieval on the run's own evaluation split after training: "
            f"R@1 {after['R@1']:.1f}, R@5 {after['R@5']:.1f}, R@10 {after['R@10']:.1f} "
            f"({after.get('num_videos')} videos); {train_results.get('skipped_samples', 0)} corrupt "
            "training samples were skipped."
        )
    sections += [
        "## Limitations",
        "Retrieval quality depends on the pretraining data; a model trained on the embedded synthetic "
        "dataset only knows coloured shapes and is meant for trying the pipeline, not for real videos.",
    ]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"
    return ModelCard(content)


def _files_not_written_by_publish(folder: Path) -> list[str] | None:
    """The files in `folder` that its publish marker does not list; None if it has no readable marker."""
    try:
        listed = set(json.loads((folder / PUBLISH_MARKER).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    others = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if (path.is_symlink() or not path.is_dir()) and relative not in listed | {PUBLISH_MARKER}:
            others.append(relative)
    return others


def _check_target(target: Path, model_dir: Path, overwrite: bool, argument: str) -> None:
    """Refuses a destination that would lose data: the model folder, a folder inside it or above it, a
    non-folder, and a non-empty folder unless `overwrite` and it holds only what publish wrote there."""
    shown, resolved, model = str(target), target.resolve(), model_dir.resolve()
    if resolved == model or model in resolved.parents or resolved in model.parents:
        relation = "is" if resolved == model else "is inside" if model in resolved.parents else "contains"
        raise ValueError(
            f"`{argument}` {shown!r} {relation} the model folder {str(model_dir)!r}; the repository folder "
            "must be somewhere else (a new or empty folder, e.g. next to the model folder)."
        )
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ValueError(f"`{argument}` {shown!r} is a file or a link, not a folder; it is left alone.")
    if not target.exists() or not any(target.iterdir()):
        return
    if not overwrite:
        raise ValueError(
            f"`{argument}` folder {shown!r} is not empty; it is left alone. Give a new or empty folder, or "
            "overwrite=True (--overwrite) to replace a folder that publish wrote before."
        )
    others = _files_not_written_by_publish(target)
    if others is None:
        raise ValueError(
            f"`{argument}` folder {shown!r} was not written by publish (it has no {PUBLISH_MARKER} marker): "
            "it may be a training run or other data, so it is not replaced even with overwrite=True. Give "
            "a new or empty folder."
        )
    if others:
        listed = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise ValueError(
            f"`{argument}` folder {shown!r} holds {len(others)} file(s) that publish did not write ({listed}); "
            "it is not replaced even with overwrite=True. Move them out first."
        )


def _swap_in(staging: Path, target: Path) -> None:
    """Renames the finished `staging` folder to `target`; an old `target` (already checked) is renamed
    aside first, restored if the second rename fails, and removed only once the new one is in place."""
    if not target.exists():
        os.rename(staging, target)
        return
    aside = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex[:12]}")
    os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside)


def assemble_repo(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    repo_id: str,
    eval_results: list[dict] | None = None,
    license: str = "apache-2.0",
    *,
    overwrite: bool = False,
    dataset_name: str | list[str] | None = None,
) -> list[Path]:
    """Writes the repository folder: safetensors weights, config with `auto_map` and `custom_pipelines`,
    processor files, the code files for remote loading and pipelines, and the model card. Returns the files
    to push, relative to `out_dir`.

    `out_dir` must be new or empty, or, with `overwrite=True`, a folder this function wrote before and
    nothing else did (it holds a `.vidla_publish` marker listing its files; the marker is never pushed).
    It may not be the model folder, inside it or above it. Everything is checked and read before anything
    is written; the folder is built in a hidden sibling and swapped in by renames, so a failure leaves
    `out_dir` as it was.
    """
    from transformers import AutoModel, AutoProcessor
    from transformers.dynamic_module_utils import get_relative_import_files

    from .pipelines import VideoTextRetrievalPipeline, ZeroShotVideoClassificationPipeline

    _check_repo_id(repo_id)
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    _check_model_dir(model_dir)
    _check_target(out_dir, model_dir, overwrite, "out_dir")
    results = load_eval_results(eval_results) if eval_results is not None else None
    card = build_model_card(model_dir, repo_id, results, license, dataset_name)
    model = AutoModel.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    pipelines = {
        "zero-shot-video-classification": ZeroShotVideoClassificationPipeline,
        "video-text-retrieval": VideoTextRetrievalPipeline,
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.partial-"))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        config = json.loads((staging / "config.json").read_text())
        config["custom_pipelines"] = {}
        for task, pipeline_class in pipelines.items():
            module = Path(inspect.getsourcefile(pipeline_class))
            for source in (module, *map(Path, get_relative_import_files(module))):  # and what it imports
                shutil.copyfile(source, staging / source.name)
            config["custom_pipelines"][task] = {
                "impl": f"{module.stem}.{pipeline_class.__name__}",
                "pt": ["AutoModel"],
                "type": "multimodal",
            }
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for extra in ("training_args.json", "train_results.json"):
            if (model_dir / extra).is_file():
                shutil.copyfile(model_dir / extra, staging / extra)
        card.save(staging / "README.md")
        if results:
            (staging / "eval_results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
        files = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
        marker = {
            "written_by": "vidla_hf.hub.assemble_repo",
            "repo_id": repo_id,
            "files": list(map(str, files)),
        }
        (staging / PUBLISH_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        _check_target(out_dir, model_dir, overwrite, "out_dir")  # again: nothing appeared there meanwhile
        _swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # our own temporary folder; gone once swapped in
    return files


def publish(
    model_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    eval_results: str | os.PathLike | list | dict | None = None,
    dry_run: str | os.PathLike | None = None,
    api: HfApi | None = None,
    token: str | None = None,
    license: str = "apache-2.0",
    *,
    overwrite: bool = False,
    dataset_name: str | list[str] | None = None,
):
    """Assembles the repository and pushes it in a single commit; with `dry_run=FOLDER` only writes it.

    Every argument is checked before anything is loaded or written: `repo_id` by huggingface_hub's rules,
    `dry_run` as in `assemble_repo` (a new or empty folder; `overwrite=True` replaces only a folder publish
    wrote), `dataset_name` (Hub dataset ids for the card's metadata) and the evaluation results.

    Example (a tiny untrained model in a scratch folder):

    ```python
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
    >>> from vidla_hf.hub import publish
    >>> run = Path(tempfile.mkdtemp())
    >>> VidLAModel(VidLAConfig.from_preset("vidla-tiny")).save_pretrained(run / "model")
    >>> processor = VidLAProcessor(VidLAVideoProcessor(num_frames=8), build_clip_tokenizer())
    >>> _ = processor.save_pretrained(run / "model")
    >>> repo = publish(run / "model", "org/vidla-tiny", dry_run=run / "hub-repo")  # writes, pushes nothing
    >>> {"model.safetensors", "config.json", "README.md", "zero_shot_video_classification.py"} <= {
    ...     p.name for p in repo.iterdir()
    ... }
    True
    >>> publish(run / "model", "org/vidla-tiny", dry_run=run)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: `dry_run` '...' contains the model folder '...'; the repository folder must be somewhere else ...
    >>> shutil.rmtree(run)

    ```
    """
    _check_repo_id(repo_id)
    model_dir = Path(model_dir)
    _check_model_dir(model_dir)
    if dry_run is not None:
        _check_target(Path(dry_run), model_dir, overwrite, "dry_run")
    elif overwrite:
        raise ValueError("`overwrite=True` only applies with `dry_run` (a push never deletes anything).")
    _dataset_ids(dataset_name)
    results = load_eval_results(eval_results) if eval_results is not None else None
    if dry_run is not None:
        assemble_repo(
            model_dir, dry_run, repo_id, results, license, overwrite=overwrite, dataset_name=dataset_name
        )
        return Path(dry_run)
    api = api or HfApi(token=token)
    model_dir = model_dir.resolve()
    with tempfile.TemporaryDirectory(dir=model_dir.parent, prefix=f".{model_dir.name}.hub-upload-") as tmp:
        staging = Path(tmp) / "repo"
        files = assemble_repo(model_dir, staging, repo_id, results, license, dataset_name=dataset_name)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        operations = [
            CommitOperationAdd(path_in_repo=str(f), path_or_fileobj=str(staging / f)) for f in files
        ]
        return api.create_commit(
            repo_id,
            operations=operations,
            revision=revision,
            commit_message=f"Upload {repo_id.split('/')[-1]} with vidla_hf",
        )


__all__ = ["assemble_repo", "build_model_card", "eval_results_for_card", "load_eval_results", "publish"]
