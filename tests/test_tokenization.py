import pytest

from vidla_hf.processing import build_clip_tokenizer

SENTENCES = [
    "a photo of a cat",
    "A red circle moves LEFT, then a blue square appears!",
    "um so yeah i think   we're gonna   start now... café naïve 123 45.6 emoji 🙂",
    "don't won't it's they'll we've i'm you'd",
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


def test_known_ids_and_sizes(tokenizer):
    assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77


def test_matches_open_clips_own_tokenizer(tokenizer):
    from open_clip.tokenizer import (
        SimpleTokenizer,
    )  # the reference implementation shipped with the vocabulary

    reference = SimpleTokenizer()
    for text in SENTENCES:
        assert tokenizer(text)["input_ids"][1:-1] == reference.encode(text), text


def test_long_text_truncates_to_77_and_keeps_eos(tokenizer):
    ids = tokenizer(" ".join(["subtitle"] * 500), truncation=True)["input_ids"]
    assert len(ids) == 77 and ids[0] == 49406 and ids[-1] == 49407


def test_empty_text_is_just_the_special_tokens(tokenizer):
    assert tokenizer("")["input_ids"] == [49406, 49407]


def test_save_and_reload(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in SENTENCES:
        assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
