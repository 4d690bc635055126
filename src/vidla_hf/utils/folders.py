"""Writing a whole folder atomically: build it in a hidden sibling (`make_staging`), then swap it in by
renames (`swap_in`), so a failure never leaves a half-written folder, and an old one is removed only once the
new one is in place. Used by `hub.publishing` (publish's repo folder) and `export.folders` (ONNX exports).
"""

import os
import shutil
import tempfile
import uuid
from pathlib import Path


def process_umask() -> int:
    """The process umask: on Linux read from /proc without changing it; elsewhere set and restored."""
    try:
        for line in Path("/proc/self/status").read_text(errors="replace").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:  # no /proc (macOS, Windows)
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_staging(target: Path) -> Path:
    """A hidden sibling of `target` to build a folder in, with a new folder's usual permissions (`mkdtemp`
    makes it 0700, which the renamed `target` would keep)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    os.chmod(staging, 0o777 & ~process_umask())
    return staging


def swap_in(staging: Path, target: Path) -> None:
    """Renames the finished `staging` folder to `target`; an old `target` (already checked) is renamed aside
    first, restored if the second rename fails, and removed only once the new one is in place."""
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


__all__ = ["make_staging", "process_umask", "swap_in"]
