"""Axial slices of 3-D volumes, taken only between the first and last non-empty slice.

Volumes are channel-first (C, X, Y, Z) in RAS orientation, so the axial axis is the last one (``axis=-1``).
Each sample keeps the non-sliced keys of the input and records its ``slice_index``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

from ..errors import InputDataError
from ..transforms.checks import source_name


def nonempty_slice_range(volume, axis: int = -1) -> tuple[int, int]:
    """``(first, last)`` indices (inclusive) of slices along ``axis`` that contain any non-zero voxel.

    ``volume`` is channel-first; ``axis`` counts from the channel dim (``-1`` = last spatial axis).
    Raises ``ValueError`` if every voxel is zero.
    """
    v = torch.as_tensor(np.asarray(volume)) if not isinstance(volume, torch.Tensor) else volume
    axis = axis % v.ndim
    if axis == 0:
        raise ValueError("axis must be a spatial axis, not the channel axis")
    other = [i for i in range(v.ndim) if i != axis]
    occupied = torch.nonzero(v.ne(0).any(dim=other[-1]).any(dim=other[:-1]) if len(other) > 1 else v.ne(0)).flatten()
    if occupied.numel() == 0:
        raise ValueError("volume has no non-zero voxel")
    return int(occupied[0]), int(occupied[-1])


def _take(x, axis: int, index: int):
    out = x.select(axis % x.ndim, index)
    return out


class _SliceSampler(MapTransform):
    def __init__(self, keys: KeysCollection, source_key: str, axis: int, allow_missing_keys: bool):
        super().__init__(keys, allow_missing_keys)
        self.source_key, self.axis = source_key, axis

    def _range(self, d: Mapping) -> tuple[int, int]:
        try:
            return nonempty_slice_range(d[self.source_key], self.axis)
        except ValueError as err:
            raise InputDataError(source_name(d, self.source_key), f"cannot sample slices: {err}") from err

    def _sample(self, d: Mapping, index: int) -> dict:
        out = {k: v for k, v in d.items() if k not in self.keys}
        for key in self.key_iterator(d):
            out[key] = _take(d[key], self.axis, index)
        out["slice_index"] = index
        return out


class RandAxialSlicesd(Randomizable, _SliceSampler):
    """Draw ``num_samples`` random slices (with replacement) whose ``source_key`` slice is non-empty.

    Returns a list of dicts, like MONAI's ``RandCropByPosNegLabeld``, so ``Dataset`` flattens it into a batch.
    Slices inside the first/last range that are themselves empty (gaps) are never returned.

    Args:
        min_pixels: a slice needs at least this many non-zero ``source_key`` pixels (LiTS: liver area).
        exclude_key: slices where this mask is non-zero are never drawn (healthy slices of patients: the tumour
            label). A volume without any allowed slice raises ``InputDataError``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str = "foreground_mask",
        num_samples: int = 12,
        axis: int = -1,
        min_pixels: int = 1,
        exclude_key: str | None = None,
        allow_missing_keys: bool = False,
    ):
        _SliceSampler.__init__(self, keys, source_key, axis, allow_missing_keys)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if min_pixels < 1:
            raise ValueError(f"min_pixels must be >= 1, got {min_pixels}")
        self.num_samples, self.min_pixels, self.exclude_key = num_samples, min_pixels, exclude_key
        self._indices: list[int] = []

    def candidates(self, d: Mapping) -> list[int]:
        counts = slice_counts(d[self.source_key], self.axis)
        allowed = counts >= self.min_pixels
        if self.exclude_key is not None:
            allowed &= slice_counts(d[self.exclude_key], self.axis) == 0
        found = [int(i) for i in torch.nonzero(allowed).flatten()]
        if not found:
            self._range(d)  # names an all-empty source
            why = f"no axial slice has >= {self.min_pixels} {self.source_key} pixels"
            raise InputDataError(source_name(d, self.source_key), why + (
                f" and an empty {self.exclude_key}" if self.exclude_key else ""))
        return found

    def randomize(self, candidates: Sequence[int]) -> None:
        self._indices = [int(i) for i in self.R.choice(candidates, size=self.num_samples, replace=True)]

    def __call__(self, data: Mapping) -> list[dict]:
        d = dict(data)
        self.randomize(self.candidates(d))
        return [self._sample(d, i) for i in self._indices]


class AxialSlicesd(_SliceSampler):
    """Every non-empty slice of ``source_key``, in order, with ``stride`` (deterministic; for validation)."""

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str = "foreground_mask",
        stride: int = 1,
        axis: int = -1,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, source_key, axis, allow_missing_keys)
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.stride = stride

    def __call__(self, data: Mapping) -> list[dict]:
        d = dict(data)
        candidates = nonempty_indices(d[self.source_key], self.axis)
        if len(candidates) == 0:
            self._range(d)
        return [self._sample(d, i) for i in candidates[:: self.stride]]


def slice_counts(volume, axis: int = -1) -> torch.Tensor:
    """Number of non-zero voxels (over all channels) in each slice along ``axis``."""
    v = torch.as_tensor(np.asarray(volume)) if not isinstance(volume, torch.Tensor) else volume
    axis = axis % v.ndim
    return torch.movedim(v.ne(0), axis, 0).reshape(v.shape[axis], -1).sum(dim=1)


def nonempty_indices(volume, axis: int = -1) -> list[int]:
    """Indices of slices along ``axis`` with at least one non-zero voxel."""
    return [int(i) for i in torch.nonzero(slice_counts(volume, axis)).flatten()]


