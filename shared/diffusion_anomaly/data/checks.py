"""Input validation that turns every bad file into an ``InputDataError`` naming that file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from ..errors import InputDataError


def load_volume(path: str | os.PathLike, ndim: int = 3, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI volume with nibabel and return ``(array, affine)``.

    Trailing singleton dimensions (e.g. a 4-D file with one frame) are dropped before the ``ndim`` check.
    Raises ``InputDataError`` for a missing file, an unreadable or truncated file, or a wrong number of dims.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "file does not exist")
    try:
        image = cast("nib.spatialimages.SpatialImage", nib.load(str(path)))
        array = np.asarray(image.dataobj, dtype=dtype)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise InputDataError(path, f"cannot be read as an image ({type(err).__name__}: {err})") from err
    while array.ndim > ndim and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != ndim:
        raise InputDataError(path, f"expected a {ndim}-D image, found {array.ndim}-D with shape {array.shape}")
    return array, np.asarray(image.affine, dtype=np.float64)


def check_finite_nonempty(array, source: str) -> None:
    """Reject NaN/inf voxels and images without any contrast (all voxels equal, e.g. all zero)."""
    arr = np.asarray(array)
    if arr.size == 0:
        raise InputDataError(source, "image has no voxels")
    finite = np.isfinite(arr)
    if not finite.all():
        raise InputDataError(source, f"image has {int((~finite).sum())} NaN or infinite voxels (values beyond the "
                                     "float32 range, about 3.4e38, also become infinite when the image is loaded)")
    if float(arr.max()) == float(arr.min()):
        raise InputDataError(source, f"image is empty (every voxel equals {float(arr.min())})")


def check_same_spatial_shape(reference_shape, other_shape, reference: str, other: str) -> None:
    """A mask or label must lie on the same voxel grid as its image."""
    if tuple(reference_shape) != tuple(other_shape):
        raise InputDataError(
            other, f"spatial shape {tuple(other_shape)} differs from its image {reference} {tuple(reference_shape)}"
        )


def dicom_series_uids(folder: str | os.PathLike) -> list[str]:
    """The DICOM series UIDs in ``folder``, found as MONAI's ITK reader finds them (GDCM with series details and
    the series-date restriction), so a folder this lists as one series is read as one volume."""
    import itk  # itk-io is a requirement; imported here because only folder inputs need it

    names = itk.GDCMSeriesFileNames.New()
    names.SetUseSeriesDetails(True)
    names.AddSeriesRestriction("0008|0021")
    names.SetGlobalWarningDisplay(False)
    names.SetDirectory(str(folder))
    return [str(uid) for uid in names.GetSeriesUIDs()]


def check_single_dicom_series(folder: str | os.PathLike) -> None:
    """A folder given as one image must hold one DICOM series: MONAI's reader silently takes the first of several
    (with only a warning on stderr), which would score a series the user did not ask for."""
    uids = dicom_series_uids(folder)
    if len(uids) > 1:
        shown = ", ".join(uids[:3]) + (", ..." if len(uids) > 3 else "")
        raise InputDataError(folder, f"folder holds {len(uids)} DICOM series (UIDs {shown}); "
                                     "give each series its own folder")
