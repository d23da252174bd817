"""N4 bias-field correction (diffusion_anomaly.bias_field, transforms.CorrectBiasFieldd): a known smooth
multiplicative field over a two-tissue phantom is recovered and removed."""

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, MetaTensor
from monai.transforms import Compose, RandFlipd

from diffusion_anomaly.bias_field import n4_bias_field
from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.transforms import standardise
from diffusion_anomaly.transforms.standardise import (
    BiasCorrectedScalingd,
    CorrectBiasFieldd,
    StandardiseIntensityd,
    intensity_scaling,
)


def _phantom(shape=(48, 48, 32), seed=0):
    """Ellipsoidal 'brain': white matter 1.0 inside, grey matter 0.6 in a rim, 2 % noise; a linear field from
    0.7 to 1.3 along the first axis (what a receive coil does to the centre vs the rim is smoother still)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid**2).sum(0))
    brain = radius < 0.9
    tissue = np.where(radius < 0.6, 1.0, 0.6) * brain
    clean = tissue * (1 + 0.02 * rng.standard_normal(shape)) * brain
    field = 1.0 + 0.3 * grid[0]
    return (clean * field).astype(np.float32), brain, field, tissue


def _white_matter_spread(image, tissue):
    wm = image[tissue == 1.0]
    return float(np.percentile(wm, 95) / np.percentile(wm, 5))


def test_n4_recovers_a_linear_field_up_to_scale():
    biased, brain, field, tissue = _phantom()
    estimate = n4_bias_field(biased, brain, spacing=(2.0, 2.0, 2.0), shrink=2)
    assert estimate.shape == biased.shape and estimate.dtype == np.float32
    assert np.median(estimate[brain]) == pytest.approx(1.0, abs=1e-3)
    truth = field / np.median(field[brain])
    # the field has a 1.86-fold range (0.7 -> 1.3); the estimate is within 4 % of it everywhere in the brain
    assert np.abs(estimate[brain] / truth[brain] - 1).max() < 0.04
    # white matter p95 / p5: 1.31 with the field, 1.068 with the true field divided out (the 2 % noise)
    assert _white_matter_spread(biased, tissue) > 1.3
    assert _white_matter_spread(biased / estimate, tissue) < 1.08


def test_n4_leaves_an_unbiased_image_nearly_unchanged_and_works_in_2d():
    _, brain, _, tissue = _phantom()
    clean = (tissue * brain).astype(np.float32)
    assert np.abs(n4_bias_field(clean, brain, shrink=2)[brain] - 1).max() < 0.01
    biased, brain, field, tissue = _phantom()
    mid = biased.shape[2] // 2
    estimate = n4_bias_field(biased[:, :, mid], brain[:, :, mid])
    assert estimate.shape == biased.shape[:2]
    assert _white_matter_spread(biased[:, :, mid] / estimate, tissue[:, :, mid]) < 1.08


def test_n4_needs_a_foreground_to_fit():
    with pytest.raises(ValueError, match="positive foreground voxels"):
        n4_bias_field(np.ones((32, 32), np.float32), np.zeros((32, 32), bool))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        n4_bias_field(np.ones((4, 32, 32, 8), np.float32), np.ones((4, 32, 32, 8), bool))


def test_transform_corrects_inside_the_mask_keeps_the_background_and_meta():
    biased, brain, _, tissue = _phantom()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    data = {"image": MetaTensor(torch.from_numpy(biased)[None], affine=torch.as_tensor(affine),
                                meta={"filename_or_obj": "scan.nii.gz"}),
            "foreground_mask": torch.from_numpy(brain)[None]}
    out = CorrectBiasFieldd("image", shrink=2)(data)
    image = out["image"]
    assert isinstance(image, MetaTensor) and image.meta["filename_or_obj"] == "scan.nii.gz"
    assert torch.equal(image[0][~torch.from_numpy(brain)], data["image"][0][~torch.from_numpy(brain)])
    assert _white_matter_spread(image[0].numpy(), tissue) < 1.08
    empty = dict(data, foreground_mask=torch.zeros_like(data["foreground_mask"]))
    with pytest.raises(InputDataError, match="scan.nii.gz.*bias field"):
        CorrectBiasFieldd("image")(empty)


def test_intensity_scaling_bias_field_setting():
    step = intensity_scaling("disyre", "standard", bias_field="n4")
    assert isinstance(step, BiasCorrectedScalingd) and isinstance(step.correction, CorrectBiasFieldd)
    assert isinstance(step.scaling, StandardiseIntensityd)
    assert isinstance(intensity_scaling("disyre", "standard"), StandardiseIntensityd)
    biased, brain, _, _ = _phantom((24, 24, 16))
    data = {"image": torch.from_numpy(biased)[None], "foreground_mask": torch.from_numpy(brain)[None]}
    chained = step.scaling(CorrectBiasFieldd("image")(data))["image"]  # the two steps one after the other
    assert torch.equal(step(data)["image"], chained)
    with pytest.raises(ValueError, match="bias_field"):
        intensity_scaling("disyre", "standard", bias_field="n3")


def test_training_cache_keeps_the_bias_corrected_volume(monkeypatch):
    """The field is fitted once per training volume: CacheDataset caches up to the first random transform, and
    the N4 step (one deterministic transform, not a Randomizable Compose) is before it."""
    biased, brain, _, _ = _phantom((24, 24, 16))
    fits = []

    def counting_n4(*args, **kwargs):
        fits.append(1)
        return np.ones(args[0].shape, np.float32)

    monkeypatch.setattr(standardise, "n4_bias_field", counting_n4)
    data = [{"image": torch.from_numpy(biased)[None], "foreground_mask": torch.from_numpy(brain)[None]}]
    chain = Compose([intensity_scaling("disyre", "standard", bias_field="n4"),
                     RandFlipd("image", prob=0.5, spatial_axis=0)])
    dataset = CacheDataset(data, chain, progress=False)
    expected = intensity_scaling("disyre", "standard")(data[0])["image"]
    for _ in range(3):
        out = dataset[0]["image"]
        assert torch.allclose(out, expected) or torch.allclose(out, expected.flip(1))
    assert len(fits) == 1


def test_coil_field_is_the_exp_of_a_seeded_polynomial():
    from diffusion_anomaly.cli.select_standardisation import coil_field

    constant = coil_field((6, 5, 4), np.random.default_rng(0), order=0)
    assert np.allclose(constant, constant[0, 0, 0]) and 0.6 < constant[0, 0, 0] < 1.65  # exp(U(-0.5, 0.5))
    field = coil_field((16, 12, 8), np.random.default_rng(1))
    assert (field > 0).all() and np.array_equal(field, coil_field((16, 12, 8), np.random.default_rng(1)))
    # a cubic in x alone is present: the field is not separable into a constant
    assert field.std() / field.mean() > 0.05


@pytest.mark.slow  # 20 N4 fits and three painted lesions on a 96 x 96 x 64 phantom: about 15 s
def test_selection_prefers_n4_on_coil_fields_among_fits_that_keep_the_lesion_contrast():
    from diffusion_anomaly.cli.select_standardisation import bias_field_report

    _, brain, _, tissue = _phantom(shape=(96, 96, 64))
    clean = (tissue * brain).astype(np.float32)
    report = bias_field_report([("phantom", clean, brain)], iqr=0.4, seed=3)
    rows = report["candidates"]
    assert rows["none"]["per_case"]["phantom: as acquired"] == 0.0
    assert rows["none"]["lesion_contrast_kept"] == 1.0
    distance = {name: row["distance"] for name, row in rows.items()}
    # every N4 fit removes most of the coil fields; the finer the grid, the more
    assert distance["none"] > distance["n4 (2 levels)"] > distance["n4 (3 levels)"] > distance["n4 (4 levels)"]
    # but 4 levels (a control point every 12 voxels here) takes up a fifth of the painted lesions' contrast,
    # so the rule (keep >= 97 %) picks 3
    assert rows["n4 (4 levels)"]["lesion_contrast_kept"] < 0.9
    assert rows["n4 (3 levels)"]["lesion_contrast_kept"] >= 0.97
    assert report["best"] == "n4 (3 levels)"


def test_every_diffusion_bundle_corrects_the_bias_field_in_training_and_inference():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "bundles"
    for bundle in ("anofpdm", "disyre", "synomaly"):
        for config in ("inference", "train"):
            assert json.loads((root / bundle / "configs" / f"{config}.json").read_text())["bias_field"] == "n4"
    assert json.loads((root / "intensity_baseline/configs/inference.json").read_text())["bias_field"] == "none"
    constants = json.loads((root / "anofpdm/models/constants.json").read_text())
    assert constants["settings"]["bias_field"] == "n4"
