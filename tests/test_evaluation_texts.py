"""`embed_texts` (the one text-embedding loop of evaluation) and `build_multiple_choice`."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.data.synthetic import generate_synthetic_dataset
from vidla_hf.evaluation import build_multiple_choice, compute_embeddings, embed_texts

TEXTS = [
    "a red circle moves left",
    "",
    "a blue square",
    "a green triangle moves up, then a yellow star moves down and the red circle stays still",
    " ".join(["word"] * 120),  # beyond CLIP's 77 tokens: truncated
    "ok",
    "A dog runs.",
]


@pytest.fixture(scope="module")
def tiny():
    # Dropout that only eval mode turns off: a forward in training mode would not match the reference.
    config = VidLAConfig.from_preset("vidla-tiny", num_frames=2, text_config={"attention_dropout": 0.5})
    model = VidLAModel(config).eval()
    processor = VidLAProcessor(
        VidLAVideoProcessor(num_frames=2, size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}),
        build_clip_tokenizer(),
    )
    return model, processor


def one_at_a_time(model, texts: list[str]) -> torch.Tensor:
    """Reference: each text alone through CLIP's tokenizer and `get_text_features`, then L2-normalised."""
    tokenizer = build_clip_tokenizer()
    with torch.no_grad():
        return torch.stack(
            [
                F.normalize(
                    model.get_text_features(
                        **tokenizer(text, truncation=True, max_length=77, return_tensors="pt")
                    ).pooler_output[0],
                    dim=-1,
                )
                for text in texts
            ]
        )


@pytest.mark.parametrize("batch_size", [1, 2, 3, 256])
def test_embed_texts_equals_each_text_alone_whatever_the_batch_size(tiny, batch_size):
    model, processor = tiny
    reference = one_at_a_time(model, TEXTS)
    model.train()  # embed_texts runs in eval mode and gives the mode back
    embeds = embed_texts(model, processor, TEXTS, batch_size=batch_size)
    assert model.training
    model.eval()
    assert embeds.shape == (len(TEXTS), model.config.projection_dim)
    assert embeds.dtype == torch.float32 and embeds.device.type == "cpu"
    torch.testing.assert_close(embeds, reference)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(len(TEXTS)))


def test_embed_texts_takes_a_device_and_a_tuple(tiny):
    model, processor = tiny
    embeds = embed_texts(model, processor, tuple(TEXTS[:3]), device="cpu")
    torch.testing.assert_close(embeds, one_at_a_time(model, TEXTS[:3]))


@pytest.mark.parametrize(
    ("texts", "batch_size", "error", "message"),
    [
        ("a cat", 2, TypeError, r"^`texts` must be a list of strings, got str\.$"),
        ([], 2, ValueError, r"^`texts` is empty"),
        (["a cat", None], 2, TypeError, r"^`texts\[1\]` must be a string, got NoneType"),
        (["a cat"], 0, ValueError, r"^`batch_size` must be an integer >= 1, got 0\.$"),
        (["a cat"], 2.0, TypeError, r"^`batch_size` must be an integer >= 1, got 2\.0\.$"),
        (["a cat"], True, TypeError, r"^`batch_size` must be an integer >= 1, got True\.$"),
    ],
)
def test_embed_texts_rejects_bad_arguments(tiny, texts, batch_size, error, message):
    with pytest.raises(error, match=message):
        embed_texts(*tiny, texts, batch_size=batch_size)


def test_stream_text_embeddings_equal_embed_texts(tiny, tmp_path):
    """`compute_embeddings` embeds the texts the stream tokenised; they equal `embed_texts` on the same texts
    (the stream strips them) and each text alone."""
    model, processor = tiny
    generate_synthetic_dataset(tmp_path, {"val": 6}, clips_per_shard=6)
    out = compute_embeddings(model, processor, str(tmp_path), "val", batch_size=4)
    for role in ("caption", "subtitle"):
        texts = [m[role].strip() for m in out["metadata"]]
        torch.testing.assert_close(out[f"{role}_embeds"], embed_texts(model, processor, texts, batch_size=5))
        torch.testing.assert_close(out[f"{role}_embeds"], one_at_a_time(model, texts))


def old_script_multiple_choice(
    metadata, num_options, seed, caption_column="caption", subtitle_column="subtitle"
):
    """The builder as `examples/evaluate.py` wrote it inline before it moved to `vidla_hf.evaluation`."""
    rng = np.random.default_rng(seed)
    captions = [m.get(caption_column) or m.get(subtitle_column) for m in metadata]
    options, answers = [], []
    for index, caption in enumerate(captions):
        others = rng.choice([i for i in range(len(captions)) if i != index], num_options - 1, replace=False)
        answer = int(rng.integers(num_options))
        choice = [captions[i] for i in others]
        choice.insert(answer, caption)
        options.append(choice)
        answers.append(answer)
    return options, answers


def captioned(size: int) -> list[dict]:
    # Some samples have only a subtitle (or an empty caption): their subtitle is their text.
    return [
        {"caption": f"caption {i}"} if i % 3 else {"caption": "", "subtitle": f"subtitle {i}"}
        for i in range(size)
    ]


@pytest.mark.parametrize("size", [5, 12, 31])
@pytest.mark.parametrize("num_options", [2, 4, 5])
@pytest.mark.parametrize("seed", [0, 1, 123])
def test_caption_multiple_choice_is_the_one_the_script_built(size, num_options, seed):
    metadata = captioned(size)
    options, answers = build_multiple_choice(metadata, num_options, seed=seed)
    assert (options, answers) == old_script_multiple_choice(metadata, num_options, seed)
    texts = [m["caption"] or m["subtitle"] for m in metadata]
    for index, (choice, answer) in enumerate(zip(options, answers, strict=True)):
        assert len(choice) == num_options and 0 <= answer < num_options and choice[answer] == texts[index]
        assert len(set(choice)) == num_options  # distractors: other samples' texts, without replacement


def test_multiple_choice_from_columns_and_custom_text_columns():
    metadata = [{"opts": ["a", "b", "c"], "ans": "2"}, {"opts": ["d", "e", "f"], "ans": 0}]
    assert build_multiple_choice(metadata, options_column="opts", answer_column="ans") == (
        [["a", "b", "c"], ["d", "e", "f"]],
        [2, 0],
    )
    metadata = [{"text": f"t{i}", "sub": f"s{i}"} for i in range(6)]
    options, answers = build_multiple_choice(
        metadata, 3, caption_column="text", subtitle_column="sub", seed=4
    )
    assert (options, answers) == old_script_multiple_choice(metadata, 3, 4, "text", "sub")


@pytest.mark.parametrize(
    ("metadata", "kwargs", "message"),
    [
        (captioned(3), {"num_options": 4}, r"^Need at least num_options=4 samples, got 3\.$"),
        (captioned(3), {"num_options": 1}, r"^`num_options` must be an integer >= 2, got 1\.$"),
        ([{"caption": "a"}, {"caption": "b"}, {}], {"num_options": 2}, r"first: sample 2"),
        (
            [{"opts": ["a", "b"], "ans": 0}, {"opts": ["c"], "ans": 0}],
            {"options_column": "opts", "answer_column": "ans"},
            r"same number of options",
        ),
        ([{"opts": ["a", "b"], "ans": 0}], {"options_column": "opts"}, r"`answer_column` is needed"),
        (
            [{"opts": ["a", "b"], "ans": 0}, {"opts": ["c", "d"]}],
            {"options_column": "opts", "answer_column": "ans"},
            r"^Sample 1 has no `opts` or no `ans`",
        ),
    ],
)
def test_multiple_choice_rejects_unusable_metadata(metadata, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_multiple_choice(metadata, **kwargs)
