"""Build VidLA from a CLIP checkpoint and score videos against texts.

    python examples/quickstart.py                                   # offline: a tiny random CLIP
    python examples/quickstart.py --clip openai/clip-vit-base-patch16 --num_frames 12   # with network

Offline there is no trained CLIP to start from, so the scores are those of random weights: the example
shows the API and the shapes, not retrieval quality.
"""

import argparse

import torch
from transformers import CLIPConfig, CLIPModel

from vidla_hf import VidLAModel


def tiny_random_clip() -> CLIPModel:
    tower = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
    return CLIPModel(
        CLIPConfig(
            text_config=tower, vision_config={**tower, "image_size": 64, "patch_size": 16}, projection_dim=32
        )
    )


def moving_square(num_frames: int, size: int, direction: int) -> torch.Tensor:
    """(T, 3, H, W) frames of a white square crossing a black background left→right (1) or right→left (-1)."""
    frames = torch.zeros(num_frames, 3, size, size)
    side = size // 4
    for t in range(num_frames):
        x = int((size - side) * t / max(num_frames - 1, 1))
        x = x if direction > 0 else size - side - x
        frames[t, :, size // 2 - side // 2 : size // 2 + side // 2, x : x + side] = 1.0
    return (frames - 0.45) / 0.27  # roughly CLIP-normalised


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clip", help="HF CLIP checkpoint (folder or Hub id); default: a tiny random CLIP")
    parser.add_argument("--num_frames", type=int, default=8)
    args = parser.parse_args()

    clip = CLIPModel.from_pretrained(args.clip) if args.clip else tiny_random_clip()
    model = VidLAModel.from_clip(clip, num_frames=args.num_frames).eval()
    size = model.config.vision_config.image_size
    videos = torch.stack([moving_square(args.num_frames, size, +1), moving_square(args.num_frames, size, -1)])
    texts = ["a square moves to the right", "a square moves to the left"]
    if args.clip:
        from transformers import AutoTokenizer

        input_ids = AutoTokenizer.from_pretrained(args.clip)(texts, padding=True, return_tensors="pt")
    else:  # no tokenizer offline: stand-in token ids, [BOS] ... [EOS]
        ids = torch.tensor([[49406, 320, 2, 49407], [49406, 320, 3, 49407]])
        input_ids = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    with torch.inference_mode():
        out = model(pixel_values_videos=videos, **input_ids)
    print(
        f"VidLA video tower: {sum(p.numel() for p in model.vision_model.parameters()) / 1e6:.1f}M parameters"
    )
    print(f"video embeddings {tuple(out.video_embeds.shape)}, text embeddings {tuple(out.text_embeds.shape)}")
    for i, row in enumerate(out.logits_per_video.softmax(dim=-1).tolist()):
        print(f"video {i}: " + ", ".join(f"{t!r}: {p:.3f}" for t, p in zip(texts, row, strict=True)))


if __name__ == "__main__":
    main()
