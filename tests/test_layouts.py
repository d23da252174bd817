"""Dataset layouts: tiny fixture trees named exactly like the real data sets, including broken cases."""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from diffusion_anomaly.data.layouts import LAYOUTS
from diffusion_anomaly.data.prepare import build_datalist, preprocess_case
from diffusion_anomaly.io import save_nifti

REPO = Path(__file__).resolve().parents[1]
SHAPE = (8, 8, 6)


def _vol(path, value=1.0, shape=SHAPE, lesion_slices=()):
    arr = np.random.default_rng(len(str(path))).uniform(1, 100, size=shape).astype(np.float32) * value
    if lesion_slices is not None and value == 0:
        arr = np.zeros(shape, np.uint8)
        for z in lesion_slices:
            arr[2:4, 2:4, z] = 2
    save_nifti(arr, np.eye(4), path)
    return path


def _seg(path, slices, shape=SHAPE):
    return _vol(path, 0, shape, slices)


def _brats(root: Path, name: str, sep: str, mods, seg_slices=(2, 3), seg_shape=SHAPE, skip=()):
    folder = root / name
    folder.mkdir(parents=True)
    for m in mods:
        if m not in skip:
            _vol(folder / f"{name}{sep}{m}.nii.gz")
    if seg_slices is not None:
        _seg(folder / f"{name}{sep}seg.nii.gz", seg_slices, seg_shape)


def test_brats2021_cases_problems_and_slice_labels(tmp_path):
    mods = ["flair", "t1", "t1ce", "t2"]
    for i in range(6):
        _brats(tmp_path, f"BraTS2021_{i:05d}", "_", mods)
    _brats(tmp_path, "BraTS2021_00006", "_", mods, skip=("t2",))  # missing modality
    _brats(tmp_path, "BraTS2021_00007", "_", mods, seg_shape=(8, 8, 5))  # label on another grid
    _brats(tmp_path / "x", "BraTS2021_00008", "_", mods)
    (tmp_path / "x/BraTS2021_00008/BraTS2021_00008_t1.nii.gz").write_bytes(b"corrupt")

    cases, problems = LAYOUTS["brats2021"](tmp_path)
    assert [c["case"] for c in cases][:2] == ["BraTS2021_00000", "BraTS2021_00001"]
    assert cases[0]["image"][0].endswith("BraTS2021_00000_flair.nii.gz") and cases[0]["modalities"] == mods
    assert problems == [(str(tmp_path / "BraTS2021_00006"), "missing modality file(s) ['t2']")]

    datalist, report = build_datalist(cases, problems, "brats2021", (0.5, 0.25, 0.25), seed=1)
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert "differs from its image" in skipped["BraTS2021_00007_seg.nii.gz"]
    assert skipped["BraTS2021_00008_t1.nii.gz"].startswith("cannot be read")
    kept = [c for split in datalist.values() for c in split]
    assert len(kept) == 6 and all(c["slice_labels"] == [0, 0, 1, 1, 0, 0] for c in kept)
    subjects = [set(c["subject"] for c in datalist[s]) for s in ("training", "validation", "test")]
    assert not (subjects[0] & subjects[1] or subjects[0] & subjects[2] or subjects[1] & subjects[2])
    assert [len(s) for s in subjects] == [2, 2, 2]
    again, _ = build_datalist(cases, problems, "brats2021", (0.5, 0.25, 0.25), seed=1)
    assert again == datalist


def test_brats2020_and_2023_names(tmp_path):
    _brats(tmp_path / "MICCAI_BraTS2020_TrainingData", "BraTS20_Training_001", "_", ["flair", "t1", "t1ce", "t2"])
    cases, problems = LAYOUTS["brats2020"](tmp_path, ["flair", "t2"])
    assert len(cases) == 1 and not problems and [Path(p).name for p in cases[0]["image"]] == [
        "BraTS20_Training_001_flair.nii.gz", "BraTS20_Training_001_t2.nii.gz"]

    for tp in ("000", "001"):
        _brats(tmp_path / "gli", f"BraTS-GLI-00005-{tp}", "-", ["t2f", "t1n", "t1c", "t2w"])
    cases, problems = LAYOUTS["brats2023"](tmp_path / "gli")
    assert [c["subject"] for c in cases] == ["BraTS-GLI-00005", "BraTS-GLI-00005"]  # time points, one subject
    assert [Path(p).name.split("-")[-1] for p in cases[0]["image"]] == ["t2f.nii.gz", "t1n.nii.gz", "t1c.nii.gz",
                                                                        "t2w.nii.gz"]
    with pytest.raises(ValueError, match="unknown modalities"):
        LAYOUTS["brats2023"](tmp_path / "gli", ["dwi"])


def test_ixi_and_camcan_are_healthy(tmp_path):
    for sid in ("IXI002-Guys-0828", "IXI012-HH-1211"):
        _vol(tmp_path / "IXI-T1" / f"{sid}-T1.nii.gz")
    _vol(tmp_path / "IXI-T2" / "IXI002-Guys-0828-T2.nii.gz")
    cases, problems = LAYOUTS["ixi"](tmp_path, ["T1", "T2"])
    assert [c["subject"] for c in cases] == ["IXI002"] and "IXI012 lacks modality ['T2']" in problems[0][1]
    datalist, _ = build_datalist(*LAYOUTS["ixi"](tmp_path), "ixi", (1.0, 0.0, 0.0))
    assert [c["slice_labels"] for c in datalist["training"]] == [[0] * 6, [0] * 6]

    for sid in ("CC110033", "CC110037"):
        _vol(tmp_path / "cc" / f"sub-{sid}" / "anat" / f"sub-{sid}_T1w.nii.gz")
    cases, problems = LAYOUTS["camcan"](tmp_path / "cc")
    assert [c["subject"] for c in cases] == ["sub-CC110033", "sub-CC110037"] and not problems


def test_atlas2_bids(tmp_path):
    anat = tmp_path / "ATLAS_2/Training/R001/sub-r001s001/ses-1/anat"
    _vol(anat / "sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz")
    _seg(anat / "sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz", (5,))
    test_anat = tmp_path / "ATLAS_2/Testing/R002/sub-r002s002/ses-1/anat"
    _vol(test_anat / "sub-r002s002_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz")
    cases, problems = LAYOUTS["atlas2"](tmp_path)
    assert [c["case"] for c in cases] == ["sub-r001s001_ses-1", "sub-r002s002_ses-1"]
    assert "label" in cases[0] and "label" not in cases[1]
    datalist, _ = build_datalist(cases, problems, "atlas2", (1.0, 0.0, 0.0))
    assert datalist["training"][0]["slice_labels"] == [0, 0, 0, 0, 0, 1]
    assert "slice_labels" not in datalist["training"][1]  # unknown, not assumed healthy


def test_lits_tumour_label_and_liver_region(tmp_path):
    _vol(tmp_path / "volume-0.nii")
    seg = np.zeros(SHAPE, np.uint8)
    seg[1:6, 1:6, 1:5] = 1  # liver
    seg[2:3, 2:3, 3] = 2  # tumour on slice 3 only
    save_nifti(seg, np.eye(4), tmp_path / "segmentation-0.nii")
    _vol(tmp_path / "volume-1.nii")  # no segmentation
    cases, problems = LAYOUTS["lits"](tmp_path)
    assert [c["case"] for c in cases] == ["lits_0", "lits_1"] and "no segmentation" in problems[0][1]
    datalist, _ = build_datalist(cases[:1], [], "lits", (1.0, 0.0, 0.0))
    assert datalist["training"][0]["slice_labels"] == [0, 0, 0, 1, 0, 0]
    out = preprocess_case(datalist["training"][0], tmp_path / "pre")
    label = np.asarray(nib.load(out["label"]).dataobj)
    region = np.asarray(nib.load(out["region"]).dataobj)
    assert int(label.sum()) == 1 and int(region.sum()) == 5 * 5 * 4
    assert out["slice_labels"] == [0, 0, 0, 1, 0, 0]


def test_folder_layout_matches_masks(tmp_path):
    _vol(tmp_path / "scans/a.nii.gz")
    _vol(tmp_path / "scans/b.nii.gz")
    _seg(tmp_path / "masks/a_seg.nii.gz", (1,))
    cases, _ = LAYOUTS["folder"](tmp_path / "scans", masks=tmp_path / "masks")
    assert cases[0]["label"].endswith("a_seg.nii.gz") and "label" not in cases[1]


def test_preprocess_reorients_resamples_and_normalises(tmp_path):
    arr = np.zeros((10, 12, 8), np.float32)
    arr[2:8, 3:9, 2:6] = np.linspace(1, 100, 6 * 6 * 4).reshape(6, 6, 4)
    lps = np.diag([-2.0, -2.0, 2.0, 1.0])  # LPS orientation, 2 mm voxels
    save_nifti(arr, lps, tmp_path / "s.nii.gz")
    case = {"case": "s", "subject": "s", "image": [str(tmp_path / "s.nii.gz")]}
    out = preprocess_case(case, tmp_path / "pre", intensity="anofpdm")
    img = nib.load(out["image"])
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    np.testing.assert_allclose(img.header.get_zooms()[:3], (1.0, 1.0, 1.0))
    data = np.asarray(img.dataobj)
    assert data.shape[2] in (15, 16) and abs(np.percentile(data[data != 0], 99) - 1.0) < 1e-5


@pytest.mark.slow
def test_cli_writes_datalist_and_report(tmp_path):
    for i in range(4):
        _brats(tmp_path / "data", f"BraTS2021_{i:05d}", "_", ["flair", "t1", "t1ce", "t2"])
    _brats(tmp_path / "data", "BraTS2021_00009", "_", ["flair", "t1", "t1ce", "t2"], skip=("flair",))
    out = tmp_path / "dl.json"
    res = subprocess.run([sys.executable, "-m", "diffusion_anomaly", "prepare-dataset", "brats2021",
                          str(tmp_path / "data"), "--out", str(out), "--fractions", "0.5", "0.25", "0.25"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "training 2, validation 1, test 1 cases; 1 skipped" in res.stdout
    assert "BraTS2021_00009: missing modality file(s) ['flair']" in res.stderr
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["subjects"] == {"training": 2, "validation": 1, "test": 1}
    bad = subprocess.run([sys.executable, "-m", "diffusion_anomaly", "prepare-dataset", "ixi", str(tmp_path / "nope"),
                          "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode == 2 and "nope: data set folder does not exist" in bad.stderr
