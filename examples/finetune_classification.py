"""Finetune VidLA for action classification (paper App. A.3, Table 7) with Accelerate.

    accelerate launch examples/finetune_classification.py         # the embedded default job (CPU, minutes)
    accelerate launch examples/finetune_classification.py --init_from outputs/vidla-pretrain --zero_shot_init \\
        --train_data "k400/train-*.tar" --eval_data "k400/val-*.tar" --labels k400_labels.txt \\
        --sampling dense --num_frames 16 --test_clips 5 --test_crops 3          # Kinetics-400 style
    accelerate launch examples/finetune_classification.py --init_from outputs/vidla-pretrain \\
        --train_data ssv2 --labels ssv2_labels.txt --sampling segment --num_frames 16   # Something-Something style

With no arguments it generates (or reuses) the synthetic action dataset in data/synthetic_actions (8 actions
that only the order of the frames tells apart: "moves left, then grows", "shrinks, then moves right", ...),
trains the tiny preset from scratch (500 steps of 16 clips, about 3 minutes on a 2-core CPU), and prints top-1 / top-5 on its val split with the multi-view test
(2 temporal × 3 spatial views, probabilities averaged). It writes a model folder that
`pipeline("video-classification", model=output_dir)` runs, and train_results.json, into --output_dir
(outputs/vidla-classification). Labels are read from --label_column (a column or a field of the samples'
JSON metadata) as class names or ids; the class names come from --labels or the data's manifest.json.
Sampling: --sampling dense (a window of --num_frames frames --frame_stride apart, at a random place in
training; --test_clips windows spread over the video at test) or segment (one frame per equal segment,
random in training; at test, --test_clips offsets within the segments). Run with --help for every option.
"""

from vidla_hf.training.classification import classification_function
from vidla_hf.training.classification_args import parse_classification_args


def main() -> None:
    classification_function(parse_classification_args(__doc__))


if __name__ == "__main__":
    main()
