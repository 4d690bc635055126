"""Pretrain (or continue pretraining) VidLA on streamed video-text data with Accelerate.

    accelerate launch examples/pretrain.py                       # the embedded default job (CPU, minutes)
    accelerate launch examples/pretrain.py --init_from openai/clip-vit-base-patch16 \\
        --train_data "shards/train-*.tar" --eval_data "shards/val-*.tar"   # the paper's recipe, 3 epochs

With no arguments it generates (or reuses) the synthetic dataset in data/synthetic, trains the tiny preset
from scratch, prints zero-shot text→video R@1/5/10 on the val split before and after training, and writes
a model folder loadable with AutoModel / AutoProcessor into --output_dir (outputs/vidla-pretrain).
The objective is the paper's eq. 3 (video↔subtitle + video↔caption info-NCE over the global batch).
Run with --help for every option; --recipe picks the defaults (paper, tiny-cpu). The paper's recipe samples
12 frames uniformly (--frame_sampling uniform; segment_random draws one frame per segment) and trains 3
epochs (--num_train_epochs, for data of known size: local shards are counted; a stream needs --max_steps).
"""

from vidla_hf.training import parse_args, training_function


def main() -> None:
    training_function(parse_args(__doc__))


if __name__ == "__main__":
    main()
