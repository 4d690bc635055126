"""Evaluation: retrieval metrics."""

from .retrieval import retrieval_metrics

__all__ = ["retrieval_metrics"]
