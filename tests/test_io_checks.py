"""Atomic writers, deterministic NIfTI, and input validation that names the bad file."""

import gzip
import os

import nibabel as nib
import numpy as np
import pytest

from diffusion_anomaly.data import check_finite_nonempty, check_same_spatial_shape, load_volume
from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.io import atomic_write_bytes, save_nifti


def test_save_nifti_is_byte_identical_and_roundtrips(tmp_path, rng):
    arr = rng.normal(size=(5, 6, 7)).astype(np.float32)
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    a, b = save_nifti(arr, affine, tmp_path / "a.nii.gz"), save_nifti(arr, affine, tmp_path / "b.nii.gz")
    assert a.read_bytes() == b.read_bytes()
    assert gzip.decompress(a.read_bytes())[:4] == (348).to_bytes(4, "little")  # NIfTI-1 header size
    img = nib.load(str(a))
    np.testing.assert_array_equal(np.asarray(img.dataobj), arr)
    np.testing.assert_array_equal(img.affine, affine)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temp file left behind


def test_load_volume_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.nii.gz"
    with pytest.raises(InputDataError, match="missing.nii.gz: file does not exist"):
        load_volume(missing)
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputDataError, match="corrupt.nii.gz: cannot be read"):
        load_volume(corrupt)
    flat = save_nifti(np.ones((8, 8), np.float32), np.eye(4), tmp_path / "flat.nii.gz")
    with pytest.raises(InputDataError, match="flat.nii.gz: expected a 3-D image, found 2-D"):
        load_volume(flat)
    four = save_nifti(np.ones((4, 4, 4, 1), np.float32), np.eye(4), tmp_path / "four.nii.gz")
    assert load_volume(four)[0].shape == (4, 4, 4)  # trailing singleton frame dropped


def test_truncated_nifti_is_reported(tmp_path, rng):
    good = save_nifti(rng.normal(size=(16, 16, 16)).astype(np.float32), np.eye(4), tmp_path / "t.nii")
    good.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(InputDataError, match="t.nii: cannot be read"):
        load_volume(good)


def test_value_checks():
    with pytest.raises(InputDataError, match="case1: image has 1 NaN"):
        check_finite_nonempty(np.array([0.0, np.nan, 1.0]), "case1")
    with pytest.raises(InputDataError, match="empty .every voxel equals 0.0"):
        check_finite_nonempty(np.zeros((3, 3)), "case2")
    check_finite_nonempty(np.array([0.0, 1.0]), "ok")
    with pytest.raises(InputDataError, match=r"mask.nii: spatial shape \(4, 4\) differs from its image img.nii"):
        check_same_spatial_shape((4, 5), (4, 4), "img.nii", "mask.nii")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    """mkstemp makes 0600 files whatever the umask; outputs must be readable as a plain open() would make them."""
    old = os.umask(umask)
    try:
        path = atomic_write_bytes(tmp_path / "out.bin", b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_overflowing_values_are_explained(tmp_path):
    arr = np.ones((4, 4, 4), np.float32)
    arr[0, 0, 0] = np.float32(np.float64(1e300))  # what loading a float64 1e300 voxel as float32 gives: inf
    with pytest.raises(InputDataError, match="beyond the float32 range"):
        check_finite_nonempty(arr, "big.nii.gz")
