"""Intensity normalisations used by the three methods (each a config switch in the bundles)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ..standardisation import minmax_per_slice, percentile_scale
from .checks import source_name


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def like(out: torch.Tensor, ref):
    """``out`` with the meta data and transform history of ``ref`` (so MONAI can still invert the pipeline)."""
    if isinstance(ref, MetaTensor):
        return MetaTensor(out, meta=dict(ref.meta), applied_operations=list(ref.applied_operations))
    return out


class ScalePercentiled(MapTransform):
    """Map intensity percentile ``lower`` to ``b_min`` and ``upper`` to ``b_max``, per channel.

    DISYRE: ``floor=0, lower=0, upper=98`` over the whole volume, background included (``foreground=None``).
    AnoFPDM: ``lower=None`` (keep 0 at 0), ``upper=99`` over the non-zero voxels (``foreground="nonzero"``).
    ``foreground`` may also name a mask key; percentiles are then taken inside that mask only.

    Args:
        keys: image keys.
        lower: lower percentile, or None to use 0 as the lower reference value.
        upper: upper percentile (0-100).
        b_min: output value at the lower reference.
        b_max: output value at the upper percentile.
        clip: clip the output to ``[b_min, b_max]``.
        foreground: None (all voxels), "nonzero", or the key of a mask.
        floor: values below it are raised to it first (DISYRE's reference clips negatives: ``floor=0``, so that
            p0 is 0 and the zero background stays exactly 0; without it, a few negative brain voxels make p0
            negative and lift the whole background above 0).

    Why not MONAI's ``ScaleIntensityRangePercentilesd``: it takes the percentiles over every voxel, with no mask
    (AnoFPDM's p99 is over the brain only), no ``floor`` and no "keep 0 at 0" lower reference; and it fails on
    degenerate percentiles without naming the file.
    """

    def __init__(
        self,
        keys: KeysCollection,
        lower: float | None = 0.0,
        upper: float = 98.0,
        b_min: float = 0.0,
        b_max: float = 1.0,
        clip: bool = True,
        foreground: str | None = None,
        floor: float | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if not 0 <= upper <= 100 or (lower is not None and not 0 <= lower < upper):
            raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got lower={lower}, upper={upper}")
        self.lower, self.upper = lower, upper
        self.b_min, self.b_max, self.clip = b_min, b_max, clip
        self.foreground, self.floor = foreground, floor

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = _as_tensor(d[key])
            out = torch.empty_like(img, dtype=torch.float32)
            for c in range(img.shape[0]):
                out[c] = self._scale(img[c].float(), self._selection(d, img, c), source_name(d, key))
            d[key] = like(out, d[key])
        return d

    def _selection(self, d: Mapping, img: torch.Tensor, c: int) -> torch.Tensor | None:
        if self.foreground is None:
            return None
        if self.foreground == "nonzero":
            return img[c] != 0
        mask = _as_tensor(d[self.foreground])
        return mask[0 if mask.shape[0] == 1 else c] > 0

    def _scale(self, x: torch.Tensor, selection: torch.Tensor | None, name: str) -> torch.Tensor:
        return percentile_scale(x, self.lower, self.upper, self.b_min, self.b_max, self.clip, selection, name,
                                self.floor)


class SliceMinMaxd(MapTransform):
    """Min-max rescale every 2-D slice along ``axis`` (and every channel) to ``[b_min, b_max]``.

    On a 2-D image (C, H, W) with ``axis=None`` this rescales each channel of the whole slice, as Synomaly
    and AnoFPDM do per slice. A constant slice (e.g. empty background) is set to ``b_min``.

    Why not MONAI's ``ScaleIntensityd(channel_wise=True)``: it rescales per channel over the whole volume; the
    papers rescale every axial slice of a volume on its own.
    """

    def __init__(
        self,
        keys: KeysCollection,
        b_min: float = -1.0,
        b_max: float = 1.0,
        axis: int | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.b_min, self.b_max, self.axis = b_min, b_max, axis

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = _as_tensor(d[key]).float()
            out = minmax_per_slice(img, self.axis, self.b_min, self.b_max)
            d[key] = like(out, d[key])
        return d


class Clipd(MapTransform):
    """Clip intensities to ``[minv, maxv]`` (after augmentations that can leave the [0, 1] range)."""

    def __init__(self, keys: KeysCollection, minv: float = 0.0, maxv: float = 1.0, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.minv, self.maxv = minv, maxv

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = like(_as_tensor(d[key]).clamp(self.minv, self.maxv), d[key])
        return d
