"""DISYRE's synthetic-anomaly corruption: shape x foreign-patch texture (x intensity bias for "dag")."""

from __future__ import annotations

import itertools
from typing import Sequence

import torch

from ..schedulers.disyre import DisyreScheduler
from .foreign_patch import ForeignPatchCache, minmax_match
from .intensity_bias import intensity_bias
from .shapes import SHAPES, _uniform, place_mask, random_shape

KINDS = ("dag", "fpi")


class DisyreCorruption:
    """Corrupt a batch of healthy images (B, 1, H, W) in [0, 1] at strengths given by timesteps.

    Per image: a random soft shape is placed on the foreground; a foreign patch from another image is pasted
    at the same place and blended with ``DisyreScheduler.corrupt`` (strength alpha_t). "dag" (default)
    min-max matches the patch to the host inside the mask and adds a quantised intensity bias of amplitude
    U(0, alpha_t) with a random sign; "fpi" (the ISBI setting) does neither. The background is never touched.

    Args:
        scheduler: gives alpha_t and the blend.
        kind: "dag" or "fpi".
        box: side of the anomaly box (64 in a 128 patch).
        cache_capacity: foreign patches kept.
        shapes: shape kinds drawn uniformly.
        seed: seed of the corruption's own random generator.
    """

    def __init__(self, scheduler: DisyreScheduler, kind: str = "dag", box: int = 64, cache_capacity: int = 512,
                 shapes: Sequence[str] = SHAPES, smooth_prob: float = 0.7, max_sigma: float = 5.0, seed: int = 0):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        unknown = set(shapes) - set(SHAPES)
        if unknown:
            raise ValueError(f"unknown shapes {sorted(unknown)}; choose from {SHAPES}")
        self.scheduler, self.kind, self.box = scheduler, kind, box
        self.shapes, self.smooth_prob, self.max_sigma = tuple(shapes), smooth_prob, max_sigma
        self.cache = ForeignPatchCache(box, cache_capacity)
        self.generator = torch.Generator().manual_seed(seed)
        self._ids = itertools.count()

    def __call__(self, images: torch.Tensor, timesteps: torch.Tensor,
                 sources: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(corrupted, masks)``; ``masks`` are the soft shapes in [0, 1] (before scaling by alpha)."""
        images = images.detach().float().cpu()
        g = self.generator
        if sources is None:  # every image is its own source
            sources = [f"image-{next(self._ids)}" for _ in range(len(images))]
        sources = [str(s) for s in sources]
        self.cache.push(images, sources, g)  # refill first, so other images of this batch can donate
        foreign = images.clone()
        masks = torch.zeros_like(images)
        for i, image in enumerate(images):
            shape = random_shape(self.box, g, self.shapes, self.smooth_prob, self.max_sigma)
            mask, (y0, x0) = place_mask(shape, image.sum(0) > 0, g)
            patch = self.cache.pop(sources[i], g)
            if patch is not None:
                fp = image.clone()
                fp[:, y0 : y0 + self.box, x0 : x0 + self.box] = patch
                if self.kind == "dag":
                    fp = torch.stack([minmax_match(fp[c], image[c], mask) for c in range(len(fp))])
                foreign[i] = fp
            masks[i, :] = mask
        corrupted = self.scheduler.corrupt(images, foreign, masks, timesteps.cpu())
        if self.kind == "dag":
            alphas = self.scheduler.alpha(timesteps.cpu())
            for i in range(len(images)):
                amplitude = _uniform(0.0, float(alphas[i]), g)
                sign = 1.0 if float(torch.rand((), generator=g)) < 0.5 else -1.0
                for c in range(images.shape[1]):
                    corrupted[i, c] = intensity_bias(corrupted[i, c], masks[i, c], amplitude, sign, g)
        return corrupted, masks
