"""Finetune VidLA for text-to-video retrieval: the paper's recipe (App. A) on the pretraining loop.

    accelerate launch examples/finetune_retrieval.py --init_from outputs/vidla-pretrain \\
        --train_data "msrvtt/train-*.tar" --eval_data "msrvtt/test-*.tar"

Defaults (`--recipe retrieval-finetune`): 32 uniformly sampled frames (the temporal position table of a
12-frame checkpoint is resampled), lr 1e-5 cosine to 1e-6, weight decay 0.2, centre crop and no flip, 1000
steps (the paper gives steps per dataset, e.g. 440 on MSVD for B/32; or set --num_train_epochs); everything
else as in pretraining (see examples/pretrain.py --help).
"""

from vidla_hf.training import parse_args, training_function


def main() -> None:
    training_function(parse_args(__doc__, recipe="retrieval-finetune"))


if __name__ == "__main__":
    main()
