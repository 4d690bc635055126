"""Embed a video library with a VidLA model on Ray Data into Parquet files (`id`, `embedding`, metadata).

    python examples/embed.py --model outputs/vidla-pretrain --videos data/my_videos --output_dir embeddings
    python examples/embed.py --model org/vidla-b16 --videos manifest.jsonl --output_dir embeddings --ray_address auto
    python examples/embed.py --model outputs/vidla-pretrain --videos data/curated --output_dir embeddings

`--videos` is a folder of video files, a JSON Lines / Parquet manifest (`id`, `video` path or URL, metadata)
or WebDataset shards (a .tar glob or a folder with manifest.json, e.g. the curation's output). A local Ray
starts unless --ray_address (or RAY_ADDRESS) names a cluster; each actor holds the model (one GPU each when
the cluster has GPUs). A rerun skips the parts already written; undecodable videos are skipped and listed in
`part-NNNNN.skipped.json`. Search the result with `vidla_hf.evaluation.VideoIndex.from_parquet(output_dir)`.
"""

import argparse
import sys

from vidla_hf.evaluation.embed_job import embed_library


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a VidLA model folder or Hub id (with its processor)")
    parser.add_argument("--videos", required=True, help="folder, manifest (.jsonl/.parquet) or shards")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--split", default="train", help="split of a shard folder")
    parser.add_argument("--part_size", type=int, default=256, help="videos per Parquet part")
    parser.add_argument("--actors", type=int, default=1, help="model replicas")
    parser.add_argument(
        "--gpus_per_actor", type=float, default=None, help="default: 1 if the cluster has GPUs"
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    parser.add_argument("--ray_address", default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace embeddings of another model/source")
    args = parser.parse_args()
    try:
        counts = embed_library(
            args.videos,
            args.model,
            args.output_dir,
            part_size=args.part_size,
            split=args.split,
            actors=args.actors,
            gpus_per_actor=args.gpus_per_actor,
            batch_size=args.batch_size,
            ray_address=args.ray_address,
            num_cpus=args.num_cpus,
            overwrite=args.overwrite,
        )
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(
        f"{counts['parts']} parts ({counts['already_done']} already done): {counts['embedded']} videos embedded, "
        f"{counts['skipped']} skipped (listed in part-*.skipped.json) into {args.output_dir}"
    )


if __name__ == "__main__":
    main()
