"""Helpers for bundle configs: where the bundle lives, so configs work from any working directory."""

from __future__ import annotations

import inspect
import os
from pathlib import Path


def bundle_root() -> str:
    """The folder of the bundle being run (the parent of its ``configs/``).

    Order: the config folder of the running ``ConfigWorkflow`` (``python -m monai.bundle run --config_file
    bundles/x/configs/inference.json`` from anywhere); else the released bundle that vendors this package as
    ``<bundle>/diffusion_anomaly/``; else the working directory. An explicit ``--bundle_root`` always overrides the
    config id that calls this (MONAI Label does so).
    """
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, ConfigWorkflow):
            root = Path(owner.config_root_path).resolve()
            return str(root.parent if root.name == "configs" else root)
        frame = frame.f_back
    package = Path(__file__).resolve().parent
    if (package.parent / "configs" / "metadata.json").is_file():
        return str(package.parent)
    return os.getcwd()


def gpu_amp(amp: bool | str) -> bool:
    """The bundles' ``amp`` setting as a trainer needs it: bf16 autocast only where CUDA is available (MONAI's
    ``SupervisedTrainer`` would otherwise set up CUDA autocast and a gradient scaler on a CPU). Accepts the CLI's
    "true"/"false" strings."""
    import torch

    from .settings import check_bool

    return check_bool("amp", amp) and torch.cuda.is_available()
