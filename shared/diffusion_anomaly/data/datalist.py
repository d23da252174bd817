"""MONAI datalists (``{"training": [...], "validation": [...], "test": [...]}``) and subject-level splits."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputDataError
from ..io.atomic import atomic_write_json

SPLITS = ("training", "validation", "test")


def split_subjects(
    subjects: Sequence[str], fractions: Sequence[float] = (0.75, 0.05, 0.2), seed: int = 0
) -> dict[str, list[str]]:
    """Shuffle the distinct subjects with ``seed`` and cut them into training / validation / test.

    Every subject lands in exactly one split, so no subject's slices leak across splits. Split sizes are
    ``round(fraction * n)`` for validation and test (at least one each when the fraction is positive and
    enough subjects exist); training takes the rest.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    unique = sorted(set(subjects))
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    n = len(shuffled)
    sizes = []
    for f in fractions[1:]:
        k = int(round(f * n))
        if f > 0 and k == 0 and n >= 3:
            k = 1
        sizes.append(k)
    n_val, n_test = sizes
    if n_val + n_test >= n and n > 0:
        raise ValueError(f"{n} subjects are too few for validation={n_val} and test={n_test}")
    return {
        "validation": shuffled[:n_val],
        "test": shuffled[n_val : n_val + n_test],
        "training": shuffled[n_val + n_test :],
    }


def write_datalist(path: str | os.PathLike, datalist: dict) -> Path:
    """Atomically write a datalist; paths inside should be relative to the datalist's folder."""
    return atomic_write_json(path, datalist)


logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".dcm", ".png", ".jpg", ".jpeg")
PATH_KEYS = ("image", "label", "foreground_mask", "region")
LEGACY_KEYS = {"brain_mask": "foreground_mask"}  # 0.1.2 datalists; the mask also holds liver and ultrasound regions


def load_datalist(path: str | os.PathLike, split: str, keys: Sequence[str] = ("image",)) -> list[dict]:
    """Load one split of a datalist, resolving relative paths against the datalist's folder.

    A legacy key (``brain_mask``, the name before 0.1.3) is read as its new name (``foreground_mask``) with one
    warning per file. Raises ``InputDataError`` naming the file when it is missing, is not JSON, lacks the split,
    an entry lacks one of ``keys`` or gives both a key and its legacy name.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "datalist file does not exist")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputDataError(path, f"datalist is not valid JSON ({err})") from err
    if split not in content:
        raise InputDataError(path, f"datalist has no '{split}' split (found {sorted(content)})")
    base = path.parent
    entries = []
    raw = [_renamed_legacy_keys(entry, path, split, i) for i, entry in enumerate(content[split])]
    for i, entry in enumerate(raw):
        missing = [k for k in keys if k not in entry]
        if missing:
            name = entry.get("subject", f"entry {i}")
            raise InputDataError(path, f"'{split}' {name} lacks key(s) {missing}")
        entries.append({k: _resolve(v, base, k in PATH_KEYS) for k, v in entry.items()})
    return _with_unique_cases(entries, raw, path, split)


def _renamed_legacy_keys(entry, path: Path, split: str, i: int) -> dict:
    if not isinstance(entry, dict):
        raise InputDataError(path, f"'{split}' entry {i} must be an object with an 'image' key, got {entry!r}")
    legacy = [k for k in LEGACY_KEYS if k in entry]
    if not legacy:
        return entry
    clashing = [k for k in legacy if LEGACY_KEYS[k] in entry]
    if clashing:
        raise InputDataError(path, f"'{split}' entry {i} gives both {clashing[0]!r} and {LEGACY_KEYS[clashing[0]]!r}")
    if path not in _warned:
        _warned.add(path)
        logger.warning(f"{path}: key(s) {legacy} are read as {[LEGACY_KEYS[k] for k in legacy]} (renamed in 0.1.3)")
    return {LEGACY_KEYS.get(k, k): v for k, v in entry.items()}


_warned: set[Path] = set()


def _with_unique_cases(entries: list[dict], raw: list[dict], path: Path, split: str) -> list[dict]:
    """Every entry gets a ``case``: its own, else its image path relative to the datalist (``sub01/t1.nii.gz`` ->
    ``sub01_t1``), so outputs named after cases never collide (two ``*/t1.nii.gz`` once wrote one folder).
    Duplicate explicit cases are refused; a derived name that repeats (the same file listed twice) gets ``_2``..."""
    explicit = [e["case"] for e in raw if isinstance(e.get("case"), str)]
    repeated = sorted({c for c in explicit if explicit.count(c) > 1})
    if repeated:
        raise InputDataError(path, f"'{split}' lists case name(s) {repeated} more than once; outputs would overwrite "
                                   "each other")
    taken = set(explicit)
    for entry, original in zip(entries, raw):
        if isinstance(original.get("case"), str):
            continue
        image = original.get("image")
        image = image[0] if isinstance(image, list) and image else image
        stem = str(image) if isinstance(image, str) else f"entry_{len(taken)}"
        for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        name, n = stem.strip("/").replace("/", "_").replace("\\", "_"), 2
        candidate = name
        while candidate in taken:
            candidate, n = f"{name}_{n}", n + 1
        if candidate != name:
            logger.warning(f"{path}: '{split}' lists {image} more than once; its outputs go to '{candidate}'")
        taken.add(candidate)
        entry["case"] = candidate
    return entries


def _resolve(value, base: Path, path_key: bool = False):
    """Relative image paths are relative to the datalist's folder: files with an image suffix under any key, and
    every relative path under the image keys (``PATH_KEYS``), e.g. a DICOM series folder."""
    if isinstance(value, str) and not os.path.isabs(value):
        if value.lower().endswith(IMAGE_SUFFIXES) or path_key:
            return str(base / value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [_resolve(v, base, path_key) for v in value]
    return value
