"""Evaluation: text and evaluation-set embeddings, retrieval (with exact chunked dual softmax), zero-shot
classification, multiple choice, and the reversed-order multiple choice that frame averaging cannot pass."""

from .choices import TIE_TOLERANCE, choice_accuracy
from .embeddings import compute_embeddings, embed_texts
from .index import INDEX_KINDS, VideoIndex, index_recall
from .retrieval import (
    dual_softmax,
    evaluate_retrieval,
    matched_ranks,
    metrics_from_ranks,
    paragraph,
    retrieval_metrics,
)
from .temporal_order import reversed_order_accuracy
from .zero_shot import (
    KINETICS700_TEMPLATES,
    TEMPLATE_SETS,
    UCF101_TEMPLATES,
    build_multiple_choice,
    class_embeddings,
    multiple_choice_accuracy,
    select_templates,
    zero_shot_accuracy,
)

__all__ = [
    "INDEX_KINDS",
    "VideoIndex",
    "index_recall",
    "KINETICS700_TEMPLATES",
    "TEMPLATE_SETS",
    "TIE_TOLERANCE",
    "UCF101_TEMPLATES",
    "build_multiple_choice",
    "choice_accuracy",
    "class_embeddings",
    "compute_embeddings",
    "dual_softmax",
    "embed_texts",
    "evaluate_retrieval",
    "matched_ranks",
    "metrics_from_ranks",
    "multiple_choice_accuracy",
    "paragraph",
    "retrieval_metrics",
    "reversed_order_accuracy",
    "select_templates",
    "zero_shot_accuracy",
]
