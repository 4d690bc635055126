"""The curation pipeline (paper §3, A.4) as a Ray Data job: long videos with speech in, clip shards out.

One row per source video, read top to bottom (the stages are in `stages`):

    ray.data.from_items(sources)
      .map(prepare_source)                    task   validate the video; words from ASR / subtitles
      .map_batches(PunctuationStage, ...)     model  restore punctuation              (--punctuation_model)
      .map(plan_source_clips)                 task   sentences → multi-scale clips at sentence boundaries
      .map(decode_caption_frames)             task   decode the source once at --caption_fps
      .map_batches(CaptionStage, ...)         model  caption those frames, once per source     (--captioner)
      .map(assign_frame_captions)             task   each caption to every clip that contains its time
      .map_batches(SummaryStage, ...)         model  the paper's prompt, 77 CLIP tokens       (--summarizer)
      .map(write_source)                      task   cut + encode the clips, tar shard, source record

CPU stages are tasks (`num_workers` at a time); each model is a pool of `model_replicas` actors, each with
one GPU when the cluster has GPUs (`gpus_per_model`) and otherwise no reserved CPU, so the model actors and
`num_workers` tasks share the machine. A model that is "none" drops its stage (the paper's ablations).
Everything that can be checked is checked before Ray starts: the manifest, the models, the output folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from .model_checks import check_model
from .records import DEFAULT_SCALES
from .shards import OutputFolder
from .sources import read_manifest
from .stages import (
    CaptionStage,
    PunctuationStage,
    SummaryStage,
    assign_frame_captions,
    decode_caption_frames,
    initial_row,
    join_clip_texts,
    plan_source_clips,
    prepare_source,
    warm_up,
    write_source,
)
from .stats import aggregate, format_table

# The paper's models (§3, A.4), as the command line's defaults for a real manifest. The paper names no
# punctuation model beyond "BERT-based"; this one is a BERT model trained to restore punctuation.
PAPER_MODELS = {
    "punctuation_model": "felflare/bert-restore-punctuation",
    "captioner": "Salesforce/blip2-opt-2.7b",
    "summarizer": "meta-llama/Llama-2-13b-chat-hf",
}


@dataclasses.dataclass
class CurationSettings:
    """What the curated data depends on (recorded in the output folder: a rerun must use the same).

    Models are Hub ids, local folders or "none". Durations are in seconds; `min_duration` / `max_duration`
    of None mean half / twice each scale's target. Clips are cut at `clip_fps` (capped at the source's
    rate) with the short side at most `clip_short_side`, as H.264 at quality `clip_crf`.
    """

    punctuation_model: str = "none"
    captioner: str = "none"
    summarizer: str = "none"
    caption_fps: float = 0.1
    caption_short_side: int = 224
    scales: dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SCALES))
    min_duration: float | None = None
    max_duration: float | None = None
    clip_short_side: int = 224
    clip_fps: float = 8.0
    clip_crf: int = 23

    @property
    def short_scale(self) -> str:
        """The scale with the shortest target: its texts are not summarised (Table 1)."""
        return min(self.scales, key=self.scales.get)

    def check(self) -> None:
        """Raises `ValueError` naming the option for a bad value or an unknown model (before any work)."""
        for name in ("caption_fps", "clip_fps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}.")
        for name in ("caption_short_side", "clip_short_side"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 16):
                raise ValueError(f"`{name}` must be an integer >= 16, got {getattr(self, name)!r}.")
        if not 0 <= self.clip_crf <= 51:
            raise ValueError(f"`clip_crf` must be in [0, 51], got {self.clip_crf}.")
        if not self.scales or any(not (isinstance(v, (int, float)) and v > 0) for v in self.scales.values()):
            raise ValueError(f"`scales` must map scale names to positive durations, got {self.scales!r}.")
        for kind in PAPER_MODELS:
            check_model(getattr(self, kind), kind)


@contextlib.contextmanager
def ray_session(num_workers: int | None, address: str | None):
    """Connects to `address` (or RAY_ADDRESS), or starts a local Ray with `num_workers` CPUs; an already
    initialised Ray is used as is. Shuts down only what it started."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=num_workers or os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING
        )
    try:
        yield
    finally:
        ray.shutdown()


def build_dataset(
    sources: list[dict[str, Any]],
    settings: CurationSettings,
    output_dir: str,
    num_workers: int | None = None,
    model_replicas: int = 1,
    gpus_per_model: float | None = None,
):
    """The Ray Dataset of the whole pipeline (lazy): one small result row per source when consumed."""
    import ray

    if gpus_per_model is None:
        gpus_per_model = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    tasks = {"compute": ray.data.TaskPoolStrategy(size=num_workers)} if num_workers else {}

    def model(name: str, **kwargs) -> dict[str, Any]:
        resources = {"num_gpus": gpus_per_model, "num_cpus": 1} if gpus_per_model else {"num_cpus": 0}
        return {
            "fn_constructor_kwargs": {"model": name, **kwargs},
            "compute": ray.data.ActorPoolStrategy(size=model_replicas),
            "batch_size": 1,  # a source; models batch within it (deterministic whatever the scheduling)
            **resources,
        }

    ds = ray.data.from_items([initial_row(s) for s in sources], override_num_blocks=len(sources))
    ds = ds.map(prepare_source, **tasks)
    if settings.punctuation_model != "none":
        ds = ds.map_batches(PunctuationStage, **model(settings.punctuation_model))
    ds = ds.map(
        plan_source_clips, fn_args=(settings.scales, settings.min_duration, settings.max_duration), **tasks
    )
    if settings.captioner != "none":
        ds = ds.map(
            decode_caption_frames, fn_args=(settings.caption_fps, settings.caption_short_side), **tasks
        )
        ds = ds.map_batches(CaptionStage, **model(settings.captioner))
        ds = ds.map(assign_frame_captions, **tasks)
    if settings.summarizer != "none":
        ds = ds.map_batches(SummaryStage, **model(settings.summarizer, short_scale=settings.short_scale))
    else:
        ds = ds.map(join_clip_texts, fn_args=(settings.short_scale,), **tasks)
    write_args = (output_dir, settings.clip_short_side, settings.clip_fps, settings.clip_crf)
    return ds.map(write_source, fn_args=write_args, **tasks)


def curate(
    manifest: str | os.PathLike,
    output_dir: str | os.PathLike,
    settings: CurationSettings | None = None,
    *,
    num_workers: int | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    model_replicas: int = 1,
    gpus_per_model: float | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Curates the sources of `manifest` into WebDataset shards in `output_dir`; returns the stats.

    Checks the manifest, the settings (models included) and the output folder first (`ValueError`s, before
    Ray starts), then runs the sources not yet done on Ray (`ray_session`), then writes `stats.json` and
    `manifest.json` over all the manifest's sources done so far. Sources that failed unexpectedly are
    listed in `stats["sources"]["failed"]` and retried by the next run.

    Example (the tiny models' text is not meaningful):

    ```python
    >>> from vidla_hf.data.curation import CurationSettings, curate, make_synthetic_sources
    >>> manifest = make_synthetic_sources("data/curation_demo/sources")  # doctest: +SKIP
    >>> stats = curate(manifest, "data/curated", CurationSettings(), num_workers=2)  # doctest: +SKIP
    >>> stats["scales"]["short"]["clips"] > 0  # doctest: +SKIP
    True

    ```
    """
    settings = settings or CurationSettings()
    sources = read_manifest(manifest)
    settings.check()
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"`num_workers` must be >= 1, got {num_workers}.")
    if model_replicas < 1 or (gpus_per_model is not None and gpus_per_model < 0):
        raise ValueError(
            f"`model_replicas` must be >= 1 and `gpus_per_model` >= 0, got {model_replicas}, {gpus_per_model}."
        )
    output_dir = Path(output_dir).resolve()
    # Held until the end: a second run on this folder is refused meanwhile (`locking`).
    with OutputFolder(output_dir, dataclasses.asdict(settings), overwrite) as folder:
        todo = [source for source in sources if folder.record(source["id"], source["split"]) is None]
        for source in todo:
            folder.forget(source["id"])  # an unfinished source, or one moved to another split: ours to redo
        start = time.perf_counter()
        failed = {}
        if todo:
            if not verbose:
                logging.getLogger("ray.data").setLevel(logging.WARNING)
            with ray_session(num_workers, ray_address):
                import ray

                ray.data.DataContext.get_current().enable_progress_bars = verbose
                # One task per worker slot imports the stages' modules while the model actors start.
                warming = [ray.remote(num_cpus=1)(warm_up).remote() for _ in range(num_workers or 0)]
                dataset = build_dataset(
                    todo, settings, str(output_dir), num_workers, model_replicas, gpus_per_model
                )
                results = dataset.take_all()
                ray.get(warming)
            failed = {row["id"]: row["detail"] for row in results if row["status"] == "failed"}
        records = [
            record
            for source in sources
            if (record := folder.record(source["id"], source["split"])) is not None
        ]
        stats = aggregate(records, failed, list(settings.scales))
        stats["short_scale"] = settings.short_scale
        stats["run"] = {
            "processed": len(todo),
            "already_done": len(sources) - len(todo),
            "seconds": time.perf_counter() - start,
        }
        partial = output_dir / ".stats.json.partial"
        partial.write_text(json.dumps(stats, indent=1))
        os.replace(partial, output_dir / "stats.json")
        folder.publish(records)
    if verbose:
        print(format_table(stats, settings.short_scale))
    return stats


__all__ = ["PAPER_MODELS", "CurationSettings", "build_dataset", "curate", "ray_session"]
