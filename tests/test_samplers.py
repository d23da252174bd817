"""Slice and patch samplers: never an empty slice, deterministic under a seed, patches centred on foreground."""

import pytest
import torch

from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.samplers import AxialSlicesd, RandAxialSlicesd, RandForegroundPatchd, nonempty_slice_range


def _volume():
    mask = torch.zeros(1, 8, 8, 12)
    mask[0, 2:6, 2:6, 3:9] = 1
    mask[0, :, :, 5] = 0  # a gap inside the range
    image = torch.arange(8 * 8 * 12, dtype=torch.float32).reshape(1, 8, 8, 12)
    return {"image": image, "foreground_mask": mask, "subject": "s1"}


def test_nonempty_slice_range():
    assert nonempty_slice_range(_volume()["foreground_mask"]) == (3, 8)
    assert nonempty_slice_range(_volume()["foreground_mask"], axis=1) == (2, 5)
    with pytest.raises(ValueError, match="no non-zero"):
        nonempty_slice_range(torch.zeros(1, 3, 3, 3))


def test_random_slices_are_never_empty_and_seeded():
    sampler = RandAxialSlicesd(["image", "foreground_mask"], num_samples=200)
    sampler.set_random_state(3)
    out = sampler(_volume())
    assert len(out) == 200
    indices = {s["slice_index"] for s in out}
    assert indices == {3, 4, 6, 7, 8}  # all non-empty slices drawn, the gap (5) never
    for s in out:
        assert s["image"].shape == (1, 8, 8) and float(s["foreground_mask"].sum()) > 0 and s["subject"] == "s1"
        assert torch.equal(s["image"], _volume()["image"][..., s["slice_index"]])
    again = RandAxialSlicesd(["image", "foreground_mask"], num_samples=200)
    again.set_random_state(3)
    assert [s["slice_index"] for s in again(_volume())] == [s["slice_index"] for s in out]


def test_all_slices_in_order_with_stride():
    out = AxialSlicesd(["image", "foreground_mask"], stride=2)(_volume())
    assert [s["slice_index"] for s in out] == [3, 6, 8]


def test_empty_mask_error_names_case():
    v = _volume()
    v["foreground_mask"] = torch.zeros_like(v["foreground_mask"])
    with pytest.raises(InputDataError, match="case s1.*cannot sample slices"):
        RandAxialSlicesd(["image"], num_samples=2)(v)


def test_foreground_patch_is_centred_on_foreground_and_padded():
    image = torch.arange(40 * 30, dtype=torch.float32).reshape(1, 40, 30) + 1
    mask = torch.zeros(1, 40, 30)
    mask[0, 30:33, 10:12] = 1
    sampler = RandForegroundPatchd(["image", "foreground_mask"], patch_size=(16, 32))
    for seed in range(20):
        sampler.set_random_state(seed)
        out = sampler({"image": image, "foreground_mask": mask})
        assert out["image"].shape == (1, 16, 32) and out["foreground_mask"].shape == (1, 16, 32)
        assert float(out["foreground_mask"].sum()) == 6.0  # the whole foreground blob fits in every patch
        # width 30 < 32: one column of zero padding on each side
        assert float(out["image"][0, :, 0].abs().sum()) == 0.0 and float(out["image"][0, :, -1].abs().sum()) == 0.0
        r0 = out["patch_start"][0]
        assert torch.equal(out["image"][0, :, 1:31], image[0, r0 : r0 + 16])
