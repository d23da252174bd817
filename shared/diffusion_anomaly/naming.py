"""Output names of cases: one safe path component per case, from the datalist or the image file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping


def safe_name(name: str) -> str:
    """``name`` as one harmless path component: characters other than letters, digits, ``.``, ``-`` and ``_``
    become ``_`` and leading dots are dropped, so ``../../x`` or ``/etc/x`` cannot write outside the output
    folder."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip(".")
    return cleaned or "case"


def case_name(item: Mapping) -> str:
    """``case`` (or ``subject``) from the datalist, else the image file name without extension; always a single
    safe path component (``safe_name``)."""
    return safe_name(_raw_case_name(item))


def _raw_case_name(item: Mapping) -> str:
    for key in ("case", "subject"):
        if isinstance(item.get(key), str):
            return item[key]
    image = item.get("image")
    meta = getattr(image, "meta", {}) if image is not None else {}
    name = meta.get("filename_or_obj") or (image if isinstance(image, str) else None)
    if isinstance(name, (list, tuple)):
        name = name[0]
    if not name:
        return "case"
    return Path(str(name)).name.removesuffix(".gz").removesuffix(".nii").removesuffix(".dcm")
