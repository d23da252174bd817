"""Slice-wise inference helpers: volumes as batches of axial slices, and per-slice noise that does not depend on
the batching."""

from __future__ import annotations

import zlib
from typing import Callable

import torch


def on_axial_slices(inputs: torch.Tensor, axial_dim: int, fn: Callable[[torch.Tensor], dict]) -> dict:
    """Apply ``fn`` to the (B * D, C, H, W) axial slices of (B, C, *spatial) volumes.

    ``fn`` returns a dict of per-pixel outputs (N, K, H, W), which are put back as (B, K, *spatial) volumes, and
    per-slice outputs (N, ...), which become (B, D, ...).
    """
    b, c = inputs.shape[:2]
    moved = torch.movedim(inputs, axial_dim + 2, 1)  # (B, D, C, ...)
    spatial = moved.shape[3:]
    out = fn(moved.reshape(-1, c, *spatial))
    result = {}
    for key, value in out.items():
        if value.ndim == 4 and tuple(value.shape[2:]) == tuple(spatial):
            result[key] = torch.movedim(value.view(b, -1, value.shape[1], *spatial), 1, axial_dim + 2)
        else:
            result[key] = value.view(b, -1, *value.shape[1:])
    return result


def content_seeds(slices: torch.Tensor, seed: int) -> list[int]:
    """One seed per slice from its content, so a slice gets the same noise in any batch."""
    return [seed ^ zlib.crc32(s.detach().cpu().numpy().tobytes()) for s in slices]


def seeded_noise(seeds: list[int], shape: tuple[int, ...], offset: int, device) -> torch.Tensor:
    """Gaussian noise of ``shape`` per seed, drawn from ``seed + offset`` (offset = stage or step)."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s + offset)) for s in seeds]).to(
        device)
