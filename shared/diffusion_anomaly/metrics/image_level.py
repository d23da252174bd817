"""Slice-level detection from pixel maps, and lesion-size strata."""

from __future__ import annotations

import numpy as np

REDUCTIONS = ("mean", "max", "topk")


def slice_scores(
    score_volume, foreground_mask, reduction: str = "mean", k: int = 100, axis: int = -1
) -> np.ndarray:
    """One score per slice along ``axis`` from the scores inside the foreground (brain, liver...) mask.

    ``mean``: mean score; ``max``: maximum; ``topk``: mean of the ``k`` highest. Slices without brain get NaN.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    scores = np.moveaxis(np.asarray(score_volume, dtype=np.float64), axis, 0)
    brain = np.moveaxis(np.asarray(foreground_mask).astype(bool), axis, 0)
    if scores.shape != brain.shape:
        raise ValueError(f"score shape {scores.shape} differs from brain mask shape {brain.shape}")
    out = np.full(scores.shape[0], np.nan)
    for i, (s, b) in enumerate(zip(scores, brain)):
        values = s[b]
        if values.size == 0:
            continue
        if reduction == "mean":
            out[i] = values.mean()
        elif reduction == "max":
            out[i] = values.max()
        else:
            out[i] = np.sort(values)[-min(k, values.size):].mean()
    return out


def slice_labels(label_volume, axis: int = -1) -> np.ndarray:
    """1 for slices with any lesion voxel, else 0."""
    lab = np.moveaxis(np.asarray(label_volume).astype(bool), axis, 0)
    return np.asarray(lab.reshape(lab.shape[0], -1).any(axis=1), dtype=np.int64)


def size_strata(lesion_volumes) -> list[str]:
    """'small' below the first quartile of lesion volume, 'large' above the third, else 'medium'.

    Volumes without lesion get 'none'. Quartiles are taken over the volumes that have a lesion.
    """
    v = np.asarray(lesion_volumes, dtype=np.float64)
    with_lesion = v[v > 0]
    if with_lesion.size == 0:
        return ["none"] * len(v)
    q1, q3 = np.quantile(with_lesion, [0.25, 0.75])
    return ["none" if x <= 0 else "small" if x < q1 else "large" if x > q3 else "medium" for x in v]
