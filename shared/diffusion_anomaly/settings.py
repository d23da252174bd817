"""Checks of numeric settings, so a bad value fails once, before any case runs, naming the setting and its range.

Without them a negative batch size gave all-zero maps with exit code 0 (Synomaly), an ``UnboundLocalError`` per
case (DISYRE) or a ``torch.cat`` error per case (AnoFPDM).

Why not MONAI's ``look_up_option``: it suggests the closest option but does not name the setting ("By 'x', did
you mean 'y'?"), and a user running ``monai.bundle run --scoring ...`` needs to know which setting was wrong.
"""

from __future__ import annotations

import math
import numbers


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None, odd: bool = False) -> int:
    """``value`` as an int, or a ValueError naming ``name`` and the allowed range (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"setting {name!r} must be an integer{_range(minimum, maximum)}, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"setting {name!r} must be an integer{_range(minimum, maximum)}, got {value}")
    if odd and value % 2 == 0:
        raise ValueError(f"setting {name!r} must be an odd integer{_range(minimum, maximum)}, got {value}")
    return value


def check_float(name: str, value, minimum: float | None = None, maximum: float | None = None,
                exclusive_minimum: bool = False) -> float:
    """``value`` as a finite float, or a ValueError naming ``name`` and the allowed range."""
    low = "> " if exclusive_minimum else ">= "
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"setting {name!r} must be a finite number{_range(minimum, maximum, low)}, got {value!r}")
    value = float(value)
    too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    if too_low or (maximum is not None and value > maximum):
        raise ValueError(f"setting {name!r} must be a number{_range(minimum, maximum, low)}, got {value}")
    return value


def _range(minimum, maximum, low: str = ">= ") -> str:
    parts = ([f"{low}{minimum}"] if minimum is not None else []) + ([f"<= {maximum}"] if maximum is not None else [])
    return f" {' and '.join(parts)}" if parts else ""


def check_bool(name: str, value) -> bool:
    """``value`` as a bool; the strings "true"/"false" (any case) are accepted, since the bundle CLI passes
    ``--gate false`` as the string "false", which would otherwise count as true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"setting {name!r} must be true or false, got {value!r}")
