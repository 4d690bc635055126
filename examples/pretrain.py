"""Pretrain (or continue pretraining) VidLA on streamed video-text data with Accelerate.

    accelerate launch examples/pretrain.py                       # the embedded default job (CPU, minutes)
    accelerate launch examples/pretrain.py --init_from openai/clip-vit-base-patch16 \\
        --train_data "shards/train-*.tar" --eval_data "shards/val-*.tar"   # the paper's recipe, 3 epochs
    accelerate launch examples/pretrain.py --recipe long-video --init_from outputs/vidla-pretrain \\
        --num_frames 128 --train_data "long/train-*.tar" --eval_data "long/val-*.tar"   # seed 002's adaptation

With no arguments it generates (or reuses) the synthetic dataset in data/synthetic, trains the tiny preset
from scratch, prints zero-shot text→video R@1/5/10 on the val split before and after training, and writes
a model folder loadable with AutoModel / AutoProcessor into --output_dir (outputs/vidla-pretrain).
The objective is the paper's eq. 3 (video↔subtitle + video↔caption info-NCE over the global batch).
Run with --help for every option; --recipe picks the defaults (paper, tiny-cpu, long-video). The paper's
recipe samples 12 frames uniformly (--frame_sampling uniform; segment_random draws one frame per segment) and
trains 3 epochs (--num_train_epochs, for data of known size: local shards are counted; a stream needs
--max_steps).
The long-video recipe continues a VidLA checkpoint at 64 frames (or --num_frames 128: the temporal position
table is interpolated) with 75% tube masking, training only the temporal attention, [MST] tokens, temporal
positions, visual projection and temperature (--freeze_spatial, --freeze_text_tower); benchmarks/long_video.py
measures its memory and time.
"""

from vidla_hf.training import parse_args, training_function


def main() -> None:
    training_function(parse_args(__doc__))


if __name__ == "__main__":
    main()
