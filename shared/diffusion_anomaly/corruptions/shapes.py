"""Procedural anomaly shapes (no shape bank is copied): rectangles, discs and organic blobs with soft edges.

Every mask lies in [0, 1]. Shapes live in a ``box`` x ``box`` square (DISYRE: 64 inside a 128 patch) and are
placed on the image foreground, then zeroed on the background.
"""

from __future__ import annotations

import math

import torch

from ..ops import gaussian_blur2d

SHAPES = ("rectangle", "disc", "organic")


def _uniform(lo: float, hi: float, g: torch.Generator) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _randint(lo: int, hi: int, g: torch.Generator) -> int:
    """Integer in [lo, hi] inclusive."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a 2-D map, truncated at 3 sigma, zero padding outside (edge softening of shapes)."""
    return gaussian_blur2d(x, sigma, max(1, int(math.ceil(3 * sigma))), padding="zeros")


def _grid(box: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.arange(box, dtype=torch.float32) + 0.5
    rows, cols = torch.meshgrid(c, c, indexing="ij")
    return rows, cols


def rectangle(box: int, g: torch.Generator) -> torch.Tensor:
    """Sides drawn per axis from [10, box - 20]; with p = 0.5 rotated by up to +-15 degrees."""
    hi = max(10, box - 20)
    h, w = _randint(10, hi, g), _randint(10, hi, g)
    cy, cx = _uniform(h / 2, box - h / 2, g), _uniform(w / 2, box - w / 2, g)
    angle = math.radians(_uniform(-15, 15, g)) if float(torch.rand((), generator=g)) < 0.5 else 0.0
    yy, xx = _grid(box)
    dy, dx = yy - cy, xx - cx
    ry = dy * math.cos(angle) + dx * math.sin(angle)
    rx = -dy * math.sin(angle) + dx * math.cos(angle)
    return ((ry.abs() <= h / 2) & (rx.abs() <= w / 2)).float()


def disc(box: int, g: torch.Generator) -> torch.Tensor:
    """Diameter drawn from [10, box - 20], fully inside the box."""
    d = _randint(10, max(10, box - 20), g)
    cy, cx = _uniform(d / 2, box - d / 2, g), _uniform(d / 2, box - d / 2, g)
    yy, xx = _grid(box)
    return (((yy - cy) ** 2 + (xx - cx) ** 2) <= (d / 2) ** 2).float()


def organic(box: int, g: torch.Generator) -> torch.Tensor:
    """A union of 2-5 random ellipses around the box centre with a noise-perturbed outline."""
    yy, xx = _grid(box)
    field = torch.full((box, box), float("inf"))
    for _ in range(_randint(2, 5, g)):
        cy, cx = _uniform(0.3 * box, 0.7 * box, g), _uniform(0.3 * box, 0.7 * box, g)
        a, b = _uniform(0.08 * box, 0.3 * box, g), _uniform(0.08 * box, 0.3 * box, g)
        t = _uniform(0, math.pi, g)
        dy, dx = yy - cy, xx - cx
        u = (dy * math.cos(t) + dx * math.sin(t)) / a
        v = (-dy * math.sin(t) + dx * math.cos(t)) / b
        field = torch.minimum(field, (u**2 + v**2).sqrt())
    wobble = gaussian_blur(torch.randn((box, box), generator=g), box / 16)
    wobble = wobble / (wobble.abs().max() + 1e-8)
    return (field + 0.25 * wobble <= 1.0).float()


def random_shape(box: int, g: torch.Generator, kinds: tuple[str, ...] = SHAPES, smooth_prob: float = 0.7,
                 max_sigma: float = 5.0) -> torch.Tensor:
    """One mask of ``box`` x ``box`` in [0, 1]: a shape chosen uniformly, edges softened with probability
    ``smooth_prob`` by a Gaussian blur of sigma ~ U(0, max_sigma)."""
    kind = kinds[_randint(0, len(kinds) - 1, g)]
    mask = {"rectangle": rectangle, "disc": disc, "organic": organic}[kind](box, g)
    if float(torch.rand((), generator=g)) < smooth_prob:
        mask = gaussian_blur(mask, _uniform(0.0, max_sigma, g))
    return mask.clamp(0, 1)


def place_mask(shape: torch.Tensor, foreground: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, tuple]:
    """Paste ``shape`` (box x box) into a zero map the size of ``foreground`` (H, W) so that the box centre is
    a random foreground pixel where the box fits (uniform if none), and zero the mask on the background.

    Returns the placed mask and the box's top-left corner.
    """
    box = shape.shape[-1]
    H, W = foreground.shape[-2:]
    if H < box or W < box:
        raise ValueError(f"image {H}x{W} is smaller than the anomaly box {box}")
    fg = foreground.bool().clone()
    fits = torch.zeros_like(fg)
    fits[box // 2 : H - (box - box // 2) + 1, box // 2 : W - (box - box // 2) + 1] = True
    candidates = torch.nonzero(fg & fits)
    if len(candidates):
        cy, cx = candidates[_randint(0, len(candidates) - 1, g)].tolist()
    else:
        cy, cx = _randint(box // 2, H - (box - box // 2), g), _randint(box // 2, W - (box - box // 2), g)
    y0, x0 = cy - box // 2, cx - box // 2
    placed = torch.zeros((H, W), dtype=shape.dtype)
    placed[y0 : y0 + box, x0 : x0 + box] = shape
    return placed * fg.to(shape.dtype), (y0, x0)
