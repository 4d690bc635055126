"""Data curation (paper §3, A.4): long videos with speech → multi-scale clips with summarised subtitles and
visually grounded captions, as WebDataset shards that `examples/pretrain.py --train_data` trains on.

Runs on Ray Data (`pip install -e ".[curate]"`), locally by default and unchanged on a Ray cluster:

    python examples/curate.py                                   # synthetic sources + tiny models: a demo
    python examples/curate.py --manifest sources.jsonl --output_dir data/curated [--ray_address auto]
"""

from .pipeline import PAPER_MODELS, CurationSettings, curate
from .records import DEFAULT_SCALES, Clip, Sentence, SourceSkipped, Word
from .sources import make_synthetic_sources, read_manifest
from .stats import format_table

__all__ = [
    "DEFAULT_SCALES",
    "PAPER_MODELS",
    "Clip",
    "CurationSettings",
    "Sentence",
    "SourceSkipped",
    "Word",
    "curate",
    "format_table",
    "make_synthetic_sources",
    "read_manifest",
]
