"""Shared intensity standardisation: references by hand, robustness to bright lesions, the transform."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.standardisation import tissue_reference, to_range
from diffusion_anomaly.transforms.standardise import StandardiseIntensityd


def test_median_reference_ignores_background_and_non_positive_voxels():
    values = np.array([0.0, 0.0, -3.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    assert tissue_reference(values, "median") == 30.0
    with pytest.raises(ValueError, match="no positive"):
        tissue_reference(np.zeros(5), "median")
    with pytest.raises(ValueError, match="reference"):
        tissue_reference(values, "mean")


def test_mode_reference_finds_the_dominant_tissue_peak():
    rng = np.random.default_rng(0)
    grey = rng.normal(100, 5, 20_000)
    white = rng.normal(150, 5, 60_000)  # the dominant class, as white matter on T1
    csf = rng.normal(40, 5, 10_000)
    assert tissue_reference(np.concatenate([grey, white, csf]), "mode") == pytest.approx(150, abs=3)


def test_references_barely_move_when_a_few_percent_of_the_brain_enhance():
    """Percentile scaling moves with bright voxels; the median and the mode hardly do."""
    rng = np.random.default_rng(1)
    brain = np.concatenate([rng.normal(100, 8, 40_000), rng.normal(150, 8, 60_000)])
    enhanced = brain.copy()
    enhanced[:4_000] = 2.5 * np.median(brain)  # 4 % of the brain after contrast agent
    for reference in ("median", "mode"):
        before, after = tissue_reference(brain, reference), tissue_reference(enhanced, reference)
        assert abs(after - before) / before < 0.03, reference
    p99_before, p99_after = np.percentile(brain, 99), np.percentile(enhanced, 99)
    assert (p99_after - p99_before) / p99_before > 1.0  # what a p99 scaling would follow


def test_to_range_maps_zero_and_upper_reference():
    x = torch.tensor([-5.0, 0.0, 50.0, 100.0, 300.0, 400.0])
    out = to_range(x, reference=100.0, upper=3.0, b_min=-1.0, b_max=1.0)
    expected = -1 + 2 * np.clip(np.array([0, 0, 50, 100, 300, 400]) / 300, 0, 1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    free = to_range(x, 100.0, 1.0, 0.0, 1.0, clip=False)
    assert float(free[-1]) == pytest.approx(4.0)


def test_transform_per_channel_with_the_brain_mask():
    image = torch.zeros(2, 6, 6, 4)
    brain = torch.zeros(1, 6, 6, 4)
    brain[:, 1:5, 1:5, 1:3] = 1
    image[0][brain[0] > 0] = torch.linspace(10, 40, int(brain.sum()))
    image[1][brain[0] > 0] = torch.linspace(100, 400, int(brain.sum()))
    item = {"image": MetaTensor(image, meta={"filename_or_obj": "case.nii.gz"}), "foreground_mask": brain}
    out = StandardiseIntensityd("image", upper=2.0)(item)["image"]
    for c, median in ((0, 25.0), (1, 250.0)):
        inside = out[c][brain[0] > 0]
        np.testing.assert_allclose(inside.numpy(), np.clip(image[c][brain[0] > 0].numpy() / (2 * median), 0, 1),
                                   rtol=1e-5)
        assert float(out[c][brain[0] == 0].abs().max()) == 0.0
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "case.nii.gz"
    with pytest.raises(InputDataError, match="case.nii.gz"):
        StandardiseIntensityd("image")({"image": MetaTensor(torch.zeros(1, 4, 4, 4),
                                                            meta={"filename_or_obj": "case.nii.gz"}),
                                        "foreground_mask": torch.ones(1, 4, 4, 4)})
    with pytest.raises(ValueError, match="reference"):
        StandardiseIntensityd("image", reference="p99")


def test_intensity_scaling_modes_of_each_bundle():
    from diffusion_anomaly.transforms import ScalePercentiled, SliceMinMaxd, intensity_scaling, range_change

    rng = np.random.default_rng(3)
    image = torch.as_tensor(rng.gamma(3.0, 40.0, size=(1, 10, 12, 6)).astype(np.float32))
    brain = torch.zeros(1, 10, 12, 6)
    brain[:, 2:8, 2:10, 1:5] = 1
    image = image * brain
    item = {"image": MetaTensor(image), "foreground_mask": brain}

    def run(t):
        return t(dict(item))["image"].numpy()

    paper = {
        "disyre": ScalePercentiled("image", lower=0.0, upper=98.0, floor=0.0),
        "synomaly": SliceMinMaxd("image", b_min=-1.0, b_max=1.0, axis=-1),
        "anofpdm": SliceMinMaxd("image", b_min=-1.0, b_max=1.0, axis=-1),
        "intensity_baseline": ScalePercentiled("image", lower=None, upper=99.0, foreground="foreground_mask",
                                               clip=False),
    }
    ranges = {"disyre": (0.0, 1.0), "synomaly": (-1.0, 1.0), "anofpdm": (-1.0, 1.0), "intensity_baseline": (0.0, 1.0)}
    for method, reference in paper.items():
        b_min, b_max = ranges[method]
        np.testing.assert_allclose(run(intensity_scaling(method, "paper", b_min=b_min, b_max=b_max)), run(reference))
        standard = run(intensity_scaling(method, "standard", b_min=b_min, b_max=b_max, upper=2.5))
        median = float(np.median(image[brain > 0].numpy()))
        expected = b_min + (b_max - b_min) * np.clip(image.numpy() / (2.5 * median), 0, 1)
        np.testing.assert_allclose(standard, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="intensity"):
        intensity_scaling("disyre", "zscore")
    with pytest.raises(ValueError, match="method"):
        intensity_scaling("vae", "paper")
    unit = {"image": torch.tensor([[[0.0, 0.25, 1.0]]])}
    np.testing.assert_allclose(range_change("standard")(dict(unit))["image"].numpy(), [[[-1.0, -0.5, 1.0]]])
    np.testing.assert_allclose(range_change("paper")(dict(unit))["image"].numpy(), [[[-1.0, -0.5, 1.0]]])
    shifted = {"image": torch.tensor([[[0.2, 0.4, 0.6]]])}  # paper: min-max per slice; standard: linear
    np.testing.assert_allclose(range_change("paper")(dict(shifted))["image"].numpy(), [[[-1.0, 0.0, 1.0]]], atol=1e-6)
    np.testing.assert_allclose(range_change("standard")(dict(shifted))["image"].numpy(), [[[-0.6, -0.2, 0.2]]],
                               atol=1e-6)
