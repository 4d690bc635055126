"""Publishing a trained VidLA folder to the Hub: safetensors, remote code, pipelines and an honest model card.

All Hub I/O of the library lives in this package, one concern per module:

- `eval_results`: reading and validating the results of `examples/evaluate.py`, and the card's
  `EvalResult`s (`load_eval_results`, `eval_results_for_card`);
- `ids`: Hub repo ids versus local paths (only Hub ids go into a card's metadata);
- `model_card`: the card, `ModelCardData` metadata and the `model_card.md.jinja` text (`build_model_card`);
- `publishing`: the repository folder and the push (`assemble_repo`, `publish`).

Nothing is lost: an existing folder is replaced only if it is empty, or if `overwrite=True` and it was
written by `assemble_repo` (it holds the `.vidla_publish` marker listing what was written, and nothing
else); the new folder is built beside it and swapped in by renames, so a failure leaves the old one as it
was. Nothing is false: only Hub ids go into the card's metadata (local data is described by its folder
name, never its path), and only finite measured numbers into its `model-index`.
"""

from .eval_results import eval_results_for_card, load_eval_results
from .model_card import build_model_card
from .publishing import assemble_repo, publish

__all__ = ["assemble_repo", "build_model_card", "eval_results_for_card", "load_eval_results", "publish"]
