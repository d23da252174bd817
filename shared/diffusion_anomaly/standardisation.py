"""Intensity standardisation shared by every bundle: a healthy-tissue reference of the scan is mapped to 1.

MRI intensities have no units: scanners, sequences, bias fields and contrast agent shift and stretch them. The
published methods rescale by percentiles (DISYRE: p0-p98 of the volume; AnoFPDM: p99 of the brain; Synomaly:
min-max per slice), which a few bright voxels (enhancing tumour, vessels, dura after contrast) can move a lot.
Here the reference is a statistic of the bulk of the brain, which a lesion of a few percent of the brain
barely moves:

* ``"median"``: the median of the foreground voxels;
* ``"mode"``: the peak of the foreground histogram (the dominant tissue: white matter on T1), found on a
  smoothed 128-bin histogram between the 1st and 99.5th percentiles.

``x / reference`` puts that tissue at 1; each method then maps ``[0, upper]`` (in reference units) onto its own
range (``to_range``).

The median fixes one point of the histogram; a subject whose grey/white contrast differs (a noisy or differently
weighted T1: white matter at 1.6 brain medians where the training scans have it at 1.2-1.5) still lands off the
training histogram, and every restoration method "repairs" its white matter. The piecewise-linear histogram
standardisation of Nyul & Udupa (1999, IEEE TMI 18:1072; Nyul, Udupa & Zhang 2000, IEEE TMI 19:143) fixes
several: ``landmark_map`` sends the foreground percentiles ``LANDMARK_PERCENTILES`` of a scan (in its median
units) onto standard landmarks learned from the training split (``learn_landmarks``: their mean over the
training volumes). The top landmark is the 90th percentile, and above it the map has slope 1, so a lesion
brighter than all healthy tissue keeps its contrast (a landmark at p99, as in the original method, would squeeze
it into the healthy range). Which reference the bundles use is chosen on validation data by
``python -m diffusion_anomaly select-standardisation``; the model cards say which and why.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import InputDataError

REFERENCES = ("median", "mode")
LANDMARK_PERCENTILES = (2.0, 10.0, 25.0, 50.0, 75.0, 90.0)


def _positive_values(values: np.ndarray | torch.Tensor, purpose: str) -> np.ndarray:
    """The finite, positive ``values`` as a flat float64 array; a ValueError naming ``purpose`` when none are."""
    v = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        raise ValueError(f"no positive foreground voxels to take {purpose} from")
    return v


def tissue_reference(values: np.ndarray | torch.Tensor, reference: str = "median") -> float:
    """The reference intensity of foreground ``values`` (a 1-D array of positive tissue intensities)."""
    v = _positive_values(values, "an intensity reference")
    if reference == "median":
        return float(np.median(v))
    if reference == "mode":
        lo, hi = np.percentile(v, [1.0, 99.5])
        if hi <= lo:
            return float(np.median(v))
        counts, edges = np.histogram(v, bins=128, range=(lo, hi))
        kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)  # sigma 2 bins: one peak per tissue class
        smooth = np.convolve(counts, kernel / kernel.sum(), mode="same")
        peak = int(np.argmax(smooth))
        return float((edges[peak] + edges[peak + 1]) / 2)
    raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")


def to_range(x: torch.Tensor, reference: float, upper: float, b_min: float, b_max: float,
             clip: bool = True) -> torch.Tensor:
    """``[0, upper * reference]`` -> ``[b_min, b_max]`` linearly (clipped if ``clip``); negatives count as 0."""
    if reference <= 0 or upper <= 0:
        raise ValueError(f"need a positive reference and upper, got reference={reference}, upper={upper}")
    y = x.clamp_min(0) / (reference * upper)
    if clip:
        y = y.clamp(0, 1)
    return b_min + (b_max - b_min) * y


def percentile_scale(
    x: torch.Tensor,
    lower: float | None,
    upper: float,
    b_min: float = 0.0,
    b_max: float = 1.0,
    clip: bool = True,
    selection: torch.Tensor | None = None,
    name: str = "image",
    floor: float | None = None,
) -> torch.Tensor:
    """Linear map of percentile ``lower`` (or 0 when None) to ``b_min`` and ``upper`` to ``b_max``.

    Percentiles are taken over ``x[selection]`` (all voxels when None), after raising values below ``floor``
    to it (if given); ``name`` labels errors.
    """
    x = (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).float()
    if floor is not None:
        x = x.clamp_min(floor)
    values = x[selection] if selection is not None else x.flatten()
    if values.numel() == 0:
        raise InputDataError(name, "no foreground voxels to compute intensity percentiles from")
    qs = [upper / 100.0] if lower is None else [lower / 100.0, upper / 100.0]
    ref = _quantiles(values, qs)
    lo, hi = (0.0, ref[0]) if lower is None else (ref[0], ref[1])
    if hi <= lo:
        raise InputDataError(name, f"intensity percentiles are degenerate (p{upper} = {hi} <= {lo})")
    y = (x - lo) / (hi - lo) * (b_max - b_min) + b_min
    return y.clamp(b_min, b_max) if clip else y


def _quantiles(values: torch.Tensor, qs: list[float]) -> list[float]:
    # numpy: torch.quantile refuses inputs over 16M elements; linear interpolation in both.
    return [float(v) for v in np.quantile(values.detach().cpu().numpy().astype(np.float64), qs)]


def minmax_per_slice(img: torch.Tensor, axis: int | None, b_min: float, b_max: float) -> torch.Tensor:
    """Min-max over all spatial dims except ``axis`` (None: over all spatial dims), per channel."""
    spatial = list(range(1, img.ndim))
    if axis is not None:
        spatial.remove(axis % img.ndim)
    lo = img.amin(dim=spatial, keepdim=True)
    hi = img.amax(dim=spatial, keepdim=True)
    span = hi - lo
    scaled = (img - lo) / torch.where(span > 0, span, torch.ones_like(span))
    scaled = torch.where(span > 0, scaled, torch.zeros_like(scaled))
    return scaled * (b_max - b_min) + b_min


def scan_landmarks(values: np.ndarray | torch.Tensor,
                   percentiles: tuple[float, ...] = LANDMARK_PERCENTILES) -> np.ndarray:
    """The ``percentiles`` of positive foreground ``values`` in units of their median (the p50 landmark is 1)."""
    v = _positive_values(values, "intensity landmarks")
    return np.percentile(v, percentiles) / np.median(v)


def learn_landmarks(foregrounds, percentiles: tuple[float, ...] = LANDMARK_PERCENTILES) -> list[float]:
    """Standard landmarks: the mean over training volumes of :func:`scan_landmarks` (one array of foreground
    voxels per volume), rounded to 4 decimals for the bundle file."""
    marks = [scan_landmarks(v, percentiles) for v in foregrounds]
    if not marks:
        raise ValueError("no training volumes to learn intensity landmarks from")
    return [round(float(m), 4) for m in np.mean(marks, axis=0)]


def check_landmarks(landmarks, percentiles: tuple[float, ...] = LANDMARK_PERCENTILES) -> np.ndarray:
    """Standard landmarks as an array: one per percentile, positive and strictly increasing."""
    std = np.asarray(landmarks, dtype=np.float64).ravel()
    if std.size != len(percentiles) or not np.all(np.isfinite(std)) or std[0] <= 0 or np.any(np.diff(std) <= 0):
        raise ValueError(f"setting 'intensity_landmarks' must be {len(percentiles)} positive, strictly increasing "
                         f"values (the standard intensities of foreground percentiles {list(percentiles)}), "
                         f"got {list(std)}")
    return std


def landmark_map(x: torch.Tensor, scan: np.ndarray, standard: np.ndarray) -> torch.Tensor:
    """Piecewise-linear map of ``x`` (in median units, >= 0) through (0, 0) and the points (``scan[i]``,
    ``standard[i]``); above the last landmark, slope 1 (lesion contrast above healthy tissue is kept)."""
    if np.any(np.diff(scan) <= 0) or scan[0] <= 0:
        raise ValueError("the scan's intensity landmarks are degenerate (not strictly increasing): "
                         f"{np.round(scan, 4)}")
    u = x.clamp_min(0).detach().cpu().numpy().astype(np.float64)
    y = np.interp(u, np.concatenate([[0.0], scan]), np.concatenate([[0.0], standard]))
    y = np.where(u > scan[-1], standard[-1] + (u - scan[-1]), y)
    return torch.as_tensor(y, dtype=x.dtype, device=x.device)


def histogram_standardise(x: torch.Tensor, foreground: np.ndarray | torch.Tensor, standard: np.ndarray,
                          percentiles: tuple[float, ...] = LANDMARK_PERCENTILES) -> torch.Tensor:
    """``x`` in units of the median of its ``foreground`` intensities, then :func:`landmark_map` from the
    foreground's own landmarks onto ``standard``: the histogram standardisation, before any range convention."""
    median = tissue_reference(foreground, "median")
    return landmark_map(x / median, scan_landmarks(foreground, percentiles), standard)
