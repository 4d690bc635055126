"""The named recipes of `--recipe`: each is the `TrainingArguments` values it changes (the rest keep the field
defaults, the paper's pretraining recipe). Explicit options override a recipe's values."""

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # The paper's pretraining recipe: the `TrainingArguments` defaults.
    "paper": {},
    # The embedded default job: the tiny preset from scratch on the synthetic clips, minutes on a CPU.
    # Its recorded run (docs/results/main_job.json) used one random frame per segment and 300 steps. No flips:
    # the synthetic captions say "moves left/right", which a mirrored video contradicts.
    "tiny-cpu": {
        "num_frames": 8,
        "frame_sampling": "segment_random",
        "random_flip": False,
        "per_device_batch_size": 32,
        "learning_rate": 5e-4,
        "min_learning_rate": 1e-5,
        "warmup_steps": 20,
        "max_steps": 300,
        "num_train_epochs": None,
        "weight_decay": 0.02,
        "checkpointing_steps": 100,
        "eval_steps": 100,
        "eval_max_samples": 128,
        "logging_steps": 10,
    },
    # The paper's retrieval finetuning (App. A): 32 frames, lr 1e-5 → 1e-6, weight decay 0.2, centre crop, no flip.
    # Its length is per dataset in steps (440 on MSVD for B/32, multiples elsewhere): 1000 unless told.
    "retrieval-finetune": {
        "num_frames": 32,
        "max_steps": 1000,
        "num_train_epochs": None,
        "learning_rate": 1e-5,
        "min_learning_rate": 1e-6,
        "weight_decay": 0.2,
        "training_augmentation": False,
    },
    # Long-video adaptation (seed 002, "Long ViViT"): continue a VidLA checkpoint at 64 frames (or 128, with
    # --num_frames; the temporal position table is interpolated) with 75% tube masking and the CLIP-initialised
    # weights of the video tower frozen. What trains: temporal attention (+ its layer norms), [MST] tokens and the
    # temporal position table, plus the visual projection and the temperature, the only parts that can re-align
    # the changed video features with the texts. The text tower (and its projection) stays frozen: seed 002 adapts
    # the video encoder alone, and a fixed text side keeps the checkpoint's text embeddings valid.
    # Optimiser and length as in the paper's pretraining.
    "long-video": {
        "num_frames": 64,
        "mask_ratio": 0.75,
        "freeze_spatial": True,
        "freeze_text_tower": True,
    },
}

RECIPE_HELP = """recipes (--recipe; explicit options override them):
  tiny-cpu             the embedded default job: tiny preset from scratch, 8 frames (segment_random),
                       no flips (its captions name directions), lr 5e-4, 300 steps (chosen when neither
                       --init_from nor another --config is given)
  paper                the paper's pretraining (§5): 12 uniform frames, 3 epochs, lr 2e-5 cosine to 4e-8,
                       wd 0.02, clip 10 (chosen with --init_from or another --config)
  retrieval-finetune   the paper's retrieval finetuning (App. A): 32 uniform frames, lr 1e-5 to 1e-6,
                       wd 0.2, centre crop, no flip, 1000 steps (the default of examples/finetune_retrieval.py)
  long-video           long-video adaptation of a VidLA checkpoint (seed 002): 64 frames (e.g. --num_frames
                       128; the temporal table is interpolated), tube masking 0.75, the video tower's CLIP
                       weights and the text tower frozen (temporal attention, [MST] tokens, temporal position
                       table, visual projection and temperature train); otherwise the paper's recipe
"""

__all__ = ["RECIPES", "RECIPE_HELP"]
