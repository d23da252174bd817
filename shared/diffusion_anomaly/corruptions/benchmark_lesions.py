"""Synthetic lesions for the in-domain benchmark: known ground truth painted into healthy 3-D volumes.

Five families, each a 3-D irregular blob (an ellipsoid whose surface is perturbed by smoothed noise, edge
softened with sigma 1 voxel) placed fully inside the brain; ``m`` is the brain median of the host:

* ``hyperintense``: x + w (a m) g, a ~ U(0.4, 0.8), g a smooth texture in [0.85, 1.15];
* ``hypointense``: x (1 - w b), b ~ U(0.4, 0.7) (towards CSF, as a T1 infarct);
* ``deformation``: a radial mass effect, x(p - u(p)) with u = s (p - c) exp(-|p - c|^2 / (2 r^2)),
  s ~ U(0.4, 0.6) (no folding since s < 1; largest shift 0.61 s r); tissue moves, the regional mean barely
  changes; label = the ball |p - c| <= 2 r where the tissue moved (by more than 0.16 r outside it);
* ``foreign_texture``: a patch of another subject's brain, matched to the host's mean and standard deviation
  under the blob, pasted with weight w (mean-preserving);
* ``blur_noise``: (1 - w) x + w (blur_1.5(x) + n), n ~ N(0, (0.12 m)^2) smoothed slightly (mean-preserving).

The label of every other family is ``w >= 0.5`` inside the brain. All
draws come from one ``numpy.random.Generator``, so a seed gives the same volume on every machine.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FAMILIES = ("hyperintense", "hypointense", "deformation", "foreign_texture", "blur_noise")


def irregular_blob(shape: tuple[int, ...], centre, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Soft irregular blob in [0, 1]: ellipsoid (semi-axes radius x U(0.7, 1.3)) with a noisy surface."""
    axes = radius * rng.uniform(0.7, 1.3, size=3)
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    margin = int(np.ceil(axes.max() * 1.6)) + 3
    box = tuple(slice(max(0, c - margin), min(s, c + margin + 1)) for c, s in zip(centre, shape))
    grid = np.stack(np.meshgrid(*[np.arange(b.start, b.stop) - c for b, c in zip(box, centre)], indexing="ij"), -1)
    local = grid @ rotation
    distance = np.sqrt(((local / axes) ** 2).sum(-1))
    noise = ndimage.gaussian_filter(rng.standard_normal(distance.shape), max(1.0, radius / 3))
    noise /= np.abs(noise).max() + 1e-12
    inside = (distance + 0.35 * noise) < 1.0
    labelled, _ = ndimage.label(inside)
    core = labelled[tuple(int(c - b.start) for c, b in zip(centre, box))]
    if core > 0:
        inside = labelled == core
    out = np.zeros(shape, np.float32)
    out[box] = ndimage.gaussian_filter(inside.astype(np.float32), 1.0)
    return out


def place(brain: np.ndarray, radius: float, rng: np.random.Generator, avoid: np.ndarray | None = None):
    """A random centre at least ``radius`` inside the brain (and away from ``avoid``)."""
    depth = ndimage.distance_transform_edt(brain)
    ok = depth >= radius * 1.3
    if avoid is not None:
        ok &= ndimage.distance_transform_edt(~avoid) > 2 * radius
    candidates = np.argwhere(ok)
    if len(candidates) == 0:
        raise ValueError(f"no room for a lesion of radius {radius} in this brain")
    return tuple(int(v) for v in candidates[rng.integers(len(candidates))])


def paint_lesions(x: np.ndarray, brain: np.ndarray, family: str, rng: np.random.Generator, count: int = 3,
                  radii: tuple[float, float] = (5.0, 12.0), donor: np.ndarray | None = None,
                  donor_brain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` separate lesions of one family with radii ~ U(radii) voxels; returns (volume, label)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    out, label = x.astype(np.float32).copy(), np.zeros(x.shape, bool)
    for _ in range(count):
        radius = float(rng.uniform(*radii))
        out, one = _paint(out, brain, family, rng, donor, donor_brain, radius, label)
        label |= one
    return out, label


def _paint(x, brain, family, rng, donor, donor_brain, radius, taken):
    centre = place(brain, radius, rng, taken if taken.any() else None)
    w = irregular_blob(brain.shape, centre, radius, rng) * brain
    m = float(np.median(x[brain]))
    if family == "hyperintense":
        texture = 1 + 0.15 * _unit_noise(x.shape, rng, 2.0)
        out = x + w * rng.uniform(0.4, 0.8) * m * texture
    elif family == "hypointense":
        out = x * (1 - w * rng.uniform(0.4, 0.7))
    elif family == "deformation":
        out, moved = _mass_effect(x, centre, radius, rng.uniform(0.4, 0.6))
        return np.where(brain, out, x).astype(np.float32), moved & brain
    elif family == "foreign_texture":
        if donor is None or donor_brain is None:
            raise ValueError("foreign_texture needs a donor volume and its brain mask")
        patch = _donor_patch(donor, donor_brain, x.shape, centre, radius, rng)
        under = w > 0.5
        host_mean, host_std = float(x[under].mean()), float(x[under].std()) + 1e-6
        patch_values = patch[under]
        patch = (patch - patch_values.mean()) / (patch_values.std() + 1e-6) * host_std + host_mean
        out = (1 - w) * x + w * np.clip(patch, 0, None)
    else:  # blur_noise
        noise = ndimage.gaussian_filter(rng.standard_normal(x.shape), 0.7)
        noise *= 0.12 * m / (noise.std() + 1e-12)
        out = (1 - w) * x + w * np.clip(ndimage.gaussian_filter(x, 1.5) + noise, 0, None)
    return np.where(brain, out, x).astype(np.float32), (w >= 0.5) & brain


def _unit_noise(shape, rng, sigma):
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return n / (np.abs(n).max() + 1e-12)


def _mass_effect(x, centre, radius, strength):
    """Expand the tissue around ``centre``: x(p - u(p)), u = strength (p - c) exp(-|p - c|^2 / (2 r^2)), in a box
    of 4 r around it (the shift is below 0.01 voxel beyond). Returns (volume, moved region |p - c| <= 2 r)."""
    reach = int(np.ceil(4 * radius))
    box = tuple(slice(max(0, c - reach), min(s, c + reach + 1)) for c, s in zip(centre, x.shape))
    grid = np.stack(np.meshgrid(*[np.arange(b.start, b.stop, dtype=np.float32) for b in box], indexing="ij"))
    offset = grid - np.asarray(centre, np.float32).reshape(3, 1, 1, 1)
    dist2 = (offset**2).sum(0)
    u = strength * offset * np.exp(-0.5 * dist2 / radius**2)
    out = x.copy()
    out[box] = ndimage.map_coordinates(x, grid - u, order=1, mode="nearest")
    moved = np.zeros(x.shape, bool)
    moved[box] = dist2 <= (2 * radius) ** 2
    return out, moved


def _donor_patch(donor, donor_brain, shape, centre, radius, rng):
    """Host-sized array holding, around ``centre``, the donor's tissue around a random deep point of its brain."""
    source = place(donor_brain, radius, rng)
    reach = int(np.ceil(radius * 2.2)) + 3
    out = np.zeros(shape, np.float32)
    lo = [max(-reach, -c, -s) for c, s in zip(centre, source)]
    hi = [min(reach, n - 1 - c, m - 1 - s) for c, s, n, m in zip(centre, source, shape, donor.shape)]
    host = tuple(slice(c + a, c + b + 1) for c, a, b in zip(centre, lo, hi))
    src = tuple(slice(s + a, s + b + 1) for s, a, b in zip(source, lo, hi))
    out[host] = donor[src]
    return out
