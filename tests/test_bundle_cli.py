"""Every trainable bundle through the real MONAI bundle CLI: training killed and resumed, two-process DDP,
inference and evaluation with bad cases mixed in, a missing-weights error."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from diffusion_anomaly.io import save_nifti
from diffusion_anomaly.networks import diffusion_unet

pytestmark = pytest.mark.slow  # runs the bundle CLI in subprocesses

REPO = Path(__file__).resolve().parents[1]
QUICK_TRAIN = {
    "disyre": ["--volumes_per_batch", "1", "--slices_per_volume", "2", "--iterations_per_epoch", "2",
               "--val_interval", "100", "--warmup_steps", "1"],
    "synomaly": ["--volumes_per_batch", "1", "--slices_per_volume", "2", "--iterations_per_epoch", "2",
                 "--val_interval", "100"],
    "anofpdm": ["--volumes_per_batch", "1", "--slices_per_volume", "2", "--iterations_per_epoch", "2",
                "--val_interval", "100"],
}
QUICK_INFER = {"disyre": ["--roi_size", "[32, 32]"], "synomaly": ["--max_stages", "2"],
               "anofpdm": ["--t_max", "20", "--step_stride", "10", "--constants",
                           "{'thr_cls': 0.99, 'delta_max': [0.05]}"]}
MAPS = {"disyre": ("pred", "restoration"), "synomaly": ("pred", "restoration", "mask"), "anofpdm": ("pred", "mask")}
BUNDLES = sorted(QUICK_TRAIN)
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def configs(bundle, *names):
    return str([str(REPO / "bundles" / bundle / "configs" / n) for n in names])


def cli(bundle, names, *args, check=True, runner=("-m", "monai.bundle", "run")):
    cmd = [sys.executable, *runner, "--config_file", configs(bundle, *names), *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=ENV)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("bundle", BUNDLES)
def test_training_is_killed_and_resumes(bundle, tmp_path):
    runs, models = tmp_path / "runs", tmp_path / "models"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", configs(bundle, "train.json"),
           "--output_dir", str(runs), "--ckpt_dir", str(models), "--max_epochs", "50", *QUICK_TRAIN[bundle]]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    checkpoint = runs / "checkpoint.pt"
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)  # killed mid-training, without any chance to clean up
    proc.wait()
    saved = torch.load(checkpoint, weights_only=True)["trainer"]
    assert saved["iteration"] >= 2 and saved["iteration"] % 2 == 0
    assert not (models / "model.pt").exists()

    epochs_done = saved["iteration"] // 2
    result = cli(bundle, ["train.json"], "--output_dir", runs, "--ckpt_dir", models, "--max_epochs", epochs_done + 1,
                 *QUICK_TRAIN[bundle])
    log = result.stdout + result.stderr
    assert f"resumed from {checkpoint}: epoch {epochs_done}, iteration {saved['iteration']}" in log
    assert torch.load(checkpoint, weights_only=True)["trainer"]["iteration"] == saved["iteration"] + 2
    diffusion_unet(bundle, "demo").load_state_dict(torch.load(models / "model.pt", weights_only=True))
    assert any((runs / "tensorboard").iterdir())


@pytest.mark.parametrize("bundle", BUNDLES)
def test_multi_gpu_overlay_with_two_processes_on_cpu(bundle, tmp_path):
    cli(bundle, ["train.json", "multi_gpu_train.json"], "--output_dir", tmp_path / "runs", "--ckpt_dir",
        tmp_path / "models", "--max_epochs", "1", *QUICK_TRAIN[bundle],
        runner=("-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
                "-m", "monai.bundle", "run"))
    # the DDP-trained weights load into the network of the single-process inference config
    from monai.bundle import ConfigParser

    from diffusion_anomaly.networks import load_weights

    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs/inference.json"))
    parser["bundle_root"] = str(REPO / "bundles" / bundle)
    load_weights(parser.get_parsed_content("network_def"), tmp_path / "models/model.pt")
    assert torch.load(tmp_path / "runs/checkpoint.pt", weights_only=True)["trainer"]["iteration"] == 2


def small_datalist(tmp_path, bundle):
    rng = np.random.default_rng(0)
    vol = np.zeros((70, 90, 5), np.float32)
    vol[5:65, 5:85, 1:4] = rng.uniform(0.3, 1, size=(60, 80, 3))
    label = np.zeros(vol.shape, np.uint8)
    label[30:40, 30:40, 2] = 1
    vol[label > 0] = 1.4
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    save_nifti(vol, lps, tmp_path / "tumour.nii.gz")
    save_nifti(label, lps, tmp_path / "tumour_label.nii.gz")
    save_nifti(np.where(label > 0, 0.6, vol), lps, tmp_path / "healthy.nii.gz")
    save_nifti(vol[..., 0], lps, tmp_path / "flat.nii.gz")
    datalist = {
        "validation": [{"case": "healthy", "image": "healthy.nii.gz"}],
        "test": [{"case": "tumour", "image": "tumour.nii.gz", "label": "tumour_label.nii.gz"},
                 {"case": "flat", "image": "flat.nii.gz"}, {"case": "missing", "image": "missing.nii.gz"}],
    }
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    torch.manual_seed(0)
    net = diffusion_unet(bundle, "demo")
    for p in net.out.parameters():
        torch.nn.init.normal_(p, std=0.05)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    return ["--datalist", tmp_path / "datalist.json", "--checkpoint", tmp_path / "model.pt", *QUICK_INFER[bundle]]


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_and_evaluation_cli(bundle, tmp_path):
    common = small_datalist(tmp_path, bundle)
    result = cli(bundle, ["inference.json"], "--output_dir", tmp_path / "out", *common, check=False)
    assert result.returncode == 1 and "2 of 3 cases failed" in result.stderr  # all processed, exit code says so
    out = tmp_path / "out"
    failures = {f["case"]: f["error"] for f in json.loads((out / "failures.json").read_text())}
    assert set(failures) == {"flat", "missing"}
    assert "flat.nii.gz: expected a 3-D image" in failures["flat"]
    assert "missing.nii.gz" in failures["missing"]
    source = nib.load(str(tmp_path / "tumour.nii.gz"))
    for key in MAPS[bundle]:
        written = nib.load(str(out / f"tumour/{key}.nii.gz"))
        assert written.shape == source.shape and np.allclose(written.affine, source.affine)  # input grid
    score = np.asarray(nib.load(str(out / "tumour/pred.nii.gz")).dataobj)
    assert float(score[np.asarray(source.dataobj) == 0].max()) <= 1e-6  # background scores 0
    assert (out / "tumour/overlay.png").stat().st_size > 1000
    assert not list(out.rglob("*.tmp"))

    result = cli(bundle, ["inference.json", "evaluate.json"], "--output_dir", tmp_path / "eval", *common, check=False)
    assert result.returncode == 1 and "2 case(s) could not be evaluated" in result.stderr
    metrics = json.loads((tmp_path / "eval/evaluation/metrics.json").read_text())
    assert metrics["n_test_cases"] == 1 and metrics["pooled"]["n_pos"] == 100
    assert metrics["cost"]["nfe_per_slice"] > 0
    assert {f["case"] for f in metrics["failures"]} == {"flat", "missing"}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_missing_weights_error_names_the_file(bundle, tmp_path):
    common = small_datalist(tmp_path, bundle)
    result = cli(bundle, ["inference.json"], "--output_dir", tmp_path / "o", *common[:2], "--checkpoint",
                 tmp_path / "nothing.pt", check=False)
    assert result.returncode != 0 and "nothing.pt: no network weights here" in result.stderr


def test_synomaly_writes_masks_and_stages(tmp_path):
    common = small_datalist(tmp_path, "synomaly")
    result = cli("synomaly", ["inference.json"], "--output_dir", tmp_path / "out", *common, check=False)
    assert result.returncode == 1 and "2 of 3 cases failed" in result.stderr  # the datalist has two bad cases
    mask = nib.load(str(tmp_path / "out/tumour/mask.nii.gz"))
    assert mask.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    stages = json.loads((tmp_path / "out/tumour/stages.json").read_text())["stages"]
    assert len(stages) == 5 and all(isinstance(s, int) and 0 <= s <= 2 for s in stages)
    assert stages[0] == 0 and stages[2] >= 1  # the empty first slice is skipped


@pytest.mark.parametrize("bundle", BUNDLES)
def test_training_needs_only_images(bundle, tmp_path):
    """Prepared data sets (python -m diffusion_anomaly prepare-dataset) have no brain masks, and healthy ones no
    labels: the brain mask is derived from the non-zero voxels and a missing label means a healthy volume."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:140, :150]
    head = ((yy - 70) ** 2 / 60**2 + (xx - 75) ** 2 / 65**2) < 1
    entries = []
    for i in range(2):
        vol = (head[..., None] * rng.uniform(0.2, 1.0, (140, 150, 10))).astype(np.float32)
        save_nifti(vol, np.eye(4), tmp_path / f"v{i}.nii.gz")
        entries.append({"image": f"v{i}.nii.gz"})
    (tmp_path / "datalist.json").write_text(json.dumps({"training": entries, "validation": entries[:1]}))
    cli(bundle, ["train.json"], "--datalist", tmp_path / "datalist.json", "--output_dir", tmp_path / "runs",
        "--ckpt_dir", tmp_path / "models", "--max_epochs", "1", *QUICK_TRAIN[bundle])
    assert (tmp_path / "models/model.pt").is_file()


@pytest.mark.parametrize("bundle", BUNDLES)
def test_a_failed_training_start_leaves_the_final_weights_alone(bundle, tmp_path):
    """Issue: CheckpointSaver(save_final) wrote an untrained network over models/model.pt when training raised."""
    runs, models = tmp_path / "runs", tmp_path / "models"
    runs.mkdir()
    models.mkdir()
    (runs / "checkpoint.pt").write_text("junk")
    (models / "model.pt").write_bytes(b"shipped weights")
    result = cli(bundle, ["train.json"], "--output_dir", runs, "--ckpt_dir", models, "--max_epochs", "1",
                 *QUICK_TRAIN[bundle], check=False)
    assert result.returncode != 0
    assert f"{runs / 'checkpoint.pt'}: not a readable PyTorch checkpoint" in result.stderr
    assert (models / "model.pt").read_bytes() == b"shipped weights"
    assert not list(models.glob(".*")) and sorted(p.name for p in models.iterdir()) == ["model.pt"]


@pytest.mark.parametrize("bundle, setting", [("disyre", "sw_batch_size"), ("synomaly", "slice_batch_size"),
                                             ("anofpdm", "slice_batch_size")])
def test_bad_setting_stops_before_any_case(bundle, setting, tmp_path):
    """Issue: a batch size of -1 gave all-zero maps (Synomaly) or one error per case, with exit code 0."""
    result = cli(bundle, ["inference.json"], "--output_dir", tmp_path / "out", f"--{setting}", "-1", check=False)
    assert result.returncode != 0
    assert f"setting '{setting}' must be an integer >= 1, got -1" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("pred.nii.gz"))


@pytest.mark.parametrize("bundle", BUNDLES)
def test_training_validates_on_synthetic_lesions_and_keeps_the_best_weights(bundle, tmp_path):
    """Every training config validates with its own inferer on lesions painted into the validation volumes."""
    rng = np.random.default_rng(1)
    zz, yy, xx = np.mgrid[:48, :96, :88]
    head = np.moveaxis(((zz - 24) ** 2 / 22**2 + (yy - 48) ** 2 / 44**2 + (xx - 44) ** 2 / 40**2) < 1, 0, -1)
    for i in range(2):
        save_nifti((head * (100 + 20 * rng.standard_normal(head.shape))).clip(0).astype(np.float32), np.eye(4),
                   tmp_path / f"v{i}.nii.gz")
    entries = [{"image": f"v{i}.nii.gz"} for i in range(2)]
    (tmp_path / "datalist.json").write_text(json.dumps({"training": entries, "validation": entries[:1]}))
    runs = tmp_path / "runs"
    result = cli(bundle, ["train.json"], "--datalist", tmp_path / "datalist.json", "--output_dir", runs,
                 "--ckpt_dir", tmp_path / "models", "--max_epochs", "1", *QUICK_TRAIN[bundle], "--val_interval", "1",
                 "--validate#lesions#families", "['hyperintense', 'hypointense']",
                 "--validate#lesions#slices_per_family", "2", "--validate#lesions#radii", "[3, 5]")
    curve = json.loads((runs / "validation_curve.json").read_text())
    assert [row["iteration"] for row in curve["curve"]] == [2]
    assert set(curve["best"]["per_family"]) == {"hyperintense", "hypointense"} and 0 < curve["best"]["ap"] <= 1
    assert "val_lesion_ap" in result.stdout + result.stderr
    assert torch.load(runs / "best_model.pt", weights_only=True).keys() == \
        torch.load(tmp_path / "models/model.pt", weights_only=True).keys()
