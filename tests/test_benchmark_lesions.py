"""In-domain benchmark lesions: determinism, labels inside the brain, what each family changes."""

import numpy as np
import pytest

from diffusion_anomaly.corruptions.benchmark_lesions import FAMILIES, irregular_blob, paint_lesions


def _head(seed=0, size=48):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices((size, size, size)) - size / 2
    brain = (zz**2 / 1.1 + yy**2 + xx**2 / 0.9) < (size * 0.42) ** 2
    tissue = 100 + 30 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + rng.normal(0, 4, brain.shape)  # structure + noise
    return (tissue * brain).astype(np.float32), brain


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_lesions_and_labels_inside_the_brain(family):
    x, brain = _head()
    donor, donor_brain = _head(seed=5, size=44)
    a, la = paint_lesions(x, brain, family, np.random.default_rng(3), count=2, radii=(4, 6), donor=donor,
                          donor_brain=donor_brain)
    b, lb = paint_lesions(x, brain, family, np.random.default_rng(3), count=2, radii=(4, 6), donor=donor,
                          donor_brain=donor_brain)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert la.any() and not (la & ~brain).any()
    assert np.array_equal(a[~brain], x[~brain])  # nothing painted outside the brain
    change = np.abs(a - x)
    assert (change[la] > 1e-3).mean() > 0.5  # the label marks what changed...
    large = change > 0.6 * change.max()  # the soft edge (w < 0.5) changes less
    assert la[large].mean() > 0.9  # ...and holds nearly all of the large changes


def test_intensity_families_change_the_mean_and_the_others_barely():
    x, brain = _head(1)
    donor, donor_brain = _head(seed=6, size=44)
    shifts = {}
    for family in FAMILIES:
        out, label = paint_lesions(x, brain, family, np.random.default_rng(11), count=1, radii=(6, 6),
                                   donor=donor, donor_brain=donor_brain)
        shifts[family] = (out[label].mean() - x[label].mean()) / np.median(x[brain])
    assert shifts["hyperintense"] > 0.3 and shifts["hypointense"] < -0.25
    for family in ("deformation", "foreign_texture", "blur_noise"):
        assert abs(shifts[family]) < 0.08, (family, shifts[family])


def test_blob_is_soft_and_connected():
    from scipy import ndimage

    w = irregular_blob((40, 40, 40), (20, 20, 20), 7.0, np.random.default_rng(2))
    assert 0.0 <= w.min() and w.max() <= 1.0 and w[20, 20, 20] > 0.9
    assert ndimage.label(w >= 0.5)[1] == 1
    assert 0.3 < ((w >= 0.5).sum() / (4 / 3 * np.pi * 7**3)) < 2.5


def test_foreign_texture_needs_a_donor():
    x, brain = _head()
    with pytest.raises(ValueError, match="donor"):
        paint_lesions(x, brain, "foreign_texture", np.random.default_rng(0), count=1, radii=(4, 5))
    with pytest.raises(ValueError, match="family"):
        paint_lesions(x, brain, "sparkle", np.random.default_rng(0))
