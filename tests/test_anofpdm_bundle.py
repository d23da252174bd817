"""AnoFPDM bundle: per-slice outputs through the CLI, and constants derived without any pixel label."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.inferers import read_constants
from diffusion_anomaly.io import save_nifti
from diffusion_anomaly.networks import diffusion_unet

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # runs the bundle CLI in subprocesses

ENV = dict(os.environ, OMP_NUM_THREADS="1")
QUICK = ["--t_max", "20", "--step_stride", "10"]


def brain_volume(rng, shape=(48, 56, 6)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    brain = ((yy - shape[0] / 2) ** 2 / 20**2 + (xx - shape[1] / 2) ** 2 / 24**2) < 1
    vol = (brain[..., None] * rng.uniform(0.3, 1.0, shape)).astype(np.float32)
    return vol, brain[..., None].repeat(shape[2], -1).astype(np.uint8)


@pytest.fixture()
def bundle(tmp_path):
    """A copy of the bundle's configs with small random weights and a datalist whose labels are corrupt files."""
    rng = np.random.default_rng(0)
    root = tmp_path / "anofpdm"
    shutil.copytree(REPO / "bundles/anofpdm/configs", root / "configs")
    (root / "models").mkdir()
    torch.manual_seed(0)
    net = diffusion_unet("anofpdm", "demo")
    for p in net.out.parameters():  # MONAI zero-initialises the output layer: make predictions depend on labels
        torch.nn.init.normal_(p, std=0.05)
    torch.save(net.state_dict(), root / "models/model.pt")
    data = tmp_path / "data"
    data.mkdir()
    entries = []
    for i in range(2):
        vol, brain = brain_volume(rng)
        save_nifti(vol, np.eye(4), data / f"v{i}.nii.gz")
        save_nifti(brain, np.eye(4), data / f"v{i}_brain.nii.gz")
        (data / f"v{i}_label.nii.gz").write_bytes(b"not a nifti")  # any attempt to read it fails
        entries.append({"case": f"v{i}", "image": f"v{i}.nii.gz", "foreground_mask": f"v{i}_brain.nii.gz",
                        "label": f"v{i}_label.nii.gz"})
    test = [{k: v for k, v in entries[0].items() if k != "label"}]
    (data / "datalist.json").write_text(json.dumps({"validation": entries, "test": test}))
    return root, data / "datalist.json"


def run(cmd):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=REPO, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_constants_come_from_image_level_labels_only_and_drive_inference(bundle, tmp_path):
    root, datalist = bundle
    calibration = tmp_path / "calibration"
    run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
         str([str(root / "configs/inference.json"), str(root / "configs/calibrate.json")]), "--datalist", datalist,
         "--calibration_dir", calibration, "--calibration_stride", "1", *QUICK])
    constants = json.loads((calibration / "constants.json").read_text())
    assert constants["validation"]["simulated_tumours"] and constants["validation"]["unhealthy_slices"] > 0
    assert constants["settings"]["t_max"] == 20 and constants["settings"]["step_stride"] == 10
    assert constants["validation"]["nfe_per_slice"] == 2 * 2  # two steps, two evaluations each
    assert len(constants["delta_max"]) == 1 and constants["delta_max"][0] > 0
    overlay = calibration / "calibrated.json"
    assert json.loads(overlay.read_text()) == {"constants_path": str(calibration / "constants.json")}
    assert not (root / "models/constants.json").exists()  # the bundle's own files are not touched

    # inference reads them (and refuses settings they were not derived with)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
           str([str(root / "configs/inference.json"), str(overlay)]), "--datalist", datalist, "--output_dir", out,
           *QUICK]
    run(cmd)
    slice_label = json.loads((out / "v0/slice_label.json").read_text())["slice_label"]
    end_step = json.loads((out / "v0/end_step.json").read_text())["end_step"]
    assert len(slice_label) == 6 and set(slice_label) <= {0, 1}
    assert all(e[0] in (-1, 0, 10) for e in end_step)
    assert (out / "v0/mask.nii.gz").exists() and (out / "v0/overlay.png").exists()
    with pytest.raises(InputDataError, match="step_stride=1"):
        read_constants(str(calibration / "constants.json"), step_stride=1)


def test_missing_constants_error_names_the_command(tmp_path):
    with pytest.raises(InputDataError, match=r"configs/calibrate\.json"):
        read_constants(str(tmp_path / "constants.json"))
