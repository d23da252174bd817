"""Calibration (each bundle's configs/calibrate.json): settings chosen on validation data, written as a config
overlay through MONAI's config API."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from diffusion_anomaly.calibration import SettingSearch, choose_thr_cls, write_config_overlay
from diffusion_anomaly.inferers import DisyreInferer, SynomalyInferer
from diffusion_anomaly.inferers.anofpdm import CONSTANT_SETTINGS

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def bundle_config(bundle, *names):
    parser = ConfigParser()
    parser.read_config([str(REPO / "bundles" / bundle / "configs" / n) for n in names])
    parser["bundle_root"] = str(REPO / "bundles" / bundle)
    return parser


def test_overlay_is_merged_after_the_bundle_config(tmp_path):
    overlay = write_config_overlay(tmp_path / "calibrated.json", {"noise_level": 150, "fusion": "difference"})
    parser = bundle_config("synomaly", "inference.json", str(overlay))
    assert (parser["noise_level"], parser["fusion"], parser["blur_kernel"]) == (150, "difference", 3)
    assert json.loads(overlay.read_text()) == {"noise_level": 150, "fusion": "difference"}
    assert oct(overlay.stat().st_mode & 0o777) != oct(0o600)  # readable like a file open() makes


def test_a_failed_overlay_write_keeps_the_old_overlay(tmp_path, monkeypatch):
    path = write_config_overlay(tmp_path / "calibrated.json", {"scoring": "healing"})

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ConfigParser, "export_config_file", disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_config_overlay(path, {"scoring": "ensemble"})
    assert json.loads(path.read_text()) == {"scoring": "healing"}
    assert [p.name for p in tmp_path.iterdir()] == ["calibrated.json"]
    with pytest.raises(ValueError, match="must end in .json, .yaml or .yml"):
        write_config_overlay(tmp_path / "calibrated.txt", {"scoring": "healing"})


class Inferer:
    def __init__(self, a=0, b="x"):
        self.a, self.b, self.nfe = a, b, 0


def test_search_keeps_the_best_combination_and_the_first_of_ties(tmp_path):
    score = {(1, "x"): 0.2, (1, "y"): 0.5, (2, "x"): 0.5, (2, "y"): 0.1}

    def objective(inferer, network):
        inferer.nfe += 3
        return {"dice": score[inferer.a, inferer.b], "other": 1.0}

    search = SettingSearch(Inferer, {"a": [1, 2], "b": ["x", "y"]}, objective, network=None, metric="dice",
                           output_dir=tmp_path / "cal")
    result = search.run()
    assert result["best"] == {"a": 1, "b": "y", "dice": 0.5, "other": 1.0, "nfe": 3}
    assert json.loads((tmp_path / "cal/calibrated.json").read_text()) == {"a": 1, "b": "y"}
    report = json.loads((tmp_path / "cal/calibration_report.json").read_text())
    assert [(r["a"], r["b"]) for r in report["grid"]] == [(1, "x"), (1, "y"), (2, "x"), (2, "y")]
    assert report["metric"] == "dice"


def test_search_settings_are_checked_before_any_evaluation(tmp_path):
    calls = []
    objective = lambda inferer, network: calls.append(1) or {"dice": 1.0}  # noqa: E731
    with pytest.raises(ValueError, match="calibration_grid.*does not take"):
        SettingSearch(Inferer, {"a": [1], "c": [2]}, objective, None, "dice", tmp_path).run()
    with pytest.raises(ValueError, match="calibration_grid.*one or more candidate"):
        SettingSearch(Inferer, {"a": []}, objective, None, "dice", tmp_path)
    with pytest.raises(KeyError, match="calibration_metric"):
        SettingSearch(Inferer, {"a": [1]}, objective, None, "ap", tmp_path).run()
    assert calls == [1] and not (tmp_path / "calibrated.json").exists()


def test_an_empty_validation_split_is_one_clear_error():
    from diffusion_anomaly.calibration import LesionValidationAP
    from diffusion_anomaly.training import LesionValidation

    validation = LesionValidation([], [], lambda d: d, lambda v, n: v, network=None)
    with pytest.raises(ValueError, match="'validation' split is empty"):
        LesionValidationAP(validation)


@pytest.mark.parametrize("bundle, inferer_type, grid", [
    ("disyre", DisyreInferer, {"scoring": ["ensemble", "healing"]}),
    ("synomaly", SynomalyInferer, {"noise_level": [100, 300], "blur_kernel": [3, 11], "threshold": [0.1, 0.45],
                                   "fusion": ["mask"]}),
])
def test_calibrate_configs_build_the_inference_inferer_for_every_candidate(bundle, inferer_type, grid):
    parser = bundle_config(bundle, "inference.json", "calibrate.json")
    parser["calibration_grid"] = grid
    search = parser.get_parsed_content("calibration")
    reference = bundle_config(bundle, "inference.json").get_parsed_content("inferer")
    attribute = {"blur_kernel": "kernel"}
    for setting in search.combinations():
        inferer = search.build(setting)
        assert isinstance(inferer, inferer_type)
        for key, value in setting.items():
            assert getattr(inferer, attribute.get(key, key)) == value
    unchanged = search.build({key: values[0] for key, values in grid.items()})
    assert unchanged.scheduler.num_train_timesteps == reference.scheduler.num_train_timesteps
    assert search.overlay_path == Path(parser.get_parsed_content("output_dir")) / "calibration/calibrated.json"


def test_anofpdm_calibration_derives_for_the_inference_settings():
    parser = bundle_config("anofpdm", "inference.json", "calibrate.json")
    parser["step_stride"] = 5
    derivation = parser.get_parsed_content("calibration")
    assert set(derivation.settings) == set(CONSTANT_SETTINGS)
    assert derivation.settings["step_stride"] == 5 and derivation.inferer.step_stride == 5
    assert all("label" not in entry for entry in derivation.entries)  # no pixel label reaches the derivation


def test_threshold_choice_minimises_misclassifications():
    healthy = np.linspace(0.990, 1.0, 201)
    unhealthy = np.array([0.90, 0.95, 0.985, 0.9905])
    thr = choose_thr_cls(healthy, unhealthy)
    errors = lambda c: int((unhealthy > c).sum() + (healthy < c).sum())  # noqa: E731
    grid = [np.quantile(healthy, q) for q in np.linspace(0.005, 0.095, 100)]
    assert errors(thr) == min(errors(c) for c in grid)
    assert thr == pytest.approx(grid[[errors(c) for c in grid].index(errors(thr))])


@pytest.mark.slow
def test_disyre_calibration_through_the_bundle_cli(tmp_path):
    """Both scores on painted validation lesions; the overlay it writes is what inference then runs with."""
    import torch

    from diffusion_anomaly.io import save_nifti
    from diffusion_anomaly.networks import diffusion_unet

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :56]
    brain = (((yy - 24) ** 2 / 20**2 + (xx - 28) ** 2 / 24**2) < 1)[..., None].repeat(6, -1)
    entries = []
    for i in range(2):
        image = (brain * rng.uniform(0.3, 1.0, brain.shape)).astype(np.float32)
        save_nifti(image, np.eye(4), tmp_path / f"v{i}.nii.gz")
        save_nifti(brain.astype(np.uint8), np.eye(4), tmp_path / f"v{i}_brain.nii.gz")
        entries.append({"case": f"v{i}", "image": f"v{i}.nii.gz", "foreground_mask": f"v{i}_brain.nii.gz"})
    (tmp_path / "datalist.json").write_text(json.dumps({"validation": entries, "test": entries[:1]}))
    torch.manual_seed(0)
    torch.save(diffusion_unet("disyre", "demo").state_dict(), tmp_path / "model.pt")
    configs = str([str(REPO / "bundles/disyre/configs" / n) for n in ("inference.json", "calibrate.json")])
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", configs, "--datalist",
           tmp_path / "datalist.json", "--checkpoint", tmp_path / "model.pt", "--output_dir", tmp_path / "out",
           "--roi_size", "[32, 32]", "--lesion_validation#radii", "[2.0, 4.0]",
           "--lesion_validation#slices_per_family", "1"]
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=REPO, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out/calibration/calibration_report.json").read_text())
    assert [row["scoring"] for row in report["grid"]] == ["ensemble", "healing"]
    assert all(0.0 <= row["ap"] <= 1.0 and len(row["per_family"]) == 5 for row in report["grid"])
    best = max(report["grid"], key=lambda row: row["ap"])["scoring"]
    overlay = tmp_path / "out/calibration/calibrated.json"
    assert json.loads(overlay.read_text()) == {"scoring": best}
    assert bundle_config("disyre", "inference.json", str(overlay)).get_parsed_content("inferer").scoring == best


def test_simulated_lesion_scores_equal_direct_computation():
    """SimulatedLesionDice on an inferer that returns the painted lesions themselves: Dice 1 and pixel AP 1; on
    one that ranks them lowest: Dice 0 and AP = the lesion prevalence inside the brain (the least an AP can be)."""
    from diffusion_anomaly.calibration import SimulatedLesionDice

    rng = np.random.default_rng(0)
    image = np.full((1, 72, 72, 4), -1.0, np.float32)  # DISYRE's lesion box is 64 px
    brain = np.zeros((1, 72, 72, 4), np.float32)
    brain[:, 4:68, 4:68, :] = 1
    image[brain > 0] = rng.uniform(-0.2, 0.6, int(brain.sum()))
    objective = SimulatedLesionDice([{"image": image, "foreground_mask": brain}], stride=1, min_object_fraction=0.1)
    _, labels, objects = objective.lesioned()
    lesion = labels.any(1, keepdim=True)
    assert lesion.sum() > 0

    def oracle(images, network):
        return {"pred": lesion.float(), "mask": lesion}

    def inverted(images, network):
        return {"pred": -lesion.float(), "mask": torch.zeros_like(lesion)}

    found = objective(oracle, None)
    assert found["mean_dice"] == 1.0 and found["pixel_ap"] == pytest.approx(1.0) and found["healthy_fpr"] == 0.0
    missed = objective(inverted, None)
    prevalence = float(lesion[objects].float().mean())
    assert missed["pixel_ap"] == pytest.approx(prevalence, rel=1e-6)
    assert missed["slices"] == 4 and missed["lesion_pixels"] == int(labels.sum())
