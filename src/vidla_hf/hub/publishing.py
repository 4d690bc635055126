"""Writing the repository folder and pushing it: `assemble_repo`, `publish`, and the folder safety they share.

`assemble_repo` writes exactly what would be pushed; `publish` pushes it as a single commit
(`HfApi.create_commit`), or with `dry_run` only writes the folder.

Nothing is lost: an existing folder is replaced only if it is empty, or if `overwrite=True` and it was
written by `assemble_repo` (it holds the `.vidla_publish` marker listing what was written, and nothing
else); the new folder is built beside it and swapped in by renames, so a failure leaves the old one as it
was.
"""

import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi

from ..utils.folders import make_staging, swap_in
from .eval_results import load_eval_results
from .ids import _check_repo_id, _dataset_ids
from .model_card import _check_model_dir, _classifier_labels, build_model_card

PUBLISH_MARKER = ".vidla_publish"  # written into every folder `assemble_repo` writes; never pushed


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
    to push, relative to `out_dir`. A `VidLAForVideoClassification` folder is loaded and saved as that class
    (head and labels kept) and gets no custom pipelines: transformers' own video-classification runs it.

    `out_dir` must be new or empty, or, with `overwrite=True`, a folder this function wrote before and
    nothing else did (it holds a `.vidla_publish` marker listing its files; the marker is never pushed).
    It may not be the model folder, inside it or above it. Everything is checked and read before anything
    is written; the folder is built in a hidden sibling and swapped in by renames, so a failure leaves
    `out_dir` as it was.
    """
    from transformers import AutoModel, AutoModelForVideoClassification, AutoProcessor
    from transformers.dynamic_module_utils import get_relative_import_files

    from ..pipelines import VideoTextRetrievalPipeline, ZeroShotVideoClassificationPipeline

    _check_repo_id(repo_id)
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    _check_model_dir(model_dir)
    _check_target(out_dir, model_dir, overwrite, "out_dir")
    results = load_eval_results(eval_results) if eval_results is not None else None
    card = build_model_card(model_dir, repo_id, results, license, dataset_name)
    classifier = _classifier_labels(model_dir / "config.json") is not None
    model = (AutoModelForVideoClassification if classifier else AutoModel).from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    pipelines = {
        "zero-shot-video-classification": ZeroShotVideoClassificationPipeline,
        "video-text-retrieval": VideoTextRetrievalPipeline,
    }
    if classifier:  # fixed labels: transformers' own video-classification pipeline, nothing custom
        pipelines = {}
    staging = make_staging(out_dir)
    try:
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        config = json.loads((staging / "config.json").read_text())
        if pipelines:
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
        swap_in(staging, out_dir)
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


__all__ = ["PUBLISH_MARKER", "assemble_repo", "publish"]
