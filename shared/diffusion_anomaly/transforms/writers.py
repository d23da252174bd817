"""Per-case outputs written atomically: NIfTI maps on the input grid and PNG overlays for people."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import ensure_tuple

from ..io import save_nifti
from ..io.overlay import save_panel_rows_png
from ..naming import case_name, safe_name
from .labelmap import REQUEST_ID


def case_folder(output_dir: str | os.PathLike, item: Mapping) -> Path:
    """``<output_dir>/<case>``, or ``<output_dir>/<case>/<request_id>`` for a server request (see ``labelmap``)."""
    folder = Path(output_dir) / case_name(item)
    request = item.get(REQUEST_ID)
    return folder / safe_name(str(request)) if request else folder


def spatial_array(x) -> np.ndarray:
    """A channel-first volume (or 3-D array) as a numpy array without its single channel dimension."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return arr[0] if arr.ndim == 4 else arr


class SaveMapd(MapTransform):
    """Write each key as ``<output_dir>/<case>/<key>.nii.gz`` with the item's affine (float32, or uint8 for masks).

    Put it after MONAI ``Invertd`` so the maps lie on the input grid with the input's affine.
    """

    def __init__(self, keys: KeysCollection, output_dir: str | os.PathLike, mask_keys: KeysCollection = ("mask",),
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.mask_keys = set(ensure_tuple(mask_keys))

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        folder = case_folder(self.output_dir, d)
        for key in self.key_iterator(d):
            affine = getattr(d[key], "affine", None)
            affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
            x = d[key]  # channel-first: (C, H, W[, D])
            arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)  # channels last, as NIfTI expects
            dtype = np.uint8 if key in self.mask_keys else np.float32
            save_nifti(arr, affine, folder / f"{key}.nii.gz", dtype)
        return d


class SaveOverlayd(MapTransform):
    """PNG for people: the slice where the map is hottest and, when a label is given, the largest-lesion slice.

    Row 1 is the axial slice holding most of the volume's top ``top_fraction`` scores inside the brain (slices
    whose brain area is below ``min_brain_fraction`` of the largest are skipped: a few hot voxels at the skull
    base or the vertex are not what a reader looks for). Row 2, when ``label`` is present and lesion voxels lie
    on another slice, is the slice with the largest lesion area. Panels: input, restoration (if present),
    anomaly map, all maps on one colour scale (0 to the brain's 99.9th percentile) with a colour bar. Contours:
    the ground truth, and the map at ``threshold`` when one is set (the bundle's calibrated ``label_threshold``),
    else the method's own mask when present. Written as ``<output_dir>/<case>/overlay.png``, 100 dpi; every
    bundle uses it, so overlays look the same.
    """

    def __init__(self, output_dir: str | os.PathLike, image_key: str = "image", map_key: str = "pred",
                 restoration_key: str = "restoration", label_key: str = "label", mask_key: str = "mask",
                 foreground_key: str = "foreground_mask", threshold: float | None = None, top_fraction: float = 0.01,
                 min_brain_fraction: float = 0.25):
        super().__init__([image_key], allow_missing_keys=False)
        self.output_dir = Path(output_dir)
        self.image_key, self.map_key, self.restoration_key = image_key, map_key, restoration_key
        self.label_key, self.mask_key, self.foreground_key = label_key, mask_key, foreground_key
        self.threshold = None if threshold is None else float(threshold)
        self.top_fraction, self.min_brain_fraction = top_fraction, min_brain_fraction

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        image, score = self._array(d, self.image_key), self._array(d, self.map_key)
        brain = self._array(d, self.foreground_key) if self.foreground_key in d else None
        brain = brain > 0 if brain is not None and brain.shape == score.shape else np.ones(score.shape, bool)
        label = self._array(d, self.label_key) > 0 if self._has(d, self.label_key, score.shape) else None
        rows = [(hottest_axial_slice(score, brain, self.top_fraction, self.min_brain_fraction), "highest scores")]
        if label is not None and label.any():
            z = largest_lesion_slice(label)
            if z != rows[0][0]:
                rows.append((z, "largest lesion"))
        if self.threshold is not None:
            outline = (f"map >= {self.threshold:g}", score >= self.threshold)
        elif self._has(d, self.mask_key, score.shape):
            outline = ("method mask", self._array(d, self.mask_key) > 0)
        else:
            outline = None
        restoration = self._array(d, self.restoration_key) if self.restoration_key in d else None
        inside = score[brain] if brain.any() else score.ravel()
        vmax = float(np.percentile(inside, 99.9)) if inside.size else 1.0
        vmin = min(0.0, float(inside.min())) if inside.size else 0.0
        grid = []
        for z, why in rows:
            panels = [("input", image[..., z])]
            if restoration is not None and restoration.shape == score.shape:
                panels.append(("restoration", restoration[..., z]))
            panels.append(("anomaly map", score[..., z]))
            contours = [("ground truth", label[..., z])] if label is not None else []
            if outline is not None:
                contours.append((outline[0], outline[1][..., z]))
            grid.append((f"axial slice {z} ({why})" if score.shape[-1] > 1 else None, panels, contours))
        cmaps = ["gray"] * (len(grid[0][1]) - 1) + ["inferno"]
        vranges = [None] * (len(grid[0][1]) - 1) + [(vmin, vmax if vmax > vmin else vmin + 1e-6)]
        save_panel_rows_png(case_folder(self.output_dir, d) / "overlay.png", grid, cmaps, vranges,
                            colorbar="anomaly score", title=case_name(d))
        return d

    @staticmethod
    def _has(d: Mapping, key: str, shape: tuple) -> bool:
        return key in d and SaveOverlayd._array(d, key).shape == shape

    @staticmethod
    def _array(d: Mapping, key: str) -> np.ndarray:
        """First channel of a channel-first item; a 2-D frame gets a trailing axis (a one-slice volume)."""
        x = d[key]
        arr = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x))[0]
        return arr[..., None] if arr.ndim == 2 else arr


def hottest_axial_slice(score: np.ndarray, brain: np.ndarray, top_fraction: float = 0.01,
                        min_brain_fraction: float = 0.25) -> int:
    """Axial index (last axis) holding most of the top ``top_fraction`` scores inside the brain, among slices
    whose brain area is at least ``min_brain_fraction`` of the largest; ties go to the higher mean score."""
    area = brain.reshape(-1, brain.shape[-1]).sum(0)
    eligible = area >= min_brain_fraction * area.max() if area.max() > 0 else np.ones_like(area, bool)
    inside = score[brain] if brain.any() else score.ravel()
    cut = np.quantile(inside, 1.0 - top_fraction) if inside.size else np.inf
    above = score > cut if (score > cut).any() else score >= cut  # a map that is mostly 0 has its cut at 0
    hot = (above & brain).reshape(-1, score.shape[-1]).sum(0).astype(np.float64)
    means = (score * brain).reshape(-1, score.shape[-1]).sum(0) / np.maximum(area, 1)
    key = np.where(eligible, hot + means / (np.abs(means).max() + 1e-12) * 0.5, -np.inf)  # ties: mean score
    return int(np.argmax(key))


def largest_lesion_slice(label: np.ndarray) -> int:
    """Axial index (last axis) with the most lesion voxels."""
    return int(np.argmax(label.reshape(-1, label.shape[-1]).sum(0)))


class SaveJsond(MapTransform):
    """Write non-image outputs (e.g. Synomaly's stages per slice) as ``<output_dir>/<case>/<key>.json``."""

    def __init__(self, keys: KeysCollection, output_dir: str | os.PathLike, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)

    def __call__(self, data: Mapping) -> dict:
        from ..io import atomic_write_json

        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            value = value.tolist() if hasattr(value, "tolist") else value
            atomic_write_json(case_folder(self.output_dir, d) / f"{key}.json", {key: value})
        return d
