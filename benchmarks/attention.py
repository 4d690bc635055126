"""The video tower's cost against its lower bound, the paper's dense masks, and X-CLIP.

Measured side by side (one subprocess per measurement, so peak memory is that configuration's alone;
configurations interleaved over rounds; medians), at ViT-B/16 widths (768 hidden, 12 heads, 224 px,
196 patches per frame), batch 1:

  clip_per_frame  CLIP's image tower on every frame with the same widths (the CLIP4Clip mean-pooling lower bound)
  vidla           VidLAVisionModel (efficient factorised attention, SDPA)
  vidla_dense     the same weights with the paper's dense (1+UV+TN)² masks, one fused SDPA call per attention
                  (what the tests check the efficient form against)
  xclip           transformers' X-CLIP video tower (cross-frame communication + MIT), same widths and frames

    python benchmarks/attention.py [--frames 12 32] [--layers 4] [--rounds 2] [--backward] [--plot out.png]

`--layers` defaults to 4 of ViT-B/16's 12 so that the dense form's backward at 32 frames fits in CPU
memory; every configuration uses the same count, so the ratios are per-layer ratios.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

WIDTHS = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "image_size": 224,
    "patch_size": 16,
}
WAYS = ("clip_per_frame", "vidla", "vidla_dense", "xclip")


def dense_masks(config, frames, patches):
    """The paper's masks as boolean (allowed) matrices: M̃ over patches and M over the whole sequence."""
    import torch

    uv, tn = config.num_mst_tokens, frames * patches
    size = 1 + uv + tn
    frame = torch.arange(tn) // patches
    position = torch.arange(tn) % patches
    temporal = position[:, None] == position[None, :]  # M̃: same spatial position
    allowed = torch.zeros(size, size, dtype=torch.bool)
    allowed[0] = True
    level = torch.arange(uv) // max(config.mst_tokens_per_level, 1)
    allowed[1 : 1 + uv, 1 : 1 + uv] = level[:, None] >= level[None, :]
    allowed[1 : 1 + uv, 1 + uv :] = frame[None, :] % (config.mst_temporal_scale**level)[:, None] == 0
    allowed[1 + uv :, 1 : 1 + uv] = True
    allowed[1 + uv :, 0] = config.patch_attends_cls
    allowed[1 + uv :, 1 + uv :] = frame[:, None] == frame[None, :]
    return temporal, allowed


def dense_forward(model, videos, temporal_mask, global_mask):
    """VidLAVisionModel's computation with dense masked SDPA (the formulation of paper eq. 1-2)."""
    import torch
    import torch.nn.functional as F

    def attention(attn, x, mask):
        batch, seq, dim = x.shape
        heads = attn.num_heads

        def split(t):
            return t.view(batch, seq, heads, dim // heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(attn.q_proj(x)), split(attn.k_proj(x)), split(attn.v_proj(x)), attn_mask=mask
        )
        return attn.out_proj(out.transpose(1, 2).reshape(batch, seq, dim))

    config = model.config
    summary = config.num_summary_tokens
    hidden = model.pre_layrnorm(model.embeddings(videos))
    for layer in model.encoder.layers:
        patches = hidden[:, summary:]
        patches = patches + attention(layer.temporal_attn, layer.temporal_layer_norm(patches), temporal_mask)
        hidden = torch.cat([hidden[:, :summary], patches], dim=1)
        hidden = hidden + attention(layer.self_attn, layer.layer_norm1(hidden), global_mask)
        hidden = hidden + layer.mlp(layer.layer_norm2(hidden))
    return model.post_layernorm(hidden[:, 0])


def measure(way: str, frames: int, layers: int, backward: bool, steps: int) -> dict:
    import torch

    torch.manual_seed(0)
    videos = torch.randn(1, frames, 3, 224, 224)
    if way == "clip_per_frame":
        from transformers import CLIPVisionConfig, CLIPVisionModel

        model = CLIPVisionModel(CLIPVisionConfig(**WIDTHS, num_hidden_layers=layers))
        model.config._attn_implementation = "sdpa"

        def run():
            return model(pixel_values=videos.flatten(0, 1)).pooler_output.mean(0)
    elif way in ("vidla", "vidla_dense"):
        from vidla_hf import VidLAVisionConfig, VidLAVisionModel

        config = VidLAVisionConfig(**WIDTHS, num_hidden_layers=layers, num_frames=frames)
        config._attn_implementation = "sdpa"
        model = VidLAVisionModel(config)
        if way == "vidla":

            def run():
                return model(pixel_values_videos=videos).pooler_output
        else:
            temporal, allowed = dense_masks(config, frames, (224 // 16) ** 2)

            def run():
                return dense_forward(model, videos, temporal, allowed)
    elif way == "xclip":
        from transformers import XCLIPConfig, XCLIPModel

        vision = {
            **WIDTHS,
            "num_hidden_layers": layers,
            "num_frames": frames,
            "mit_hidden_size": 512,
            "mit_num_hidden_layers": 1,
            "mit_num_attention_heads": 8,
            "mit_intermediate_size": 2048,
        }
        model = XCLIPModel(XCLIPConfig(vision_config=vision, projection_dim=512))

        def run():
            features = model.get_video_features(pixel_values=videos)
            return getattr(features, "pooler_output", features)
    else:
        raise ValueError(way)

    def step():
        if backward:
            model.zero_grad(set_to_none=True)
            run().float().sum().backward()
        else:
            with torch.no_grad():
                run()

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {"seconds": seconds, "peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, nargs="+", default=[12, 32])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    parser.add_argument("--backward", action="store_true", help="Time forward+backward instead of forward")
    parser.add_argument(
        "--plot",
        default=None,
        help="Write time and peak memory against frames to this PNG "
        "(needs matplotlib: pip install -e .[bench])",
    )
    parser.add_argument("--worker", nargs=4)
    args = parser.parse_args()
    if args.worker:
        way, frames, layers, backward = args.worker
        print(json.dumps(measure(way, int(frames), int(layers), backward == "1", args.steps)))
        return

    results: dict[tuple, list] = {}
    for _ in range(args.rounds):
        for frames in args.frames:
            for way in args.ways:
                worker = [
                    sys.executable,
                    __file__,
                    "--steps",
                    str(args.steps),
                    "--worker",
                    way,
                    str(frames),
                    str(args.layers),
                    "1" if args.backward else "0",
                ]
                out = subprocess.run(worker, capture_output=True, text=True, env={**os.environ})
                if out.returncode != 0:
                    results.setdefault((way, frames), []).append(None)
                    print(
                        f"{way} at {frames} frames failed: {out.stderr.strip().splitlines()[-1:]}",
                        file=sys.stderr,
                    )
                    continue
                results.setdefault((way, frames), []).append(json.loads(out.stdout.strip().splitlines()[-1]))

    mode = "forward+backward" if args.backward else "forward"
    print(
        f"{mode}, batch 1, ViT-B/16 widths, {args.layers} layers; median of {args.rounds} interleaved rounds, "
        f"{args.steps} timed steps each"
    )
    print(
        f"{'frames':>6}  {'way':<15}{'s':>8}{'peak MB':>9}{'time / clip_per_frame':>23}{'dense / vidla':>15}"
    )

    def median(way, key, frames):
        values = [r[key] for r in results.get((way, frames), []) if r is not None]
        return statistics.median(values) if values else float("nan")

    for frames in args.frames:
        base = median("clip_per_frame", "seconds", frames)
        for way in args.ways:
            seconds, memory = median(way, "seconds", frames), median(way, "peak_mb", frames)
            dense_ratio = (
                f"{seconds / median('vidla', 'seconds', frames):.2f}x" if way == "vidla_dense" else ""
            )
            print(
                f"{frames:>6}  {way:<15}{seconds:>8.2f}{memory:>9.0f}{seconds / base:>22.2f}x{dense_ratio:>15}"
            )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, 2, figsize=(10, 4))
        for way in args.ways:
            for axis, key, label in (
                (axes[0], "seconds", "seconds"),
                (axes[1], "peak_mb", "peak memory (MB)"),
            ):
                axis.plot(args.frames, [median(way, key, f) for f in args.frames], marker="o", label=way)
                axis.set_xlabel("frames")
                axis.set_ylabel(label)
        axes[0].legend()
        figure.suptitle(f"{mode}, ViT-B/16 widths, {args.layers} layers, batch 1, CPU")
        figure.tight_layout()
        figure.savefig(args.plot, dpi=100)


if __name__ == "__main__":
    main()
