"""Scores of one inferer on validation data, for :class:`SettingSearch`. No test image is read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..corruptions import DisyreCorruption
from ..metrics import dice_from_counts, exact_curve, overlap_counts
from ..schedulers import DisyreScheduler


class LesionValidationAP:
    """Pooled and per-family pixel AP of the synthetic-lesion validation that training records
    (``diffusion_anomaly.training.LesionValidation``, the five lesion families of the in-domain benchmark), for
    the inferer under test. The validation set is painted once and reused for every inferer."""

    def __init__(self, validation: Any):
        if not validation.data:
            raise ValueError("calibration needs validation volumes: the datalist's 'validation' split is empty")
        self.validation = validation

    def __call__(self, inferer: Any, network: torch.nn.Module) -> dict:
        self.validation.inferer, self.validation.network = inferer, network
        return self.validation.scores()


class SimulatedLesionDice:
    """For inferers that return a binary ``mask`` (Synomaly): mean Dice over validation slices carrying lesions
    the model never saw in training, DISYRE's foreign-patch corruption ("fpi") at full strength (t = 100),
    seeded. The reference tunes on the per-image Dice; the false-positive rate on the healthy object pixels of the
    same slices and the pooled pixel AP of the continuous map ``pred`` inside the object are reported beside it.

    Args:
        dataset: validation volumes after the bundle's preprocessing (``image`` in [-1, 1], ``foreground_mask``).
        stride: every ``stride``-th slice holding the object is used.
        min_object_fraction: slices whose object mask (brain, liver) covers less of the slice hold no lesion and are
            skipped.
        seed: seed of the simulated lesions.
        axial_dim: spatial axis of the slices.
        device: where the inferer runs.
        amp: bf16 autocast on CUDA.
    """

    def __init__(self, dataset: Sequence[dict], stride: int = 4, min_object_fraction: float = 0.15, seed: int = 2024,
                 axial_dim: int = 2, device: torch.device | str = "cpu", amp: bool = False):
        if stride < 1:
            raise ValueError(f"setting 'calibration_stride' must be >= 1, got {stride}")
        self.dataset, self.stride, self.min_fraction, self.seed = dataset, stride, min_object_fraction, seed
        self.axial_dim, self.device, self.amp = axial_dim, torch.device(device), amp
        self._set: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def slices(self) -> torch.Tensor:
        """The chosen slices, padded with the background value -1 to one size: (N, C, H, W)."""
        chosen = []
        for i in range(len(self.dataset)):
            item = self.dataset[i]
            image = torch.as_tensor(item["image"]).movedim(self.axial_dim + 1, -1)
            mask = torch.as_tensor(item["foreground_mask"]).movedim(self.axial_dim + 1, -1)[0] > 0
            occupied = torch.nonzero(mask.flatten(0, 1).any(0)).flatten().tolist()
            chosen += [image[..., z] for z in occupied[:: self.stride] if float(mask[..., z].float().mean()) >=
                       self.min_fraction]
        if not chosen:
            raise ValueError(f"no validation slice has an object mask covering >= {self.min_fraction} of the slice; "
                             "lower setting 'calibration_min_object_fraction'")
        h, w = max(s.shape[-2] for s in chosen), max(s.shape[-1] for s in chosen)
        padded = [torch.nn.functional.pad(s, (0, w - s.shape[-1], 0, h - s.shape[-2]), value=-1.0) for s in chosen]
        return torch.stack(padded).float()

    def lesioned(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Slices with foreign-patch lesions in [-1, 1], the lesion masks and the object masks."""
        if self._set is None:
            slices = self.slices()
            unit = (slices + 1) / 2
            scheduler = DisyreScheduler()
            corruption = DisyreCorruption(scheduler, kind="fpi", seed=self.seed, smooth_prob=0.0)
            painted, masks, _ = corruption(unit, scheduler.strength(torch.full((len(unit),), 100)),
                                           [str(i) for i in range(len(unit))])
            labels = (masks >= 0.5) & (unit > 0)
            self._set = painted * 2 - 1, labels, (slices > -1).any(1, keepdim=True)
        return self._set

    def __call__(self, inferer: Any, network: torch.nn.Module) -> dict:
        images, labels, objects = self.lesioned()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp and self.device.type == "cuda"):
            out = inferer(images.to(self.device), network)
        pred = out["mask"].cpu() > 0
        dices = [dice_from_counts(*overlap_counts(p[o], g[o])) for p, g, o in zip(pred, labels, objects)]
        healthy = objects & ~labels
        lesion = labels.any(1, keepdim=True)
        scores = {"mean_dice": float(np.mean(dices)),
                  "healthy_fpr": float((pred & healthy).sum()) / max(int(healthy.sum()), 1),
                  "pixel_ap": exact_curve(out["pred"].float().cpu()[objects].numpy(), lesion[objects].numpy()).ap,
                  "slices": len(images), "lesion_pixels": int(labels.sum())}
        if "stages" in out:  # Synomaly's multi-stage inference
            scores["mean_stages"] = float(out["stages"].float().mean())
        return scores
