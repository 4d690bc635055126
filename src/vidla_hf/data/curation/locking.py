"""One curation driver per output folder: an exclusive `flock` on `<folder>/.curation.lock`, held for the
whole run. The operating system releases it when the process ends, however it ends (a crash or `kill -9`
leaves no stale lock), so a second driver on the same folder is refused only while the first still runs.

Without `fcntl` (Windows) there is no lock; the folder's other rules (`shards.OutputFolder`) still hold.
A lock file on a network file system is only as good as that file system's `flock`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK = ".curation.lock"


class FolderInUseError(ValueError):
    """Another curation run holds the output folder's lock."""


class FolderLock:
    """The lock of `folder` (which must exist), taken at construction; `release()` (or process exit) frees it.

    Example:

    ```python
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> lock = FolderLock(folder)
    >>> try:
    ...     FolderLock(folder)
    ... except FolderInUseError:
    ...     print("refused")
    refused
    >>> lock.release()
    >>> FolderLock(folder).release()

    ```"""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK
        self._file = None
        if fcntl is None:
            return
        file = open(self.path, "a+")  # noqa: SIM115 - held open for as long as the lock
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            raise FolderInUseError(
                f"`output_dir` {str(self.path.parent)!r} is being written by another curation run ({holder}); "
                "wait for it to finish or stop it, or choose another folder."
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        file.flush()
        self._file = file

    @staticmethod
    def is_lock_file(path: Path) -> bool:
        return path.name == LOCK

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None


__all__ = ["LOCK", "FolderInUseError", "FolderLock"]
