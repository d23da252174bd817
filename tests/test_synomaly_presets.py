"""Synomaly's liver-CT and ultrasound presets as config overlays, through the real bundle CLI on small
synthetic data shaped like the real sets (LiTS: HU volume + liver/tumour masks; ultrasound: 2-D PNG frames)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_anomaly.io import save_nifti
from diffusion_anomaly.samplers import RandAxialSlicesd

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "synomaly" / "configs"
ENV = dict(os.environ, OMP_NUM_THREADS="1")
QUICK = ["--preset", "demo", "--max_epochs", "1", "--iterations_per_epoch", "2", "--volumes_per_batch", "2"]


def run(configs, *args):
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str([str(CONFIGS / c) for c in configs]),
           *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def ct_case(folder: Path, name: str, tumour: bool, seed: int) -> dict:
    """A 96x96x12 'abdomen' in HU: body 40 HU in air, liver 90 HU on slices 2..9, a -20 HU tumour on 5..6."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:96, :96]
    body = ((yy - 48) ** 2 / 40 ** 2 + (xx - 48) ** 2 / 44 ** 2) < 1
    liver2d = ((yy - 40) ** 2 + (xx - 35) ** 2) < 20 ** 2
    image = np.where(body, 40.0, -1000.0)[..., None].repeat(12, -1) + rng.normal(0, 5, (96, 96, 12))
    liver = np.zeros((96, 96, 12), np.uint8)
    liver[..., 2:10] = liver2d[..., None]
    image[liver > 0] += 50
    label = np.zeros_like(liver)
    if tumour:
        label[30:40, 30:40, 5:7] = 1
        image[label > 0] = -20
    affine = np.diag([3.0, 3.0, 5.0, 1.0])
    folder.mkdir(parents=True, exist_ok=True)
    for key, arr in (("image", image.astype(np.float32)), ("region", liver), ("label", label)):
        save_nifti(arr, affine, folder / f"{name}_{key}.nii.gz")
    return {key: f"{name}_{key}.nii.gz" for key in ("image", "region", "label")} | {"case": name}


def test_healthy_slice_sampler_skips_tumour_slices_and_small_livers():
    region = torch.zeros(1, 8, 8, 6)
    region[..., 1:5] = 1
    region[:, :2, :2, 1] = 0  # slice 1 keeps 60 of 64 liver pixels
    region[:, :, :, 2] = 0
    region[:, :3, :3, 2] = 1  # slice 2 has only 9
    label = torch.zeros_like(region)
    label[0, 4, 4, 3] = 1  # slice 3 has tumour
    sampler = RandAxialSlicesd(["region", "label"], source_key="region", num_samples=50, min_pixels=10,
                               exclude_key="label")
    sampler.set_random_state(0)
    drawn = {s["slice_index"] for s in sampler({"region": region, "label": label})}
    assert drawn == {1, 4}


@pytest.mark.slow
def test_liver_ct_overlay_trains_with_liver_region_and_infers(tmp_path):
    data = tmp_path / "lits"
    datalist = {"training": [ct_case(data, f"train{i}", tumour=i == 0, seed=i) for i in range(2)],
                "validation": [ct_case(data, "val0", tumour=False, seed=5)],
                "test": [ct_case(data, "test0", tumour=True, seed=9)]}
    (data / "datalist.json").write_text(json.dumps(datalist))
    common = ["--datalist", data / "datalist.json"]
    run(["train.json", "train_liver_ct.json"], *common, *QUICK, "--output_dir", tmp_path / "runs",
        "--ckpt_dir", tmp_path / "models", "--min_liver_pixels", "50")
    out = tmp_path / "out"
    run(["inference.json", "inference_liver_ct.json"], *common, "--checkpoint", tmp_path / "models/model.pt",
        "--output_dir", out, "--max_stages", "2")
    import nibabel as nib
    pred = nib.load(str(out / "test0" / "pred.nii.gz"))
    assert pred.shape == (96, 96, 12)
    assert (out / "test0" / "overlay.png").stat().st_size > 0

    # the validation grid search runs on the preset (its preprocessing, its liver masks) and writes its choice as
    # an overlay in its output folder; the bundle's configs stay as they are
    calibration = tmp_path / "calibration"
    before = {p.name: p.read_text() for p in CONFIGS.glob("*.json")}
    run(["inference.json", "inference_liver_ct.json", "calibrate.json"], *common, "--checkpoint",
        tmp_path / "models/model.pt", "--calibration_dir", calibration, "--calibration_stride", "1",
        "--calibration_min_object_fraction", "0.1", "--max_stages", "2",
        "--calibration_grid", "{'noise_level': [100, 150], 'blur_kernel': [3], 'threshold': [0.1], 'fusion': ['mask']}")
    report = json.loads((calibration / "calibration_report.json").read_text())
    assert [row["noise_level"] for row in report["grid"]] == [100, 150]
    assert all(row["slices"] > 0 and row["lesion_pixels"] > 0 and 0 <= row["mean_dice"] <= 1 for row in report["grid"])
    best = max(report["grid"], key=lambda row: row["mean_dice"])
    overlay = json.loads((calibration / "calibrated.json").read_text())
    assert overlay == {"noise_level": best["noise_level"], "blur_kernel": 3, "threshold": 0.1, "fusion": "mask"}
    assert {p.name: p.read_text() for p in CONFIGS.glob("*.json")} == before
    np.testing.assert_allclose(pred.affine, np.diag([3.0, 3.0, 5.0, 1.0]))
    assert np.isfinite(pred.get_fdata()).all()


def test_liver_ct_training_batches_carry_the_liver_as_blob_region():
    from monai.bundle import ConfigParser
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "train_liver_ct.json")])
    parser["bundle_root"] = str(REPO / "bundles" / "synomaly")
    transforms = parser.get_parsed_content("train#slice_transforms")
    assert parser.get_parsed_content("train#noise").region == "mask"
    keys = [t.keys for t in transforms if hasattr(t, "keys")]
    assert any("region" in k for k in keys)


@pytest.mark.slow
def test_ultrasound_overlay_trains_and_infers_on_png_frames(tmp_path):
    data = tmp_path / "us"
    data.mkdir()
    rng = np.random.default_rng(0)
    entries = []
    for i in range(3):
        frame = np.clip(rng.normal(90, 20, (70, 90)), 0, 255).astype(np.uint8)
        Image.fromarray(frame).save(data / f"frame{i}.png")
        entries.append({"image": f"frame{i}.png", "case": f"frame{i}"})
    (data / "datalist.json").write_text(json.dumps({"training": entries[:2], "test": entries[2:]}))
    common = ["--datalist", data / "datalist.json"]
    run(["train.json", "train_ultrasound.json"], *common, *QUICK, "--output_dir", tmp_path / "runs",
        "--ckpt_dir", tmp_path / "models")
    out = tmp_path / "out"
    run(["inference.json", "inference_ultrasound.json"], *common, "--checkpoint", tmp_path / "models/model.pt",
        "--output_dir", out, "--max_stages", "2")
    import nibabel as nib
    pred = nib.load(str(out / "frame2" / "pred.nii.gz")).get_fdata()
    assert pred.shape == (90, 70)  # MONAI's PNG reader puts width first; the map is on the input grid
    assert np.isfinite(pred).all()
    assert (out / "frame2" / "overlay.png").stat().st_size > 0
    assert json.loads((out / "frame2" / "stages.json").read_text())["stages"] in (1, 2)


def _augmentation(*overlays: str):
    from monai.bundle import ConfigParser
    from monai.transforms import Compose
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), *[str(CONFIGS / o) for o in overlays]])
    parser["bundle_root"] = str(REPO / "bundles" / "synomaly")
    return parser.get_parsed_content("train#augmentation"), Compose


def test_default_training_augmentation_is_the_papers_flips():
    transforms, _ = _augmentation()
    assert [type(t).__name__ for t in transforms] == ["RandFlipd", "RandFlipd"]


def test_anatomy_augmentation_keeps_the_background_at_minus_one_and_the_range():
    """The overlay augments in [0, 2] (so zero padding and multiplicative bias keep the background) and shifts
    back: outside the (moved) brain mask the slice is exactly -1, inside it stays in [-1, 1]."""
    transforms, compose = _augmentation("train_anatomy_augmentation.json")
    augment = compose(transforms).set_random_state(seed=0)
    yy, xx = np.mgrid[:64, :48]
    mask = (((yy - 32) / 26.0) ** 2 + ((xx - 24) / 19.0) ** 2 < 1).astype(np.float32)
    image = np.where(mask > 0, -0.6 + 0.5 * np.cos(xx / 3.0) * np.sin(yy / 5.0), -1.0).astype(np.float32)
    changed = 0
    for _ in range(12):
        out = augment({"image": torch.from_numpy(image[None]), "foreground_mask": torch.from_numpy(mask[None])})
        x, m = np.asarray(out["image"][0]), np.asarray(out["foreground_mask"][0])
        assert x.shape == image.shape and set(np.unique(m)) <= {0.0, 1.0}
        np.testing.assert_array_equal(x[m == 0], -1.0)
        assert x.min() >= -1.0 and x.max() <= 1.0
        changed += not np.allclose(x, image, atol=1e-4)
    assert changed >= 8
