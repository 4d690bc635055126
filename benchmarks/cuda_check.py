"""What only a CUDA machine shows: VidLA on the GPU agrees with the CPU, across attention kernels and
precisions, and what bf16 and SDPA buy there. Every check raises when it fails; ratios are measured side by
side in this one run.

    python benchmarks/cuda_check.py [--layers 12] [--frames 12] [--batch 8]

Checks (ViT-B/16 widths, random weights, `--layers` layers in each tower):
  cpu_vs_cuda      fp32 video and text embeddings on CUDA equal the CPU's (max |Δ| < 2e-4)
  sdpa_vs_eager    SDPA and eager attention give the same embeddings on CUDA (fp32, max |Δ| < 2e-4)
  bf16_vs_fp32     bf16 autocast embeddings stay close to fp32 (cosine > 0.99 for every video and text)
  checkpointing    gradient checkpointing gives the same gradients as plain backward (tube masking on)
  bf16_training    20 AdamW steps on one batch under bf16 autocast keep eq. 3's loss finite and lower it as
                   fp32 steps do (final losses within 10% of each other)
Ratios: training step time eager / SDPA and fp32 / bf16 autocast (medians of `--repeats`).
"""

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from vidla_hf import VidLAConfig, VidLAModel


def build(layers: int, frames: int, attention: str) -> VidLAModel:
    torch.manual_seed(0)
    config = VidLAConfig.from_preset(
        "vidla-b16",
        num_frames=frames,
        vision_config={"num_hidden_layers": layers},
        text_config={"num_hidden_layers": layers},
    )
    return VidLAModel._from_config(config, attn_implementation=attention).eval()


def inputs(batch: int, frames: int, device: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    videos = torch.randn(batch, frames, 3, 224, 224, generator=generator)
    ids = torch.randint(1, 49000, (batch, 20), generator=generator)
    ids[:, 0], ids[:, -1] = 49406, 49407  # [BOS] ... [EOS]: the text tower pools at the highest id
    return {"pixel_values_videos": videos.to(device), "input_ids": ids.to(device)}


def embeddings(model: VidLAModel, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = model(**batch)
    return out.video_embeds.float().cpu(), out.text_embeds.float().cpu()


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{name:<16} {'ok' if ok else 'FAILED'}  {detail}")
    if not ok:
        raise AssertionError(f"{name}: {detail}")


def max_diff(a: tuple, b: tuple) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


def train_step_seconds(model: VidLAModel, batch: dict, dtype: torch.dtype | None, repeats: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    times = []
    for _ in range(repeats + 2):  # two warm-ups
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            loss = model(**batch, return_loss=True).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    model.eval()
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("No CUDA device: this script checks the GPU path (run it on a machine with one).")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}; ViT-B/16 widths, {args.layers} layers, "
        f"{args.frames} frames, batch {args.batch}"
    )

    sdpa = build(args.layers, args.frames, "sdpa")
    cpu = embeddings(sdpa, inputs(args.batch, args.frames, "cpu"))
    sdpa.cuda()
    batch = inputs(args.batch, args.frames, "cuda")
    cuda = embeddings(sdpa, batch)
    check("cpu_vs_cuda", max_diff(cpu, cuda) < 2e-4, f"max |Δ| {max_diff(cpu, cuda):.2e}")

    eager = build(args.layers, args.frames, "eager").cuda()
    eager.load_state_dict(sdpa.state_dict())
    eager_out = embeddings(eager, batch)
    check("sdpa_vs_eager", max_diff(cuda, eager_out) < 2e-4, f"max |Δ| {max_diff(cuda, eager_out):.2e}")

    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = embeddings(sdpa, batch)
    cosine = min(F.cosine_similarity(a, b, dim=-1).min().item() for a, b in zip(cuda, bf16, strict=True))
    check("bf16_vs_fp32", cosine > 0.99, f"min cosine {cosine:.4f}")

    grads = []
    for checkpointing in (False, True):
        model = build(args.layers, args.frames, "sdpa").cuda().train()
        model.load_state_dict(sdpa.state_dict())
        if checkpointing:
            model.activation_checkpointing_enable()
        torch.manual_seed(3)  # the same tube mask in both runs
        model(**batch, return_loss=True, mask_ratio=0.5).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        del model
    relative = ((grads[0] - grads[1]).norm() / grads[0].norm()).item()
    check("checkpointing", relative < 1e-4, f"relative |Δgrad| {relative:.2e}")

    final = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        model = build(args.layers, args.frames, "sdpa").cuda().train()
        model.load_state_dict(sdpa.state_dict())
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        losses = []
        for _ in range(20):
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                loss = model(**batch, return_loss=True).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        final[name] = losses
        del model, optimizer
    fp32, bf16 = final["fp32"], final["bf16"]
    finite = all(map(math.isfinite, fp32 + bf16))
    close = abs(bf16[-1] - fp32[-1]) <= 0.1 * fp32[-1]
    check(
        "bf16_training",
        finite and bf16[-1] < bf16[0] and fp32[-1] < fp32[0] and close,
        f"loss fp32 {fp32[0]:.4f} -> {fp32[-1]:.4f}, bf16 {bf16[0]:.4f} -> {bf16[-1]:.4f}",
    )

    timings = {}
    for name, attention, dtype in (
        ("eager fp32", "eager", None),
        ("sdpa fp32", "sdpa", None),
        ("sdpa bf16", "sdpa", torch.bfloat16),
    ):
        model = build(args.layers, args.frames, attention).cuda()
        timings[name] = train_step_seconds(model, batch, dtype, args.repeats)
        del model
    for name, seconds in timings.items():
        print(f"train step {name:<11} {seconds * 1000:8.1f} ms")
    print(
        f"ratio eager/sdpa (fp32): {timings['eager fp32'] / timings['sdpa fp32']:.2f}x; "
        f"fp32/bf16 (sdpa): {timings['sdpa fp32'] / timings['sdpa bf16']:.2f}x"
    )


if __name__ == "__main__":
    main()
