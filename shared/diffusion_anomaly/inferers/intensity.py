"""The trivial baseline every method must beat: the (normalised) intensity itself is the anomaly score."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer


class IntensityInferer(Inferer):
    """Score = intensity of ``channel`` (bright lesions, e.g. FLAIR), or ``|x - median of the brain|``.

    Brain voxels are the non-zero ones (inputs are skull-stripped and masked by the preprocessing). The
    network argument is ignored; it exists so MONAI Label and Deploy can call ``inferer(inputs, network)``.
    Returns ``{"pred": map}``, like every inferer of the package.

    Args:
        scoring: "intensity" or "deviation".
        channel: which input channel is scored.
    """

    def __init__(self, scoring: str = "intensity", channel: int = 0):
        super().__init__()
        if scoring not in ("intensity", "deviation"):
            raise ValueError(f"setting 'scoring' must be 'intensity' or 'deviation', got {scoring!r}")
        self.scoring, self.channel = scoring, channel

    def __call__(self, inputs: torch.Tensor, network: Any = None, *args: Any, **kwargs: Any) -> dict:
        return {"pred": self.score(inputs)}

    def score(self, inputs: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(inputs)[:, self.channel : self.channel + 1].float()
        if self.scoring == "intensity":
            return x
        out = torch.zeros_like(x)
        for b in range(x.shape[0]):
            brain = x[b] != 0
            if brain.any():
                out[b] = (x[b] - x[b][brain].median()).abs() * brain
        return out
