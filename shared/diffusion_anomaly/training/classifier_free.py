"""Classifier-free guidance training (AnoFPDM): class labels with null-label dropout, and the matching inferer."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from monai.engines import DiffusionPrepareBatch
from monai.inferers import Inferer

from ..networks.presets import NULL_CLASS


class ClassifierFreePrepareBatch(DiffusionPrepareBatch):
    """``(x_0, noise, (), {"noise", "timesteps", "class_labels"})``: Gaussian noise, t ~ U{0..T-1}, and each
    sample's image-level label replaced by the null class with probability ``null_prob`` (all draws seeded).

    Args:
        num_train_timesteps: T of the scheduler.
        class_key: batch key of the image-level labels (0 healthy, 1 unhealthy).
        null_prob: probability of training a sample unconditionally (the reference's 0.1).
        null_class: index of the null label in the network's class embedding.
        seed: seed of the timestep, noise and dropout draws.
    """

    def __init__(self, num_train_timesteps: int, class_key: str = "class_label", null_prob: float = 0.1,
                 null_class: int = NULL_CLASS, seed: int = 0):
        super().__init__(num_train_timesteps)
        if not 0.0 <= null_prob <= 1.0:
            raise ValueError(f"null_prob must lie in [0, 1], got {null_prob}")
        self.class_key, self.null_prob, self.null_class = class_key, null_prob, null_class
        self.generator = torch.Generator().manual_seed(seed)

    def get_noise(self, images: torch.Tensor) -> torch.Tensor:
        return torch.randn(images.shape, generator=self.generator).to(images.device)

    def get_timesteps(self, images: torch.Tensor) -> torch.Tensor:
        return torch.randint(0, self.num_train_timesteps, (images.shape[0],), generator=self.generator).to(
            images.device)

    def class_labels(self, labels: torch.Tensor) -> torch.Tensor:
        labels = torch.as_tensor(labels).long().flatten().cpu()
        drop = torch.rand(labels.shape, generator=self.generator) < self.null_prob
        return torch.where(drop, torch.full_like(labels, self.null_class), labels)

    def __call__(self, batchdata: Mapping[str, Any], device: torch.device | str | None = None,
                 non_blocking: bool = False, **kwargs: Any):
        if self.class_key not in batchdata:
            raise KeyError(f"the batch has no image-level labels '{self.class_key}' (keys: {sorted(batchdata)})")
        images, target, args, infer_kwargs = super().__call__(dict(batchdata), device, non_blocking, **kwargs)
        infer_kwargs["class_labels"] = self.class_labels(batchdata[self.class_key]).to(images.device)
        return images, target, args, infer_kwargs


class ClassConditionalDiffusionInferer(Inferer):
    """Training inferer: noise ``inputs`` to ``timesteps`` with ``scheduler`` and return the network's noise
    prediction for ``class_labels`` (MONAI's ``DiffusionInferer`` passes no class labels)."""

    def __init__(self, scheduler: Any):
        super().__init__()
        self.scheduler = scheduler

    def __call__(  # type: ignore[override]  # the training call takes noise and timesteps, as MONAI's DiffusionInferer
        self, inputs: torch.Tensor, network: Callable[..., Any], noise: torch.Tensor, timesteps: torch.Tensor,
        class_labels: torch.Tensor | None = None, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        noisy = self.scheduler.add_noise(original_samples=inputs, noise=noise, timesteps=timesteps)
        return network(noisy, timesteps=timesteps, class_labels=class_labels)
