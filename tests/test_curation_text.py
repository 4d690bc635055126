"""The text side of the curation (paper §3, A.4): transcripts, sentences, multi-scale clips and the three models.

References are independent of the code under test: hand-computed word times, known synthetic sentences,
the paper's prompt typed out here, CLIP's tokenizer for the 77-token limit, hand-built forced classifiers.
"""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vidla_hf.data.curation.clips import plan_clips
from vidla_hf.data.curation.model_checks import check_model
from vidla_hf.data.curation.models import FrameCaptioner, Punctuator, Summarizer, punctuation_for_label
from vidla_hf.data.curation.prompts import fit_clip_context, join_and_truncate
from vidla_hf.data.curation.records import DEFAULT_SCALES, Sentence, SourceSkipped, Word
from vidla_hf.data.curation.sentences import split_sentences
from vidla_hf.data.curation.tiny_models import build_tiny_models
from vidla_hf.data.curation.transcripts import clamp_to_duration, words_from_asr, words_from_subtitles
from vidla_hf.processing import build_clip_tokenizer

# Appendix A.4 of the paper, typed out (not imported from the code under test).
PAPER_PROMPT = (
    "Summarize the following sentences into a single sentence, not exceeding 25 words. "
    "Do not output any additional text and use any external information.\n"
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models are latency-bound: on a shared 2-core machine, a second OpenMP thread only spins."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="module")
def clip_tokenizer():
    return build_clip_tokenizer()


def timed(words):
    return [(w.text, pytest.approx(w.start), pytest.approx(w.end)) for w in words]


# Transcripts ------------------------------------------------------------------------------------------------


def test_srt_words_are_interpolated_by_characters(tmp_path):
    path = tmp_path / "video.en.srt"
    path.write_text(
        "1\r\n00:00:01,000 --> 00:00:04,000\r\n<i>Hello</i> big\r\nworld\r\n\r\n"
        "2\r\n00:00:05,500 --> 00:00:06,500\r\nTom &amp; [Upbeat music] Jerry\r\n"
    )
    # Cue 1: 13 characters over 3 s; cue 2: "Tom & Jerry" is 9 characters over 1 s.
    assert timed(words_from_subtitles(str(path))) == [
        ("Hello", 1.0, 1 + 3 * 5 / 13),
        ("big", 1 + 3 * 5 / 13, 1 + 3 * 8 / 13),
        ("world", 1 + 3 * 8 / 13, 4.0),
        ("Tom", 5.5, 5.5 + 3 / 9),
        ("&", 5.5 + 3 / 9, 5.5 + 4 / 9),
        ("Jerry", 5.5 + 4 / 9, 6.5),
    ]


YOUTUBE_VTT = """WEBVTT
Kind: captions
Language: en

STYLE
::cue { color: white; }

00:00:00.000 --> 00:00:02.000 align:start position:0%
<space>
hi<00:00:00.500><c> everyone</c><00:00:01.200><c> and</c>

00:00:02.000 --> 00:00:02.010 align:start position:0%
hi everyone and
<space>

00:00:02.010 --> 00:00:04.000 align:start position:0%
hi everyone and
welcome<00:00:03.000><c> to</c><00:00:03.500><c> the</c>

NOTE a comment between cues

00:00:04.000 --> 00:00:04.010 align:start position:0%
welcome to the
<space>

00:00:04.010 --> 00:00:05.000 align:start position:0%
welcome to the
show
""".replace("<space>", " ")  # YouTube's cues hold lines of one space, which do not end a cue


def test_youtube_rolling_vtt_gives_each_word_once_with_inline_times(tmp_path):
    path = tmp_path / "video.en.vtt"
    path.write_text(YOUTUBE_VTT)
    assert timed(words_from_subtitles(str(path))) == [
        ("hi", 0.0, 0.5),
        ("everyone", 0.5, 1.2),
        ("and", 1.2, 2.0),
        ("welcome", 2.01, 3.0),
        ("to", 3.0, 3.5),
        ("the", 3.5, 4.0),
        ("show", 4.01, 5.0),
    ]


def test_vtt_without_hours(tmp_path):
    path = tmp_path / "short.vtt"
    path.write_text("WEBVTT\n\ncue-1\n00:01.000 --> 00:03.000\nab cd\n")
    assert timed(words_from_subtitles(str(path))) == [("ab", 1.0, 2.0), ("cd", 2.0, 3.0)]


def test_bad_subtitles_are_skipped_by_reason(tmp_path):
    with pytest.raises(SourceSkipped) as error:
        words_from_subtitles(str(tmp_path / "absent.vtt"))
    assert error.value.reason == "missing_subtitles"
    malformed = tmp_path / "malformed.srt"
    malformed.write_text("1\n00:00:01,000 --> soon\nhello\n")
    empty = tmp_path / "empty.vtt"
    empty.write_text("WEBVTT\n\nNOTE nothing here\n")
    for path in (malformed, empty):
        with pytest.raises(SourceSkipped) as error:
            words_from_subtitles(str(path))
        assert error.value.reason == "bad_subtitles"


def test_asr_repairs_are_applied_and_counted():
    asr = [
        {"word": "b", "start": 2.0, "end": 1.5},  # ends before it starts
        {"word": "a", "start": -0.5, "end": 0.5},  # negative start, and out of order
        {"word": "  ", "start": 1.0, "end": 1.2},  # blank
        {"word": "c", "start": 3.0, "end": 3.5},
        {"word": "d", "start": -1.0, "end": -0.5},  # negative, out of order
    ]
    words, repairs = words_from_asr(asr)
    assert [(w.text, w.start, w.end) for w in words] == [
        ("a", 0.0, 0.5),
        ("d", 0.0, 0.0),
        ("b", 2.0, 2.0),
        ("c", 3.0, 3.5),
    ]
    assert repairs == {"negative_times": 2, "end_before_start": 1, "unsorted": 2, "empty_words": 1}
    assert words_from_asr([{"word": "x", "start": 0, "end": 1}])[1] == dict.fromkeys(repairs, 0)
    as_ray_gives_it = np.array(
        [{"word": "x", "start": np.float32(0.5), "end": np.float64(1.0)}], dtype=object
    )
    assert words_from_asr(as_ray_gives_it)[0] == [Word("x", 0.5, 1.0)]


@pytest.mark.parametrize(
    "asr",
    [
        {"word": "x", "start": 0, "end": 1},
        [],
        [{"word": "x", "start": 0}],
        [{"word": "x", "start": math.nan, "end": 1}],
        [{"word": "x", "start": 0, "end": math.inf}],
        [{"word": "x", "start": "0", "end": 1}],
        [{"word": 3, "start": 0, "end": 1}],
        [{"word": " ", "start": 0, "end": 1}],
    ],
)
def test_unusable_asr_is_skipped(asr):
    with pytest.raises(SourceSkipped) as error:
        words_from_asr(asr)
    assert error.value.reason == "bad_asr"


def test_clamp_to_a_shorter_video():
    words = [Word("a", 0.0, 1.0), Word("b", 9.0, 11.0), Word("c", 10.0, 12.0), Word("d", 12.0, 13.0)]
    kept, dropped = clamp_to_duration(words, 10.0)
    assert [(w.text, w.start, w.end) for w in kept] == [("a", 0.0, 1.0), ("b", 9.0, 10.0)]
    assert dropped == 2
    with pytest.raises(SourceSkipped) as error:
        clamp_to_duration(words[2:], 5.0)
    assert error.value.reason == "asr_beyond_video"


# Sentences and clips ----------------------------------------------------------------------------------------


def test_split_sentences_on_known_punctuation():
    words = [
        Word(t, float(i), i + 0.5)
        for i, t in enumerate(["so", "what", "happened", "then", "it", "fell", "and"])
    ]
    sentences = split_sentences(words, ["So", "what", "happened?", "Then", 'it fell!"', "and", "…"])
    assert [(s.text, s.start, s.end, s.num_words) for s in sentences] == [
        ("So what happened?", 0.0, 2.5, 3),
        ('Then it fell!"', 3.0, 4.5, 2),
        ("and …", 5.0, 6.5, 2),
    ]
    own = [Word("one.", 0.0, 1.0), Word("two", 1.0, 2.0), Word("3.5", 2.0, 3.0)]
    assert [s.text for s in split_sentences(own)] == ["one.", "two 3.5"]
    with pytest.raises(ValueError, match="one per word"):
        split_sentences(own, ["x"])


def synthetic_asr(seconds: float, seed: int = 0) -> tuple[list[dict], list[tuple[float, float]]]:
    """Word-level ASR of sentences of 2-6 s with pauses, and the known (start, end) of every sentence."""
    rng = np.random.default_rng(seed)
    asr, bounds, time = [], [], 0.0
    while time < seconds:
        num_words = int(rng.integers(4, 15))
        duration = float(rng.uniform(2.0, 6.0))
        step = duration / num_words
        for index in range(num_words):
            text = "word." if index == num_words - 1 else "word"
            asr.append({"word": text, "start": time + index * step, "end": time + (index + 0.8) * step})
        bounds.append((time, time + (num_words - 1 + 0.8) * step))
        time += duration + float(rng.uniform(0.0, 1.0))
    return asr, bounds


def test_clips_follow_sentences_and_scale_targets():
    asr, bounds = synthetic_asr(600.0)
    words, _ = words_from_asr(asr)
    sentences = split_sentences(words)
    np.testing.assert_allclose([(s.start, s.end) for s in sentences], bounds)
    clips, dropped = plan_clips("src", sentences)
    assert plan_clips("src", sentences) == (clips, dropped)  # deterministic
    starts, ends = {round(a, 6) for a, _ in bounds}, {round(b, 6) for _, b in bounds}
    for scale, target in DEFAULT_SCALES.items():
        ours = [clip for clip in clips if clip.scale == scale]
        assert [clip.index for clip in ours] == list(range(len(ours)))
        for clip in ours:
            assert round(clip.start, 6) in starts and round(clip.end, 6) in ends
            assert (clip.start, clip.end) == (clip.sentences[0].start, clip.sentences[-1].end)
        for before, after in zip(ours, ours[1:], strict=False):
            assert before.end <= after.start
            assert sentences.index(after.sentences[0]) == sentences.index(before.sentences[-1]) + 1
        covered = [s for clip in ours for s in clip.sentences]
        assert covered == sentences  # whole consecutive sentences, nothing dropped on this data
        mean = np.mean([clip.end - clip.start for clip in ours])
        assert abs(mean - target) < 0.15 * target, (scale, mean)
    assert dropped == {"too_short": 0, "too_long": 0}
    assert len({clip.key for clip in clips}) == len(clips)


def test_clips_outside_the_duration_limits_are_dropped_and_counted():
    sentences = [Sentence(f"s{i}.", 4.0 * i, 4.0 * i + 3.0, 3) for i in range(6)]  # 0 .. 23 s
    sentences.append(Sentence("a very long monologue.", 24.0, 74.0, 100))  # 50 s
    sentences += [Sentence(f"t{i}.", 75.0 + 4.0 * i, 78.0 + 4.0 * i, 3) for i in range(6)]  # 75 .. 98 s
    clips, dropped = plan_clips("src", sentences, scales={"short": 12.0}, min_duration=5.0, max_duration=30.0)
    assert [(c.index, c.start, c.end) for c in clips] == [
        (0, 0.0, 11.0),
        (1, 12.0, 23.0),
        (3, 75.0, 86.0),
        (4, 87.0, 98.0),
    ]
    assert dropped == {"too_short": 0, "too_long": 1}  # the monologue; index 2 stays unused
    # By default a clip must last half to twice its scale's target: 7 s is kept for 12 s, 3 s is not.
    assert plan_clips("src", sentences[:2], scales={"short": 12.0})[1] == {"too_short": 0, "too_long": 0}
    assert plan_clips("src", sentences[:1], scales={"short": 12.0})[1] == {"too_short": 1, "too_long": 0}
    with pytest.raises(ValueError, match="positive"):
        plan_clips("src", sentences, scales={"short": 0.0})
    with pytest.raises(ValueError, match="time order"):
        plan_clips("src", sentences[::-1])
    with pytest.raises(ValueError, match="below"):
        plan_clips("src", sentences, min_duration=10.0, max_duration=5.0)


def test_short_tail_is_merged_into_the_last_clip():
    sentences = [Sentence(f"s{i}.", 4.0 * i, 4.0 * i + 3.5, 3) for i in range(4)]  # 0 .. 15.5 s
    clips, _ = plan_clips("src", sentences, scales={"short": 12.0})
    assert [(c.start, c.end, len(c.sentences)) for c in clips] == [(0.0, 15.5, 4)]


# Models -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "marks"),
    [
        (["O", "COMMA", "PERIOD", "QUESTION"], ["", ",", ".", "?"]),
        (["0", ".", ",", "?", "-", ":"], ["", ".", ",", "?", "-", ":"]),  # oliverguhr/fullstop-*
        (
            ["OU", "OO", ".O", "!O", ",U", "?U"],
            ["", "", ".", "!", ",", "?"],
        ),  # felflare/bert-restore-punctuation
    ],
)
def test_punctuation_labels_of_known_models(labels, marks):
    assert [punctuation_for_label(label)[0] for label in labels] == marks


def test_punctuator_gives_one_form_per_word(tiny):
    words = [
        Word(t, float(i), i + 0.5)
        for i, t in enumerate(("okay so the red ball goes left and then " * 6).split())
    ]
    forms = Punctuator(tiny["punctuation_model"], window=16, overlap=4, device="cpu")(words)
    assert len(forms) == len(words)
    for word, form in zip(words, forms, strict=True):
        assert form in (word.text, word.text + ",", word.text + ".", word.text + "?")


def forced_classifier(folder, destination, label: str, id2label=None):
    """A copy of the tiny BERT classifier whose bias makes it predict `label` for every token."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(folder)
    if id2label is not None:
        model.config.id2label = dict(enumerate(id2label))
        model.config.label2id = {name: index for index, name in enumerate(id2label)}
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(-10.0)
        model.classifier.bias[model.config.label2id[label]] = 10.0
    model.save_pretrained(destination)
    AutoTokenizer.from_pretrained(folder).save_pretrained(destination)
    return str(destination)


def test_punctuator_with_a_forced_period_ends_every_word(tiny, tmp_path):
    words = [Word(t, float(i), i + 0.5) for i, t in enumerate(["hello,", "world", "the", "end"])]
    forced = forced_classifier(tiny["punctuation_model"], tmp_path / "period", "PERIOD")
    forms = Punctuator(forced, device="cpu")(words)
    assert forms == ["hello.", "world.", "the.", "end."]
    assert len(split_sentences(words, forms)) == len(words)
    # oliverguhr-style one-character labels, and labels that name no mark.
    oliver = forced_classifier(tiny["punctuation_model"], tmp_path / "comma", ",", ["0", ".", ",", "?"])
    assert Punctuator(oliver, device="cpu")(words) == ["hello,", "world,", "the,", "end,"]
    opaque_labels = [f"LABEL_{i}" for i in range(4)]
    opaque = forced_classifier(tiny["punctuation_model"], tmp_path / "opaque", "LABEL_3", opaque_labels)
    with pytest.raises(ValueError, match="label_map"):
        Punctuator(opaque, device="cpu")
    label_map = {"LABEL_0": "", "LABEL_1": ",", "LABEL_2": ".", "LABEL_3": "?"}
    assert Punctuator(opaque, label_map=label_map, device="cpu")(words[:1]) == ["hello?"]


def test_summarizer_uses_the_paper_prompt_and_fits_clip(tiny, clip_tokenizer):
    summarizer = Summarizer(tiny["summarizer"], max_new_tokens=120, batch_size=2, device="cpu")
    groups = [["the red ball goes left", "Then it stops."], ["a man riding a bike"], ["a dog"] * 3]
    prompts = summarizer.prompts(groups)
    # The tiny model's template is Llama-2's: <s>[INST] user message [/INST].
    assert prompts[0] == f"<s>[INST] {PAPER_PROMPT}the red ball goes left. Then it stops. [/INST]"
    summaries, fallbacks = summarizer.summarize_with_fallbacks(groups)
    assert fallbacks == [False, False, False]
    for summary in summaries:
        assert summary and len(clip_tokenizer(summary)["input_ids"]) <= 77
    assert max(len(clip_tokenizer(s)["input_ids"]) for s in summaries) > 60  # 120 random words were cut
    # Batched generation (left padding) gives what one group alone gives.
    assert [summarizer.summarize([group])[0] for group in groups] == summaries
    assert summarizer.summarize([[]]) == [""]


def test_summarizer_falls_back_to_the_joined_input_on_empty_output(tiny):
    summarizer = Summarizer(tiny["summarizer"], device="cpu")
    config, eos = summarizer.model.generation_config, summarizer.tokenizer.eos_token_id
    config.suppress_tokens = [i for i in range(len(summarizer.tokenizer)) if i != eos]  # only the end is left
    summaries, fallbacks = summarizer.summarize_with_fallbacks([["a cat sits", "It sleeps."]])
    assert (summaries, fallbacks) == (["a cat sits. It sleeps."], [True])


def test_texts_are_cut_to_clip_context_at_word_boundaries(clip_tokenizer):
    texts = [f"sentence number {i} is about a red ball and a blue box" for i in range(20)]
    joined = join_and_truncate(texts)
    count = len(clip_tokenizer(joined)["input_ids"])
    assert 70 < count <= 77
    full = ". ".join(texts) + "."
    assert full.startswith(joined) and full[len(joined)] == " "
    assert fit_clip_context(" short   text\n") == "short text"
    assert len(clip_tokenizer(fit_clip_context("x" * 1000))["input_ids"]) <= 77


def test_frame_captioner_is_deterministic_and_batched(tiny):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    captions = FrameCaptioner(tiny["captioner"], batch_size=2, device="cpu")(images)
    assert len(captions) == 3 and all(isinstance(c, str) and c for c in captions)
    assert FrameCaptioner(tiny["captioner"], batch_size=4, device="cpu")(images) == captions
    with pytest.raises(ValueError, match="uint8"):
        FrameCaptioner(tiny["captioner"], device="cpu")([images[0].astype(np.float32)])


def test_check_model_fails_fast(tiny, tmp_path, monkeypatch):
    import huggingface_hub.constants

    assert check_model("none", "summarizer") == "none"
    assert [check_model(path, kind) for kind, path in tiny.items()] == ["local"] * 3
    with pytest.raises(ValueError, match="--captioner .*valid Hub id"):
        check_model("no such/model!", "captioner")
    with pytest.raises(ValueError, match="--captioner .*BertForTokenClassification.*image-to-text"):
        check_model(tiny["punctuation_model"], "captioner")
    with pytest.raises(ValueError, match="--punctuation_model .*Blip2ForConditionalGeneration"):
        check_model(tiny["captioner"], "punctuation_model")
    with pytest.raises(ValueError, match="--summarizer .*BertForTokenClassification.*causal"):
        check_model(tiny["punctuation_model"], "summarizer")  # BERT has a causal-LM class, but not this one
    with pytest.raises(ValueError, match="no config.json"):
        check_model(str(tmp_path), "summarizer")
    no_template = shutil.copytree(tiny["summarizer"], tmp_path / "no_template")
    (no_template / "chat_template.jinja").unlink()
    with pytest.raises(ValueError, match="chat template"):
        check_model(str(no_template), "summarizer")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="--summarizer 'vidla-tests/no-such-model' .*cannot be reached"):
        check_model("vidla-tests/no-such-model", "summarizer")
    with pytest.raises(ValueError, match="kind"):
        check_model("none", "decoder")


def test_tiny_models_are_small_and_reused(tiny, tmp_path):
    for path in tiny.values():
        assert sum(f.stat().st_size for f in Path(path).iterdir()) < 5e6
    root = Path(tiny["summarizer"]).parent
    stamp = (root / "tiny-summarizer-llama" / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_models(root) == tiny
    assert (root / "tiny-summarizer-llama" / "model.safetensors").stat().st_mtime_ns == stamp
    again = build_tiny_models(tmp_path / "again")  # seeded: the same weights, byte for byte
    for option, path in tiny.items():
        assert (Path(again[option]) / "model.safetensors").read_bytes() == (
            Path(path) / "model.safetensors"
        ).read_bytes()
    (tmp_path / "partial" / "tiny-punctuation-bert").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a complete"):
        build_tiny_models(tmp_path / "partial")
