"""Score videos against texts with VidLA, in a dozen lines.

    python examples/quickstart.py                          # the main job's model, if outputs/vidla-pretrain exists
    python examples/quickstart.py --model ORG/vidla-b16    # any VidLA folder or Hub id (with its processor)
    python examples/quickstart.py --model none             # no trained model: VidLA built from a random CLIP

With a trained model it scores four clips of the synthetic val split against their own captions (the
diagonal is the right answer). Without one, it converts a tiny CLIP with random weights (seed 0) with
`VidLAModel.from_clip`: the numbers are then deterministic but meaningless, and it says so.
"""

import argparse
from pathlib import Path

import torch
from transformers import AutoModel, AutoProcessor, CLIPConfig, CLIPModel

import vidla_hf  # noqa: F401  (registers the Auto classes)
from vidla_hf import VidLAModel, VidLAProcessor, VidLAVideoProcessor
from vidla_hf.data import VideoTextStream, load_video_text_stream
from vidla_hf.data.synthetic import generate_synthetic_dataset
from vidla_hf.processing import build_clip_tokenizer

DEFAULT_MODEL = "outputs/vidla-pretrain"


def random_vidla(num_frames: int) -> tuple[VidLAModel, VidLAProcessor]:
    """VidLA converted from a tiny CLIP with random weights (seed 0), and a processor for 64-px input."""
    torch.manual_seed(0)
    tower = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
    clip = CLIPModel(
        CLIPConfig(
            text_config=tower, vision_config={**tower, "image_size": 64, "patch_size": 16}, projection_dim=32
        )
    )
    model = VidLAModel.from_clip(clip, num_frames=num_frames)
    video_processor = VidLAVideoProcessor(
        num_frames=num_frames, size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}
    )
    return model, VidLAProcessor(video_processor, build_clip_tokenizer())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help=f"default: {DEFAULT_MODEL} if it exists, else none")
    parser.add_argument("--data", default="data/synthetic", help="synthetic dataset (generated if missing)")
    parser.add_argument("--num_clips", type=int, default=4)
    args = parser.parse_args()
    if args.num_clips < 2:
        parser.error(f"--num_clips must be >= 2, got {args.num_clips}")
    name = args.model or (DEFAULT_MODEL if Path(DEFAULT_MODEL, "config.json").is_file() else "none")

    if name == "none":
        model, processor = random_vidla(num_frames=8)
        print("UNTRAINED: VidLA from a tiny CLIP with random weights (seed 0). The scores below are")
        print("deterministic but say nothing about retrieval; train with examples/pretrain.py first.")
    else:
        model, processor = AutoModel.from_pretrained(name), AutoProcessor.from_pretrained(name)
        print(f"Trained model: {name}")
    model.eval()

    if not Path(args.data, "manifest.json").is_file():
        generate_synthetic_dataset(args.data)  # a dataset already there is used as it is
    stream = VideoTextStream(
        load_video_text_stream(args.data, "val"), processor, training=False, keep_metadata=True,
        num_frames=processor.video_processor.num_frames,
    )  # fmt: skip
    clips = []
    for sample in stream:  # the stream cycles: stop at the end of the first pass
        if sample["position"][1] != 0 or len(clips) == args.num_clips:
            break
        clips.append(sample)
    if len(clips) < 2:
        parser.error(f"{args.data} has fewer than 2 usable val clips")
    captions = [clip["metadata"]["caption"] for clip in clips]
    videos = torch.stack([clip["pixel_values_videos"] for clip in clips])  # (N, T, 3, H, W)
    texts = processor(text=captions, return_tensors="pt")
    with torch.inference_mode():
        out = model(pixel_values_videos=videos, **texts)
    probs = out.logits_per_text.softmax(dim=-1)  # (texts, videos): which clip does each caption describe?
    print(f"{len(captions)} val clips; P(clip | caption), the right clip is on the diagonal:")
    for i, (caption, row) in enumerate(zip(captions, probs.tolist(), strict=True)):
        print(f"  {caption[:60]:60s} " + " ".join(f"{p:.2f}" for p in row) + f"   (right: clip {i})")
    accuracy = (probs.argmax(dim=-1) == torch.arange(len(captions))).float().mean().item()
    print(f"captions matched to their own clip: {accuracy:.0%} (chance {1 / len(captions):.0%})")


if __name__ == "__main__":
    main()
