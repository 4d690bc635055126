"""Retrieval over galleries too large for a similarity matrix: a FAISS index of L2-normalised video embeddings.

`VideoIndex` holds a FAISS inner-product index (cosine similarity, the embeddings being normalised) and the
gallery's ids. `kind="flat"` is exact (`IndexFlatIP`, brute force in FAISS's kernels); `"ivf"` (an inverted
file over `nlist` k-means cells, `nprobe` of them searched) and `"hnsw"` (a graph of `hnsw_m` links per
node) are approximate and much faster on large galleries. Build it from an array, from the Parquet files
`examples/embed.py` writes (columns `id`, `embedding`) or from a `datasets` dataset; save and load it as a
folder (`index.faiss`, `ids.json`, `index.json`).

`search` answers top-k for a batch of queries; `rescore_dual_softmax` applies the dual-softmax re-scoring
(DSL, see `retrieval`) to the retrieved candidates exactly: each candidate's normaliser is the log-sum-exp of
`τ·s` over *all* the queries, computed against the candidates' stored vectors, so a candidate's DSL score
equals the dense `dual_softmax` entry. Only the order within the top-k can change: an item outside the plain
top-k is not rescored.

faiss is an optional dependency (`pip install -e ".[index]"`), imported when an index is built or loaded.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

INDEX_KINDS = ("flat", "ivf", "hnsw")
_INDEX_FILE, _IDS_FILE, _META_FILE = "index.faiss", "ids.json", "index.json"


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError('VideoIndex needs faiss: pip install "vidla_hf[index]" (faiss-cpu).') from error
    return faiss


def _as_matrix(values: Any, name: str) -> np.ndarray:
    """A C-contiguous float32 (N, D) copy of `values` (an array, a tensor or nested lists); finite and N, D >= 1."""
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().float().numpy()
    matrix = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(f"`{name}` must be an (N, D) matrix with N, D >= 1, got shape {matrix.shape}.")
    if not np.isfinite(matrix).all():
        raise ValueError(f"`{name}` holds {int((~np.isfinite(matrix)).sum())} NaN or infinite values.")
    return matrix


def _normalized(matrix: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"`{name}` has {int((norms == 0).sum())} all-zero rows: they have no direction.")
    return matrix / norms


class VideoIndex:
    """A FAISS index of normalised video embeddings and their ids.

    Example (an exact index agrees with brute force):

    ```python
    >>> import numpy as np
    >>> from vidla_hf.evaluation.index import VideoIndex
    >>> rng = np.random.default_rng(0)
    >>> gallery = rng.normal(size=(1000, 32)).astype(np.float32)
    >>> index = VideoIndex.build(gallery, ids=[f"video-{i}" for i in range(1000)])
    >>> scores, ids = index.search(gallery[:2], k=3)
    >>> [row[0] for row in ids]  # each video is its own nearest neighbour
    ['video-0', 'video-1']
    >>> bool(np.allclose(scores[:, 0], 1.0, atol=1e-5))
    True

    ```
    """

    def __init__(self, index, ids: list, settings: dict[str, Any]):
        if index.ntotal != len(ids):
            raise ValueError(f"The index holds {index.ntotal} vectors but {len(ids)} ids were given.")
        self.index, self.ids, self.settings = index, list(ids), dict(settings)

    def __len__(self) -> int:
        return self.index.ntotal

    @property
    def dim(self) -> int:
        return self.index.d

    @classmethod
    def build(
        cls,
        embeddings: Any,
        ids: list | None = None,
        kind: str = "flat",
        *,
        nlist: int | None = None,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 128,
        seed: int = 0,
    ) -> VideoIndex:
        """Indexes `embeddings` (N, D) (normalised here) under `ids` (default 0..N-1).

        `kind`: "flat" (exact), "ivf" (`nlist` cells, default `4·√N`, trained on the embeddings with k-means
        seeded by `seed`; `nprobe` searched) or "hnsw" (`hnsw_m` links, `ef_search` candidates per search).
        Raises `ValueError` for an unknown kind, bad sizes, NaN/inf or all-zero rows, or ids that are not
        unique or not as many as the rows — before anything is built.
        """
        if kind not in INDEX_KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(INDEX_KINDS)}, got {kind!r}.")
        vectors = _normalized(_as_matrix(embeddings, "embeddings"), "embeddings")
        ids = list(range(len(vectors))) if ids is None else list(ids)
        if len(ids) != len(vectors) or len(set(ids)) != len(ids):
            raise ValueError(f"`ids` must be {len(vectors)} distinct values (one a row), got {len(ids)}.")
        for name, value in (("nprobe", nprobe), ("hnsw_m", hnsw_m), ("ef_search", ef_search)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if nlist is None:
            nlist = max(1, min(len(vectors) // 39, int(4 * math.sqrt(len(vectors)))))
        if kind == "ivf" and not 1 <= nlist <= len(vectors):
            raise ValueError(f"`nlist` must be in [1, {len(vectors)}] (the gallery's size), got {nlist}.")
        faiss = _faiss()
        dim = vectors.shape[1]
        settings: dict[str, Any] = {"kind": kind, "dim": dim}
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "ivf":
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.train(vectors)
            index.nprobe = min(nprobe, nlist)
            settings.update(nlist=nlist, nprobe=index.nprobe)
        else:
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = ef_search
            settings.update(hnsw_m=hnsw_m, ef_search=ef_search)
        index.add(vectors)
        return cls(index, ids, settings)

    @classmethod
    def from_parquet(
        cls,
        paths: str | os.PathLike | list,
        id_column: str = "id",
        embedding_column: str = "embedding",
        **kwargs,
    ) -> VideoIndex:
        """Indexes the rows of Parquet files (a file, a folder of `*.parquet`, or a list), e.g. what
        `examples/embed.py` writes; `kwargs` go to `build`."""
        import pyarrow.parquet as pq

        if isinstance(paths, (str, os.PathLike)):
            folder = Path(paths)
            paths = sorted(folder.glob("*.parquet")) if folder.is_dir() else [folder]
        if not paths:
            raise ValueError("No Parquet file to index.")
        ids, rows = [], []
        for path in paths:
            table = pq.read_table(path)
            missing = {id_column, embedding_column} - set(table.column_names)
            if missing:
                raise ValueError(
                    f"{str(path)!r} has no column(s) {sorted(missing)}; it has {table.column_names}."
                )
            ids += table.column(id_column).to_pylist()
            rows += table.column(embedding_column).to_pylist()
        return cls.build(rows, ids, **kwargs)

    @classmethod
    def from_dataset(
        cls, dataset, embedding_column: str = "embedding", id_column: str | None = "id", **kwargs
    ):
        """Indexes a `datasets.Dataset`'s embedding column (ids from `id_column`, or row numbers if None)."""
        for column in (embedding_column, id_column):
            if column is not None and column not in dataset.column_names:
                raise ValueError(f"The dataset has no column {column!r}; it has {dataset.column_names}.")
        embeddings = dataset.with_format("numpy")[embedding_column]
        ids = dataset[id_column] if id_column is not None else None
        return cls.build(embeddings, ids, **kwargs)

    def search(self, queries: Any, k: int = 10) -> tuple[np.ndarray, list[list]]:
        """Top-`k` for each query (normalised here): `(scores (Q, k) cosine similarities, ids)`, best first.
        `k` larger than the gallery is capped at its size."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive integer, got {k!r}.")
        queries = _normalized(_as_matrix(queries, "queries"), "queries")
        if queries.shape[1] != self.dim:
            raise ValueError(f"`queries` have {queries.shape[1]} dimensions, the index {self.dim}.")
        scores, positions = self.index.search(queries, min(k, len(self)))
        if (positions < 0).any():  # an approximate index found fewer than k (too few cells probed)
            raise ValueError(
                f"The index returned fewer than k={k} results for some queries; raise `nprobe` / `ef_search`."
            )
        return scores, [[self.ids[p] for p in row] for row in positions]

    def vectors(self, positions: np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors at `positions`."""
        if self.settings["kind"] == "ivf":
            self.index.make_direct_map()
        return np.stack([self.index.reconstruct(int(p)) for p in positions])

    def rescore_dual_softmax(
        self, queries: Any, k: int = 10, temperature: float = 100.0, chunk_size: int = 4096
    ) -> tuple[np.ndarray, list[list]]:
        """`search`, then each query's top-`k` re-scored by dual softmax over all `queries` and re-sorted.

        A candidate v scores `s(q, v) · exp(τ·s(q, v) - lse_q' τ·s(q', v))`, the normaliser running over every
        query (in chunks of `chunk_size`), so the scores equal the dense `dual_softmax` entries.
        """
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"`temperature` must be a finite number > 0, got {temperature!r}.")
        queries = _normalized(_as_matrix(queries, "queries"), "queries")
        scores, positions = self.index.search(queries, min(k, len(self)))
        if (positions < 0).any():
            raise ValueError(
                f"The index returned fewer than k={k} results for some queries; raise `nprobe` / `ef_search`."
            )
        candidates = np.unique(positions)
        vectors = self.vectors(candidates).astype(np.float64)
        lse = np.full(len(candidates), -np.inf)
        for start in range(0, len(queries), chunk_size):
            block = queries[start : start + chunk_size].astype(np.float64) @ vectors.T * temperature  # (q, c)
            top = block.max(axis=0)
            lse = np.logaddexp(lse, top + np.log(np.exp(block - top).sum(axis=0)))
        where = np.searchsorted(candidates, positions)  # (Q, k) column of each candidate
        exact = np.einsum("qd,qkd->qk", queries.astype(np.float64), vectors[where])
        rescored = exact * np.exp(exact * temperature - lse[where])
        order = np.argsort(-rescored, axis=1, kind="stable")
        rescored = np.take_along_axis(rescored, order, axis=1)
        positions = np.take_along_axis(positions, order, axis=1)
        return rescored, [[self.ids[p] for p in row] for row in positions]

    def save(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Writes `folder` (`index.faiss`, `ids.json`, `index.json`), built beside it and renamed into place.
        An existing folder is replaced only with `overwrite=True` and only if it holds a saved index and
        nothing else."""
        folder = Path(folder)
        ours = {_INDEX_FILE, _IDS_FILE, _META_FILE}
        if folder.exists():
            present = {p.name for p in folder.iterdir()} if folder.is_dir() else None
            if present and not (overwrite and present <= ours):
                raise ValueError(
                    f"{str(folder)!r} exists and is not empty; it is left alone. Pass overwrite=True to replace "
                    f"a saved index (a folder holding only {sorted(ours)})."
                )
            if present is None:
                raise ValueError(f"{str(folder)!r} is a file, not a folder; it is left alone.")
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.partial-"))
        try:
            _faiss().write_index(self.index, str(staging / _INDEX_FILE))
            (staging / _IDS_FILE).write_text(json.dumps(self.ids))
            (staging / _META_FILE).write_text(json.dumps({**self.settings, "size": len(self)}, indent=1))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would survive the rename
            if folder.exists():
                shutil.rmtree(folder)  # checked above: empty, or a saved index with overwrite=True
            os.rename(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> VideoIndex:
        folder = Path(folder)
        missing = [name for name in (_INDEX_FILE, _IDS_FILE, _META_FILE) if not (folder / name).is_file()]
        if missing:
            raise ValueError(f"{str(folder)!r} is not a saved VideoIndex: it lacks {missing}.")
        settings = json.loads((folder / _META_FILE).read_text())
        settings.pop("size", None)
        return cls(
            _faiss().read_index(str(folder / _INDEX_FILE)),
            json.loads((folder / _IDS_FILE).read_text()),
            settings,
        )


def index_recall(
    queries: Any,
    index: VideoIndex,
    targets: list,
    ks: tuple[int, ...] = (1, 5, 10),
    dsl_temperature: float | None = None,
) -> dict[str, float]:
    """R@K in % of text→video retrieval through `index`: query i's match is the video with id `targets[i]`.

    The top-`max(ks)` is searched (re-scored by dual softmax with `dsl_temperature`, see
    `VideoIndex.rescore_dual_softmax`); a match outside it counts as a miss, so with an exact index R@K
    equals the full ranking's (median and mean rank need the full ranking: `evaluate_retrieval`).
    """
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"`ks` must be positive integers, got {ks!r}.")
    queries = _as_matrix(queries, "queries")
    if len(targets) != len(queries):
        raise ValueError(f"Need one target a query: {len(queries)} queries, {len(targets)} targets.")
    unknown = set(targets) - set(index.ids)
    if unknown:
        raise ValueError(
            f"{len(unknown)} targets are not in the index, e.g. {sorted(map(str, unknown))[:3]}."
        )
    depth = max(ks)
    if dsl_temperature is None:
        _, found = index.search(queries, depth)
    else:
        _, found = index.rescore_dual_softmax(queries, depth, dsl_temperature)
    hits = np.array(
        [[video_id == target for video_id in row] for row, target in zip(found, targets, strict=True)]
    )
    return {f"R@{k}": float(100 * hits[:, :k].any(axis=1).mean()) for k in ks}


__all__ = ["INDEX_KINDS", "VideoIndex", "index_recall"]
