"""Tiny *random* stand-ins for the curation models, built offline from transformers classes.

The paper's models (a BERT punctuation model, BLIP-2 OPT-2.7B, Llama-2-13B-chat) cannot be downloaded here,
so the embedded default job and the tests run every stage with three tiny models of the same kinds:

- `punctuation_model`: a `BertForTokenClassification` (labels O, COMMA, PERIOD, QUESTION) with a WordPiece
  `BertTokenizer` whose vocabulary is written here;
- `captioner`: a `Blip2ForConditionalGeneration` (ViT + Q-Former + OPT) with its `Blip2Processor`;
- `summarizer`: a `LlamaForCausalLM` with a Llama-2 chat template.

The generators' tokenizers are word-level over a small English vocabulary, so their random generations
decode to readable words rather than byte garbage (unknown input words become `<unk>`).

**Their weights are random (seeded), so the punctuation, captions and summaries they produce are
meaningless text.** They exercise the real code paths (tokenisation, batching, generation, chat templates)
in seconds on a CPU; pass real Hub ids or folders for real data.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

# Enough English for the tokenizers to cover the prompt, narration-style subtitles and captions.
_CORPUS = """red green blue yellow circle square triangle ball dot round thing box block wedge pointy left right
up down goes heads slides over off floats upwards rises drops sinks moves enters screen uh okay yeah then
summarize the following sentences into a single sentence, not exceeding 25 words.
do not output any additional text and use any external information.
okay so the red ball goes to the left and then the blue box heads right. um alright next the green
triangle rises, after that a yellow square sinks down? a man is riding a bike down the street.
a woman standing in a kitchen cooking food. a group of people sitting around a table talking.
a close up of a person holding a phone. a dog running in the grass. a car parked on the side of the road.
so here we have a small circle moving up the screen and it slides over to the right, right so yeah.
what is this? this is a video about cooking, music, sports, travel, games and how to make things.
first we take the pieces, then we put them together. thank you for watching, see you next time!
0 1 2 3 4 5 6 7 8 9 10 20 30 60 100 seconds minutes hello world the a an of in on at to is are was were it
"""
_WORDS = sorted(set(_CORPUS.replace(".", " ").replace(",", " ").replace("?", " ").replace("!", " ").split()))
_TINY_TOWER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
PUNCTUATION_LABELS = ("O", "COMMA", "PERIOD", "QUESTION")
LLAMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}<<SYS>>\n{{ message['content'] }}\n<</SYS>>\n\n"
    "{% elif message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]"
    "{% else %} {{ message['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
)


def _bert_tokenizer():
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = sorted(set("".join(_WORDS)) | set(".,?!:;'-"))
    tokens = specials + characters + ["##" + c for c in characters] + [w for w in _WORDS if len(w) > 1]
    return BertTokenizer(vocab={token: index for index, token in enumerate(tokens)})


def _word_level(special_tokens: list[str], bos: str | None, **kwargs):
    """A word-level tokenizer over `_WORDS`: random generations decode to readable (if meaningless) words."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokens = special_tokens + _WORDS + list(".,?!:;'-")
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(special_tokens)
    if bos is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **kwargs)


def _readable_generation(generation_config, tokenizer) -> None:
    """Random weights would repeat one token or emit special ones: ban specials but the end, and repeats."""
    generation_config.suppress_tokens = [i for i in tokenizer.all_special_ids if i != tokenizer.eos_token_id]
    generation_config.no_repeat_ngram_size = 1


def _save_punctuation_model(path: Path) -> None:
    import torch
    from transformers import BertConfig, BertForTokenClassification

    tokenizer = _bert_tokenizer()
    config = BertConfig(
        **_TINY_TOWER,
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        id2label=dict(enumerate(PUNCTUATION_LABELS)),
        label2id={label: index for index, label in enumerate(PUNCTUATION_LABELS)},
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's random state
        torch.manual_seed(0)
        BertForTokenClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


def _save_captioner(path: Path) -> None:
    import torch
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        BlipImageProcessor,
        OPTConfig,
    )

    tokenizer = _word_level(
        ["<pad>", "</s>", "<unk>", "<image>"],
        bos="</s>",  # OPT starts every text with `</s>`
        pad_token="<pad>",
        bos_token="</s>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    num_query_tokens = 4
    text_config = OPTConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        ffn_dim=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        word_embed_proj_dim=32,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = Blip2Config(
        vision_config=Blip2VisionConfig(**_TINY_TOWER, image_size=32, patch_size=8).to_dict(),
        qformer_config=Blip2QFormerConfig(**_TINY_TOWER, vocab_size=64, encoder_hidden_size=32).to_dict(),
        text_config=text_config.to_dict(),
        num_query_tokens=num_query_tokens,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's random state
        torch.manual_seed(1)
        model = Blip2ForConditionalGeneration(config)
    _readable_generation(model.generation_config, tokenizer)
    model.save_pretrained(path)
    image_processor = BlipImageProcessor(
        size={"height": 32, "width": 32},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    Blip2Processor(image_processor, tokenizer, num_query_tokens=num_query_tokens).save_pretrained(path)


def _save_summarizer(path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _word_level(
        ["<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"],
        bos="<s>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        padding_side="left",
    )
    tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    config = LlamaConfig(
        **_TINY_TOWER,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's random state
        torch.manual_seed(2)
        model = LlamaForCausalLM(config)
    _readable_generation(model.generation_config, tokenizer)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


_BUILDERS = {
    "punctuation_model": ("tiny-punctuation-bert", _save_punctuation_model),
    "captioner": ("tiny-captioner-blip2", _save_captioner),
    "summarizer": ("tiny-summarizer-llama", _save_summarizer),
}


def _is_complete(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def build_tiny_models(folder: str | os.PathLike) -> dict[str, str]:
    """Writes (or reuses) the three tiny random models under `folder`; returns their paths by option name.

    Keys are the curation options they stand in for: `punctuation_model`, `captioner`, `summarizer`. Each
    model is built in a temporary folder and renamed into place, so a folder that exists is complete and is
    reused as is; concurrent builders do not clash. The weights are random: their text is not meaningful.

    Example (builds nothing if `folder` already holds them):

    ```python
    >>> import tempfile
    >>> from vidla_hf.data.curation.tiny_models import build_tiny_models
    >>> folder = tempfile.mkdtemp()
    >>> paths = build_tiny_models(folder)
    >>> sorted(paths)
    ['captioner', 'punctuation_model', 'summarizer']
    >>> build_tiny_models(folder) == paths  # the second call reuses them
    True

    ```
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for option, (name, save) in _BUILDERS.items():
        path = root / name
        if path.exists() and not _is_complete(path):
            raise ValueError(f"{path} exists but is not a complete tiny model; delete it to rebuild.")
        if not path.exists():
            staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
            try:
                save(staging)
                (staging / "README.md").write_text(
                    f"# {name}\n\nA tiny model with RANDOM weights, built by "
                    "`vidla_hf.data.curation.tiny_models`. Its outputs are not meaningful text.\n"
                )
                try:
                    staging.rename(path)
                except OSError:  # another process renamed its copy into place first
                    if not _is_complete(path):
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        paths[option] = str(path)
    return paths


def tiny_model_summary(paths: dict[str, str]) -> str:
    """One line per model: option, architecture and folder (for the job's log)."""
    lines = []
    for option, path in paths.items():
        architecture = json.loads((Path(path) / "config.json").read_text())["architectures"][0]
        lines.append(f"{option}: {architecture} (random weights) at {path}")
    return "\n".join(lines)


__all__ = ["LLAMA2_CHAT_TEMPLATE", "PUNCTUATION_LABELS", "build_tiny_models", "tiny_model_summary"]
