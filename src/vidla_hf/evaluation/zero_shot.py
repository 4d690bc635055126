"""Zero-shot classification (prompt-template ensembles, as CLIP does for Kinetics) and multiple choice."""

import re

import numpy as np
import torch
import torch.nn.functional as F

from .choices import _check_labels, choice_accuracy
from .embeddings import embed_texts
from .retrieval import _check_finite

# CLIP's prompt templates (Radford et al. 2021), copied exactly from openai/CLIP `data/prompts.md` (the lists
# of its "Kinetics700" and "UCF101" sections; checked against commit d05afc4).
KINETICS700_TEMPLATES = (
    "a photo of {}.",
    "a photo of a person {}.",
    "a photo of a person using {}.",
    "a photo of a person doing {}.",
    "a photo of a person during {}.",
    "a photo of a person performing {}.",
    "a photo of a person practicing {}.",
    "a video of {}.",
    "a video of a person {}.",
    "a video of a person using {}.",
    "a video of a person doing {}.",
    "a video of a person during {}.",
    "a video of a person performing {}.",
    "a video of a person practicing {}.",
    "a example of {}.",
    "a example of a person {}.",
    "a example of a person using {}.",
    "a example of a person doing {}.",
    "a example of a person during {}.",
    "a example of a person performing {}.",
    "a example of a person practicing {}.",
    "a demonstration of {}.",
    "a demonstration of a person {}.",
    "a demonstration of a person using {}.",
    "a demonstration of a person doing {}.",
    "a demonstration of a person during {}.",
    "a demonstration of a person performing {}.",
    "a demonstration of a person practicing {}.",
)
UCF101_TEMPLATES = (
    "a photo of a person {}.",
    "a video of a person {}.",
    "a example of a person {}.",
    "a demonstration of a person {}.",
    "a photo of the person {}.",
    "a video of the person {}.",
    "a example of the person {}.",
    "a demonstration of the person {}.",
    "a photo of a person using {}.",
    "a video of a person using {}.",
    "a example of a person using {}.",
    "a demonstration of a person using {}.",
    "a photo of the person using {}.",
    "a video of the person using {}.",
    "a example of the person using {}.",
    "a demonstration of the person using {}.",
    "a photo of a person doing {}.",
    "a video of a person doing {}.",
    "a example of a person doing {}.",
    "a demonstration of a person doing {}.",
    "a photo of the person doing {}.",
    "a video of the person doing {}.",
    "a example of the person doing {}.",
    "a demonstration of the person doing {}.",
    "a photo of a person during {}.",
    "a video of a person during {}.",
    "a example of a person during {}.",
    "a demonstration of a person during {}.",
    "a photo of the person during {}.",
    "a video of the person during {}.",
    "a example of the person during {}.",
    "a demonstration of the person during {}.",
    "a photo of a person performing {}.",
    "a video of a person performing {}.",
    "a example of a person performing {}.",
    "a demonstration of a person performing {}.",
    "a photo of the person performing {}.",
    "a video of the person performing {}.",
    "a example of the person performing {}.",
    "a demonstration of the person performing {}.",
    "a photo of a person practicing {}.",
    "a video of a person practicing {}.",
    "a example of a person practicing {}.",
    "a demonstration of a person practicing {}.",
    "a photo of the person practicing {}.",
    "a video of the person practicing {}.",
    "a example of the person practicing {}.",
    "a demonstration of the person practicing {}.",
)
VIDEO_TEMPLATES = ("a video of {}.",)
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "video": VIDEO_TEMPLATES,
    "kinetics700": KINETICS700_TEMPLATES,
    "ucf101": UCF101_TEMPLATES,
}
# Dataset (its name lower-cased, without punctuation) → its template set. CLIP's prompts.md has no list for
# Kinetics-400 or -600 (their classes are nearly all among Kinetics-700's); VidLA (App. D) evaluates Kinetics-400
# zero-shot "following CLIP [...] utilizing the default prompt templates for Kinetics-400 classification":
# CLIP's Kinetics templates, the Kinetics-700 set.
DATASET_TEMPLATE_SETS = {
    "kinetics400": "kinetics700",
    "kinetics600": "kinetics700",
    "kinetics700": "kinetics700",
    "ucf101": "ucf101",
}


def _plain(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def select_templates(templates: str = "auto", dataset: str | None = None) -> tuple[str, tuple[str, ...]]:
    """`(set name, templates)` for zero-shot classification.

    `templates` names a set (`video`, `kinetics700`, `ucf101`) or a dataset whose set to use (`Kinetics-400`
    and `kinetics600` get the Kinetics-700 set); `"auto"` picks by the dataset named in `dataset` (a path or
    Hub id such as `data/kinetics-400/val`), else the single `video` template. Raises `ValueError` naming
    `templates` for an unknown name.

    Example:

    ```python
    >>> from vidla_hf.evaluation import select_templates
    >>> name, templates = select_templates("auto", "shards/Kinetics-400")
    >>> name, len(templates), templates[0]
    ('kinetics700', 28, 'a photo of {}.')
    >>> select_templates("auto", "data/synthetic")
    ('video', ('a video of {}.',))

    ```
    """
    if templates == "auto":
        found = {s for d, s in DATASET_TEMPLATE_SETS.items() if d in _plain(dataset or "")}
        if len(found) > 1:
            raise ValueError(
                f"`templates`: the dataset {dataset!r} names several datasets ({sorted(found)}); choose the set."
            )
        name = found.pop() if found else "video"
    else:
        name = DATASET_TEMPLATE_SETS.get(_plain(templates), templates)
    if name not in TEMPLATE_SETS:
        known = sorted({*TEMPLATE_SETS, *DATASET_TEMPLATE_SETS, "auto"})
        raise ValueError(f"`templates` must be a template set or dataset among {known}, got {templates!r}.")
    return name, TEMPLATE_SETS[name]


def class_embeddings(
    model, processor, class_names: list[str], templates=("a video of {}.",), batch_size=256, device=None
) -> torch.Tensor:
    """(classes, D) normalised class embeddings on the CPU: each class's template embeddings (`embed_texts`,
    normalised), averaged and normalised again (CLIP's prompt ensembling)."""
    if not class_names or not templates or not all("{}" in t for t in templates):
        raise ValueError("Need at least one class name and templates that each contain '{}'.")
    prompts = [template.format(name) for name in class_names for template in templates]
    embeds = embed_texts(model, processor, prompts, batch_size=batch_size, device=device)
    per_template = embeds.view(len(class_names), len(templates), -1)  # (C, templates, D)
    return F.normalize(per_template.mean(dim=1), dim=-1)


def build_multiple_choice(
    metadata: list[dict],
    num_options: int = 5,
    *,
    options_column: str | None = None,
    answer_column: str | None = None,
    caption_column: str = "caption",
    subtitle_column: str = "subtitle",
    seed: int = 0,
) -> tuple[list[list[str]], list[int]]:
    """The candidate texts of a multiple-choice test, one question per sample: `(options, answers)` with
    `options[i]` the K texts offered for sample `i` and `answers[i]` the index of the right one.

    With `options_column`, each sample's metadata holds its options (a list of K texts) and `answer_column`
    the index of the right one (as in MSR-VTT MC). Without it, each sample's caption (its subtitle if it has
    no caption) is hidden among the captions of `num_options - 1` other samples, drawn without replacement,
    at a random position (NumPy's `default_rng(seed)`: the same `seed` and metadata give the same test).
    Every sample must end up with the same number of options K.

    Example:

    ```python
    >>> from vidla_hf.evaluation import build_multiple_choice
    >>> metadata = [{"caption": c} for c in ("a red circle", "a blue square", "a green star", "a cat")]
    >>> options, answers = build_multiple_choice(metadata, num_options=3, seed=0)
    >>> [len(choice) for choice in options]
    [3, 3, 3, 3]
    >>> [choice[answer] for choice, answer in zip(options, answers, strict=True)]
    ['a red circle', 'a blue square', 'a green star', 'a cat']
    >>> build_multiple_choice([{"choices": ["a dog", "a cat"], "answer": 1}], options_column="choices",
    ...                       answer_column="answer")
    ([['a dog', 'a cat']], [1])

    ```
    """
    if options_column:
        if not answer_column:
            raise ValueError(f"`answer_column` is needed with `options_column` ({options_column!r}).")
        for index, fields in enumerate(metadata):
            if options_column not in fields or answer_column not in fields:
                raise ValueError(
                    f"Sample {index} has no `{options_column}` or no `{answer_column}` in its metadata "
                    f"(it has {sorted(fields)})."
                )
        options = [fields[options_column] for fields in metadata]
        answers = [int(fields[answer_column]) for fields in metadata]
    else:
        if isinstance(num_options, bool) or not isinstance(num_options, int) or num_options < 2:
            raise ValueError(f"`num_options` must be an integer >= 2, got {num_options!r}.")
        captions = [fields.get(caption_column) or fields.get(subtitle_column) for fields in metadata]
        if len(captions) < num_options:
            raise ValueError(f"Need at least num_options={num_options} samples, got {len(captions)}.")
        missing = [index for index, caption in enumerate(captions) if not isinstance(caption, str)]
        if missing:
            raise ValueError(
                f"{len(missing)} samples have no `{caption_column}` or `{subtitle_column}` text in their "
                f"metadata (first: sample {missing[0]})."
            )
        rng = np.random.default_rng(seed)
        options, answers = [], []
        for index, caption in enumerate(captions):
            others = rng.choice(
                [i for i in range(len(captions)) if i != index], num_options - 1, replace=False
            )
            answer = int(rng.integers(num_options))
            choice = [captions[i] for i in others]
            choice.insert(answer, caption)
            options.append(choice)
            answers.append(answer)
    if len({len(choice) for choice in options}) != 1:
        raise ValueError("Every sample must have the same number of options.")
    return options, answers


def zero_shot_accuracy(
    video_embeds: torch.Tensor, class_embeds: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """Top-k accuracy (%) of videos against class embeddings; `labels` are class indices.

    Classes whose cosine similarities tie with the label's share the places they tie for (`choice_accuracy`), so
    the classes' order never decides a tie. NaN / inf embeddings and labels outside the classes raise
    `ValueError`.
    """
    for tensor, name in ((video_embeds, "video_embeds"), (class_embeds, "class_embeds")):
        _check_finite(tensor, name)
        if tensor.ndim != 2 or tensor.shape[0] == 0:
            raise ValueError(f"`{name}` must be a non-empty (N, D) matrix, got {tuple(tensor.shape)}.")
    if video_embeds.shape[1] != class_embeds.shape[1]:
        raise ValueError(
            f"`video_embeds` and `class_embeds` must have the same width, got {video_embeds.shape[1]} and "
            f"{class_embeds.shape[1]}."
        )
    _check_labels(labels, "labels", video_embeds.shape[0], class_embeds.shape[0])
    logits = F.normalize(video_embeds.float(), dim=-1) @ class_embeds.float().T  # (N, C)
    _check_finite(logits, "video-class similarities")  # finite float64 beyond float32's range
    return {f"top{k}": choice_accuracy(logits, labels, k=k) for k in ks if k <= class_embeds.shape[0]}


def multiple_choice_accuracy(
    video_embeds: torch.Tensor, option_embeds: torch.Tensor, answers: torch.Tensor
) -> float:
    """Accuracy (%) of picking the right caption among K: `option_embeds` (N, K, D), `answers` (N,).

    The option most similar (cosine) to the video is picked; options tied at the top split the credit
    (`choice_accuracy`), so a tie is the coin flip it is, never a hit or a miss by the options' order.
    NaN / inf embeddings and answers outside the K options raise `ValueError`.
    """
    _check_finite(video_embeds, "video_embeds")
    _check_finite(option_embeds, "option_embeds")
    if video_embeds.ndim != 2 or video_embeds.shape[0] == 0:
        raise ValueError(
            f"`video_embeds` must be a non-empty (N, D) matrix, got {tuple(video_embeds.shape)}."
        )
    if (
        option_embeds.ndim != 3
        or option_embeds.shape[::2] != video_embeds.shape
        or option_embeds.shape[1] == 0
    ):
        raise ValueError(
            f"`option_embeds` must be (N, K, D) with (N, D)={tuple(video_embeds.shape)}, got "
            f"{tuple(option_embeds.shape)}."
        )
    _check_labels(answers, "answers", video_embeds.shape[0], option_embeds.shape[1])
    scores = torch.einsum(
        "nd,nkd->nk", F.normalize(video_embeds.float(), dim=-1), F.normalize(option_embeds.float(), dim=-1)
    )
    _check_finite(scores, "video-option similarities")  # finite float64 beyond float32's range
    return choice_accuracy(scores, answers)


__all__ = [
    "DATASET_TEMPLATE_SETS",
    "KINETICS700_TEMPLATES",
    "TEMPLATE_SETS",
    "UCF101_TEMPLATES",
    "VIDEO_TEMPLATES",
    "build_multiple_choice",
    "class_embeddings",
    "multiple_choice_accuracy",
    "select_templates",
    "zero_shot_accuracy",
]
