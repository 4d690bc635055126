"""Publish a trained VidLA folder to the Hub in a single commit, with an honest model card.

    python examples/publish.py --model_dir outputs/vidla-pretrain --repo_id ORG/NAME \\
        [--private] [--revision BRANCH] [--eval_results results.json] [--dataset_name ORG/DATA] \\
        [--dry_run OUT [--overwrite]]

The repository gets safetensors weights, the config with `auto_map` and `custom_pipelines`, the processor,
the code for `trust_remote_code=True` (model, processor and both pipelines) and a model card whose
`model-index` holds exactly the results in --eval_results (from examples/evaluate.py; none given, none
claimed). The card's `datasets` are --dataset_name, or the run's training data if that was a Hub dataset;
local data is described by its folder name, never its path. --dry_run OUT writes that folder and pushes
nothing: OUT must be new or empty, and --overwrite replaces only a folder an earlier --dry_run wrote
(marked by `.vidla_publish`), never a training run or other data. Log in first (`hf auth login`) or set
HF_TOKEN.
"""

import argparse

from vidla_hf.hub import publish


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--repo_id", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="Branch to push to (created if missing)")
    parser.add_argument(
        "--eval_results", default=None, help="JSON written by examples/evaluate.py (object or list)"
    )
    parser.add_argument(
        "--dataset_name",
        nargs="+",
        default=None,
        metavar="ID",
        help="Hub dataset id(s) for the card's metadata (default: the run's training data if it is one)",
    )
    parser.add_argument(
        "--dry_run", default=None, metavar="OUT", help="Write the repository folder here, push nothing"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="With --dry_run: replace OUT if an earlier --dry_run wrote it (anything else is refused)",
    )
    parser.add_argument("--license", default="apache-2.0")
    args = parser.parse_args()
    if args.overwrite and args.dry_run is None:
        parser.error("--overwrite only applies with --dry_run (a push never deletes anything)")
    result = publish(
        args.model_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        eval_results=args.eval_results,
        dry_run=args.dry_run,
        license=args.license,
        overwrite=args.overwrite,
        dataset_name=args.dataset_name,
    )
    print(f"wrote {result}" if args.dry_run else f"pushed: {getattr(result, 'commit_url', result)}")


if __name__ == "__main__":
    main()
