"""The export folder: refuse to touch what export did not write (it is then built beside it and swapped in by
renames, `utils.folders`).

A folder is the export's own when its `onnx_export.json` was written by `export_onnx` and lists every file in
it; only such a folder is replaced (with `overwrite=True`). Anything else non-empty is left alone.
"""

import json
from pathlib import Path

METADATA_FILE = "onnx_export.json"
WRITTEN_BY = "vidla_hf.export.export_onnx"


def files_not_written_by_export(folder: Path) -> list[str] | None:
    """The files in `folder` that its `onnx_export.json` does not list; None if it has no readable one of ours."""
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
        if metadata["written_by"] != WRITTEN_BY:
            return None
        listed = set(metadata["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [
        path.relative_to(folder).as_posix()
        for path in sorted(folder.rglob("*"))
        if (path.is_symlink() or not path.is_dir()) and path.relative_to(folder).as_posix() not in listed
    ]


def check_output_dir(target: Path, overwrite: bool) -> None:
    """Raises `ValueError` unless `target` is new, an empty folder, or (with `overwrite`) an earlier export."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ValueError(f"`output_dir` {str(target)!r} is a file or a link, not a folder; it is left alone.")
    if not target.exists() or not any(target.iterdir()):
        return
    others = files_not_written_by_export(target)
    if others is None:
        raise ValueError(
            f"`output_dir` {str(target)!r} is not empty and was not written by export_onnx (it has no "
            f"{METADATA_FILE} of ours): it may hold a model or other data, so it is left alone, also with "
            "overwrite=True. Give a new or empty folder."
        )
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise ValueError(
            f"`output_dir` {str(target)!r} holds {len(others)} file(s) that export_onnx did not write ({shown}); "
            "it is left alone, also with overwrite=True. Move them out first."
        )
    if not overwrite:
        raise ValueError(
            f"`output_dir` {str(target)!r} holds an earlier ONNX export; pass overwrite=True (--overwrite) to "
            "replace it, or give a new or empty folder."
        )


__all__ = [
    "METADATA_FILE",
    "WRITTEN_BY",
    "check_output_dir",
    "files_not_written_by_export",
]
