"""DISYRE's synthetic-anomaly corruption: shape x foreign-patch texture (x intensity bias for "dag")."""

from __future__ import annotations

import itertools
from typing import Sequence

import torch

from ..schedulers.disyre import DisyreScheduler
from .foreign_patch import ForeignPatchCache, minmax_match
from .intensity_bias import intensity_bias
from .shapes import SHAPES, place_mask, random_shape

KINDS = ("dag", "fpi")


class DisyreCorruption:
    """Corrupt a batch of healthy images (B, 1, H, W) in [0, 1] with synthetic anomalies of drawn strengths.

    Per image, as the v2 reference code: a random soft shape is placed on the foreground; a foreign patch from
    another image is pasted at the same place and blended with texture strength ``alpha_tex``
    (``x (1 - alpha_tex m) + x_fp alpha_tex m``). "dag" (default) min-max matches the patch to the host inside
    the mask, then adds a quantised intensity bias of amplitude ``alpha_b`` with a random sign; "fpi" (the ISBI
    setting) does the blend only. The background is never touched.

    Strengths: ``alpha_tex ~ U(0, 1)`` and, for "dag", ``alpha_b ~ U(0, 1)``, drawn independently. The strength
    the network is told about is ``alpha_tex`` ("fpi") or ``max(alpha_tex, alpha_bias)`` ("dag"), where
    ``alpha_bias`` is the largest change the bias actually made (max |x_before - x_after|, after clipping) and
    ``alpha_tex`` is 0 when the blend changed nothing; the returned timesteps are the levels nearest to it
    (``DisyreScheduler.timesteps_for_strengths``). For "dag" the told strength is the maximum of two
    uniforms: P(<= a) = a^2, i.e. 7 % / 46 % / 47 % of samples at <= 0.27 / (0.27, 0.73] / > 0.73.

    Args:
        scheduler: maps strengths to timesteps.
        kind: "dag" or "fpi".
        box: side of the anomaly box (64 in a 128 patch).
        cache_capacity: foreign patches kept.
        shapes: shape kinds drawn uniformly.
        smooth_prob: probability of blurring a shape's edges.
        max_sigma: edge blur sigma ~ U(0, max_sigma).
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

    def draw_strengths(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha_tex, alpha_b)``, each U(0, 1) per image (``alpha_b`` is 0 for "fpi")."""
        texture = torch.rand(n, generator=self.generator, dtype=torch.float64)
        bias = torch.rand(n, generator=self.generator, dtype=torch.float64)
        return texture, bias if self.kind == "dag" else torch.zeros(n, dtype=torch.float64)

    def __call__(self, images: torch.Tensor, strengths: torch.Tensor | None = None,
                 sources: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(corrupted, masks, timesteps)``.

        ``strengths`` (B,) fixes ``alpha_tex = alpha_b`` per image (seeded validation lesions of a given
        strength); None draws them as in training. ``masks`` are the soft shapes in [0, 1] (before scaling by
        the strength); ``timesteps`` the levels nearest to the strength applied.
        """
        images = images.detach().float().cpu()
        g = self.generator
        if strengths is None:
            texture, bias = self.draw_strengths(len(images))
        else:
            texture = torch.as_tensor(strengths, dtype=torch.float64).flatten().cpu()
            bias = texture.clone() if self.kind == "dag" else torch.zeros_like(texture)
            if len(texture) != len(images) or bool(((texture < 0) | (texture > 1)).any()):
                raise ValueError(f"need one strength in [0, 1] per image, got {texture.tolist()}")
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
        corrupted = self.scheduler.blend(images, foreign, masks, texture)
        told = torch.where((corrupted == images).flatten(1).all(1), torch.zeros_like(texture), texture)
        if self.kind == "dag":
            for i in range(len(images)):
                sign = 1.0 if float(torch.rand((), generator=g)) < 0.5 else -1.0
                before = corrupted[i].clone()
                for c in range(images.shape[1]):
                    corrupted[i, c] = intensity_bias(corrupted[i, c], masks[i, c], float(bias[i]), sign, g)
                told[i] = max(float(told[i]), float((corrupted[i] - before).abs().max()))
        return corrupted, masks, self.scheduler.timesteps_for_strengths(told)
