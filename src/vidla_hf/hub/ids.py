"""Hub ids versus local paths: what may go into a model card as an id, and how local data is described.

Repo ids are checked by huggingface_hub's own rules (`validate_repo_id`). A value from the training run
(`init_from`, `train_data`, an evaluation dataset) counts as a Hub id only if it is a valid id that names
no local files; anything else is described by its folder name ("local WebDataset shards (synthetic)"),
never by its path.
"""

import os
from pathlib import Path
from typing import Any

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

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


__all__: list[str] = []  # helpers for the other hub modules; nothing public
