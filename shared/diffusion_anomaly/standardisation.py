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
range (``to_range``). Which reference the bundles use is chosen on validation data by
``scripts/select_standardisation.py``; the model cards say which and why.
"""

from __future__ import annotations

import numpy as np
import torch

REFERENCES = ("median", "mode")


def tissue_reference(values: np.ndarray | torch.Tensor, reference: str = "median") -> float:
    """The reference intensity of foreground ``values`` (a 1-D array of positive tissue intensities)."""
    v = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        raise ValueError("no positive foreground voxels to take an intensity reference from")
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
