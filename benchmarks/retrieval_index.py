"""Text→video search over 10k, 100k and 1M videos: brute force against FAISS indexes, side by side.

For each gallery size, random 512-d embeddings (VidLA-B's projection width) clustered around 1,000 centres
(real video embeddings cluster by content; uniformly random ones are the worst case for inverted files,
`--unclustered` measures that), a batch of queries near gallery items, and:

* brute force: `queries @ gallery.T` + top-k in torch (the full-matrix evaluation's way, in chunks);
* `flat`: FAISS `IndexFlatIP` (exact);
* `ivf`: `IndexIVFFlat`, 4·√N cells, `nprobe` 16 (approximate);
* `hnsw`: `IndexHNSWFlat`, 32 links, efSearch 128 (approximate; its build is the slowest, `--kinds` to skip).

Each method answers the same query batch in interleaved rounds (medians reported); memory is the index's
serialised size against the float32 matrix; recall@10 is measured against the exact top-10. Prints, per size,
query latency per query, speed-up over brute force, build time, memory ratio and recall.

    python benchmarks/retrieval_index.py [--sizes 10000 100000 1000000] [--queries 256] [--rounds 3]
"""

import argparse
import statistics
import time

import numpy as np
import torch

from vidla_hf.evaluation.index import VideoIndex

DIM, K = 512, 10


def make_data(size: int, queries: int, clustered: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if clustered:
        centres = rng.normal(size=(1000, DIM)).astype(np.float32)
        gallery = centres[rng.integers(0, 1000, size)]
        gallery += 0.7 * rng.normal(size=(size, DIM)).astype(np.float32)
    else:
        gallery = rng.normal(size=(size, DIM)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    picks = rng.integers(0, size, queries)
    query = gallery[picks] + 0.05 * rng.normal(size=(queries, DIM)).astype(np.float32)
    return gallery, query / np.linalg.norm(query, axis=1, keepdims=True)


def brute_force(gallery: torch.Tensor, queries: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Exact top-K ids by chunks of the gallery (the matrix of one chunk at a time)."""
    best_scores = torch.full((len(queries), K), -torch.inf)
    best_ids = torch.zeros((len(queries), K), dtype=torch.long)
    for start in range(0, len(gallery), chunk):
        scores = queries @ gallery[start : start + chunk].T
        scores, ids = (
            torch.cat([best_scores, scores], 1),
            torch.cat([best_ids, torch.arange(start, start + scores.shape[1]).expand(len(queries), -1)], 1),
        )
        best_scores, order = scores.topk(K, dim=1)
        best_ids = ids.gather(1, order)
    return best_ids


def index_bytes(index: VideoIndex) -> int:
    import faiss

    return faiss.serialize_index(index.index).nbytes


def run_size(size: int, args) -> list[dict]:
    gallery, queries = make_data(size, args.queries, not args.unclustered)
    gallery_t, queries_t = torch.from_numpy(gallery), torch.from_numpy(queries)
    exact = brute_force(gallery_t, queries_t).numpy()
    methods = {"brute force": None}
    builds = {}
    for kind in args.kinds:
        start = time.perf_counter()
        methods[kind] = VideoIndex.build(gallery, kind=kind)
        builds[kind] = time.perf_counter() - start
    times = {name: [] for name in methods}
    found = {}
    for round_ in range(args.rounds):
        names = list(methods) if round_ % 2 == 0 else list(reversed(methods))
        for name in names:
            start = time.perf_counter()
            if methods[name] is None:
                ids = brute_force(gallery_t, queries_t).numpy()
            else:
                ids = np.array(methods[name].search(queries, K)[1])
            times[name].append(time.perf_counter() - start)
            found[name] = ids
    rows = []
    base = statistics.median(times["brute force"])
    for name, index in methods.items():
        latency = statistics.median(times[name])
        recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(found[name], exact, strict=True)])
        memory = gallery.nbytes if index is None else index_bytes(index)
        rows.append(
            {
                "size": size,
                "method": name,
                "ms_per_query": 1000 * latency / len(queries),
                "speedup": base / latency,
                "build_s": builds.get(name, 0.0),
                "memory_vs_matrix": memory / gallery.nbytes,
                "recall@10": recall,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--kinds", nargs="+", default=["flat", "ivf", "hnsw"], choices=["flat", "ivf", "hnsw"]
    )
    parser.add_argument("--unclustered", action="store_true", help="uniformly random embeddings (worst case)")
    args = parser.parse_args()
    if min(args.sizes) < 1000 or args.queries < 1 or args.rounds < 1:
        parser.error("sizes must be >= 1000, queries and rounds >= 1")
    print(f"{DIM}-d embeddings, {args.queries} queries, top-{K}, torch threads {torch.get_num_threads()}")
    header = f"{'videos':>9} {'method':>12} {'ms/query':>9} {'× brute':>8} {'build s':>8} {'memory ×':>9} {'recall@10':>10}"
    print(header)
    for size in args.sizes:
        for row in run_size(size, args):
            for key in ("ms_per_query", "speedup", "build_s", "memory_vs_matrix", "recall@10"):
                if not np.isfinite(row[key]):
                    raise ValueError(f"non-finite {key} for {row['method']} at {size}")
            print(
                f"{row['size']:>9} {row['method']:>12} {row['ms_per_query']:>9.3f} {row['speedup']:>8.1f} "
                f"{row['build_s']:>8.1f} {row['memory_vs_matrix']:>9.2f} {row['recall@10']:>10.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
