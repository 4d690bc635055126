"""Puts the figures of a real run into the README: nothing in its results blocks is typed by hand.

After the main job and the evaluations (README, "Two commands" and "Evaluation"):

    python docs/render_results.py --train_results outputs/vidla-pretrain/train_results.json \\
        --eval results/retrieval.json results/classification.json results/multiple_choice.json

after the curation demo (README, "Curating training data"), `--curation_stats data/curated/stats.json`, and
after the ablations benchmark (README, "Temporal design ablations"), `--ablations results/ablations.json`,
copies those JSON files into docs/results/ and rewrites the README between the `<!-- results:NAME -->`
markers from them. `python docs/render_results.py --check` exits non-zero if the README differs from what
docs/results/ gives (the test suite runs it).
"""

import argparse
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
BLOCK = re.compile(r"(<!-- results:(\w+) -->\n)(.*?)(<!-- /results -->)", re.S)


def _number(value) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Not a finite number in the results: {value!r}.")
    return f"{value:.1f}"


def render_main_job(train: dict) -> str:
    """The table of R@1/5/10 before, during and after the main job, with where and how long it ran."""
    run, before, after = train["run"], train["before"], train["after"]
    chance = " / ".join(_number(min(100.0, 100.0 * k / after["num_videos"])) for k in (1, 5, 10))
    rows = [("before training", before)]
    rows += [
        (f"after {step} steps", train["during"][step]) for step in sorted(train.get("during", {}), key=int)
    ]
    rows.append((f"after {run['steps']} steps", after))
    lines = [
        f"A run of the main job ({run['steps']} steps of {run['global_batch_size']} clips, "
        f"{run['num_processes']} process(es) on {run['machine']}, torch {run['torch']}, "
        f"{run['wall_seconds'] / 60:.1f} min wall time with the evaluations; {after['num_videos']} val clips, "
        f"chance {chance}):",
        "",
        "| | R@1 | R@5 | R@10 | R@1 with DSL |",
        "|---|---|---|---|---|",
    ]
    for name, metrics in rows:
        figures = " | ".join(_number(metrics[k]) for k in ("R@1", "R@5", "R@10"))
        lines.append(f"| {name} | {figures} | {_number(metrics['dsl']['R@1'])} |")
    return "\n".join(lines) + "\n"


def render_evaluation(results: list[dict]) -> str:
    """One sentence per evaluation task, from `examples/evaluate.py`'s JSON."""
    by_task = {result["task"]: result for result in results}
    parts = []
    if "retrieval" in by_task:
        r = by_task["retrieval"]
        plain, dsl = r["metrics"]["text_to_video"], r["metrics"]["text_to_video_dsl"]
        parts.append(
            f"text→video R@1/5/10 {' / '.join(_number(plain[k]) for k in ('R@1', 'R@5', 'R@10'))}, with DSL "
            f"{' / '.join(_number(dsl[k]) for k in ('R@1', 'R@5', 'R@10'))} ({r['num_samples']} clips)"
        )
    if "classification" in by_task:
        c = by_task["classification"]
        classes = c["metrics"]["num_classes"]
        parts.append(
            f'zero-shot classification of the first event\'s "colour shape" ({classes} classes, chance '
            f"{_number(100 / classes)}) top-1 {_number(c['metrics']['top1'])}, top-5 "
            f"{_number(c['metrics']['top5'])}"
        )
    if "multiple_choice" in by_task:
        m = by_task["multiple_choice"]
        options = m["metrics"]["num_options"]
        parts.append(
            f"multiple choice among {options} captions {_number(m['metrics']['accuracy'])} "
            f"(chance {_number(100 / options)})"
        )
    return "Figures for the main job's model on the synthetic val split: " + "; ".join(parts) + ".\n"


def render_curation(stats: dict) -> str:
    """The curation's Table 1 as `examples/curate.py` prints it, with how long the run took."""
    from vidla_hf.data.curation import format_table

    _number(stats["run"]["seconds"])
    return (
        f"The demo's output ({stats['run']['processed']} sources curated by a "
        f"{stats['run']['seconds'] / 60:.1f}-minute Ray job on a 2-core CPU machine, tiny random models):\n\n```\n"
        f"{format_table(stats, stats.get('short_scale'))}\n```\n"
    )


def render_ablations(results: dict) -> str:
    """The ablations' table as `benchmarks/ablations.py` prints it (its own `format_table`), with how it ran."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ablations_benchmark", ROOT / "benchmarks" / "ablations.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    settings, run, data = results["settings"], results["run"], results["data"]
    seeds = len(settings["seeds"])
    return (
        f"`{results['command']}` ({results['mode']} mode; {seeds} seed{'s' if seeds > 1 else ''}; every variant {settings['steps']} steps of "
        f"{settings['batch_size']} clips from a CLIP initialisation trained {settings['clip_steps']} image-text steps; "
        f"{data['train_clips']} training clips, {data['held_out_clips']} held-out clips; "
        f"{run['wall_seconds'] / 60:.0f} min on {run['machine']}, {run['jobs']} trainings at a time). Text→video "
        f"R@1 / R@5, multiple choice among 5 captions and reversed-order multiple choice (caption → its clip or the "
        f"same frames reversed), in %, mean ± std over seeds:\n\n{bench.format_table(results)}\n"
    )


BLOCKS = ("main_job", "evaluation", "curation", "ablations")


def render_readme(readme: str) -> str:
    train = json.loads((RESULTS / "main_job.json").read_text())
    evaluations = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("evaluate_*.json"))]
    curation = json.loads((RESULTS / "curation_stats.json").read_text())
    ablations = json.loads((RESULTS / "ablations.json").read_text())
    blocks = {
        "main_job": render_main_job(train),
        "evaluation": render_evaluation(evaluations),
        "curation": render_curation(curation),
        "ablations": render_ablations(ablations),
    }

    def replace(match: re.Match) -> str:
        return match.group(1) + blocks[match.group(2)] + match.group(4)

    return BLOCK.sub(replace, readme)


def _write_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as file:
        file.write(text)
    os.chmod(file.name, path.stat().st_mode & 0o777 if path.exists() else 0o644)
    os.replace(file.name, path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train_results", help="train_results.json of the main job")
    parser.add_argument("--eval", nargs="*", default=[], help="results JSON files of examples/evaluate.py")
    parser.add_argument("--curation_stats", help="stats.json of the curation demo (examples/curate.py)")
    parser.add_argument("--ablations", help="results JSON of benchmarks/ablations.py")
    parser.add_argument("--check", action="store_true", help="only check that the README is up to date")
    args = parser.parse_args()
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    if args.check:
        missing = [name for name in BLOCKS if f"<!-- results:{name} -->" not in readme]
        if missing:
            sys.exit(f"README.md lacks the results blocks {missing}.")
        if render_readme(readme) != readme:
            sys.exit("README.md's results blocks differ from docs/results/: run docs/render_results.py.")
        print("README.md's results blocks match docs/results/.")
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.train_results:
        _write_atomic(RESULTS / "main_job.json", Path(args.train_results).read_text())
    if args.curation_stats:
        _write_atomic(RESULTS / "curation_stats.json", Path(args.curation_stats).read_text())
    if args.ablations:
        _write_atomic(RESULTS / "ablations.json", Path(args.ablations).read_text())
    for path in args.eval:
        task = json.loads(Path(path).read_text())["task"]
        _write_atomic(RESULTS / f"evaluate_{task}.json", Path(path).read_text())
    _write_atomic(readme_path, render_readme(readme))
    print(f"README.md results blocks rewritten from {RESULTS}")


if __name__ == "__main__":
    main()
