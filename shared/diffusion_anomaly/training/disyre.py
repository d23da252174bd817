"""DISYRE training as a prepare-batch for MONAI's SupervisedTrainer: corrupt, then learn to predict x_0."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..corruptions.disyre import DisyreCorruption


class DisyrePrepareBatch:
    """Turn a batch of healthy patches into ``(x_t, x_0, (), {"timesteps": t})``.

    As the v2 reference code: the corruption draws its strengths and t is the level nearest to the strength it
    applied (not t ~ U{1..T}, which would put half of training at strengths above 0.73). The trainer's inferer
    then calls ``network(x_t, timesteps=t)`` and the loss compares the output with x_0.

    Args:
        corruption: the synthetic-anomaly corruption (holds the scheduler).
        image_key: batch key of the healthy images.
        source_key: batch key naming each image's volume, so foreign patches come from other volumes.
    """

    def __init__(self, corruption: DisyreCorruption, image_key: str = "image", source_key: str = "subject"):
        self.corruption, self.image_key, self.source_key = corruption, image_key, source_key

    def __call__(self, batchdata: Mapping[str, Any], device: torch.device | str | None = None,
                 non_blocking: bool = False, **kwargs: Any):
        x0 = torch.as_tensor(batchdata[self.image_key]).float()
        sources = batchdata.get(self.source_key)
        if sources is not None:
            sources = [str(s) for s in sources]
        xt, _, t = self.corruption(x0, sources=sources)
        move: dict[str, Any] = dict(device=device, non_blocking=non_blocking)
        return xt.to(**move), x0.to(**move), (), {"timesteps": t.to(**move)}
