"""Metrics against scikit-learn and brute-force sweeps, on random and adversarial inputs."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from diffusion_anomaly.metrics import (
    PooledScores,
    ScoreHistogram,
    dice_from_counts,
    exact_curve,
    overlap_counts,
    sensitivity_precision,
    size_strata,
    slice_labels,
    slice_scores,
)
from diffusion_anomaly.postprocess import median_filter_slices, remove_small_components


def brute_force_best_dice(scores, labels):
    best = 0.0 if labels.any() else 1.0  # "predict nothing"
    for t in np.unique(scores):
        best = max(best, dice_from_counts(*overlap_counts(scores >= t, labels)))
    return best


def _cases():
    rng = np.random.default_rng(0)
    n = 2000
    labels = rng.random(n) < 0.1
    yield "random", rng.normal(size=n) + 1.5 * labels, labels
    yield "ties", np.round(rng.normal(size=n) + labels, 1), labels
    yield "heavy ties", rng.integers(0, 3, size=n).astype(float), rng.random(n) < 0.3
    single = np.zeros(n, bool)
    single[17] = True
    yield "single positive", rng.normal(size=n), single
    yield "constant scores", np.full(n, 0.3), labels
    yield "perfect", labels.astype(float), labels
    yield "inverted", (~labels).astype(float), labels


@pytest.mark.parametrize("name,scores,labels", list(_cases()), ids=[c[0] for c in _cases()])
def test_exact_curve_matches_sklearn_and_brute_force(name, scores, labels):
    m = exact_curve(scores, labels)
    assert m.ap == pytest.approx(average_precision_score(labels, scores), abs=1e-6)
    assert m.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert m.oracle_dice == pytest.approx(brute_force_best_dice(scores, labels), abs=1e-6)
    assert m.oracle_dice == pytest.approx(dice_from_counts(*overlap_counts(scores >= m.oracle_threshold, labels)))
    assert (m.n_pos, m.n_neg) == (int(labels.sum()), int((~labels).sum()))


def test_all_negative_convention():
    m = exact_curve(np.linspace(0, 1, 50), np.zeros(50, bool))
    assert math.isnan(m.ap) and math.isnan(m.auroc)
    assert m.oracle_dice == 1.0 and m.oracle_threshold > 1.0  # the oracle predicts nothing
    all_pos = exact_curve(np.linspace(0, 1, 50), np.ones(50, bool))
    assert all_pos.ap == 1.0 and math.isnan(all_pos.auroc)


def test_overlap_conventions():
    empty = np.zeros((4, 4), bool)
    one = empty.copy()
    one[1, 1] = True
    assert dice_from_counts(*overlap_counts(empty, empty)) == 1.0
    assert dice_from_counts(*overlap_counts(one, empty)) == 0.0
    assert dice_from_counts(*overlap_counts(empty, one)) == 0.0
    sens, prec = sensitivity_precision(*overlap_counts(empty, one))
    assert sens == 0.0 and math.isnan(prec)
    with pytest.raises(ValueError, match="shape"):
        overlap_counts(empty, np.zeros((4, 5)))


def test_exact_curve_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        exact_curve(np.array([0.1, np.nan]), np.array([0, 1]))
    with pytest.raises(ValueError, match="differ in size"):
        exact_curve(np.zeros(3), np.zeros(4))


def test_streaming_error_below_1e3_on_1e7_voxels():
    rng = np.random.default_rng(1)
    n = 10_000_000
    labels = rng.random(n) < 0.01
    scores = (rng.gamma(2.0, 0.05, size=n) + labels * rng.gamma(3.0, 0.08, size=n)).astype(np.float32)
    exact = exact_curve(scores, labels)
    pooled = PooledScores(exact_limit=1_000_000)  # forces the histogram path
    for chunk in range(10):
        sl = slice(chunk * n // 10, (chunk + 1) * n // 10)
        pooled.update(scores[sl], labels[sl])
    assert not pooled.exact
    approx = pooled.metrics()
    assert abs(approx.ap - exact.ap) <= 1e-3
    assert abs(approx.auroc - exact.auroc) <= 1e-3
    assert abs(approx.oracle_dice - exact.oracle_dice) <= 1e-3
    assert (approx.n_pos, approx.n_neg) == (exact.n_pos, exact.n_neg)


def test_histogram_range_grows_without_losing_counts():
    rng = np.random.default_rng(2)
    h = ScoreHistogram(num_bins=64)
    chunks = [rng.uniform(0, 1, 500), rng.uniform(-5, 0, 500), rng.uniform(1, 40, 500)]
    labels = [rng.random(500) < 0.2 for _ in chunks]
    for s, lab in zip(chunks, labels):
        h.update(s, lab)
    edges, pos, neg = h.counts()
    assert pos.sum() + neg.sum() == 1500 and pos.sum() == sum(lab.sum() for lab in labels)
    assert edges[-1] <= -5 and edges[0] + h.width > 40 and np.all(np.diff(edges) < 0)
    everything = np.concatenate(chunks)
    # every score lies in the bin its edge announces
    idx = ((everything - h.lo) / h.width).astype(int)
    assert np.all(h.lo + idx * h.width <= everything + 1e-9) and np.all(everything < h.lo + (idx + 1) * h.width + 1e-9)


def test_pooled_exact_path_and_calibration():
    rng = np.random.default_rng(3)
    healthy = rng.normal(size=10_000)
    pooled = PooledScores()
    pooled.update(healthy, np.zeros_like(healthy, bool))
    assert pooled.exact
    for fpr in (0.01, 0.05):
        t = pooled.threshold_at_fpr(fpr)
        assert np.mean(healthy >= t) <= fpr
        below = healthy[healthy < t].max()
        assert np.mean(healthy >= below) > fpr  # the lowest threshold that keeps the rate
    assert pooled.threshold_at_fpr(0.0) > healthy.max()


def test_slice_scores_and_labels():
    scores = np.zeros((2, 2, 3))
    scores[..., 0] = [[1, 2], [3, 4]]
    scores[..., 1] = [[5, 5], [5, 9]]
    brain = np.ones_like(scores, bool)
    brain[..., 2] = False
    np.testing.assert_allclose(slice_scores(scores, brain, "mean")[:2], [2.5, 6.0])
    np.testing.assert_allclose(slice_scores(scores, brain, "max")[:2], [4.0, 9.0])
    np.testing.assert_allclose(slice_scores(scores, brain, "topk", k=2)[:2], [3.5, 7.0])
    assert math.isnan(slice_scores(scores, brain)[2])
    lab = np.zeros_like(scores)
    lab[0, 0, 1] = 1
    assert slice_labels(lab).tolist() == [0, 1, 0]


def test_size_strata():
    assert size_strata([0, 1, 2, 3, 4, 5, 100]) == ["none", "small", "small", "medium", "medium", "large", "large"]
    assert size_strata([0, 0]) == ["none", "none"]


def test_median_filter_is_slice_wise_with_the_references_border():
    """AnoFPDM's median_pool: F.pad(mode="reflect") (reflect-101, numpy's "reflect"), then the median of every
    5 x 5 window."""
    rng = np.random.default_rng(4)
    vol = rng.normal(size=(9, 8, 3)).astype(np.float32)
    out = median_filter_slices(vol, 5)
    for z in range(3):
        padded = np.pad(vol[..., z], 2, mode="reflect")
        expected = np.array([[np.median(padded[i : i + 5, j : j + 5]) for j in range(8)] for i in range(9)])
        np.testing.assert_allclose(out[..., z], expected)
    with pytest.raises(ValueError, match="odd"):
        median_filter_slices(vol, 4)


def test_remove_small_components_connectivity():
    m = np.zeros((6, 6), bool)
    m[0, 0] = m[1, 1] = True  # diagonal pair: two 1-voxel blobs (4-conn) or one 2-voxel blob (8-conn)
    m[3:6, 3:6] = True  # 9 voxels
    assert remove_small_components(m, 2, connectivity=1, per_slice_axis=None).sum() == 9
    assert remove_small_components(m, 2, connectivity=2, per_slice_axis=None).sum() == 11
    vol = np.stack([m, np.roll(m, 1, 0)], axis=-1)
    out = remove_small_components(vol, 3, connectivity=1)
    assert out[..., 0].sum() == 9 and out[..., 1].sum() == 9
