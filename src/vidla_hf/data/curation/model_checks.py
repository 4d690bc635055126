"""Checking a curation model option (`--punctuation_model`, `--captioner`, `--summarizer`) before any heavy
work: a typo in a model id fails at once, not after Ray has started and videos have been decoded."""

from __future__ import annotations

import json
from pathlib import Path

_MODEL_KINDS = {  # option name -> (description, transformers' mapping of model types for that task)
    "punctuation_model": ("a token-classification model", "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"),
    "captioner": ("an image-to-text model", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES"),
    "summarizer": ("a causal language model", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
}


def _check_architecture(config: dict, name: str, kind: str) -> None:
    """`config` (a config.json's content) is a model transformers loads for `kind`, with its task head: its
    saved architecture is one of the task's classes (or, without one, its model type has such a class)."""
    from transformers.models.auto import modeling_auto

    description, mapping_name = _MODEL_KINDS[kind]
    mapping = getattr(modeling_auto, mapping_name)
    architectures = config.get("architectures") or []
    if architectures:
        classes = {c for value in mapping.values() for c in ([value] if isinstance(value, str) else value)}
        fits = any(architecture in classes for architecture in architectures)
    else:
        fits = config.get("model_type") in mapping
    if not fits:
        found = ", ".join(architectures) or str(config.get("model_type"))
        raise ValueError(f"--{kind} {name!r} is a {found} model, not {description}.")


def _read_config(path: Path, name: str, kind: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"--{kind} {name!r}: its config.json cannot be read ({error}).") from None


def check_model(name: str, kind: str) -> str:
    """Checks a model option before any heavy work; returns how it resolves: "none", "local", "cache", "hub".

    `kind` is the option: "punctuation_model", "captioner" or "summarizer". `name` must be "none", a local
    folder with a config.json whose architecture fits the kind (and, for a summarizer, a chat template), or a
    valid Hub id that is in the local Hugging Face cache or that the Hub confirms exists. Only config.json is
    read (as JSON: a model type transformers maps to the kind's Auto class), never weights. Raises `ValueError` naming the option otherwise, also when the Hub is unreachable.

    ```python
    >>> check_model("none", "captioner")
    'none'
    >>> check_model("not a model!", "summarizer")
    Traceback (most recent call last):
    ...
    ValueError: --summarizer 'not a model!' is neither "none", a local model folder, nor a valid Hub id.

    ```
    """
    if kind not in _MODEL_KINDS:
        raise ValueError(f"kind must be one of {sorted(_MODEL_KINDS)}, got {kind!r}.")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"--{kind} must be a model id, a folder or 'none', got {name!r}.")
    if name == "none":
        return "none"
    from huggingface_hub import errors, model_info, try_to_load_from_cache
    from huggingface_hub.utils import validate_repo_id

    folder = Path(name).expanduser()
    if folder.exists():
        if not (folder / "config.json").is_file():
            raise ValueError(f"--{kind} {name!r} is a path but not a model folder: it has no config.json.")
        _check_architecture(_read_config(folder / "config.json", name, kind), name, kind)
        if kind == "summarizer" and not _has_chat_template(folder):
            raise ValueError(f"--summarizer {name!r} has no chat template; use a chat model.")
        return "local"
    try:
        validate_repo_id(name)
    except errors.HFValidationError:
        raise ValueError(
            f'--{kind} {name!r} is neither "none", a local model folder, nor a valid Hub id.'
        ) from None
    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        _check_architecture(_read_config(Path(cached), name, kind), name, kind)
        return "cache"
    try:
        info = model_info(name, timeout=10)
    except errors.RepositoryNotFoundError:
        raise ValueError(f"--{kind} {name!r} is no local folder and no model on the Hub.") from None
    except errors.HfHubHTTPError as error:
        raise ValueError(f"--{kind} {name!r} could not be checked on the Hub: {error}") from None
    except (errors.HTTPError, OSError) as error:  # no network, offline mode (OfflineModeIsEnabled), timeout
        raise ValueError(
            f"--{kind} {name!r} is no local folder and is not in the Hugging Face cache, and the Hub cannot be "
            f"reached to resolve it ({type(error).__name__}). Download it first or pass a local folder."
        ) from None
    if info.config and "model_type" in info.config:
        _check_architecture(info.config, name, kind)
    return "hub"


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    tokenizer_config = folder / "tokenizer_config.json"
    return tokenizer_config.is_file() and bool(json.loads(tokenizer_config.read_text()).get("chat_template"))


__all__ = ["check_model"]
