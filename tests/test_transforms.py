"""Intensity, mask and input-check transforms: values derived by hand."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import CropForegroundd

from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.transforms import CheckInputd, ScalePercentiled, SliceMinMaxd


def _img(arr, name="vol.nii.gz"):
    return MetaTensor(torch.as_tensor(arr, dtype=torch.float32), meta={"filename_or_obj": name})


def test_percentile_scaling_maps_p98_to_one_and_p0_to_zero(rng):
    x = rng.gamma(2.0, 50.0, size=(1, 20, 20, 10)).astype(np.float32)
    out = ScalePercentiled("image", lower=0, upper=98, clip=False)({"image": _img(x)})["image"]
    p0, p98 = np.quantile(x, [0.0, 0.98])
    expected = (x - p0) / (p98 - p0)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert abs(float(np.quantile(out.numpy(), 0.98)) - 1.0) < 1e-5
    clipped = ScalePercentiled("image", lower=0, upper=98)({"image": _img(x)})["image"]
    assert float(clipped.max()) == 1.0 and float(clipped.min()) == 0.0
    assert isinstance(clipped, MetaTensor) and clipped.meta["filename_or_obj"] == "vol.nii.gz"


def test_disyre_scaling_clips_negatives_so_the_background_stays_zero(rng):
    """Reference (DISYRE ScaleIntensityQuantile): v = clip(v, 0); (v - q0) / (q98 - q0); clip to [0, 1]."""
    x = np.zeros((1, 30, 30, 8), np.float32)
    brain = np.zeros(x.shape, bool)
    brain[:, 5:25, 5:25, 1:7] = True
    x[brain] = rng.gamma(4.0, 30.0, size=int(brain.sum()))
    negative = np.flatnonzero(brain.ravel())[:: 100]  # 1 % of the brain below zero (e.g. after bias correction)
    x.ravel()[negative] = -rng.uniform(1.0, 20.0, size=len(negative))
    clipped = np.clip(x, 0, None)
    q0, q98 = np.quantile(clipped, [0.0, 0.98])
    expected = np.clip((clipped - q0) / (q98 - q0), 0, 1)
    out = ScalePercentiled("image", floor=0.0, lower=0, upper=98)({"image": _img(x)})["image"].numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert float(np.abs(out[~brain]).max()) == 0.0  # background exactly 0: foreground = (x > 0) stays right
    without = ScalePercentiled("image", lower=0, upper=98)({"image": _img(x)})["image"].numpy()
    assert float(without[~brain].min()) > 0.01  # the defect: every background voxel lifted above 0


def test_percentile_on_nonzero_foreground_keeps_zero(rng):
    x = np.zeros((2, 10, 10, 4), np.float32)
    x[:, 2:8, 2:8] = rng.uniform(1, 100, size=(2, 6, 6, 4))
    out = ScalePercentiled("image", lower=None, upper=99, foreground="nonzero", clip=False)({"image": _img(x)})
    for c in range(2):
        p99 = np.quantile(x[c][x[c] != 0], 0.99)
        np.testing.assert_allclose(out["image"][c].numpy(), x[c] / p99, rtol=1e-5)
    assert float(out["image"][:, 0].abs().max()) == 0.0


def test_percentile_inside_mask_key(rng):
    x = rng.uniform(0, 10, size=(1, 8, 8, 8)).astype(np.float32)
    mask = np.zeros_like(x)
    mask[:, :4] = 1
    out = ScalePercentiled("image", lower=0, upper=100, foreground="foreground_mask", clip=False)(
        {"image": _img(x), "foreground_mask": _img(mask)}
    )
    lo, hi = x[mask > 0].min(), x[mask > 0].max()
    np.testing.assert_allclose(out["image"].numpy(), (x - lo) / (hi - lo), rtol=1e-5)


def test_percentile_errors():
    with pytest.raises(ValueError, match="percentiles"):
        ScalePercentiled("image", lower=50, upper=10)
    with pytest.raises(InputDataError, match="flat.nii: intensity percentiles are degenerate"):
        ScalePercentiled("image")({"image": _img(np.ones((1, 4, 4, 4)), "flat.nii")})
    with pytest.raises(InputDataError, match="no foreground voxels"):
        ScalePercentiled("image", foreground="nonzero")({"image": _img(np.zeros((1, 4, 4, 4)))})


def test_slice_minmax_per_axial_slice(rng):
    x = rng.normal(size=(1, 6, 5, 3)).astype(np.float32)
    x[..., 2] = 7.0  # constant slice
    out = SliceMinMaxd("image", axis=-1)({"image": _img(x)})["image"].numpy()
    for z in range(2):
        s = x[0, :, :, z]
        np.testing.assert_allclose(out[0, :, :, z], (s - s.min()) / (s.max() - s.min()) * 2 - 1, atol=1e-6)
    assert np.all(out[0, :, :, 2] == -1.0)
    two_d = SliceMinMaxd("image", b_min=0, b_max=1)({"image": _img(x[..., 0])})["image"].numpy()
    assert two_d.min() == 0.0 and two_d.max() == 1.0


def test_monai_mask_intensity_equals_the_former_apply_mask():
    """ApplyMaskd (ours, x * (mask > 0)) was replaced by MONAI's MaskIntensityd: the same numbers, meta kept."""
    from monai.transforms import MaskIntensityd

    rng = np.random.default_rng(0)
    x = _img(rng.normal(size=(2, 6, 5, 4)).astype(np.float32))
    m = (rng.random((1, 6, 5, 4)) > 0.4).astype(np.float32) * rng.uniform(0.5, 2, (1, 6, 5, 4)).astype(np.float32)
    masking = MaskIntensityd("image", mask_key="foreground_mask")
    out = masking({"image": x, "foreground_mask": _img(m, "m.nii")})["image"]
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x) * (m > 0))
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == x.meta["filename_or_obj"]
    with pytest.raises(InputDataError, match="m.nii: spatial shape"):  # the check that names files stays ours
        CheckInputd("image", spatial_dims=3, mask_keys=("foreground_mask",))(
            {"image": x, "foreground_mask": _img(np.ones((1, 6, 5, 3)), "m.nii")})


def test_check_input_rejects_bad_volumes():
    check = CheckInputd("image", spatial_dims=3, num_channels=1, mask_keys=("label",))
    good = {"image": _img(np.arange(64.0).reshape(1, 4, 4, 4)), "label": _img(np.zeros((1, 4, 4, 4)))}
    assert check(good)["image"].shape == (1, 4, 4, 4)
    with pytest.raises(InputDataError, match="vol.nii.gz: expected a 3-D image"):
        check({"image": _img(np.ones((1, 4, 4)))})
    with pytest.raises(InputDataError, match="expected 1 channel.s., found 2"):
        check({"image": _img(np.arange(128.0).reshape(2, 4, 4, 4))})
    nan = np.arange(64.0).reshape(1, 4, 4, 4)
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(InputDataError, match="1 NaN"):
        check({"image": _img(nan)})
    with pytest.raises(InputDataError, match="empty"):
        check({"image": _img(np.zeros((1, 4, 4, 4)))})
    with pytest.raises(InputDataError, match="lab.nii: spatial shape"):
        check({"image": good["image"], "label": _img(np.zeros((1, 4, 4, 3)), "lab.nii")})


def test_foreground_crop_keeps_every_nonzero_voxel(rng):
    """The bundles crop with MONAI CropForegroundd on the brain mask; nothing inside the mask may be lost."""
    x = rng.uniform(1, 2, size=(1, 20, 18, 16)).astype(np.float32)
    mask = np.zeros_like(x)
    mask[0, 3:9, 5:15, 2:4] = 1
    mask[0, 12, 1, 10] = 1
    out = CropForegroundd(["image", "foreground_mask"], source_key="foreground_mask", margin=1)(
        {"image": _img(x), "foreground_mask": _img(mask)}
    )
    assert float(out["foreground_mask"].sum()) == float(mask.sum())
    assert float((out["image"] * out["foreground_mask"]).sum()) == pytest.approx(float((x * mask).sum()), rel=1e-6)
    assert tuple(out["image"].shape[1:]) == (12, 16, 11)  # box x 3..12, y 1..14, z 2..10, + margin 1


def test_intensity_transforms_keep_transform_history_for_inversion():
    from monai.transforms import Orientationd

    x = MetaTensor(torch.rand(1, 4, 5, 6) + 0.1, affine=torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0])))
    d = Orientationd("image", axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))({"image": x})
    for transform in (ScalePercentiled("image"), SliceMinMaxd("image", axis=-1)):
        out = transform(d)["image"]
        assert len(out.applied_operations) == 1 and out.applied_operations[0]["class"] == "Orientation"


def test_label_map_uses_the_threshold_when_set_else_the_method_mask():
    from diffusion_anomaly.transforms import LabelMapd, UnpackInfererOutputd

    score = torch.tensor([[[0.1, 0.6], [0.9, 0.3]]])
    mask = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])

    def label(threshold):
        item = UnpackInfererOutputd()({"pred": {"pred": score, "mask": mask}})
        assert item["request_id"]  # a server request gets its own output folder
        return LabelMapd(threshold)(item)["pred"]

    assert label(0.5).tolist() == [[[0, 1], [1, 0]]]  # the calibrated threshold wins
    assert label(None).tolist() == [[[1, 0], [0, 0]]]  # else the method's own mask


def test_mask_bounding_box_is_monais_box_with_a_margin():
    from diffusion_anomaly.data import mask_bounding_box

    rng = np.random.default_rng(3)
    for margin in (0, 2, 7):
        mask = np.zeros((20, 17, 9), bool)
        mask[rng.integers(0, 20, 5), rng.integers(0, 17, 5), rng.integers(0, 9, 5)] = True
        nz = np.nonzero(mask)
        expected = tuple(slice(max(int(i.min()) - margin, 0), min(int(i.max()) + 1 + margin, n))
                         for i, n in zip(nz, mask.shape))
        assert mask_bounding_box(mask, margin) == expected
    with pytest.raises(ValueError, match="empty"):
        mask_bounding_box(np.zeros((4, 4, 4)))


def test_spacing_keeps_plain_request_values_and_resamples_like_monai(tmp_path):
    """MONAI Label requests carry the file name under ``image_path``; MONAI 1.6.1's Spacingd tries to update it as
    a metadata dictionary (HTTP 500 on every request). Ours sets such values aside and resamples identically."""
    from monai.transforms import LoadImaged
    from monai.transforms import Spacingd as MonaiSpacingd

    from diffusion_anomaly.io import save_nifti
    from diffusion_anomaly.transforms import Spacingd

    rng = np.random.default_rng(0)
    save_nifti(rng.uniform(0, 1, (20, 24, 3)).astype(np.float32), np.diag([0.78, 0.78, 1.0, 1.0]),
               tmp_path / "scan.nii.gz")
    loaded = LoadImaged("image", ensure_channel_first=True)({"image": str(tmp_path / "scan.nii.gz")})
    request = dict(loaded, image_path=str(tmp_path / "scan.nii.gz"), model="disyre")
    with pytest.raises(AttributeError, match="'str' object has no attribute 'update'"):
        MonaiSpacingd("image", pixdim=(1.0, 1.0, 0.0))(dict(request))  # the MONAI behaviour this works around
    out = Spacingd("image", pixdim=(1.0, 1.0, 0.0))(dict(request))
    expected = MonaiSpacingd("image", pixdim=(1.0, 1.0, 0.0))(dict(loaded))
    assert out["image_path"] == request["image_path"] and out["model"] == "disyre"
    assert tuple(out["image"].shape) == tuple(expected["image"].shape) == (1, 16, 19, 3)
    torch.testing.assert_close(out["image"].as_tensor(), expected["image"].as_tensor())
    assert out["image"].pixdim.tolist() == pytest.approx([1.0, 1.0, 1.0])
