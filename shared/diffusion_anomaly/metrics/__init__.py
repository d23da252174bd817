"""Metrics computed the same way for every method (see ``curves`` for the conventions)."""

from .curves import (
    CurveMetrics,
    curve_from_counts,
    dice_from_counts,
    exact_counts,
    exact_curve,
    labelled_fraction,
    overlap_counts,
    sensitivity_precision,
    threshold_at_fpr,
)
from .image_level import size_strata, slice_labels, slice_scores
from .streaming import PooledScores, ScoreHistogram

__all__ = [
    "CurveMetrics",
    "curve_from_counts",
    "dice_from_counts",
    "exact_counts",
    "exact_curve",
    "labelled_fraction",
    "overlap_counts",
    "sensitivity_precision",
    "threshold_at_fpr",
    "size_strata",
    "slice_labels",
    "slice_scores",
    "PooledScores",
    "ScoreHistogram",
]
