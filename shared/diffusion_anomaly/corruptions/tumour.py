"""Simulated brain tumours for AnoFPDM's weakly-supervised training on data without real lesions.

AnoFPDM needs unhealthy training slices with image-level labels. The demo data have no lesions outside the test
patients, so unhealthy slices are made by painting a tumour-like mass into a healthy slice. The simulator is
deliberately different from every training corruption of the other bundles (Synomaly's blob noise, DISYRE's
foreign patches and intensity bias): a mass with a necrotic core, a rim and surrounding oedema, an irregular
outline, and slight mass effect (the brain around it is pushed outwards).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..ops import gaussian_blur2d


@dataclass
class TumourParameters:
    """One tumour: centre (row, col) in pixels, radius in pixels, axis ratio, rotation, contrasts, mass effect."""

    centre: tuple[float, float]
    radius: float
    axis_ratio: float
    angle: float
    polarity: tuple[float, ...]  # per channel: +1 bright oedema and core (FLAIR/T2-like), -1 dark (T1-like)
    core: float
    rim: float
    oedema: float
    oedema_extent: float
    mass_effect: float
    seed: int


def sample_tumour(brain: np.ndarray, channels: int, rng: np.random.RandomState,
                  radius_range: tuple[float, float] = (0.05, 0.16)) -> TumourParameters | None:
    """Draw a tumour whose centre lies inside ``brain`` (H, W); None if the slice has too little brain."""
    rows, cols = np.nonzero(brain)
    if rows.size < 50:
        return None
    i = rng.randint(rows.size)
    size = math.sqrt(rows.size)  # radius relative to the brain's extent in this slice
    return TumourParameters(
        centre=(float(rows[i]), float(cols[i])),
        radius=float(rng.uniform(*radius_range) * size * 1.5),
        axis_ratio=float(rng.uniform(0.7, 1.4)),
        angle=float(rng.uniform(0, math.pi)),
        polarity=tuple(float(rng.choice([-1.0, 1.0])) for _ in range(channels)),
        core=float(rng.uniform(0.25, 0.5)),
        rim=float(rng.uniform(0.05, 0.2)),
        oedema=float(rng.uniform(0.1, 0.25)),
        oedema_extent=float(rng.uniform(1.3, 1.9)),
        mass_effect=float(rng.uniform(0.0, 0.35)),
        seed=int(rng.randint(2**31 - 1)),
    )


def paint_tumour(image: torch.Tensor, brain: torch.Tensor, p: TumourParameters) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint tumour ``p`` into ``image`` (C, H, W) scaled to [0, 1] with background 0.

    Returns the new image (clamped to [0, 1], zero outside the displaced brain) and the lesion mask (1, H, W):
    core, rim and oedema together, as BraTS' "whole tumour".
    """
    c, h, w = image.shape
    gen = torch.Generator().manual_seed(p.seed)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    dy, dx = yy - p.centre[0], xx - p.centre[1]

    # mass effect: sample each pixel from closer to the centre, so the tissue around the mass moves outwards
    dist = torch.sqrt(dy**2 + dx**2).clamp_min(1e-3)
    push = p.mass_effect * p.radius * torch.exp(-(dist**2) / (2 * (1.5 * p.radius) ** 2))
    src_y, src_x = yy - push * dy / dist, xx - push * dx / dist
    grid = torch.stack([src_x / max(w - 1, 1) * 2 - 1, src_y / max(h - 1, 1) * 2 - 1], -1)[None]
    image = F.grid_sample(image[None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    brain = F.grid_sample(brain[None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=True)[0] > 0

    # irregular elliptical distance: 1 at the mass boundary
    cos, sin = math.cos(p.angle), math.sin(p.angle)
    u, v = (cos * dx + sin * dy) / p.radius, (-sin * dx + cos * dy) / (p.radius * p.axis_ratio)
    wobble = _smooth_noise(h, w, max(p.radius / 2, 1.0), gen)
    wobble = wobble / wobble.abs().amax().clamp_min(1e-6)
    d = torch.sqrt(u**2 + v**2) * (1 + 0.25 * wobble)

    def soft(edge: float, width: float = 0.08) -> torch.Tensor:  # 1 inside ``edge``, soft 2-3 px transition
        return torch.sigmoid((edge - d) / width)

    core, mass, oedema = soft(0.55), soft(1.0), soft(p.oedema_extent, 0.15)
    texture = _smooth_noise(h, w, 1.5, gen) * 0.04
    inside = brain[0].float()
    for ch in range(c):
        s = p.polarity[ch]
        change = s * p.oedema * (oedema - mass) + (-s * p.rim) * (mass - core) + s * p.core * core
        image[ch] = image[ch] + (change + texture * mass) * inside
    image = image.clamp(0, 1) * inside
    lesion = (oedema > 0.5) & brain[0]
    return image, lesion[None].to(image.dtype)


def _smooth_noise(h: int, w: int, sigma: float, gen: torch.Generator) -> torch.Tensor:
    radius = max(1, min(int(3 * sigma), h - 1, w - 1))
    return gaussian_blur2d(torch.randn(1, 1, h, w, generator=gen), sigma, radius)[0, 0]
