"""A calibration's result as a bundle config overlay, written with MONAI's config API."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

from ..io import atomic_path


def write_config_overlay(path: str | os.PathLike, settings: Mapping[str, Any]) -> Path:
    """Write ``settings`` (config id -> value) as a config file that the bundle CLI merges after the bundle's own:
    ``--config_file "['configs/inference.json','<path>']"``.

    MONAI's ``ConfigParser.export_config_file`` writes in place, so it writes a temporary file next to ``path``,
    which is read back with ``ConfigParser.load_config_file`` and only then renamed over ``path``: a failed run
    leaves no half-written overlay and an earlier overlay stays as it was.
    """
    path, settings = Path(path), dict(settings)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("json", "yaml", "yml"):
        raise ValueError(f"config overlay {path}: the name must end in .json, .yaml or .yml")
    with atomic_path(path, suffix=path.suffix) as tmp:  # load_config_file goes by the suffix
        ConfigParser.export_config_file(settings, tmp, fmt=fmt, **({"indent": 4} if fmt == "json" else {}))
        if ConfigParser.load_config_file(tmp) != settings:
            raise ValueError(f"config overlay {path}: the settings do not survive a round trip through {fmt}")
    return path
