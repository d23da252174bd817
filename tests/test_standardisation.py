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


# ---- histogram (piecewise-linear landmark) standardisation ---------------------------------------------------
STANDARD = [0.4, 0.6, 0.8, 1.0, 1.2, 1.3]  # at LANDMARK_PERCENTILES (2, 10, 25, 50, 75, 90)


def test_scan_and_learned_landmarks_by_hand():
    from diffusion_anomaly.standardisation import learn_landmarks, scan_landmarks

    values = np.arange(1, 101, dtype=float)  # percentiles of 1..100 with linear interpolation: 1 + 0.99 p
    expected = (1 + 0.99 * np.array([2, 10, 25, 50, 75, 90])) / 50.5
    np.testing.assert_allclose(scan_landmarks(np.concatenate([values, [0.0, -1.0]])), expected)
    np.testing.assert_allclose(learn_landmarks([values, 3 * values]), np.round(expected, 4))  # scale-free
    mixed = learn_landmarks([values, values**2])
    np.testing.assert_allclose(mixed, np.round((expected + scan_landmarks(values**2)) / 2, 4))
    with pytest.raises(ValueError, match="no training volumes"):
        learn_landmarks([])


def test_landmark_map_hits_the_landmarks_is_monotone_and_keeps_contrast_above_the_top():
    from diffusion_anomaly.standardisation import landmark_map

    scan = np.array([0.3, 0.5, 0.7, 1.0, 1.35, 1.6])
    standard = np.array(STANDARD)
    np.testing.assert_allclose(landmark_map(torch.tensor(scan), scan, standard).numpy(), standard, rtol=1e-6)
    u = torch.linspace(-0.5, 3.0, 300, dtype=torch.float64)
    y = landmark_map(u, scan, standard).numpy()
    assert y[0] == 0.0 and np.all(np.diff(y) >= 0)
    above = u.numpy() > scan[-1]
    np.testing.assert_allclose(y[above] - standard[-1], u.numpy()[above] - scan[-1], rtol=1e-9)  # slope 1
    # between two landmarks: the straight line through them
    np.testing.assert_allclose(landmark_map(torch.tensor([0.85]), scan, standard).numpy(), [0.9])
    with pytest.raises(ValueError, match="degenerate"):
        landmark_map(u, np.array([0.3, 0.5, 0.5, 1.0, 1.2, 1.4]), standard)


def test_histogram_standardisation_puts_a_contrast_warped_scan_on_the_same_landmarks():
    """Two scans of one anatomy whose tissue contrast differs by a monotone curve (gamma 1.6) land on the same
    standard intensities at every landmark percentile; the median-only standardisation leaves them apart."""
    from diffusion_anomaly.transforms import intensity_scaling

    rng = np.random.default_rng(5)
    brain = torch.zeros(1, 24, 24, 12)
    brain[:, 3:21, 3:21, 2:10] = 1
    inside = brain[0] > 0
    tissue = np.concatenate([rng.normal(60, 6, 800), rng.normal(100, 8, 1100), rng.normal(140, 8, 692)])
    a = torch.zeros(1, 24, 24, 12)
    a[0][inside] = torch.as_tensor(rng.permutation(np.clip(tissue, 1, None)), dtype=torch.float32)
    b = a.clone()
    b[0][inside] = 255 * (a[0][inside] / 255) ** 1.6
    q = [2, 10, 25, 50, 75, 90]

    def landmarks_after(mode, img):
        t = intensity_scaling("disyre", mode, b_min=0.0, b_max=1.0, upper=2.5, landmarks=STANDARD)
        out = t({"image": MetaTensor(img), "foreground_mask": brain})["image"][0][inside].numpy()
        return np.percentile(2.5 * out, q)  # back to brain-median units

    np.testing.assert_allclose(landmarks_after("histogram", a), STANDARD, atol=2e-3)
    np.testing.assert_allclose(landmarks_after("histogram", b), STANDARD, atol=2e-3)
    gap = np.abs(landmarks_after("standard", a) - landmarks_after("standard", b)).max()
    assert gap > 0.1
    # background stays at b_min
    out = intensity_scaling("synomaly", "histogram", b_min=-1.0, b_max=1.0, landmarks=STANDARD)(
        {"image": MetaTensor(b), "foreground_mask": brain})["image"]
    assert float(out[0][~inside].max()) == -1.0 and float(out[0][~inside].min()) == -1.0


def test_histogram_settings_fail_with_the_setting_or_file_named(tmp_path):
    from diffusion_anomaly.transforms import intensity_scaling

    with pytest.raises(ValueError, match="intensity_landmarks"):
        intensity_scaling("disyre", "histogram")
    with pytest.raises(ValueError, match="intensity_landmarks.*strictly increasing"):
        intensity_scaling("disyre", "histogram", landmarks=[0.4, 0.6, 0.6, 1.0, 1.2, 1.3])
    with pytest.raises(ValueError, match="intensity_landmarks.*6"):
        intensity_scaling("disyre", "histogram", landmarks=[0.4, 1.0, 1.3])
    missing = tmp_path / "nowhere.json"
    with pytest.raises(ValueError, match="nowhere.json"):
        intensity_scaling("disyre", "histogram", landmarks=str(missing))
    broken = tmp_path / "broken.json"
    broken.write_text('{"landmarks": [1, 2]}')
    with pytest.raises(ValueError, match="broken.json"):
        intensity_scaling("disyre", "histogram", landmarks=str(broken))
    # the other modes never read the file
    intensity_scaling("disyre", "standard", landmarks=str(missing))
    flat = {"image": MetaTensor(torch.full((1, 4, 4, 4), 7.0), meta={"filename_or_obj": "flat.nii.gz"}),
            "foreground_mask": torch.ones(1, 4, 4, 4)}
    with pytest.raises(InputDataError, match="flat.nii.gz.*degenerate"):
        intensity_scaling("disyre", "histogram", landmarks=STANDARD)(flat)


def test_every_bundle_ships_the_same_landmarks_learned_from_the_training_split():
    import json
    from pathlib import Path

    from diffusion_anomaly.standardisation import LANDMARK_PERCENTILES, check_landmarks

    root = Path(__file__).resolve().parents[1] / "bundles"
    files = {b: json.loads((root / b / "models/intensity_landmarks.json").read_text())
             for b in ("anofpdm", "disyre", "synomaly", "intensity_baseline")}
    first = files["disyre"]
    for bundle, content in files.items():
        assert content["landmarks"] == first["landmarks"], bundle
        assert tuple(content["percentiles"]) == LANDMARK_PERCENTILES
        check_landmarks(content["landmarks"])
    assert first["landmarks"][3] == 1.0  # the median landmark, by construction
    datalist = json.loads((root.parent / "shared/demo_data/in_domain_benchmark.json").read_text())
    assert first["learned_from"] == [entry["case"] for entry in datalist["training"]]
    # and they are what the training split gives (select-standardisation --landmarks-out wrote them)
    from diffusion_anomaly.data import load_datalist
    from diffusion_anomaly.data.checks import load_volume
    from diffusion_anomaly.standardisation import learn_landmarks

    foregrounds = []
    for entry in load_datalist(root.parent / "shared/demo_data/in_domain_benchmark.json", "training",
                               keys=("image", "foreground_mask")):
        x, brain = load_volume(entry["image"])[0], load_volume(entry["foreground_mask"])[0] > 0
        foregrounds.append(x[brain])
    assert learn_landmarks(foregrounds) == first["landmarks"]
