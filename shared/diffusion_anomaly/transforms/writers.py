"""Per-case outputs written atomically: NIfTI maps on the input grid and PNG overlays for people."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..engines.case_runner import case_name
from ..io import save_nifti, save_panels_png


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
        self.mask_keys = set([mask_keys] if isinstance(mask_keys, str) else mask_keys)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        folder = self.output_dir / case_name(d)
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
    """PNG of the axial slice with the highest mean anomaly score inside the brain.

    Panels: input, restoration (if present), anomaly map; contours: ground-truth label and predicted mask
    (when present). Written as ``<output_dir>/<case>/overlay.png``.
    """

    def __init__(self, output_dir: str | os.PathLike, image_key: str = "image", map_key: str = "pred",
                 restoration_key: str = "restoration", label_key: str = "label", mask_key: str = "mask",
                 brain_key: str = "brain_mask"):
        super().__init__([image_key], allow_missing_keys=False)
        self.output_dir = Path(output_dir)
        self.image_key, self.map_key, self.restoration_key = image_key, map_key, restoration_key
        self.label_key, self.mask_key, self.brain_key = label_key, mask_key, brain_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        image, score = self._array(d, self.image_key), self._array(d, self.map_key)
        brain = self._array(d, self.brain_key) if self.brain_key in d else None
        brain = brain > 0 if brain is not None and brain.shape == score.shape else np.ones(score.shape, bool)
        z = best_axial_slice(score, brain)
        panels = [("input", image[..., z])]
        if self.restoration_key in d:
            restoration = self._array(d, self.restoration_key)
            panels.append(("restoration", restoration[..., z]))
        panels.append(("anomaly map", score[..., z]))
        contours = []
        for key, name in ((self.label_key, "ground truth"), (self.mask_key, "predicted mask")):
            if key in d and self._array(d, key).shape == score.shape:
                contours.append((name, self._array(d, key)[..., z] > 0))
        cmaps = ["gray"] * (len(panels) - 1) + ["inferno"]
        title = f"{case_name(d)}: axial slice {z}" if np.ndim(d[self.map_key]) == 4 else case_name(d)
        save_panels_png(self.output_dir / case_name(d) / "overlay.png", panels, contours, cmaps, title=title)
        return d

    @staticmethod
    def _array(d: Mapping, key: str) -> np.ndarray:
        """First channel of a channel-first item; a 2-D frame gets a trailing axis (a one-slice volume)."""
        x = d[key]
        arr = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x))[0]
        return arr[..., None] if arr.ndim == 2 else arr


def best_axial_slice(score: np.ndarray, brain: np.ndarray) -> int:
    """Axial index (last axis) with the highest mean score inside the brain."""
    brain_voxels = brain.reshape(-1, brain.shape[-1]).sum(0)
    totals = (score * brain).reshape(-1, score.shape[-1]).sum(0)
    means = np.where(brain_voxels > 0, totals / np.maximum(brain_voxels, 1), -np.inf)
    return int(np.argmax(means))


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
            atomic_write_json(self.output_dir / case_name(d) / f"{key}.json", {key: value})
        return d
