"""Evaluation results for the model card: read and validated, then one `EvalResult` per measured metric.

The results are those `examples/evaluate.py` writes (one object or a list of them). Only finite measured
numbers go into a card's `model-index`: nothing added, nothing rounded, no NaN or infinity.
"""

import json
import math
import os
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult

from .ids import _describe_data, _search_dirs

EVAL_TASKS = {
    "retrieval": ("video-text-retrieval", "Text-video retrieval"),
    "classification": ("zero-shot-video-classification", "Zero-shot video classification"),
    # A finetuned `VidLAForVideoClassification` (examples/finetune_classification.py): fixed labels.
    "video_classification": ("video-classification", "Video classification"),
    "multiple_choice": ("multiple-choice", "Zero-shot multiple choice"),
}
RETRIEVAL_DIRECTIONS = {
    "text_to_video": "text→video",
    "video_to_text": "video→text",
    "text_to_video_dsl": "text→video (DSL)",
    "video_to_text_dsl": "video→text (DSL)",
}


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

    ```python
    >>> from vidla_hf.hub import load_eval_results
    >>> load_eval_results({"task": "classification", "dataset": {"name": "k400"}, "metrics": {"top1": 55.5}})
    [{'task': 'classification', 'dataset': {'name': 'k400'}, 'metrics': {'top1': 55.5}}]
    >>> load_eval_results({"task": "classification", "dataset": {"name": "k400"}, "metrics": {"top1": float("nan")}})
    Traceback (most recent call last):
    ValueError: evaluation result #0: metric 'top1' is nan, not a finite number; a NaN or infinite result cannot go in a model card.

    ```
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


def eval_results_for_card(
    results: list[dict], model_dir: str | os.PathLike | None = None
) -> list[EvalResult]:
    """`EvalResult`s for the card's `model-index`, one per measured metric (nothing added, nothing rounded).

    Results are validated first (`load_eval_results`). A dataset name that is a local path (relative ones
    are looked up from the working directory and from `model_dir` and the folders above it) is described
    by its folder name, not its path: only Hub ids go into the metadata as ids. Counts (`num_*`) are not
    metrics.

    ```python
    >>> from vidla_hf.hub import eval_results_for_card
    >>> retrieval = {
    ...     "task": "retrieval",
    ...     "dataset": {"name": "/home/me/data/msrvtt", "split": "test"},
    ...     "metrics": {"text_to_video": {"R@1": 41.5}, "num_videos": 1000},
    ... }
    >>> [(r.task_type, r.dataset_name, r.metric_type, r.metric_name, r.metric_value)
    ...  for r in eval_results_for_card([retrieval])]
    [('video-text-retrieval', 'local data (msrvtt)', 'r_at_1', 'text→video R@1', 41.5)]

    ```
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


__all__ = ["EVAL_TASKS", "RETRIEVAL_DIRECTIONS", "eval_results_for_card", "load_eval_results"]
