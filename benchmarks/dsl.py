"""Exact chunked ranking with dual softmax (DSL) against the dense computation, and at a 100k-video gallery.

For each gallery size, text→video ranks are computed (1) densely — the full similarity matrix and its
DSL re-scoring, as most research code does — where that fits, and (2) with
`vidla_hf.evaluation.matched_ranks` in chunks (memory O(chunk²)). Each measurement runs in its own
subprocess so its peak memory is its own; the two forms give identical ranks (checked here too).

    python benchmarks/dsl.py [--sizes 4000 16000 100000] [--dense_max 16000] [--dim 128]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch


def measure(form: str, size: int, dim: int, chunk: int, ranks_file: str) -> dict:
    import torch
    import torch.nn.functional as F

    from vidla_hf.evaluation import dual_softmax, matched_ranks

    torch.manual_seed(0)
    queries = F.normalize(torch.randn(size, dim), dim=-1)
    gallery = F.normalize(queries + 0.5 * torch.randn(size, dim), dim=-1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if form == "dense":
        scores = dual_softmax(queries @ gallery.T, 100.0)
        ranks = (scores >= scores.diagonal()[:, None]).sum(dim=1)
    else:
        ranks = matched_ranks(queries, gallery, 100.0, chunk)
    seconds = time.perf_counter() - start
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    torch.save(ranks, ranks_file)
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "r1": float((ranks == 1).float().mean() * 100),
        "checksum": int(ranks.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 16000, 100000])
    parser.add_argument("--dense_max", type=int, default=16000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--worker", nargs=3)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker[0], int(args.worker[1]), args.dim, args.chunk, args.worker[2])))
        return
    print(f"text→video ranks with DSL (τ=100), float32, dim {args.dim}, chunk {args.chunk}")
    print(f"{'gallery':>8}  {'form':<8}{'seconds':>9}{'peak MB':>9}{'R@1':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            rows = {}
            for form in ("dense", "chunked") if size <= args.dense_max else ("chunked",):
                ranks_file = os.path.join(folder, f"{form}-{size}.pt")
                command = [
                    sys.executable,
                    __file__,
                    "--dim",
                    str(args.dim),
                    "--chunk",
                    str(args.chunk),
                    "--worker",
                    form,
                    str(size),
                    ranks_file,
                ]
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                rows[form] = json.loads(out.stdout.strip().splitlines()[-1])
                rows[form]["ranks"] = torch.load(ranks_file)
            for form, row in rows.items():
                print(f"{size:>8}  {form:<8}{row['seconds']:>9.1f}{row['peak_mb']:>9.0f}{row['r1']:>7.2f}")
            if len(rows) == 2:
                differ = int((rows["chunked"]["ranks"] != rows["dense"]["ranks"]).sum())
                print(
                    f"{'':>8}  chunked/dense: time {rows['chunked']['seconds'] / rows['dense']['seconds']:.2f}x, "
                    f"peak memory {rows['chunked']['peak_mb'] / max(rows['dense']['peak_mb'], 1):.3f}x; "
                    f"{differ} of {size} ranks differ (float32 rounding of near-ties; the tests check exact "
                    "equality in float64)"
                )


if __name__ == "__main__":
    main()
