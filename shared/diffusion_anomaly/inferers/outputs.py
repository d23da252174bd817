"""Adapters between our inferers' outputs and what consumers of bundles expect."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from monai.inferers import Inferer


class MapOnlyInferer(Inferer):
    """Runs a method's inferer and returns only its anomaly map (a tensor).

    Our inferers return a dict (map, mask, restoration, ...). MONAI Deploy's bundle operator keeps the first
    element of what the inferer returns (``ensure_tuple(outputs)[0]``), which for a dict is its first key, and
    calls the inferer with keywords ``inputs=`` and ``network=``.

    Args:
        inferer: the method's inferer.
        key: which output is the map.
    """

    def __init__(self, inferer: Inferer, key: str = "pred"):
        super().__init__()
        self.inferer, self.key = inferer, key

    def __call__(self, inputs: torch.Tensor, network: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        outputs = self.inferer(inputs, network, *args, **kwargs)
        return outputs[self.key] if isinstance(outputs, Mapping) else outputs
