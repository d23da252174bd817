"""The foreground-mask key: ``foreground_mask`` since 0.1.3 (it holds liver and ultrasound regions too); a 0.1.2
datalist's ``brain_mask`` is still read, as the same mask, with a warning."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import Dataset

from diffusion_anomaly.data import load_datalist
from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.io import save_nifti

REPO = Path(__file__).resolve().parents[1]


def _case(tmp_path):
    image = np.zeros((16, 16, 3), np.float32)
    image[2:14, 2:14] = np.arange(144, dtype=np.float32).reshape(12, 12, 1) + 1
    mask = np.zeros((16, 16, 3), np.uint8)
    mask[4:10, 4:10] = 1  # smaller than the non-zero image, so a derived mask would differ
    save_nifti(image, np.eye(4), tmp_path / "t1.nii.gz")
    save_nifti(mask, np.eye(4), tmp_path / "mask.nii.gz", np.uint8)


def _datalist(tmp_path, name, entry):
    path = tmp_path / name
    path.write_text(json.dumps({"test": [entry]}))
    return path


def test_legacy_brain_mask_key_is_read_as_the_foreground_mask(tmp_path, caplog):
    _case(tmp_path)
    new = _datalist(tmp_path, "new.json", {"image": "t1.nii.gz", "foreground_mask": "mask.nii.gz", "case": "a"})
    old = _datalist(tmp_path, "old.json", {"image": "t1.nii.gz", "brain_mask": "mask.nii.gz", "case": "a"})
    with caplog.at_level(logging.WARNING):
        legacy = load_datalist(old, "test")
    assert legacy == load_datalist(new, "test")
    assert legacy[0]["foreground_mask"] == str(tmp_path / "mask.nii.gz")  # resolved like every image key
    assert "['brain_mask'] are read as ['foreground_mask']" in caplog.text and str(old) in caplog.text

    config = ConfigParser()
    config.read_config(str(REPO / "bundles/intensity_baseline/configs/inference.json"))
    config["bundle_root"] = str(REPO / "bundles/intensity_baseline")
    preprocessing = config.get_parsed_content("preprocessing")
    maps = [torch.as_tensor(Dataset(load_datalist(p, "test"), preprocessing)[0]["image"]) for p in (old, new)]
    without = _datalist(tmp_path, "none.json", {"image": "t1.nii.gz", "case": "a"})
    derived = torch.as_tensor(Dataset(load_datalist(without, "test"), preprocessing)[0]["image"])
    assert torch.equal(maps[0], maps[1])
    assert not torch.equal(maps[0], derived)  # the given mask was applied, not the non-zero voxels


def test_a_datalist_giving_both_names_is_refused(tmp_path):
    path = _datalist(tmp_path, "both.json", {"image": "t1.nii.gz", "brain_mask": "a.nii.gz",
                                             "foreground_mask": "b.nii.gz"})
    with pytest.raises(InputDataError, match="gives both 'brain_mask' and 'foreground_mask'") as err:
        load_datalist(path, "test")
    assert str(path) in str(err.value)


def test_the_foreground_mask_is_derived_when_absent_and_the_old_transform_name_still_works():
    from diffusion_anomaly.transforms import EnsureBrainMaskd, EnsureForegroundMaskd

    image = torch.zeros(1, 4, 4, 2)
    image[0, 1:3, 1:3] = 5.0
    derived = EnsureForegroundMaskd()({"image": image})["foreground_mask"]
    assert derived.sum() == 8 and torch.equal(derived, (image != 0).float())
    given = torch.ones(1, 4, 4, 2)
    assert EnsureForegroundMaskd()({"image": image, "foreground_mask": given})["foreground_mask"] is given
    with pytest.warns(FutureWarning, match="EnsureForegroundMaskd"):
        legacy = EnsureBrainMaskd()
    assert torch.equal(legacy({"image": image})["brain_mask"], derived)
