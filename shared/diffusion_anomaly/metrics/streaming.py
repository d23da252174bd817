"""Pooled PR/ROC metrics over data sets too large to keep in memory (a BraTS test set is ~1e9 voxels).

``PooledScores`` keeps raw scores while they fit (exact metrics), then folds them into fixed-count
histograms of positive and negative scores whose range adapts to the data: when a score falls outside,
neighbouring bins are merged pairwise (bin width doubles) and the range grows, so no count is ever lost or
re-binned approximately. All scores that share a bin act as one tie; with 2**16 bins the AP error is far
below 1e-3 on realistic score distributions.
"""

from __future__ import annotations

import numpy as np

from .curves import CurveMetrics, curve_from_counts, exact_counts, flat_scores_labels, threshold_at_fpr


class ScoreHistogram:
    """Counts of positive and negative scores in ``num_bins`` equal bins over a range that grows as needed."""

    def __init__(self, num_bins: int = 2**16):
        if num_bins < 2 or num_bins % 2:
            raise ValueError(f"num_bins must be an even number >= 2, got {num_bins}")
        self.num_bins = num_bins
        self.lo, self.width = 0.0, 0.0  # set from the first scores
        self.empty = True
        self.pos = np.zeros(num_bins, dtype=np.int64)
        self.neg = np.zeros(num_bins, dtype=np.int64)

    def update(self, scores: np.ndarray, labels: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=np.float64).ravel()
        labels = np.asarray(labels).ravel().astype(bool)
        if scores.size == 0:
            return
        lo, hi = float(scores.min()), float(scores.max())
        if self.empty:
            span = hi - lo
            self.width = span / self.num_bins * (1 + 1e-9) if span > 0 else max(abs(lo), 1.0) * 1e-9
            self.lo, self.empty = lo, False
        while lo < self.lo:
            self._grow(downward=True)
        while hi >= self.lo + self.width * self.num_bins:
            self._grow(downward=False)
        index = np.minimum(((scores - self.lo) / self.width).astype(np.int64), self.num_bins - 1)
        self.pos += np.bincount(index[labels], minlength=self.num_bins)
        self.neg += np.bincount(index[~labels], minlength=self.num_bins)

    def _grow(self, downward: bool) -> None:
        half = self.num_bins // 2
        for counts in (self.pos, self.neg):
            merged = counts[0::2] + counts[1::2]
            counts[:] = 0
            if downward:  # old range becomes the upper half
                counts[half:] = merged
            else:
                counts[:half] = merged
        if downward:
            self.lo -= self.width * self.num_bins
        self.width *= 2

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bin lower edges (descending) with positive and negative counts, empty bins dropped."""
        used = np.nonzero(self.pos + self.neg)[0][::-1]
        edges = self.lo + used * self.width
        return edges, self.pos[used], self.neg[used]


class PooledScores:
    """Accumulate (score, label) pairs over many volumes; exact below ``exact_limit`` items, else histogram."""

    def __init__(self, exact_limit: int = 50_000_000, num_bins: int = 2**16):
        self.exact_limit = exact_limit
        self.num_bins = num_bins
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._size = 0
        self.histogram: ScoreHistogram | None = None

    @property
    def exact(self) -> bool:
        return self.histogram is None

    def update(self, scores, labels) -> None:
        scores, labels = flat_scores_labels(scores, labels, np.float32)
        if self.histogram is not None:
            self.histogram.update(scores, labels)
            return
        self._scores.append(scores)
        self._labels.append(labels)
        self._size += scores.size
        if self._size > self.exact_limit:
            self.histogram = ScoreHistogram(self.num_bins)
            for s, lab in zip(self._scores, self._labels):
                self.histogram.update(s, lab)
            self._scores, self._labels = [], []

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.histogram is not None:
            return self.histogram.counts()
        if not self._scores:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        return exact_counts(np.concatenate(self._scores), np.concatenate(self._labels))

    def metrics(self) -> CurveMetrics:
        return curve_from_counts(*self.counts())

    def threshold_at_fpr(self, fpr: float) -> float:
        """Calibration on healthy data: every item counts as a negative here, whatever its label."""
        thresholds, pos, neg = self.counts()
        return threshold_at_fpr(thresholds, pos + neg, fpr)
