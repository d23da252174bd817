"""Deterministic NIfTI writing: same array and affine give the same bytes on every run."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from .atomic import atomic_write_bytes


def nifti_bytes(array: np.ndarray, affine: np.ndarray, dtype: np.dtype | type | None = None) -> bytes:
    """Uncompressed NIfTI-1 bytes of ``array`` (cast to ``dtype``) with ``affine`` as qform and sform."""
    array = np.asarray(array)
    if dtype is not None:
        array = array.astype(dtype)
    image = nib.Nifti1Image(array, np.asarray(affine, dtype=np.float64))
    image.header.set_xyzt_units("mm")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    return image.to_bytes()


def save_nifti(
    array: np.ndarray, affine: np.ndarray, path: str | os.PathLike, dtype: np.dtype | type | None = None
) -> Path:
    """Atomically write ``array`` as NIfTI; ``.nii.gz`` is gzipped with a zero timestamp (reproducible)."""
    path = Path(path)
    data = nifti_bytes(array, affine, dtype)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    return atomic_write_bytes(path, data)
