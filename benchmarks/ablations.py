"""Does VidLA's temporal design matter? The paper's ablations (Tables 4, 5 and 15) reproduced at small scale.

Every variant starts from the same CLIP-style initialisation and trains on the embedded synthetic dataset, whose
clips differ by the order and direction of their events more than by what a single frame shows (a frame tells a
shape's colour and kind; "moves left, then a blue square moves up" needs the frames' order):

  clip_init         the initialisation itself, mean-pooled over frames, before any video training (reference)
  mean_pool         CLIP's image tower on each frame, frame embeddings averaged (CLIP4Clip's mean pooling): no
                    temporal modelling
  no_mst            VidLA without [MST] tokens and without local temporal attention (Table 4 row 1, Table 15 "×")
  mst               [MST] tokens without hierarchy, U-V-r 1-4-1, no local attention         (Table 4 row 2)
  mst_hierarchy     [MST] 3-4-2, no local attention                                          (Table 4 row 3)
  mst_local         [MST] 1-4-1 + spatially local temporal attention            (Table 4 row 4, Table 15 1-4-1)
  full              [MST] 3-4-2 + local attention, the paper's model             (Table 4 row 5, Table 15 3-4-2)
  mst_2_4_2, mst_2_4_3, mst_3_4_3   Table 15's other [MST] designs (with local attention)
  full_short_clips  `full` trained on short clips only: each training clip cut into its 1-event clips (the same
                    source frames), against `full` on the dataset's 1/2/4-event clips (Table 5, multi-scale data)

Protocol:
1. Data: `data/synthetic` (generated with the dataset's defaults if absent), decoded once into memory. Training
   on the train split (2048 clips of 1, 2 or 4 events, 8 frames an event); evaluation on the val and test splits
   together (256 clips no variant trains on; nothing is selected on them, so both serve as test data).
2. CLIP-style initialisation, one per seed: a `CLIPModel` of vidla-tiny's shape (2 layers, 4 heads, 64 px, patch
   16) at width 64 with CLIP's vocabulary, trained image-text (info-NCE, distinct captions in a batch, 300 steps)
   on single frames of the training clips captioned by appearance and place ("a red circle at the top left").
   Like the paper's CLIP it knows colours, shapes and places, nothing of motion or order.
3. Each variant trains from that initialisation (`VidLAModel.from_clip`; `mean_pool` trains the CLIP itself) for
   500 steps of 32 clips with eq. 3 (`VidLALoss`: video-caption + video-subtitle info-NCE), AdamW with the
   library's parameter groups, cosine schedule with warm-up, gradient clipping 10, temperature clamped at 100.
   VidLA's new parameters (temporal attention, [MST] tokens, temporal position table; all start at zero or
   random) learn at 10x the CLIP weights' rate (`--new_lr_scale`), as CLIP4Clip-style recipes give new modules.
   8 frames a clip, one random frame per segment; no crop and no flip (a flip turns "moves left" into "moves
   right" under an unchanged caption). Within a seed every variant sees the same batches and frames.
4. Metrics on the held-out clips (8 uniform frames): text-to-video R@1 / R@5 (no DSL, as the paper's section 6),
   multiple choice among 5 captions (`build_multiple_choice`), and reversed-order multiple choice
   (`reversed_order_accuracy`: each caption against its clip and the same frames reversed; chance 50, and frame
   averaging is exactly at chance). Mean +- sample std over seeds.

Sizes were chosen to fit ~45 minutes on 2 CPU cores (measured, one seed each: at width 128 a step costs ~3x
more, and 300 steps at equal learning rates left every temporal variant at 54-57 % on the reversed-order test;
the 10x rate took the full model to 65 %, width 64 with 600 steps to 79 %).

The training loop is written here rather than launching `examples/pretrain.py` per run: 30 trainings and 3 CLIP
initialisations must fit in ~45 minutes on 2 CPU cores, and the script's streamed pipeline would decode every
clip's MP4 again at every step and pay accelerate's start-up per run. This loop is the library's own pieces (loss, parameter groups, schedule,
video processor statistics, evaluation functions) around frames decoded once; it has no checkpointing, resume
or multi-process training, which minutes-long runs do not need. `--jobs 2` runs two trainings at a time, one
thread each (faster on 2 cores than one run on two threads for models this small).

    python benchmarks/ablations.py --quick                      # one seed, 150 steps: ~4 minutes
    python benchmarks/ablations.py --output docs/results/ablations.json --plot docs/ablations.png
"""

import argparse
import copy
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPConfig, CLIPModel, get_cosine_with_min_lr_schedule_with_warmup
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vidla_hf import VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.data.streams import load_video_text_stream
from vidla_hf.data.synthetic import FRAMES_PER_EVENT, generate_synthetic_dataset, short_clips
from vidla_hf.evaluation import (
    build_multiple_choice,
    embed_texts,
    evaluate_retrieval,
    multiple_choice_accuracy,
    reversed_order_accuracy,
)
from vidla_hf.modeling.convert_clip import is_new_vidla_parameter
from vidla_hf.modeling.modeling_vidla import info_nce
from vidla_hf.processing import read_video
from vidla_hf.processing.frame_sampling import random_frame_indices, uniform_frame_indices
from vidla_hf.training.losses import VidLALoss
from vidla_hf.training.setup import parameter_groups

LAYERS, HEADS, IMAGE_SIZE, PATCH_SIZE = 2, 4, 64, 16  # vidla-tiny's, at the width of `--width`
NUM_FRAMES, MC_OPTIONS = 8, 5
METRICS = ("R@1", "R@5", "mc", "reversed_mc")


@dataclass(frozen=True)
class Variant:
    label: str
    paper: str
    vidla: dict | None = None  # VidLA config fields; None: mean-pooled CLIP
    short_clips_only: bool = False
    trained: bool = True


def _mst(levels: int, scale: int, local: bool) -> dict:
    return {
        "mst_levels": levels,
        "mst_tokens_per_level": 4,
        "mst_temporal_scale": scale,
        "use_local_temporal_attention": local,
    }


VARIANTS = {
    "clip_init": Variant("CLIP init, mean-pooled, no video training", "-", trained=False),
    "mean_pool": Variant("mean-pooled per-frame CLIP", "baseline (CLIP4Clip meanP)"),
    "no_mst": Variant("no [MST], no hierarchy, no local", "T4 row 1, T15 x", _mst(0, 1, False)),
    "mst": Variant("[MST] 1-4-1", "T4 row 2", _mst(1, 1, False)),
    "mst_hierarchy": Variant("[MST] 3-4-2 (hierarchy)", "T4 row 3", _mst(3, 2, False)),
    "mst_local": Variant("[MST] 1-4-1 + local", "T4 row 4, T15 1-4-1", _mst(1, 1, True)),
    "full": Variant("[MST] 3-4-2 + local (full)", "T4 row 5, T15 3-4-2", _mst(3, 2, True)),
    "mst_2_4_2": Variant("[MST] 2-4-2 + local", "T15 2-4-2", _mst(2, 2, True)),
    "mst_2_4_3": Variant("[MST] 2-4-3 + local", "T15 2-4-3", _mst(2, 3, True)),
    "mst_3_4_3": Variant("[MST] 3-4-3 + local", "T15 3-4-3", _mst(3, 3, True)),
    "full_short_clips": Variant("full, short clips only", "T5 short only", _mst(3, 2, True), True),
}


@dataclass
class Settings:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    steps: int = 500
    batch_size: int = 32
    learning_rate: float = 3e-4
    warmup_steps: int = 20
    clip_steps: int = 300
    clip_batch_size: int = 64
    clip_learning_rate: float = 1e-3
    width: int = 64
    new_lr_scale: float = 10.0
    train_clips: int | None = None  # all of the train split
    eval_clips: int | None = None  # all of val + test


QUICK = {"seeds": [0], "steps": 150, "clip_steps": 150}


# --- Data ------------------------------------------------------------------------------------------------------


def load_clips(source: str, split: str, limit: int | None = None) -> list[dict]:
    """Every clip of a split, all frames decoded: `{"frames": (T, 64, 64, 3) uint8, "caption", "subtitle",
    "events", "scale"}` in stream order."""
    clips = []
    for example in load_video_text_stream(source, split):
        if limit is not None and len(clips) >= limit:
            break
        meta = example["json"] if isinstance(example["json"], dict) else json.loads(example["json"])
        frames, _ = read_video(example["mp4"])
        if frames.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise ValueError(
                f"Expected {IMAGE_SIZE}x{IMAGE_SIZE} frames in {source}, got {frames.shape[1:3]}."
            )
        clips.append({"frames": frames, **{k: meta[k] for k in ("caption", "subtitle", "events", "scale")}})
    if not clips:
        raise ValueError(f"No clips in split {split!r} of {source!r}.")
    return clips


def cut_short(clips: list[dict], seed: int = 0) -> list[dict]:
    """The short-only training set: every clip cut into its 1-event clips (`synthetic.short_clips`)."""
    rng = np.random.default_rng(seed)
    return [
        {"frames": frames, "caption": caption, "subtitle": subtitle, "events": [event], "scale": "short"}
        for clip in clips
        for event, (frames, caption, subtitle) in zip(
            clip["events"], short_clips(clip["frames"], clip["events"], rng), strict=True
        )
    ]


def build_processor() -> VidLAProcessor:
    size = {"shortest_edge": IMAGE_SIZE}
    video = VidLAVideoProcessor(
        num_frames=NUM_FRAMES, size=size, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return VidLAProcessor(video, build_clip_tokenizer())


def normalise(frames: np.ndarray, processor: VidLAProcessor) -> torch.Tensor:
    """(..., H, W, 3) uint8 → (..., 3, H, W) float, with the video processor's CLIP mean and std. The frames are
    already at the model's size, so this is what the processor's evaluation path computes (tested)."""
    mean = torch.tensor(processor.video_processor.image_mean).view(3, 1, 1)
    std = torch.tensor(processor.video_processor.image_std).view(3, 1, 1)
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float() / 255.0
    return (pixels - mean) / std


def tokenise(texts: list[str], processor: VidLAProcessor) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = processor(text=texts, return_tensors="pt")
    return tokens["input_ids"], tokens["attention_mask"]


def trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    length = int(mask.sum(dim=1).max())
    return ids[:, :length], mask[:, :length]


POSITIONS = (("top", "", "bottom"), ("left", "", "right"))


def frame_places(frames: np.ndarray) -> list[str | None]:
    """Where the shape of each `(H, W, 3)` frame is: `"top left"`, `"left"`, `"centre"`, ... (the third of the
    frame its centre is in, from the pixels that differ from the border's median colour); None if no shape shows."""
    border = np.concatenate(
        [frames[:, 0], frames[:, -1], frames[:, :, 0], frames[:, :, -1]], axis=1
    )  # (T, 4W, 3)
    background = np.median(border, axis=1)[:, None, None]  # (T, 1, 1, 3)
    shape = np.abs(frames.astype(np.int16) - background).sum(-1) > 60  # (T, H, W)
    rows, cols = np.arange(frames.shape[1]), np.arange(frames.shape[2])
    places = []
    for mask in shape:
        if not mask.any():
            places.append(None)
            continue
        y = (mask.sum(1) * rows).sum() / mask.sum()
        x = (mask.sum(0) * cols).sum() / mask.sum()
        row, col = (min(int(v * 3 // size), 2) for v, size in ((y, mask.shape[0]), (x, mask.shape[1])))
        places.append(" ".join(w for w in (POSITIONS[0][row], POSITIONS[1][col]) if w) or "centre")
    return places


def frame_captions(clips: list[dict]) -> tuple[list[tuple[int, int]], list[str]]:
    """Every frame of `clips` as `(clip, frame)` with its caption: `"a red circle at the top left"`, the colour and
    kind of the frame's shape and where it is (`frame_places`). Frames with no visible shape are left out."""
    where, captions = [], []
    for c, clip in enumerate(clips):
        for t, place in enumerate(frame_places(clip["frames"])):
            if place is not None:
                event = clip["events"][t // FRAMES_PER_EVENT]
                where.append((c, t))
                captions.append(f"a {event['color']} {event['shape']} at the {place}")
    return where, captions


# --- Models ------------------------------------------------------------------------------------------------------


class MeanPooledCLIP(nn.Module):
    """CLIP4Clip's mean pooling: CLIP's image tower on every frame, the L2-normalised frame embeddings averaged.
    Exposes `get_video_features` / `get_text_features` / `logit_scale` as `VidLAModel` does."""

    def __init__(self, clip: CLIPModel):
        super().__init__()
        self.clip = clip

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.clip.logit_scale

    def get_video_features(self, pixel_values_videos: torch.Tensor) -> BaseModelOutputWithPooling:
        batch, frames = pixel_values_videos.shape[:2]
        per_frame = self.clip.get_image_features(pixel_values=pixel_values_videos.flatten(0, 1)).pooler_output
        pooled = F.normalize(per_frame, dim=-1).view(batch, frames, -1).mean(dim=1)  # (B·T, D) → (B, D)
        return BaseModelOutputWithPooling(pooler_output=pooled)

    def get_text_features(self, input_ids, attention_mask=None) -> BaseModelOutputWithPooling:
        return self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask)


def tiny_clip(width: int) -> CLIPModel:
    """A random CLIP of vidla-tiny's shape (2 layers, 4 heads, 64 px, patch 16) at `width`, with CLIP's vocabulary."""
    tower = {
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
    }
    vision = {**tower, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE}
    return CLIPModel(CLIPConfig(text_config=tower, vision_config=vision, projection_dim=width))


def build_variant(name: str, clip: CLIPModel) -> nn.Module:
    """The variant `name` initialised from `clip` (which is left untouched)."""
    variant = VARIANTS[name]
    if variant.vidla is None:
        return MeanPooledCLIP(copy.deepcopy(clip))
    return VidLAModel.from_clip(clip, num_frames=NUM_FRAMES, **variant.vidla)


def _optimise(model: nn.Module, settings_lr: float, steps: int, warmup: int, new_lr_scale: float = 1.0):
    new = {id(p) for n, p in model.named_parameters() if is_new_vidla_parameter(n)}
    groups = []
    for group in parameter_groups(model, 0.02):
        groups.append({**group, "params": [p for p in group["params"] if id(p) not in new]})
        groups.append(
            {
                **group,
                "params": [p for p in group["params"] if id(p) in new],
                "lr": settings_lr * new_lr_scale,
            }
        )
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=settings_lr, betas=(0.9, 0.999), fused=True)
    schedule = get_cosine_with_min_lr_schedule_with_warmup(optimizer, warmup, steps, min_lr=settings_lr / 50)
    return optimizer, schedule


def _step(model, optimizer, schedule, loss: torch.Tensor, where: str) -> float:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{where}: the loss is {loss.item()}; stopping before the update.")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    optimizer.step()
    schedule.step()
    with torch.no_grad():  # CLIP's clamp of the inverse temperature at 100
        model.logit_scale.clamp_(0, math.log(100))
    return loss.item()


def _progress(what: str, step: int, steps: int, loss: float) -> None:
    if (step + 1) % 100 == 0 or step + 1 == steps:
        print(f"  {what}: step {step + 1}/{steps}, loss {loss:.3f}", flush=True)


def pretrain_clip(clips: list[dict], processor, settings: Settings, seed: int) -> CLIPModel:
    """The CLIP-style initialisation of a seed: image-text info-NCE on single frames with distinct captions."""
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 0])
    clip = tiny_clip(settings.width).train()
    where, captions = frame_captions(clips)
    names = sorted(set(captions))
    by_caption = {name: [i for i, c in enumerate(captions) if c == name] for name in names}
    ids, mask = tokenise(names, processor)
    optimizer, schedule = _optimise(
        clip, settings.clip_learning_rate, settings.clip_steps, settings.warmup_steps
    )
    for step in range(settings.clip_steps):
        chosen = rng.choice(len(names), min(settings.clip_batch_size, len(names)), replace=False)
        frames = [where[rng.choice(by_caption[names[n]])] for n in chosen]
        pixels = normalise(np.stack([clips[c]["frames"][t] for c, t in frames]), processor)
        images = F.normalize(clip.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
        batch_ids, batch_mask = trim(ids[chosen], mask[chosen])
        texts = F.normalize(
            clip.get_text_features(input_ids=batch_ids, attention_mask=batch_mask).pooler_output, dim=-1
        )
        loss = info_nce(images, texts, clip.logit_scale.exp())
        value = _step(clip, optimizer, schedule, loss, f"CLIP initialisation, seed {seed}, step {step}")
        _progress(f"CLIP init, seed {seed}", step, settings.clip_steps, value)
    return clip.eval()


@torch.no_grad()
def frame_caption_accuracy(clip: CLIPModel, clips: list[dict], processor) -> dict:
    """Top-1 (%) of each held-out frame against every place-and-appearance caption: what the initialisation knows."""
    where, captions = frame_captions(clips)
    names = sorted(set(captions))
    texts = embed_texts(MeanPooledCLIP(clip), processor, names)
    pixels = normalise(np.stack([clips[c]["frames"][t] for c, t in where]), processor)
    images = torch.cat([clip.get_image_features(pixel_values=p).pooler_output for p in pixels.split(256)])
    predicted = (F.normalize(images, dim=-1) @ texts.T).argmax(dim=1)
    truth = torch.tensor([names.index(c) for c in captions])
    return {
        "top1": float((predicted == truth).float().mean() * 100),
        "captions": len(names),
        "frames": len(where),
    }


def train_variant(name: str, clip: CLIPModel, clips: list[dict], processor, settings: Settings, seed: int):
    """Trains variant `name` from `clip` for `settings.steps` steps; returns the model and its losses."""
    torch.manual_seed(seed)
    model = build_variant(name, clip).train()
    rng = np.random.default_rng([seed, 1])  # the same batches and frames for every variant of a seed
    caption_ids, caption_mask = tokenise([c["caption"] for c in clips], processor)
    subtitle_ids, subtitle_mask = tokenise([c["subtitle"] for c in clips], processor)
    optimizer, schedule = _optimise(
        model, settings.learning_rate, settings.steps, settings.warmup_steps, settings.new_lr_scale
    )
    loss_fn, losses, order = VidLALoss(), [], np.empty(0, dtype=np.int64)
    for step in range(settings.steps):
        if len(order) < settings.batch_size:
            order = np.concatenate([order, rng.permutation(len(clips))])
        batch, order = order[: settings.batch_size], order[settings.batch_size :]
        frames = [
            clips[i]["frames"][random_frame_indices(len(clips[i]["frames"]), NUM_FRAMES, rng)] for i in batch
        ]
        videos = F.normalize(
            model.get_video_features(normalise(np.stack(frames), processor)).pooler_output, dim=-1
        )
        texts = []
        for ids, mask in ((caption_ids, caption_mask), (subtitle_ids, subtitle_mask)):
            batch_ids, batch_mask = trim(ids[batch], mask[batch])
            out = model.get_text_features(input_ids=batch_ids, attention_mask=batch_mask).pooler_output
            texts.append(F.normalize(out, dim=-1))
        loss, _ = loss_fn(videos, texts[0], texts[1], model.logit_scale.exp())
        losses.append(_step(model, optimizer, schedule, loss, f"{name}, seed {seed}, step {step}"))
        _progress(f"{name}, seed {seed}", step, settings.steps, losses[-1])
    return model.eval(), losses


# --- Evaluation --------------------------------------------------------------------------------------------------


def evaluation_set(clips: list[dict], processor) -> dict:
    """The held-out clips at 8 uniform frames, their captions and scales, and the 5-way multiple-choice test."""
    videos = torch.stack(
        [
            normalise(c["frames"][uniform_frame_indices(len(c["frames"]), NUM_FRAMES)], processor)
            for c in clips
        ]
    )  # (N, T, 3, H, W)
    options, answers = build_multiple_choice([{"caption": c["caption"]} for c in clips], MC_OPTIONS, seed=0)
    return {
        "videos": videos,
        "captions": [c["caption"] for c in clips],
        "scales": [c["scale"] for c in clips],
        "options": options,
        "answers": torch.tensor(answers),
    }


@torch.no_grad()
def evaluate(model: nn.Module, evaluation: dict, processor) -> dict:
    """R@1 / R@5 text→video, MC among 5 captions, and reversed-order MC (overall and per scale), in %."""

    def embed(videos: torch.Tensor) -> torch.Tensor:
        chunks = [model.get_video_features(v).pooler_output for v in videos.split(64)]
        return F.normalize(torch.cat(chunks).float(), dim=-1)

    model.eval()
    videos, reversed_videos = embed(evaluation["videos"]), embed(evaluation["videos"].flip(1))
    captions = embed_texts(model, processor, evaluation["captions"])
    options = evaluation["options"]
    option_embeds = embed_texts(model, processor, [text for choice in options for text in choice])
    retrieval = evaluate_retrieval(captions, videos)["text_to_video"]
    scales = np.array(evaluation["scales"])
    return {
        "R@1": retrieval["R@1"],
        "R@5": retrieval["R@5"],
        "mc": multiple_choice_accuracy(
            videos, option_embeds.view(len(options), len(options[0]), -1), evaluation["answers"]
        ),
        "reversed_mc": reversed_order_accuracy(captions, videos, reversed_videos),
        "reversed_mc_by_scale": {
            str(scale): reversed_order_accuracy(
                *(t[torch.from_numpy(scales == scale)] for t in (captions, videos, reversed_videos))
            )
            for scale in sorted(set(scales))
        },
    }


# --- Runs --------------------------------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(data: dict, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(data, processor=build_processor())


def _clip_task(seed: int) -> tuple[int, dict, dict, float]:
    start = time.perf_counter()
    w = _WORKER
    clip = pretrain_clip(w["train"], w["processor"], w["settings"], seed)
    knows = frame_caption_accuracy(clip, w["held_out"], w["processor"])
    state = {k: v.clone() for k, v in clip.state_dict().items()}
    return seed, state, knows, time.perf_counter() - start


def _variant_task(name: str, seed: int, clip_state: dict) -> dict:
    start = time.perf_counter()
    w = _WORKER
    clip = tiny_clip(w["settings"].width)
    clip.load_state_dict(clip_state)
    if VARIANTS[name].trained:
        clips = w["short"] if VARIANTS[name].short_clips_only else w["train"]
        model, losses = train_variant(name, clip, clips, w["processor"], w["settings"], seed)
    else:
        model, losses = MeanPooledCLIP(clip), []
    metrics = evaluate(model, w["evaluation"], w["processor"])
    for key in METRICS:
        if not math.isfinite(metrics[key]):
            raise FloatingPointError(f"{name}, seed {seed}: {key} is {metrics[key]}.")
    tail = losses[-10:]
    return {
        "variant": name,
        "seed": seed,
        **metrics,
        "final_loss": statistics.fmean(tail) if tail else None,
        "seconds": time.perf_counter() - start,
    }


def _run_all(fn, tasks: list[tuple], data: dict, jobs: int, threads: int) -> list:
    """`fn(*task)` for every task: in this process (`jobs == 1`), else in `jobs` spawned worker processes."""
    if jobs == 1:
        previous = torch.get_num_threads()
        try:
            _init_worker(data, threads)
            return [fn(*task) for task in tasks]
        finally:
            torch.set_num_threads(previous)
            _WORKER.clear()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_init_worker, initargs=(data, threads)
    ) as pool:
        return list(pool.map(fn, *zip(*tasks, strict=True)))


def summarise(runs: list[dict], names: list[str]) -> list[dict]:
    """Per variant (in `names` order): its runs, and mean and sample std (None for one seed) of each metric."""
    rows = []
    for name in names:
        mine = sorted((r for r in runs if r["variant"] == name), key=lambda r: r["seed"])
        row = {"variant": name, "label": VARIANTS[name].label, "paper": VARIANTS[name].paper, "runs": mine}
        for key in METRICS:
            values = [r[key] for r in mine]
            if not values or not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name}: {key} has no finite value ({values}).")
            row[key] = {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
            }
        row["reversed_mc_by_scale"] = {
            scale: statistics.fmean(r["reversed_mc_by_scale"][scale] for r in mine)
            for scale in mine[0].get("reversed_mc_by_scale", {})
        }
        rows.append(row)
    return rows


def _cell(stat: dict) -> str:
    for value in (stat["mean"], stat["std"]):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ValueError(f"Not a finite number in the results: {value!r}.")
    return f"{stat['mean']:.1f}" + (f" ± {stat['std']:.1f}" if stat["std"] is not None else "")


SCALE_EVENTS = {"short": 1, "medium": 2, "long": 4}


def _by_scale(row: dict) -> str:
    """`"50.6 / 87.0 / 79.6"`: reversed-order MC on the held-out clips of 1, 2 and 4 events (means over seeds)."""
    by_scale = row.get("reversed_mc_by_scale", {})
    return " / ".join(
        _cell({"mean": by_scale[scale], "std": None}) if scale in by_scale else "–" for scale in SCALE_EVENTS
    )


def format_table(results: dict) -> str:
    """The results as a Markdown table: variant, paper row, R@1, R@5, MC, reversed-order MC (mean ± std), and the
    reversed-order MC of the clips of 1, 2 and 4 events (means). Non-finite numbers raise `ValueError`."""
    chance = results["chance"]
    head = " | ".join(f"{chance[key]:.1f}" for key in METRICS)
    lines = [
        "| variant | paper | R@1 | R@5 | MC (5 captions) | reversed-order MC | reversed, 1 / 2 / 4 events |",
        "|---|---|---|---|---|---|---|",
        f"| chance | | {head} | 50.0 / 50.0 / 50.0 |",
    ]
    for row in results["variants"]:
        cells = " | ".join(_cell(row[key]) for key in METRICS)
        lines.append(f"| {row['label']} | {row['paper']} | {cells} | {_by_scale(row)} |")
    return "\n".join(lines)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["variants"]
    labels = [row["label"] for row in rows]
    panels = (
        ("R@1", "text→video R@1 (%)"),
        ("mc", "MC among 5 captions (%)"),
        ("reversed_mc", "reversed-order MC (%)"),
    )
    figure, axes = plt.subplots(1, 3, figsize=(13, 0.42 * len(rows) + 1.6), sharey=True)
    for axis, (key, title) in zip(axes, panels, strict=True):
        means = [row[key]["mean"] for row in rows]
        errors = [row[key]["std"] or 0.0 for row in rows]
        colors = ["#999999" if row["variant"] in ("clip_init", "mean_pool") else "#3b75af" for row in rows]
        several = any(row[key]["std"] is not None for row in rows)
        axis.barh(range(len(rows)), means, xerr=errors if several else None, color=colors, capsize=3)
        axis.axvline(results["chance"][key], color="k", linestyle="--", linewidth=1, label="chance")
        if key == "reversed_mc":  # the clips of 1, 2 and 4 events, as markers over the bars
            for (scale, events), marker in zip(SCALE_EVENTS.items(), "o^s", strict=True):
                found = [
                    (i, row["reversed_mc_by_scale"][scale])
                    for i, row in enumerate(rows)
                    if scale in row.get("reversed_mc_by_scale", {})
                ]
                if found:
                    axis.plot(
                        [v for _, v in found],
                        [i for i, _ in found],
                        marker,
                        color="#d95f02",
                        fillstyle="none",
                        linestyle="none",
                        label=f"{events}-event clips",
                    )
        axis.set_title(title, fontsize=10)
        axis.set_xlim(0, 100)
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), labels, fontsize=8)
    axes[0].invert_yaxis()
    axes[-1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.05), ncol=2, fontsize=8)
    seeds = len(results["settings"]["seeds"])
    figure.suptitle(
        f"Temporal design ablations, synthetic clips (mean ± std over {seeds} seed(s))", fontsize=11
    )
    figure.tight_layout()
    _write_atomic(path, lambda name: figure.savefig(name, dpi=100, format="png"))
    plt.close(figure)


def _write_atomic(path: str, write) -> None:
    """Writes through a temporary file in the same folder, renamed over `path` only once complete."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = Settings()
    parser.add_argument("--quick", action="store_true", help=f"one seed, fewer steps ({QUICK})")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, help=f"default {defaults.seeds}")
    parser.add_argument(
        "--steps", type=int, help=f"video-text training steps per variant (default {defaults.steps})"
    )
    parser.add_argument(
        "--clip_steps", type=int, help=f"image-text steps of the CLIP init (default {defaults.clip_steps})"
    )
    parser.add_argument("--batch_size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate)
    parser.add_argument(
        "--new_lr_scale",
        type=float,
        default=defaults.new_lr_scale,
        help="learning-rate factor for VidLA's new parameters (temporal attention, [MST], temporal table)",
    )
    parser.add_argument("--width", type=int, default=defaults.width, help="hidden size of both towers")
    parser.add_argument("--train_clips", type=int, help="use only the first N training clips")
    parser.add_argument("--eval_clips", type=int, help="use only the first N clips of val and of test")
    parser.add_argument(
        "--data", default="data/synthetic", help="the synthetic dataset (generated if absent)"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="trainings run at a time (one thread each if > 1)"
    )
    parser.add_argument("--threads", type=int, help="torch threads per training (default: CPUs / --jobs)")
    parser.add_argument("--output", help="results JSON (default results/ablations[_quick].json)")
    parser.add_argument("--plot", help="PNG to write (default results/ablations[_quick].png; '' for none)")
    args = parser.parse_args(argv)
    for name in (
        "steps",
        "clip_steps",
        "batch_size",
        "width",
        "jobs",
        "threads",
        "train_clips",
        "eval_clips",
    ):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}.")
    if args.batch_size < 2:
        parser.error("--batch_size must be >= 2 (contrastive negatives).")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    quick = QUICK if args.quick else {}
    settings = Settings(
        seeds=args.seeds or quick.get("seeds") or Settings().seeds,
        steps=args.steps or quick.get("steps") or Settings().steps,
        clip_steps=args.clip_steps or quick.get("clip_steps") or Settings().clip_steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        width=args.width,
        train_clips=args.train_clips,
        new_lr_scale=args.new_lr_scale,
        eval_clips=args.eval_clips,
    )
    suffix = "_quick" if args.quick else ""
    output = args.output or f"results/ablations{suffix}.json"
    plot_path = f"results/ablations{suffix}.png" if args.plot is None else args.plot
    names = [n for n in VARIANTS if n in args.variants]  # table order

    if not Path(args.data, "manifest.json").is_file():
        print(f"generating the synthetic dataset into {args.data} ...", flush=True)
        generate_synthetic_dataset(args.data)
    train = load_clips(args.data, "train", settings.train_clips)
    held_out = load_clips(args.data, "val", settings.eval_clips) + load_clips(
        args.data, "test", settings.eval_clips
    )
    processor = build_processor()
    data = {
        "train": train,
        "short": cut_short(train) if any(VARIANTS[n].short_clips_only for n in names) else [],
        "held_out": held_out,
        "evaluation": evaluation_set(held_out, processor),
        "settings": settings,
    }
    print(
        f"{len(train)} training clips ({len(data['short'])} as short clips), {len(held_out)} held-out clips; "
        f"{len(names)} variants x {len(settings.seeds)} seed(s), {settings.steps} steps of {settings.batch_size}; "
        f"decoded in {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    jobs = min(args.jobs, len(settings.seeds) * len(names))
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    inits = _run_all(
        _clip_task, [(s,) for s in settings.seeds], data, min(jobs, len(settings.seeds)), threads
    )
    states = {seed: state for seed, state, _, _ in inits}
    for seed, _, knows, seconds in inits:
        print(
            f"CLIP init, seed {seed}: held-out frame -> caption top-1 {knows['top1']:.1f} % "
            f"({knows['captions']} captions), {seconds:.0f} s",
            flush=True,
        )
    tasks = [(name, seed, states[seed]) for seed in settings.seeds for name in names]
    runs = _run_all(_variant_task, tasks, data, jobs, threads)
    results = {
        "benchmark": "ablations",
        "command": " ".join(["python", "benchmarks/ablations.py", *(sys.argv[1:] if argv is None else argv)]),
        "mode": "quick" if args.quick else "full",
        "run": {
            "wall_seconds": time.perf_counter() - start,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
            "torch": torch.__version__,
            "jobs": jobs,
            "threads": threads,
        },
        "settings": {**settings.__dict__, "frames": NUM_FRAMES, "image_size": IMAGE_SIZE, "layers": LAYERS},
        "data": {
            "train_clips": len(train),
            "short_clips": len(data["short"]),
            "held_out_clips": len(held_out),
        },
        "clip_init": {str(seed): knows for seed, _, knows, _ in inits},
        "chance": {
            "R@1": 100 / len(held_out),
            "R@5": 500 / len(held_out),
            "mc": 100 / MC_OPTIONS,
            "reversed_mc": 50.0,
        },
        "variants": summarise(runs, names),
    }
    print(format_table(results))
    _write_atomic(output, lambda name: Path(name).write_text(json.dumps(results, indent=1) + "\n"))
    print(f"results written to {output} ({results['run']['wall_seconds'] / 60:.1f} min)")
    if plot_path:
        plot(results, plot_path)
        print(f"plot written to {plot_path}")
    return results


if __name__ == "__main__":
    main()
