"""DISYRE's quantised intensity bias: brighten or darken chosen tissue classes inside the anomaly mask."""

from __future__ import annotations

import torch

from .shapes import gaussian_blur

# Intensity class centroids of [0, 1]-scaled brain MRI (DISYRE "dag" corruption).
CODEBOOK = (0.00565, 0.38284, 0.61224, 0.76921, 0.93855)


def intensity_bias(image: torch.Tensor, mask: torch.Tensor, amplitude: float, sign: float,
                   g: torch.Generator) -> torch.Tensor:
    """Add ``sign * amplitude`` to the pixels of randomly chosen intensity classes inside ``mask``.

    Each class present in the mask is chosen with probability count / (total + 1000); if none is chosen, all
    are. The chosen region is blurred (sigma 1) and weighted by the soft mask. Output clipped to [0, 1].
    ``image`` and ``mask`` are (H, W).
    """
    centroids = torch.tensor(CODEBOOK, dtype=image.dtype, device=image.device)
    classes = torch.argmin((image.unsqueeze(-1) - centroids).abs(), dim=-1)
    inside = mask > 0
    counts = torch.bincount(classes[inside], minlength=len(CODEBOOK)).to(torch.float64)
    p = counts / (counts.sum() + 1000.0)
    chosen = torch.rand(len(CODEBOOK), generator=g, dtype=torch.float64) < p
    if not chosen.any():
        chosen = torch.ones_like(chosen)
    region = chosen.to(image.device)[classes].to(image.dtype)
    region = gaussian_blur(region, 1.0) * mask
    return (image + sign * amplitude * region).clamp(0, 1)
