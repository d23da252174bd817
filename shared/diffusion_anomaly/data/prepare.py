"""Turn scanned cases into a MONAI datalist: validate each case, derive slice labels, split by subject.

Slice labels are per axial slice of the RAS-oriented volume (the bundles' ``Orientationd("RAS")`` makes the
last axis axial): 1 where the anomaly mask has any voxel, else 0. Healthy-only data sets (IXI, CamCAN) get
all-zero slice labels. A case that fails validation is reported and left out; the rest go on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, cast

import nibabel as nib
import numpy as np
import torch

from ..errors import InputDataError
from ..io.nifti import save_nifti
from ..standardisation import percentile_scale
from .checks import check_finite_nonempty, load_volume
from .datalist import split_subjects
from .geometry import to_ras_spacing

HEALTHY_LAYOUTS = {"ixi", "camcan"}
# Intensity presets, the same as the bundles' ScalePercentiled settings.
INTENSITY_PRESETS = {
    "none": None,
    "disyre": {"floor": 0.0, "lower": 0.0, "upper": 98.0, "clip": True},  # negatives to 0, [p0, p98] -> [0, 1]
    "anofpdm": {"lower": None, "upper": 99.0, "clip": False, "nonzero": True},  # x / p99 of non-zero voxels
}


def _header(path: str) -> nib.spatialimages.SpatialImage:
    if not os.path.isfile(path):
        raise InputDataError(path, "file does not exist")
    try:
        img = cast("nib.spatialimages.SpatialImage", nib.load(path))  # images with a grid (NIfTI, Analyze, MGH)
        img.header.get_data_shape()
    except Exception as err:
        raise InputDataError(path, f"cannot be read as an image ({type(err).__name__}: {err})") from err
    shape = tuple(s for s in img.shape if s != 1) if len(img.shape) > 3 else img.shape
    if len(shape) != 3:
        raise InputDataError(path, f"expected a 3-D image, found shape {img.shape}")
    return img


def anomaly_mask(path: str, values: Sequence[int] | None) -> np.ndarray:
    """Boolean anomaly mask in RAS-canonical voxel order (no resampling)."""
    img = _header(path)
    canonical = nib.as_closest_canonical(img)
    data = np.asarray(canonical.dataobj)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    return np.isin(np.rint(data), list(values)) if values else data > 0


def inspect_case(case: dict, healthy: bool = False) -> dict:
    """Check every file of a case (readable, 3-D, one grid) and add ``slice_labels``; raises InputDataError."""
    images = [_header(p) for p in case["image"]]
    shape = images[0].shape[:3]
    for p, img in zip(case["image"][1:], images[1:]):
        if img.shape[:3] != shape:
            raise InputDataError(p, f"shape {img.shape[:3]} differs from {case['image'][0]} {shape}")
    out = dict(case)
    if "label" in case:
        label_img = _header(case["label"])
        if label_img.shape[:3] != shape:
            raise InputDataError(case["label"], f"spatial shape {label_img.shape[:3]} differs from its image "
                                 f"{case['image'][0]} {shape}")
        mask = anomaly_mask(case["label"], case.get("label_values"))
        out["slice_labels"] = np.asarray(mask.any(axis=(0, 1)), dtype=int).tolist()
    elif healthy:
        n_axial = nib.as_closest_canonical(images[0]).shape[2]
        out["slice_labels"] = [0] * n_axial
    return out


def build_datalist(
    cases: list[dict],
    problems: list[tuple[str, str]],
    layout: str,
    fractions: Sequence[float] = (0.75, 0.05, 0.2),
    seed: int = 0,
) -> tuple[dict, dict]:
    """Validate cases, split subjects (seeded) and return ``(datalist, report)``."""
    good, bad = [], list(problems)
    for case in cases:
        try:
            good.append(inspect_case(case, healthy=layout in HEALTHY_LAYOUTS))
        except InputDataError as err:
            bad.append((err.source, err.problem))
    splits = split_subjects([c["subject"] for c in good], fractions, seed) if good else {}
    where = {s: name for name, subjects in splits.items() for s in subjects}
    datalist = {name: [c for c in good if where[c["subject"]] == name] for name in ("training", "validation", "test")}
    report = {
        "layout": layout,
        "seed": seed,
        "fractions": list(fractions),
        "cases": len(good),
        "subjects": {k: len(v) for k, v in splits.items()},
        "skipped": [{"path": p, "reason": r} for p, r in bad],
    }
    return datalist, report


def preprocess_case(case: dict, out_dir: Path, intensity: str = "none", spacing: float = 1.0) -> dict:
    """Write the case reoriented to RAS at ``spacing`` mm, intensities normalised by ``intensity``.

    Modalities are stacked in a 4-D NIfTI (X, Y, Z, C) that MONAI loads channel-first. Labels are written as
    binary anomaly masks (and regions as binary masks). Returns the case with paths to the new files.
    """
    if intensity not in INTENSITY_PRESETS:
        raise ValueError(f"intensity must be one of {sorted(INTENSITY_PRESETS)}, got {intensity!r}")
    channels: list[np.ndarray] = []
    affine = np.eye(4)  # replaced by the images' own grid (one grid per case: validate_case checks the shapes)
    for path in case["image"]:
        arr, aff = to_ras_spacing(*load_volume(path), spacing=spacing, mode="bilinear")
        check_finite_nonempty(arr, path)
        channels.append(_normalise(arr, INTENSITY_PRESETS[intensity], path))
        affine = aff
    folder = out_dir / case["case"]
    out = dict(case)
    out["image"] = str(save_nifti(np.stack(channels, -1) if len(channels) > 1 else channels[0], affine,
                                  folder / "image.nii.gz", np.float32))
    for key, values_key in (("label", "label_values"), ("region", "region_values")):
        if key in case:
            arr, aff = to_ras_spacing(*load_volume(case[key]), spacing=spacing, mode="nearest")
            values = case.get(values_key)
            mask = np.isin(np.rint(arr), values) if values else arr > 0
            out[key] = str(save_nifti(mask.astype(np.uint8), aff, folder / f"{key}.nii.gz"))
            out.pop(values_key, None)
            if key == "label":
                out["slice_labels"] = np.asarray(mask.any(axis=(0, 1)), dtype=int).tolist()
    return out


def _normalise(arr: np.ndarray, preset: dict | None, source: str) -> np.ndarray:
    if preset is None:
        return arr
    kwargs = {k: v for k, v in preset.items() if k != "nonzero"}
    selection = torch.as_tensor(arr != 0) if preset.get("nonzero") else None
    return percentile_scale(torch.as_tensor(arr), selection=selection, name=source, **kwargs).numpy()
