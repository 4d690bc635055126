"""Publishing a trained VidLA folder to the Hub: safetensors, remote code, pipelines and an honest model card.

All Hub I/O of the library lives here. `assemble_repo` writes exactly what would be pushed; `publish`
pushes it as a single commit (`HfApi.create_commit`), or with `dry_run` only writes the folder.
"""

import inspect
import json
import os
import shutil
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData

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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_eval_results(source: str | os.PathLike | dict | list) -> list[dict]:
    """Reads and validates the results written by `examples/evaluate.py` (one object or a list of them).

    Raises `ValueError` naming what is malformed: an unknown task, a missing dataset name, metrics that
    are not numbers.
    """
    results = json.loads(Path(source).read_text()) if isinstance(source, (str, os.PathLike)) else source
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
            values = value.values() if result["task"] == "retrieval" and isinstance(value, dict) else [value]
            if not all(_is_number(v) for v in values):
                raise ValueError(
                    f"{where}: metric {name!r} is not a number (or, for retrieval, an object of numbers)."
                )
    return results


def eval_results_for_card(results: list[dict]) -> list[EvalResult]:
    """`EvalResult`s for the card's `model-index`, one per measured metric (nothing added, nothing rounded)."""
    entries = []
    for result in results:
        task_type, task_name = EVAL_TASKS[result["task"]]
        dataset = result["dataset"]
        common = {
            "task_type": task_type,
            "task_name": task_name,
            "dataset_type": dataset["name"],
            "dataset_name": dataset["name"],
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


def _hub_id(value: str | None) -> str | None:
    """`value` if it looks like a Hub repo id rather than a local path."""
    if not value or os.path.exists(value) or value.startswith((".", "/", "~")) or value.count("/") != 1:
        return None
    return value


def _results_table(results: list[dict]) -> str:
    rows = ["| task | dataset | split | metric | value |", "|---|---|---|---|---|"]
    for entry in eval_results_for_card(results):
        rows.append(
            f"| {entry.task_name} | {entry.dataset_name} | {entry.dataset_split or ''} | "
            f"{entry.metric_name} | {entry.metric_value:.2f} |"
        )
    return "\n".join(rows)


def build_model_card(
    model_dir: str | os.PathLike,
    repo_id: str,
    eval_results: list[dict] | None = None,
    license: str = "apache-2.0",
) -> ModelCard:
    """The model card: metadata (library, pipeline tag, tags, base model, datasets, license, model-index from
    the measured `eval_results` only), usage for AutoModel, the processor and both pipelines, and the
    training details read from the run's `training_args.json` / `train_results.json`."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    args_file, train_file = model_dir / "training_args.json", model_dir / "train_results.json"
    training_args = json.loads(args_file.read_text()) if args_file.is_file() else None
    train_results = json.loads(train_file.read_text()) if train_file.is_file() else None
    base_model = _hub_id((training_args or {}).get("init_from"))
    datasets = [d for d in ((training_args or {}).get("train_data"),) if _hub_id(d)]
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
        eval_results=eval_results_for_card(eval_results) if eval_results else None,
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
        _results_table(eval_results)
        if eval_results
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
        sections.append("\n".join(f"- `{k}`: {training_args.get(k)}" for k in keys if k in training_args))
    else:
        sections.append(
            "The training run's arguments were not found next to the weights (`training_args.json`)."
        )
    if train_results and train_results.get("after"):
        after = train_results["after"]
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


def assemble_repo(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    repo_id: str,
    eval_results: list[dict] | None = None,
    license: str = "apache-2.0",
) -> list[Path]:
    """Writes the repository folder: safetensors weights, config with `auto_map` and `custom_pipelines`,
    processor files, the code files for remote loading and pipelines, and the model card. The folder is
    built under `<out_dir>.partial` and renamed when complete. Returns the files, relative to `out_dir`."""
    from transformers import AutoModel, AutoProcessor

    from .pipelines import VideoTextRetrievalPipeline, ZeroShotVideoClassificationPipeline

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json: not a saved VidLA model folder.")
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model = AutoModel.from_pretrained(model_dir)
    model.save_pretrained(partial, safe_serialization=True)
    AutoProcessor.from_pretrained(model_dir).save_pretrained(partial)
    pipelines = {
        "zero-shot-video-classification": ZeroShotVideoClassificationPipeline,
        "video-text-retrieval": VideoTextRetrievalPipeline,
    }
    config = json.loads((partial / "config.json").read_text())
    config["custom_pipelines"] = {}
    for task, pipeline_class in pipelines.items():
        module = Path(inspect.getsourcefile(pipeline_class))
        shutil.copyfile(module, partial / module.name)
        config["custom_pipelines"][task] = {
            "impl": f"{module.stem}.{pipeline_class.__name__}",
            "pt": ["AutoModel"],
            "type": "multimodal",
        }
    (partial / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for extra in ("training_args.json", "train_results.json"):
        if (model_dir / extra).is_file():
            shutil.copyfile(model_dir / extra, partial / extra)
    build_model_card(model_dir, repo_id, eval_results, license).save(partial / "README.md")
    if eval_results:
        (partial / "eval_results.json").write_text(json.dumps(eval_results, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(partial, out_dir)
    return sorted(p.relative_to(out_dir) for p in out_dir.rglob("*") if p.is_file())


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
):
    """Assembles the repository and pushes it in a single commit; with `dry_run=FOLDER` only writes it.

    Example:

    ```python
    >>> from vidla_hf.hub import publish
    >>> publish("outputs/vidla-pretrain", "org/vidla-tiny-synthetic", dry_run="outputs/repo")  # doctest: +SKIP
    ```
    """
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"`repo_id` must look like 'org/name', got {repo_id!r}.")
    results = load_eval_results(eval_results) if eval_results is not None else None
    if dry_run is not None:
        assemble_repo(model_dir, dry_run, repo_id, results, license)
        return Path(dry_run)
    api = api or HfApi(token=token)
    staging = Path(model_dir).with_name(Path(model_dir).name + ".hub-upload")
    try:
        files = assemble_repo(model_dir, staging, repo_id, results, license)
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
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["assemble_repo", "build_model_card", "eval_results_for_card", "load_eval_results", "publish"]
