"""Pipeline guards around loading: fail early with the file's name, not deep inside a network."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Hashable, Mapping, Sequence

from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..data.checks import check_finite_nonempty, check_same_spatial_shape, check_single_dicom_series
from ..errors import InputDataError


def source_name(data: Mapping, key: Hashable) -> str:
    """The file an item came from (MetaTensor ``filename_or_obj``), else the key and case name."""
    meta = getattr(data[key], "meta", {}) or {}
    name = meta.get("filename_or_obj")
    if isinstance(name, (list, tuple)):
        name = ", ".join(map(str, name))
    return str(name) if name else f"'{key}' of case {data.get('subject', data.get('case', '?'))}"


class CheckInputd(MapTransform):
    """Validate channel-first images: spatial dims, channel count, finite values, contrast, matching masks.

    Args:
        keys: image keys to check fully (dims, channels, NaN, empty).
        spatial_dims: required number of spatial dimensions (3 for volumes, 2 for slices).
        num_channels: required channel count, or None for any.
        mask_keys: keys (labels, brain masks) that must share the first image's spatial shape.
        allow_missing_keys: skip keys that are absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        spatial_dims: int = 3,
        num_channels: int | None = None,
        mask_keys: Sequence[str] = (),
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.spatial_dims = spatial_dims
        self.num_channels = num_channels
        self.mask_keys = tuple(mask_keys)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        reference = None
        for key in self.key_iterator(d):
            img, name = d[key], source_name(d, key)
            if img.ndim != self.spatial_dims + 1:
                raise InputDataError(
                    name, f"expected a {self.spatial_dims}-D image (channel-first shape of {self.spatial_dims + 1} "
                    f"dims), found shape {tuple(img.shape)}"
                )
            if self.num_channels is not None and img.shape[0] != self.num_channels:
                raise InputDataError(name, f"expected {self.num_channels} channel(s), found {img.shape[0]}")
            check_finite_nonempty(img.detach().cpu().numpy() if hasattr(img, "detach") else img, name)
            if reference is None:
                reference = (tuple(img.shape[1:]), name)
        for key in self.mask_keys:
            if key not in d:
                continue
            if reference is None:
                raise InputDataError(source_name(d, key), "mask given without an image to compare it with")
            check_same_spatial_shape(reference[0], d[key].shape[1:], reference[1], source_name(d, key))
        return d


class CheckDicomSeriesd(MapTransform):
    """Before loading: a folder given under ``keys`` (a DICOM series) must hold exactly one series.

    MONAI's ``LoadImage`` reads the first series of a folder that holds several and only warns; this makes that a
    per-case ``InputDataError`` naming the folder. Files, absent keys and already loaded arrays pass unchanged
    (MONAI Label and Deploy hand over loaded images).
    """

    def __init__(self, keys: KeysCollection):
        super().__init__(keys, allow_missing_keys=True)

    def __call__(self, data: Mapping) -> Mapping:
        for key in self.key_iterator(data):
            value = data[key]
            if isinstance(value, (str, os.PathLike)) and Path(value).is_dir():
                check_single_dicom_series(value)
        return data
