"""Synomaly noise (Bi et al. 2024): Gaussian noise plus blob-shaped offsets, one offset per image.

Per image: draw n ~ N(0, 1); blur it with a Gaussian of std ``sigma`` (kernel +-4 sigma, reflect-101 borders);
min-max rescale the blurred field to [0, 255]; blobs M = field > ``threshold`` (optionally only inside a
region mask); draw u ~ U(0, 1) once; noise = n + direction * (u + offset) * M. A network trained to predict
this noise learns that blob-like deviations are noise, i.e. removable anomalies.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ops import gaussian_blur2d

PRESETS: dict[str, dict[str, Any]] = {
    "brain_mri": {"sigma": 3.0, "threshold": 175.0, "offset": 0.5, "direction": 1.0, "region": None},
    "liver_ct": {"sigma": 3.0, "threshold": 175.0, "offset": 1.0, "direction": -1.0, "region": "mask"},
    "ultrasound": {"sigma": 7.0, "threshold": 150.0, "offset": 0.5, "direction": 1.0, "region": "disc"},
}


def blur_reflect(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with a kernel of +-4 sigma and reflect-101 borders (OpenCV's default), as the reference."""
    return gaussian_blur2d(x, sigma, max(1, int(round(4 * sigma))), padding="reflect")


def centred_disc(height: int, width: int) -> torch.Tensor:
    """The ultrasound region: a centred disc of radius min(H, W) / 2.2."""
    yy, xx = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    r = min(height, width) / 2.2
    return ((yy - height / 2) ** 2 + (xx - width / 2) ** 2) <= r**2


class SynomalyNoise:
    """Batched, seeded Synomaly noise generator.

    Args:
        sigma: std of the blur that shapes the blobs (pixels).
        threshold: blob threshold on the 0-255 rescaled blurred field (higher = fewer, smaller blobs).
        offset: o in the blob offset d * (u + o), u ~ U(0, 1), in noise-std units.
        direction: d, +1 (brighter blobs) or -1 (darker).
        region: None (anywhere), "disc" (centred disc, ultrasound), or "mask" (blobs only where the
            ``region`` tensor given to ``__call__`` is non-zero, e.g. the liver).
        seed: seed of the generator.
    """

    def __init__(self, sigma: float = 3.0, threshold: float = 175.0, offset: float = 0.5, direction: float = 1.0,
                 region: str | None = None, seed: int = 0):
        if sigma <= 0 or not 0 <= threshold <= 255 or direction not in (1, -1, 1.0, -1.0):
            raise ValueError("need sigma > 0, 0 <= threshold <= 255 and direction = +1 or -1")
        if region not in (None, "disc", "mask"):
            raise ValueError(f"region must be None, 'disc' or 'mask', got {region!r}")
        self.sigma, self.threshold, self.offset, self.direction = sigma, threshold, offset, float(direction)
        self.region = region
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def preset(cls, name: str, seed: int = 0) -> "SynomalyNoise":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        return cls(**PRESETS[name], seed=seed)

    def blobs(self, field: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
        """Binary blob mask (B, 1, H, W) from background noise (B, 1, H, W)."""
        blurred = blur_reflect(field, self.sigma)
        lo = blurred.amin(dim=(2, 3), keepdim=True)
        hi = blurred.amax(dim=(2, 3), keepdim=True)
        scaled = (blurred - lo) / (hi - lo).clamp_min(1e-12) * 255.0
        mask = scaled > self.threshold
        if self.region == "disc":
            mask = mask & centred_disc(*field.shape[-2:]).to(mask.device)
        elif self.region == "mask":
            if region is None:
                raise ValueError("this Synomaly preset needs a region mask (e.g. the liver) for every image")
            mask = mask & (region > 0)
        return mask

    def __call__(self, shape_like: torch.Tensor,
                 region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(noise, blob_mask)`` for a batch shaped like ``shape_like`` (B, C, H, W); all channels share blobs."""
        b, c, h, w = shape_like.shape
        g = self.generator
        n = torch.randn((b, c, h, w), generator=g)
        mask = self.blobs(n[:, :1], None if region is None else region[:, :1].cpu())
        u = torch.rand((b, 1, 1, 1), generator=g)
        noise = n + self.direction * (u + self.offset) * mask.to(n.dtype)
        return noise.to(shape_like.device), mask.to(shape_like.device)
