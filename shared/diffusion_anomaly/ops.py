"""Small tensor operations shared by corruptions and inferers."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur2d(x: torch.Tensor, sigma: float, radius: int, padding: str = "reflect") -> torch.Tensor:
    """Separable Gaussian blur over the last two dims of ``x`` (any leading shape), kernel ``2 * radius + 1``.

    ``padding`` is "reflect" (reflect-101, OpenCV's default border) or "zeros". For reflect padding the radius
    is limited to the image size minus one.
    """
    if sigma <= 0 or radius < 1:
        return x
    if padding not in ("reflect", "zeros"):
        raise ValueError(f"padding must be 'reflect' or 'zeros', got {padding!r}")
    h, w = x.shape[-2:]
    flat = x.reshape(-1, 1, h, w)
    out = flat
    for dim, size in ((-1, w), (-2, h)):
        r = min(radius, size - 1) if padding == "reflect" else radius
        if r < 1:
            continue
        k = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
        k = torch.exp(-0.5 * (k / sigma) ** 2)
        k = (k / k.sum()).view(1, 1, 1, -1) if dim == -1 else (k / k.sum()).view(1, 1, -1, 1)
        pad = (r, r, 0, 0) if dim == -1 else (0, 0, r, r)
        out = F.conv2d(F.pad(out, pad, mode="reflect") if padding == "reflect" else F.pad(out, pad), k)
    return out.reshape(x.shape)
