"""Find the cases of the public data sets users actually have, in their published folder layouts.

Each scanner returns ``(cases, problems)``: a case is ``{"subject", "case", "image": [files, one per
modality], "modalities", "label"?, "label_values"?, "region"?, "region_values"?}``; a problem is
``(path, reason)`` for a case that cannot be used (e.g. a missing modality), so a scan never stops on one
bad case. Labels mark anomalies with ``label_values`` (default: any value > 0); ``region`` restricts
where anomalies are expected (LiTS: the liver).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

Case = dict
Problem = tuple[str, str]

BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")
# BraTS 2023 renamed the sequences; canonical name -> file suffix
BRATS2023_SUFFIX = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"}


def _nifti(folder: Path, stem: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        if (folder / (stem + ext)).is_file():
            return folder / (stem + ext)
    return None


def _modalities(requested: Sequence[str] | None, default: Sequence[str], allowed: Sequence[str]) -> list[str]:
    mods = list(requested or default)
    unknown = [m for m in mods if m not in allowed]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; this layout has {list(allowed)}")
    return mods


def _brats(root: Path, pattern: str, suffix: Callable[[str], str], subject_of: Callable[[str], str],
           modalities: Sequence[str] | None) -> tuple[list[Case], list[Problem]]:
    mods = _modalities(modalities, BRATS_MODALITIES, BRATS_MODALITIES)
    cases, problems = [], []
    for folder in sorted(p for p in root.rglob("*") if p.is_dir() and re.fullmatch(pattern, p.name)):
        sep = "-" if "BraTS-" in folder.name else "_"
        files = {m: _nifti(folder, f"{folder.name}{sep}{suffix(m)}") for m in mods}
        missing = [m for m, f in files.items() if f is None]
        if missing:
            problems.append((str(folder), f"missing modality file(s) {missing}"))
            continue
        case = {"subject": subject_of(folder.name), "case": folder.name, "image": [str(files[m]) for m in mods],
                "modalities": mods}
        seg = _nifti(folder, f"{folder.name}{sep}seg")
        if seg is not None:
            case["label"] = str(seg)
        cases.append(case)
    return cases, problems


def scan_brats2020(root, modalities=None):
    """``MICCAI_BraTS2020_TrainingData/BraTS20_Training_001/BraTS20_Training_001_{flair,t1,t1ce,t2,seg}.nii``."""
    return _brats(Path(root), r"BraTS20_(Training|Validation)_\d+", lambda m: m, lambda n: n, modalities)


def scan_brats2021(root, modalities=None):
    """``BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz``."""
    return _brats(Path(root), r"BraTS2021_\d+", lambda m: m, lambda n: n, modalities)


def scan_brats2023(root, modalities=None):
    """``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,t1n,t1c,t2w,seg}.nii.gz``; the last number is the
    time point, so the subject is ``BraTS-GLI-00000`` and time points never straddle splits."""
    return _brats(Path(root), r"BraTS-[A-Z]+-\d+-\d+", BRATS2023_SUFFIX.__getitem__,
                  lambda n: n.rsplit("-", 1)[0], modalities)


def scan_ixi(root, modalities=None):
    """IXI: ``IXI002-Guys-0828-T1.nii.gz`` (any sub-folder, e.g. ``IXI-T1/``); healthy volunteers, no labels."""
    mods = _modalities(modalities, ("T1",), ("T1", "T2", "PD", "MRA", "DTI"))
    return _multi_modal(_by_subject(root, "IXI*.nii*", r"(IXI\d+)-[A-Za-z]+-\d+-([A-Z0-9]+)\.nii(\.gz)?"), mods)


def scan_camcan(root, modalities=None):
    """CamCAN (BIDS): ``sub-CC110033/anat/sub-CC110033_T1w.nii.gz``; healthy adults, no labels."""
    mods = _modalities(modalities, ("T1w",), ("T1w", "T2w"))
    return _multi_modal(_by_subject(root, "sub-CC*_*w.nii*", r"(sub-CC\d+)_(T1w|T2w)\.nii(\.gz)?"), mods)


def _by_subject(root, glob: str, pattern: str) -> dict[str, dict[str, Path]]:
    """``{subject: {modality: file}}`` from file names whose ``pattern`` groups are (subject, modality)."""
    found: dict[str, dict[str, Path]] = {}
    for f in sorted(Path(root).rglob(glob)):
        m = re.fullmatch(pattern, f.name)
        if m:
            found.setdefault(m.group(1), {})[m.group(2)] = f
    return found


def _multi_modal(found: dict[str, dict[str, Path]], mods: list[str]) -> tuple[list[Case], list[Problem]]:
    cases, problems = [], []
    for subject, files in sorted(found.items()):
        missing = [m for m in mods if m not in files]
        if missing:
            problems.append((str(next(iter(files.values()))), f"subject {subject} lacks modality {missing}"))
            continue
        cases.append({"subject": subject, "case": subject, "image": [str(files[m]) for m in mods], "modalities": mods})
    return cases, problems


def scan_atlas2(root, modalities=None):
    """ATLAS v2.0 (BIDS): ``sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz``
    with ``..._label-L_desc-T1lesion_mask.nii.gz`` (the hidden test set has no masks)."""
    _modalities(modalities, ("T1w",), ("T1w",))
    cases, problems = [], []
    for f in sorted(Path(root).rglob("sub-*_T1w.nii*")):
        m = re.fullmatch(r"(sub-[a-z0-9]+)_(ses-[0-9]+)_(.*)T1w\.nii(\.gz)?", f.name)
        if not m:
            problems.append((str(f), "file name does not follow the ATLAS BIDS pattern"))
            continue
        case = {"subject": m.group(1), "case": f"{m.group(1)}_{m.group(2)}", "image": [str(f)], "modalities": ["T1w"]}
        masks = sorted(f.parent.glob(f"{m.group(1)}_{m.group(2)}_*label-L_desc-T1lesion_mask.nii*"))
        if masks:
            case["label"] = str(masks[0])
        cases.append(case)
    return sorted(cases, key=lambda c: c["case"]), problems


def scan_lits(root, modalities=None):
    """LiTS: ``volume-N.nii`` with ``segmentation-N.nii`` (1 liver, 2 tumour). Anomaly = tumour; region = liver."""
    _modalities(modalities, ("CT",), ("CT",))
    cases, problems = [], []
    for f in sorted(Path(root).rglob("volume-*.nii*"), key=lambda p: (len(p.name), p.name)):
        n = re.fullmatch(r"volume-(\d+)\.nii(\.gz)?", f.name)
        if not n:
            continue
        case = {"subject": f"lits_{n.group(1)}", "case": f"lits_{n.group(1)}", "image": [str(f)], "modalities": ["CT"]}
        seg = _nifti(f.parent, f"segmentation-{n.group(1)}")
        if seg is None:
            problems.append((str(f), "no segmentation-N file next to the volume"))
        else:
            case.update(label=str(seg), label_values=[2], region=str(seg), region_values=[1, 2])
        cases.append(case)
    return cases, problems


def scan_folder(root, modalities=None, masks: str | None = None):
    """Generic: every NIfTI in ``root`` is a subject; an optional ``masks`` folder holds anomaly masks named
    like the image, or with a ``_mask``, ``_seg``, ``_label`` or ``-label`` suffix."""
    _modalities(modalities, ("image",), ("image",))
    cases = []
    mask_dir = Path(masks) if masks else None
    for f in sorted(p for p in Path(root).iterdir() if p.name.endswith((".nii", ".nii.gz"))):
        stem = f.name.removesuffix(".gz").removesuffix(".nii")
        case = {"subject": stem, "case": stem, "image": [str(f)], "modalities": ["image"]}
        if mask_dir is not None:
            for suffix in ("", "_mask", "_seg", "_label", "-label"):
                hit = _nifti(mask_dir, stem + suffix)
                if hit is not None:
                    case["label"] = str(hit)
                    break
        cases.append(case)
    return cases, []


LAYOUTS: dict[str, Callable] = {
    "brats2020": scan_brats2020,
    "brats2021": scan_brats2021,
    "brats2023": scan_brats2023,
    "ixi": scan_ixi,
    "camcan": scan_camcan,
    "atlas2": scan_atlas2,
    "lits": scan_lits,
    "folder": scan_folder,
}
