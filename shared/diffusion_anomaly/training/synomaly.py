"""Synomaly training: MONAI's DiffusionPrepareBatch with Synomaly noise as the noise to predict."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from monai.engines import DiffusionPrepareBatch

from ..corruptions.synomaly import SynomalyNoise


class SynomalyPrepareBatch(DiffusionPrepareBatch):
    """``(x_0, noise, (), {"noise", "timesteps"})`` with Synomaly noise and t ~ U{0..T-1} (seeded).

    Used with ``DiffusionInferer`` as the trainer's inferer: it adds the noise with the scheduler and returns
    the network's noise prediction, which the loss compares with the Synomaly noise.

    Args:
        num_train_timesteps: T of the scheduler.
        noise: the Synomaly noise generator (holds its own seed).
        region_key: batch key of a region mask where blobs may appear (liver, ...), if the preset needs one.
        seed: seed of the timestep draws.
    """

    def __init__(self, num_train_timesteps: int, noise: SynomalyNoise, region_key: str = "region", seed: int = 0):
        super().__init__(num_train_timesteps)
        self.noise, self.region_key = noise, region_key
        self.generator = torch.Generator().manual_seed(seed)
        self._region: torch.Tensor | None = None

    def get_noise(self, images: torch.Tensor) -> torch.Tensor:
        noise, _ = self.noise(images, self._region)
        return noise

    def get_timesteps(self, images: torch.Tensor) -> torch.Tensor:
        return torch.randint(0, self.num_train_timesteps, (images.shape[0],), generator=self.generator).to(
            images.device)

    def __call__(self, batchdata: Mapping[str, Any], device: torch.device | str | None = None,
                 non_blocking: bool = False, **kwargs: Any):
        region = batchdata.get(self.region_key) if isinstance(batchdata, Mapping) else None
        self._region = None if region is None else torch.as_tensor(region)
        return super().__call__(dict(batchdata), device, non_blocking, **kwargs)
