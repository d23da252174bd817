"""Foreground-centred 2-D patches (DISYRE trains on 128x128 patches cut from axial slices)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable


class RandForegroundPatchd(Randomizable, MapTransform):
    """Cut a ``patch_size`` patch whose centre is a random foreground pixel of ``source_key``.

    Images smaller than the patch are zero-padded symmetrically first. The centre is then clamped so the patch
    lies inside the (padded) image; with no foreground the centre is uniform over the valid positions.
    Works on channel-first 2-D (C, H, W) or 3-D (C, H, W, D) items.

    Why not MONAI's ``SpatialPadd`` + ``RandCropByPosNegLabeld(pos=1, neg=0)``: the pair crops the same kind of
    patch but draws its centres differently (its own sampling of foreground indices and border handling), so the
    training patches of the running demo-weight trainings would change under them; the swap belongs with the
    next retraining from scratch, not in a refactor that must keep every result equal.

    Args:
        keys: keys to crop (all must share the spatial shape of ``source_key``).
        patch_size: spatial size of the patch.
        source_key: mask whose non-zero pixels are candidate centres.
    """

    def __init__(
        self,
        keys: KeysCollection,
        patch_size: Sequence[int],
        source_key: str = "foreground_mask",
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.source_key = source_key
        self._centre: tuple[int, ...] = ()

    def randomize(self, mask: torch.Tensor) -> None:
        valid_lo = [p // 2 for p in self.patch_size]
        valid_hi = [s - (p - p // 2) for s, p in zip(mask.shape, self.patch_size)]
        fg = torch.nonzero(mask).numpy()
        if len(fg):
            centre = fg[self.R.randint(len(fg))]
        else:
            centre = [self.R.randint(lo, hi + 1) for lo, hi in zip(valid_lo, valid_hi)]
        self._centre = tuple(int(np.clip(c, lo, hi)) for c, lo, hi in zip(centre, valid_lo, valid_hi))

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        pads = None
        mask = torch.as_tensor(d[self.source_key])
        pads = _symmetric_pads(mask.shape[1:], self.patch_size)
        mask = _pad(mask, pads)
        self.randomize(mask.ne(0).any(dim=0))
        starts = [c - p // 2 for c, p in zip(self._centre, self.patch_size)]
        region = tuple(slice(s, s + p) for s, p in zip(starts, self.patch_size))
        for key in self.key_iterator(d):
            d[key] = _pad(d[key], pads)[(slice(None),) + region]
        d["patch_start"] = [s - before for s, (before, _) in zip(starts, pads)]
        return d


def _symmetric_pads(shape: Sequence[int], size: Sequence[int]) -> list[tuple[int, int]]:
    pads = []
    for s, p in zip(shape, size):
        total = max(p - s, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def _pad(x, pads: list[tuple[int, int]]):
    if not any(a or b for a, b in pads):
        return x
    flat = [v for before_after in reversed(pads) for v in before_after]  # F.pad wants last dim first
    return F.pad(x, flat)
