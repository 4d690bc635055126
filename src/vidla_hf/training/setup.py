"""What a training run trains: the model and processor, which parameters train (freezing, LoRA), the
optimizer's parameter groups and the learning-rate schedule."""

import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoProcessor, AutoTokenizer, get_cosine_with_min_lr_schedule_with_warmup

from ..modeling import VidLAConfig, VidLAModel
from ..modeling.convert_clip import is_new_vidla_parameter
from ..processing import VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from .arguments import TrainingArguments

NO_DECAY_NAMES = (
    "position_embedding",
    "temporal_embedding",
    "mst_embedding",
    "class_embedding",
    "logit_scale",
)
LORA_TARGETS = (
    r"vision_model\.encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.fc1|mlp\.fc2)"
)


class VidLAContrastiveModule(nn.Module):
    """One forward for DDP: videos, then captions and subtitles as one text batch → normalised embeddings."""

    def __init__(self, model: nn.Module, pad_token_id: int):
        super().__init__()
        self.model = model
        self.pad_token_id = pad_token_id

    def forward(self, pixel_values_videos, caption_ids, caption_mask, subtitle_ids, subtitle_mask):
        model = self.model
        video = model.get_video_features(pixel_values_videos=pixel_values_videos).pooler_output
        length = max(caption_ids.shape[1], subtitle_ids.shape[1])
        ids = torch.cat(
            [
                F.pad(caption_ids, (0, length - caption_ids.shape[1]), value=self.pad_token_id),
                F.pad(subtitle_ids, (0, length - subtitle_ids.shape[1]), value=self.pad_token_id),
            ]
        )  # (2B, L)
        mask = torch.cat(
            [
                F.pad(caption_mask, (0, length - caption_mask.shape[1])),
                F.pad(subtitle_mask, (0, length - subtitle_mask.shape[1])),
            ]
        )  # (2B, L)
        text = model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        captions, subtitles = F.normalize(text, dim=-1).chunk(2)
        return F.normalize(video, dim=-1), captions, subtitles, model.logit_scale.exp()

    # The evaluation's entry points, so that it can call the prepared module (FSDP2 gathers the weights in the
    # module's forward methods; see `sharding.evaluation_model`).
    def get_video_features(self, *args, **kwargs):
        return self.model.get_video_features(*args, **kwargs)

    def get_text_features(self, *args, **kwargs):
        return self.model.get_text_features(*args, **kwargs)


def load_model_and_processor(args: TrainingArguments) -> tuple[VidLAModel, VidLAProcessor]:
    """A VidLA checkpoint (with its processor), a CLIP checkpoint (converted, with its tokenizer) or a
    preset from scratch (with the offline CLIP tokenizer)."""
    overrides = {"num_frames": args.num_frames, "mask_ratio": args.mask_ratio}
    processor = None
    if args.init_from:
        model_type = AutoConfig.from_pretrained(args.init_from).model_type
        if model_type == "clip":
            model = VidLAModel.from_clip(args.init_from, **overrides)
            try:
                tokenizer = AutoTokenizer.from_pretrained(args.init_from)
            except OSError:  # a CLIP checkpoint saved without its tokenizer
                tokenizer = build_clip_tokenizer()
        elif model_type == "vidla":
            model = VidLAModel.from_pretrained(args.init_from, num_frames=args.num_frames)
            model.config.vision_config.mask_ratio = args.mask_ratio
            processor = AutoProcessor.from_pretrained(args.init_from)
        else:
            raise ValueError(
                f"--init_from {args.init_from!r} is a {model_type!r} checkpoint; expected CLIP or VidLA."
            )
    else:
        model = VidLAModel(VidLAConfig.from_preset(args.config, **overrides))
        tokenizer = build_clip_tokenizer()
    if processor is None:
        size = model.config.vision_config.image_size
        video_processor = VidLAVideoProcessor(
            num_frames=args.num_frames,
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
        )
        processor = VidLAProcessor(video_processor, tokenizer)
    processor.video_processor.num_frames = args.num_frames
    # Texts are cut where the text tower's position table ends (CLIP's 77), also when the tokenizer came
    # without a `model_max_length`; the saved processor keeps the limit for inference.
    context_length = model.config.text_config.max_position_embeddings
    processor.tokenizer.model_max_length = min(processor.tokenizer.model_max_length, context_length)
    return model, processor


def is_spatial_parameter(name: str) -> bool:
    """Whether `name` (a `VidLAModel` parameter) is a CLIP-initialised weight of the video tower: every
    `vision_model.` parameter except VidLA's new ones (temporal attention and its layer norms, [MST] tokens,
    the temporal position table; see `convert_clip.VIDLA_NEW_PARAMETER_PATTERNS`)."""
    return name.startswith("vision_model.") and not is_new_vidla_parameter(name)


def configure_trainable(model: VidLAModel, args: TrainingArguments) -> nn.Module:
    """Applies --freeze_spatial, --freeze_text_tower and --lora_rank (peft LoRA on the video tower's CLIP linear
    layers; VidLA's new parameters, the projections and the temperature stay fully trainable).

    --freeze_spatial freezes the video tower's CLIP-initialised weights (`is_spatial_parameter`); the visual
    projection and the temperature are outside the tower and keep training (the long-video recipe relies on
    them to re-align the changed video features with the texts).
    """
    if args.freeze_spatial:
        if args.lora_rank:
            raise ValueError("`--freeze_spatial` and `--lora_rank` cannot be combined (see `validate_args`).")
        for name, param in model.named_parameters():
            if is_spatial_parameter(name):
                param.requires_grad_(False)
    if args.lora_rank:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=args.lora_rank, lora_alpha=args.lora_alpha, target_modules=LORA_TARGETS, lora_dropout=0.0
        )
        model = get_peft_model(model, lora)
        for name, param in model.named_parameters():
            plain = name.replace("base_model.model.", "")
            if is_new_vidla_parameter(plain) or plain.startswith(
                ("visual_projection", "text_projection", "logit_scale")
            ):
                param.requires_grad_(True)
            if plain.startswith("text_model.") and not args.freeze_text_tower and "lora_" not in plain:
                param.requires_grad_(True)
    if args.freeze_text_tower:
        for name, param in model.named_parameters():
            if re.search(r"(^|\.)(text_model|text_projection)\.", name + "."):
                param.requires_grad_(False)
    return model


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay only for matrices, never for biases, norms, [MST] tokens, position embeddings or τ."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or any(n in name for n in NO_DECAY_NAMES) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer_and_schedule(
    module: nn.Module, args: TrainingArguments, num_processes: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and the cosine schedule with warm-up, in *scheduler* steps.

    accelerate's prepared scheduler steps `num_processes` times per optimizer step (it assumes the data
    loader was split across processes), so the schedule is built for `max_steps * num_processes` (`max_steps`
    as given, or as `resolve_max_steps` computed it from `--num_train_epochs`) and
    every process sees the learning rate of a one-process run at each optimizer step.
    """
    optimizer = torch.optim.AdamW(
        parameter_groups(module, args.weight_decay),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
    )
    schedule = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer,
        args.warmup_steps * num_processes,
        args.max_steps * num_processes,
        min_lr=args.min_learning_rate,
    )
    return optimizer, schedule


__all__ = [
    "VidLAContrastiveModule",
    "build_optimizer_and_schedule",
    "configure_trainable",
    "is_spatial_parameter",
    "load_model_and_processor",
    "parameter_groups",
]
