"""The intensity-baseline bundle through the real MONAI bundle CLI on the embedded demo data."""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from diffusion_anomaly.io import save_nifti
from diffusion_anomaly.metrics import exact_curve

pytestmark = pytest.mark.slow  # runs the bundle CLI in subprocesses

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles/intensity_baseline"
DEMO = REPO / "shared/demo_data"


def run_bundle(*configs, expect_returncode=0, **overrides):
    files = [str(BUNDLE / "configs" / c) for c in configs]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(files)]
    for k, v in overrides.items():
        cmd += [f"--{k}", str(v)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == expect_returncode, result.stderr[-3000:]
    return result


def test_inference_and_evaluate_on_demo_data(tmp_path):
    run_bundle("inference.json", "evaluate.json", output_dir=tmp_path)
    metrics = json.loads((tmp_path / "evaluation/metrics.json").read_text())
    assert metrics["method"] == "Intensity baseline" and metrics["failures"] == []
    assert metrics["n_test_cases"] == 2 and metrics["pooled"]["exact"]

    run_bundle("inference.json", output_dir=tmp_path / "maps")
    scores, labels = [], []
    for case in ("mrbraintumor1", "mrbraintumor2"):
        pred = nib.load(str(tmp_path / "maps" / case / "pred.nii.gz"))
        image = nib.load(str(DEMO / case / "t1.nii.gz"))
        assert pred.shape == image.shape and np.allclose(pred.affine, image.affine)  # input grid kept
        brain = np.asarray(nib.load(str(DEMO / case / "brain_mask.nii.gz")).dataobj) > 0
        label = np.asarray(nib.load(str(DEMO / case / "label.nii.gz")).dataobj) > 0
        scores.append(np.asarray(pred.dataobj)[brain])
        labels.append(label[brain])
        assert (tmp_path / "maps" / case / "overlay.png").stat().st_size > 1000
    # the evaluator's pooled AP is the AP of the maps the inference wrote
    assert metrics["pooled"]["ap"] == pytest.approx(exact_curve(np.concatenate(scores), np.concatenate(labels)).ap,
                                                    abs=1e-6)


def test_bad_inputs_are_recorded_and_the_run_goes_on(tmp_path):
    rng = np.random.default_rng(0)
    good = rng.uniform(0, 1, size=(20, 22, 18)).astype(np.float32)
    save_nifti(good, np.eye(4), tmp_path / "good.nii.gz")
    save_nifti(good[..., 0], np.eye(4), tmp_path / "flat.nii.gz")
    nan = good.copy()
    nan[3, 3, 3] = np.nan
    save_nifti(nan, np.eye(4), tmp_path / "nan.nii.gz")
    save_nifti(np.zeros_like(good), np.eye(4), tmp_path / "empty.nii.gz")
    (tmp_path / "corrupt.nii.gz").write_bytes(b"\x1f\x8b\x08 broken")
    two_channel = np.stack([good, good], -1)
    save_nifti(two_channel, np.eye(4), tmp_path / "twochannel.nii.gz")
    cases = ["good", "missing", "flat", "nan", "empty", "corrupt", "twochannel"]
    datalist = {"test": [{"case": c, "image": f"{c}.nii.gz"} for c in cases]}
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    out = tmp_path / "out"
    result = run_bundle("inference.json", expect_returncode=1, output_dir=out, datalist=tmp_path / "datalist.json")
    assert "6 of 7 cases failed" in result.stderr  # every case processed, then a non-zero exit
    failures = {f["case"]: f["error"] for f in json.loads((out / "failures.json").read_text())}
    assert set(failures) == set(cases) - {"good"}
    assert "missing.nii.gz" in failures["missing"]
    assert "flat.nii.gz: expected a 3-D image" in failures["flat"]
    assert "nan.nii.gz: image has 1 NaN" in failures["nan"]
    assert "empty.nii.gz: image is empty" in failures["empty"]
    assert "corrupt.nii.gz" in failures["corrupt"]
    assert "twochannel.nii.gz: expected 1 channel(s), found 2" in failures["twochannel"]
    assert (out / "good/pred.nii.gz").is_file()
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["failures.json", "good/overlay.png", "good/pred.nii.gz", "run_summary.json"]


def test_unwritable_output_folder_is_reported_before_any_case(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_bundle("inference.json", expect_returncode=1, output_dir=blocker / "out")
    assert "output folder cannot be created or written to" in result.stderr and str(blocker / "out") in result.stderr
    assert "cases:" not in result.stderr  # no case was started


def _write_dicom_series(path: Path, seed: int) -> None:
    """One DICOM series (a multi-frame file); ITK's GDCM writer gives each write new study and series UIDs."""
    import itk

    volume = np.random.default_rng(seed).integers(100, 1000, size=(6, 20, 22)).astype(np.uint16)
    itk.imwrite(itk.image_from_array(volume), str(path))


def test_a_folder_with_two_dicom_series_is_a_clear_per_case_error(tmp_path):
    (tmp_path / "two_series").mkdir()
    _write_dicom_series(tmp_path / "two_series/a.dcm", 0)
    _write_dicom_series(tmp_path / "two_series/b.dcm", 1)
    (tmp_path / "one_series").mkdir()
    _write_dicom_series(tmp_path / "one_series/a.dcm", 2)
    datalist = {"test": [{"case": "two", "image": "two_series"}, {"case": "one", "image": "one_series"}]}
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    out = tmp_path / "out"
    result = run_bundle("inference.json", expect_returncode=1, output_dir=out, datalist=tmp_path / "datalist.json")
    assert "1 of 2 cases failed" in result.stderr
    failures = {f["case"]: f["error"] for f in json.loads((out / "failures.json").read_text())}
    assert set(failures) == {"two"}
    assert "two_series: folder holds 2 DICOM series" in failures["two"]
    assert "give each series its own folder" in failures["two"]
    pred = nib.load(str(out / "one/pred.nii.gz"))
    assert pred.shape == (22, 20, 6)  # the single series is read and scored as before
