"""The real CLIP BPE tokenizer, built offline from the vocabulary file shipped in `open_clip_torch`."""

import gzip
import importlib.util
import os
from pathlib import Path

from transformers import CLIPTokenizer

OPEN_CLIP_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT_LENGTH = 77


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable unicode character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, characters), strict=True))


def find_open_clip_bpe_file() -> Path:
    """Locates `open_clip/bpe_simple_vocab_16e6.txt.gz` in the installed `open_clip_torch` without importing it."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The CLIP BPE vocabulary comes from the `open_clip_torch` package: `pip install open_clip_torch` "
            "(or load a tokenizer from a CLIP checkpoint with network access)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / OPEN_CLIP_BPE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed open_clip_torch.")
    return path


def build_clip_tokenizer(bpe_path: str | os.PathLike | None = None) -> CLIPTokenizer:
    """Builds OpenAI CLIP's tokenizer (49,408 tokens, 77-token context) as an HF `CLIPTokenizer`, offline.

    The vocabulary is derived exactly as CLIP derives it: the 256 byte characters, the same with `</w>`,
    one token per merge (the first 48,894 merges of the file), then `<|startoftext|>` and `<|endoftext|>`.

    Example:

    ```python
    >>> from vidla_hf.processing import build_clip_tokenizer
    >>> build_clip_tokenizer()("a photo of a cat")["input_ids"]
    [49406, 320, 1125, 539, 320, 2368, 49407]

    ```
    """
    path = Path(bpe_path) if bpe_path is not None else find_open_clip_bpe_file()
    with gzip.open(path, "rt", encoding="utf-8") as file:
        lines = file.read().split("\n")
    num_merges = CLIP_VOCAB_SIZE - 2 * 256 - 2
    merges = [tuple(line.split()) for line in lines[1 : num_merges + 1]]  # line 0 is a version header
    byte_characters = list(_bytes_to_unicode().values())
    tokens = byte_characters + [c + "</w>" for c in byte_characters] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise ValueError(
            f"{path} does not give CLIP's vocabulary: {len(vocab)} tokens, expected {CLIP_VOCAB_SIZE}."
        )
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_CONTEXT_LENGTH)


__all__ = ["build_clip_tokenizer", "find_open_clip_bpe_file"]
