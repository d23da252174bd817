"""One geometry for every volume: RAS orientation, isotropic spacing, crop to a mask's bounding box."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Spacing


def to_ras_spacing(
    array: np.ndarray, affine: np.ndarray, spacing: float = 1.0, mode: str = "bilinear"
) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a 3-D array to RAS and resample it to isotropic ``spacing`` mm with MONAI.

    ``mode`` is "bilinear" for intensities and "nearest" for masks and labels.
    """
    img = MetaTensor(torch.as_tensor(np.asarray(array, dtype=np.float32))[None], affine=torch.as_tensor(affine))
    oriented = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(img)
    resampled = Spacing(pixdim=(spacing,) * 3, mode=mode, padding_mode="zeros")(oriented)
    return resampled[0].numpy(), np.asarray(resampled.affine, dtype=np.float64)  # type: ignore[attr-defined]


def mask_bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """Slices of the smallest box holding every non-zero voxel of ``mask``, grown by ``margin`` (clipped): MONAI's
    ``generate_spatial_bounding_box``, as slices, refusing an empty mask (MONAI returns an empty box)."""
    from monai.transforms.utils import generate_spatial_bounding_box

    start, end = generate_spatial_bounding_box(np.asarray(mask)[None], select_fn=lambda v: v != 0, margin=margin,
                                               allow_smaller=True)  # clipped to the image
    if any(e <= s for s, e in zip(start, end)):
        raise ValueError("mask is empty, no bounding box")
    return tuple(slice(int(s), int(e)) for s, e in zip(start, end))


def crop_affine(affine: np.ndarray, box: Sequence[slice]) -> np.ndarray:
    """Affine of a cropped array: the world position of voxel (0,0,0) moves to the box start."""
    out = np.array(affine, dtype=np.float64)
    start = np.array([s.start for s in box] + [1.0])
    out[:, 3] = affine @ start
    return out
