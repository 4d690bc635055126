"""Checks of user arguments shared by the processors: misspelt keywords and local paths that do not exist.

Kept free of `vidla_hf` imports (standard library only) so that it works as Hub remote code.
"""

import difflib
import os
import re
from collections.abc import Iterable, Mapping


class NoSuchFolderError(FileNotFoundError, ValueError):
    """`from_pretrained` was given a local path (see `check_local_folder`) that does not exist.

    Both a `FileNotFoundError` (an `OSError`, what transformers raises when loading fails) and a `ValueError`.
    """

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


def unexpected_keywords_error(unknown: Iterable[str], accepted: Iterable[str], where: str) -> TypeError:
    """A `TypeError` naming each unknown keyword, the closest accepted one (if any) and all accepted ones."""
    accepted = sorted(accepted)
    described = []
    for key in sorted(unknown):
        close = difflib.get_close_matches(key, accepted, n=1)
        described.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    noun = "argument" if len(described) == 1 else "arguments"
    return TypeError(
        f"{where} got an unexpected keyword {noun} {', '.join(described)}; "
        f"accepted keywords: {', '.join(accepted)}."
    )


def check_keywords(kwargs: Mapping, accepted: Iterable[str], where: str) -> None:
    """Raises `unexpected_keywords_error` for the keys of `kwargs` that are not in `accepted`."""
    accepted = set(accepted)
    unknown = set(kwargs) - accepted
    if unknown:
        raise unexpected_keywords_error(unknown, accepted, where)


def looks_like_local_path(name) -> bool:
    """Whether `name` can only mean a local folder, never a Hub id.

    Hub ids are `name` or `org/name`: letters, digits, `-`, `_`, `.`, not starting with `.`, at most one `/`.
    So a `pathlib.Path`, or a string that starts with `.`, `/` or `~`, ends with a path separator, contains a
    backslash or a drive letter (`C:`), or has more than one `/`, is a path. `runs/typo` is a valid Hub id and
    is left to the Hub lookup.
    """
    if not isinstance(name, str):
        return isinstance(name, os.PathLike)
    return (
        name.startswith((".", "/", "~"))
        or name.endswith(("/", os.sep))
        or "\\" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or name.count("/") > 1
        or os.path.isabs(name)
    )


def check_local_folder(name_or_path):
    """What to hand to transformers' `from_pretrained`: `~` expanded (transformers does not), and a name that is
    clearly a local path (`looks_like_local_path`) but does not exist raises `NoSuchFolderError` at once, instead
    of reaching the Hub code (a misleading repo-id error, or for Hub-shaped names minutes of retries)."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        return name_or_path
    name = os.fspath(name_or_path)
    if not isinstance(name, str):
        return name_or_path
    expanded = os.path.abspath(os.path.expanduser(name))
    if os.path.exists(expanded):
        return os.path.expanduser(name) if name.startswith("~") else name_or_path
    if looks_like_local_path(name_or_path):
        raise NoSuchFolderError(
            f"no such folder: {expanded} (from {name!r}). A name that starts with '.', '/' or '~', ends with a "
            "path separator, or contains '\\' or more than one '/' is a local path, not a Hub id "
            "('name' or 'org/name').",
            expanded,
        )
    return name_or_path


__all__ = [
    "NoSuchFolderError",
    "check_keywords",
    "check_local_folder",
    "looks_like_local_path",
    "unexpected_keywords_error",
]
