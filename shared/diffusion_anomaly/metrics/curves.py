"""Precision-recall and ROC metrics from per-threshold counts: one formula for the exact and streaming paths.

A prediction at threshold ``t`` is ``score >= t``. Counts are given per candidate threshold in *descending*
order, so cumulative sums are the true/false positives at each threshold.

Conventions (used everywhere in this package):
* AP (area under the PR curve, scikit-learn's step definition) is NaN when there are no positives.
* AUROC (trapezoid, ties count one half) is NaN when there are no positives or no negatives.
* Dice of an empty prediction against an empty ground truth is 1; against a non-empty one, 0.
* The oracle ("best possible") Dice is the maximum over all thresholds; it looks at the labels it is
  scored on, so it is an upper bound, never an operating point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CurveMetrics:
    ap: float
    auroc: float
    oracle_dice: float
    oracle_threshold: float
    n_pos: int
    n_neg: int

    def as_dict(self) -> dict:
        return asdict(self)


def curve_from_counts(thresholds: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> CurveMetrics:
    """Metrics from counts of positives/negatives at each threshold, thresholds in descending order."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    n_pos, n_neg = (float(tp[-1]), float(fp[-1])) if len(tp) else (0.0, 0.0)
    if n_pos > 0:
        precision = tp / np.maximum(tp + fp, 1e-300)
        recall = tp / n_pos
        ap = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
        dice = 2 * tp / (tp + fp + n_pos)
        best = int(np.argmax(dice))
        oracle_dice, oracle_threshold = float(dice[best]), float(thresholds[best])
    else:
        ap = float("nan")
        # predicting nothing is perfect on an empty ground truth
        oracle_dice, oracle_threshold = 1.0, float(np.nextafter(thresholds[0], np.inf)) if len(tp) else float("inf")
    if n_pos > 0 and n_neg > 0:
        tpr = np.concatenate([[0.0], tp / n_pos])
        fpr = np.concatenate([[0.0], fp / n_neg])
        auroc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    else:
        auroc = float("nan")
    return CurveMetrics(ap, auroc, oracle_dice, oracle_threshold, int(n_pos), int(n_neg))


def flat_scores_labels(scores, labels, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Flattened scores and boolean labels; raises ValueError for a size mismatch or non-finite scores."""
    scores = np.asarray(scores, dtype=dtype).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores ({scores.size}) and labels ({labels.size}) differ in size")
    if scores.size and not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    return scores, labels


def exact_counts(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct score values (descending) with the number of positive and negative items at each."""
    scores, labels = flat_scores_labels(scores, labels)
    values, inverse = np.unique(scores, return_inverse=True)
    pos = np.bincount(inverse, weights=labels, minlength=len(values))
    neg = np.bincount(inverse, minlength=len(values)) - pos
    return values[::-1], pos[::-1], neg[::-1]


def exact_curve(scores, labels) -> CurveMetrics:
    """Exact AP, AUROC and oracle Dice of ``scores`` against binary ``labels`` (any shape, same size)."""
    return curve_from_counts(*exact_counts(scores, labels))


def threshold_at_fpr(thresholds: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """Lowest threshold whose false-positive fraction on the (healthy) negatives is at most ``fpr``.

    ``thresholds`` descending with negative counts ``neg``. If even the highest threshold exceeds ``fpr``,
    returns a value just above it (predict nothing).
    """
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must lie in [0, 1], got {fpr}")
    neg = np.asarray(neg, dtype=np.float64)
    total = neg.sum()
    if total == 0:
        raise ValueError("no healthy voxels to calibrate a threshold on")
    fractions = np.cumsum(neg) / total
    ok = np.nonzero(fractions <= fpr + 1e-12)[0]
    if len(ok) == 0:
        return float(np.nextafter(thresholds[0], np.inf))
    return float(thresholds[ok[-1]])


def overlap_counts(prediction, labels) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` of two binary arrays of the same shape."""
    p = np.asarray(prediction).astype(bool)
    g = np.asarray(labels).astype(bool)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} differs from label shape {g.shape}")
    tp = int(np.count_nonzero(p & g))
    return tp, int(np.count_nonzero(p)) - tp, int(np.count_nonzero(g)) - tp


def dice_from_counts(tp: int, fp: int, fn: int) -> float:
    """Dice 2TP / (2TP + FP + FN); 1 when prediction and ground truth are both empty."""
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2 * tp / denominator


def labelled_fraction(tp: int, fp: int, fn: int, total: int) -> float:
    """Fraction (TP + FP) / total of the voxels a threshold labels: what a viewer would paint (NaN for no voxels)."""
    return (tp + fp) / total if total else float("nan")


def sensitivity_precision(tp: int, fp: int, fn: int) -> tuple[float, float]:
    """Sensitivity (NaN without positives) and precision (NaN without predictions)."""
    sens = tp / (tp + fn) if tp + fn else float("nan")
    prec = tp / (tp + fp) if tp + fp else float("nan")
    return sens, prec
