"""Reading WebDataset tar shards, local or remote, as raw examples (nothing decoded): `iter_tar_shards`.

Remote shards: URLs, `pipe:` commands, and brace-expanded lists of them.

A remote source is a string starting with `https://` or `http://` (streamed by the standard library), a URL
scheme fsspec knows (`hf://` for Hub datasets through huggingface_hub's file system, `s3://` / `gs://` with
s3fs / gcsfs installed) or
`pipe:` followed by a shell command writing the tar to its standard output (webdataset's convention, e.g.
`pipe:aws s3 cp s3://bucket/train-0001.tar -`). `{000..099}` ranges and `{a,b}` lists expand as in
webdataset and bash; several sources may be joined with spaces, or with `::` (needed after a `pipe:` command).

`open_shard` returns a readable binary stream; the caller reads it as a tar stream. A shard that cannot be
opened or read raises `OSError` (a failed `pipe:` command included), which the stream reader turns into one
skipped, counted example: training goes on with the other shards.

Example:

```python
>>> from vidla_hf.data.tar_shards import expand_shard_urls, is_remote_source
>>> expand_shard_urls("https://example.com/train-{00..02}.tar")
['https://example.com/train-00.tar', 'https://example.com/train-01.tar', 'https://example.com/train-02.tar']
>>> is_remote_source("pipe:cat shard.tar"), is_remote_source("data/synthetic")
(True, False)

```
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from typing import IO, Any

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_ALTERNATIVES = re.compile(r"\{([^{}]*,[^{}]*)\}")


def is_remote_source(source: str) -> bool:
    """Whether `source` names shards by URL or `pipe:` command (as opposed to a local path or dataset id)."""
    first = source.strip().split()[0] if source.strip() else ""
    return first.startswith("pipe:") or bool(_SCHEME.match(first))


def _expand(pattern: str) -> list[str]:
    match = _RANGE.search(pattern)
    if match:
        low, high = match.group(1), match.group(2)
        if int(high) < int(low):
            raise ValueError(f"Shard range {match.group(0)!r} in {pattern!r} runs backwards.")
        width = len(low)
        return [
            expanded
            for number in range(int(low), int(high) + 1)
            for expanded in _expand(pattern[: match.start()] + f"{number:0{width}d}" + pattern[match.end() :])
        ]
    match = _ALTERNATIVES.search(pattern)
    if match:
        return [
            expanded
            for choice in match.group(1).split(",")
            for expanded in _expand(pattern[: match.start()] + choice + pattern[match.end() :])
        ]
    return [pattern]


def expand_shard_urls(source: str) -> list[str]:
    """The shard URLs (or `pipe:` commands) of `source`, in order.

    `source` is one or more parts joined by `::` (webdataset's separator); a part is a `pipe:` command, whole
    (its spaces and braces belong to the command), or space-separated URL patterns, each brace-expanded.
    """
    urls = []
    for part in source.split("::"):
        part = part.strip()
        if part.startswith("pipe:"):
            urls.append(part)
        else:
            urls += [url for pattern in part.split() for url in _expand(pattern)]
    if not urls:
        raise ValueError(f"No shard in {source!r}.")
    return urls


class _PipeStream:
    """A `pipe:` command's standard output; closing it waits for the command and raises `OSError` when it
    failed, so a shard truncated by a failing command is not taken as complete."""

    def __init__(self, command: str):
        self.command = command
        self.process = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stdout = self.process.stdout

    def read(self, size: int = -1) -> bytes:
        return self.stdout.read(size)

    def close(self) -> None:
        self.stdout.close()
        stderr = self.process.stderr.read().decode(errors="replace")[-500:]
        self.process.stderr.close()
        if self.process.wait() != 0:
            raise OSError(f"pipe: command {self.command!r} exited with {self.process.returncode}: {stderr}")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_shard(url: str) -> IO[bytes]:
    """A binary stream of the shard at `url` (a URL fsspec can open, a `pipe:` command, or a local path).

    Raises `OSError` for a shard that cannot be opened (unreachable host, missing file, HTTP error): whatever
    the file system raises is re-raised as `OSError` naming the URL.
    """
    if url.startswith("pipe:"):
        return _PipeStream(url[len("pipe:") :])
    if not _SCHEME.match(url):
        return open(url, "rb")
    if url.lower().startswith(("http://", "https://")):  # the standard library streams it, no extra package
        import urllib.request

        return urllib.request.urlopen(url, timeout=60)  # URLError / HTTPError are OSErrors
    import fsspec

    try:
        return fsspec.open(url, "rb").open()
    except OSError:
        raise
    except Exception as error:  # fsspec's HTTP and cloud backends raise their own exception types
        raise OSError(f"cannot open shard {url}: {type(error).__name__}: {error}") from error


def _sample_key(member_name: str) -> tuple[str, str]:
    """WebDataset's grouping: `dir/KEY.ext.ension` is member `ext.ension` of sample `dir/KEY`."""
    key, _, extension = os.path.basename(member_name).partition(".")
    return os.path.join(os.path.dirname(member_name), key), extension


def iter_tar_shards(shards: list[str]) -> Iterator[dict[str, Any]]:
    """WebDataset tar shards → `{"__key__", "__url__", <extension>: bytes}` examples, nothing decoded.

    Unlike `load_dataset("webdataset")`, which parses `.json` members while reading (so one malformed
    member ends the whole stream), parsing is left to `VideoTextStream`, which skips and counts a bad one.
    A shard that cannot be read at all yields one example with an `__error__`.
    """
    for shard in shards:
        current: dict[str, Any] = {}
        try:
            with open_shard(shard) as stream, tarfile.open(fileobj=stream, mode="r|*") as archive:
                for member in archive:
                    if not member.isfile():
                        continue
                    key, extension = _sample_key(member.name)
                    if current and current["__key__"] != key:
                        yield current
                        current = {}
                    current.setdefault("__key__", key)
                    current["__url__"] = shard
                    current[extension] = archive.extractfile(member).read()
        except Exception as error:  # unreadable, unreachable or damaged: reported as an example, never raised
            if current:
                current["__error__"] = f"shard {shard} is damaged after this sample: {error}"
                yield current
            else:
                yield {"__key__": f"{shard}:unreadable", "__url__": shard, "__error__": f"{error}"}
            continue
        if current:
            yield current


def count_tar_samples(shard: str) -> int:
    """The samples of one WebDataset shard, as `iter_tar_shards` groups them (consecutive members with one
    key), read from the tar headers alone: an uncompressed shard's data are seeked over, not read. A damaged
    shard counts the samples before the damage."""
    count, last = 0, None
    try:
        with tarfile.open(shard) as archive:
            for member in archive:
                key = _sample_key(member.name)[0] if member.isfile() else last
                if key != last:
                    count, last = count + 1, key
    except (tarfile.TarError, OSError, EOFError):
        pass
    return count


__all__ = ["count_tar_samples", "expand_shard_urls", "is_remote_source", "iter_tar_shards", "open_shard"]
