"""Post-processing shared by all methods: slice-wise median filter, small connected-component removal."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def median_filter_slices(score_map, size: int = 5, axis: int = -1) -> np.ndarray:
    """Median filter of ``size`` x ``size`` in every 2-D slice along ``axis``, as AnoFPDM's ``median_pool``: its
    torch "reflect" padding is reflect-101 (dcb|abcd|cba), which is scipy's "mirror" (scipy's "reflect" repeats the
    edge pixel)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median filter size must be a positive odd number, got {size}")
    arr = np.asarray(score_map, dtype=np.float32)
    footprint = [size] * arr.ndim
    if arr.ndim == 3:
        footprint[axis % 3] = 1
    return ndimage.median_filter(arr, size=footprint, mode="mirror")


def remove_small_components(mask, min_size: int, connectivity: int = 1, per_slice_axis: int | None = -1) -> np.ndarray:
    """Drop connected components with fewer than ``min_size`` voxels.

    Args:
        mask: binary array (2-D or 3-D).
        min_size: components strictly smaller than this are removed (AnoFPDM removes <= 40: use 41).
        connectivity: 1 = faces only (4-neighbours in 2-D), ``mask.ndim`` = full (8-neighbours in 2-D).
        per_slice_axis: label each 2-D slice along this axis separately (the papers work on slices); None
            labels the whole array at once.
    """
    m = np.asarray(mask).astype(bool)
    if per_slice_axis is not None and m.ndim == 3:
        moved = np.moveaxis(m, per_slice_axis, 0)
        out = np.stack([remove_small_components(s, min_size, min(connectivity, 2), None) for s in moved])
        return np.moveaxis(out, 0, per_slice_axis)
    structure = ndimage.generate_binary_structure(m.ndim, connectivity)
    labels, n = ndimage.label(m, structure=structure)
    if n == 0:
        return m
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]
