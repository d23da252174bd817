"""Loading bundle weights safely (``weights_only=True``) with errors that say what to do."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InputDataError


def load_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` with an error naming the file when it is not a checkpoint (a
    truncated or foreign file made torch say "Please file an issue")."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputDataError(path, f"not a readable PyTorch checkpoint ({type(err).__name__}: "
                                   f"{str(err).splitlines()[0] if str(err) else ''})") from err


def load_weights(network: torch.nn.Module, path: str | os.PathLike, device: torch.device | str = "cpu",
                 eval_mode: bool = True) -> torch.nn.Module:
    """Load a state dict (plain, or under "model"/"network") into ``network`` and move it to ``device``."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "no network weights here; train the bundle first (configs/train.json) or "
                                   "download its models/model.pt")
    state = load_checkpoint(path)
    for key in ("model", "network"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise InputDataError(path, f"weights do not fit the configured network (wrong preset?): {err}") from err
    network = network.to(device)
    return network.eval() if eval_mode else network
