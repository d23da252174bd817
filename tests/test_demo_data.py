"""The embedded demo data set: intact, split by subject, documented, and anatomically consistent."""

import json
from pathlib import Path

import numpy as np

from diffusion_anomaly.data import load_datalist, load_volume

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "shared/demo_data"


def _check_module():
    from diffusion_anomaly.cli import check_demo_data

    return check_demo_data


def test_checksums_match():
    assert _check_module().verify(DEMO) == []


def test_checksum_check_reports_damage(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  a.bin\n" + "0" * 64 + "  gone.bin\n")
    problems = _check_module().verify(tmp_path)
    assert problems == [f"{tmp_path / 'a.bin'}: checksum differs from SHA256SUMS", f"{tmp_path / 'gone.bin'}: missing"]


def test_splits_are_disjoint_by_subject_and_documented():
    splits = {s: load_datalist(DEMO / "datalist.json", s, keys=("image", "label", "foreground_mask", "subject"))
              for s in ("training", "validation", "test")}
    subjects = {s: {c["subject"] for c in cases} for s, cases in splits.items()}
    assert not (subjects["training"] & subjects["validation"] or subjects["training"] & subjects["test"]
                or subjects["validation"] & subjects["test"])
    assert [len(splits[s]) for s in ("training", "validation", "test")] == [5, 2, 2]
    provenance = {p["case"]: p for p in json.loads((DEMO / "provenance.json").read_text())}
    for split, cases in splits.items():
        for case in cases:
            entry = provenance[case["case"]]
            assert entry["split"] == split and entry["licence"] and entry["source"]["package"]


def test_volumes_masks_and_lesions_are_consistent():
    for split in ("training", "validation", "test"):
        for case in load_datalist(DEMO / "datalist.json", split, keys=("image", "label", "foreground_mask")):
            image, affine = load_volume(case["image"])
            brain, _ = load_volume(case["foreground_mask"])
            label, _ = load_volume(case["label"])
            assert image.shape == brain.shape == label.shape
            assert np.allclose(np.abs(np.diag(affine)[:3]), 1.0)  # 1 mm, RAS
            assert float(image[brain == 0].max()) == 0.0  # skull-stripped
            assert float(np.percentile(image[brain > 0], 99.5)) > 150  # scaled so the brain fills the range
            if split == "test":
                assert 10_000 < label.sum() < 25_000  # 16-18 mL tumours at 1 mm
                assert float((label * brain).sum()) == float(label.sum())  # lesions lie inside the brain mask
            else:
                assert label.sum() == 0


def test_in_domain_benchmark_uses_held_out_subjects_and_every_family():
    from diffusion_anomaly.corruptions.benchmark_lesions import FAMILIES

    path = DEMO / "in_domain_benchmark.json"
    keys = ("image", "foreground_mask", "subject")
    splits = {s: load_datalist(path, s, keys=keys) for s in ("training", "validation")}
    test = load_datalist(path, "test", keys=("image", "label", "foreground_mask", "subject", "family"))
    held_out = {c["subject"] for c in test}
    assert held_out == {"robex_atlas", "itk_kmeans_t1"}
    assert not held_out & {c["subject"] for c in splits["training"] + splits["validation"]}
    assert [c["case"] for c in splits["validation"]] == ["colin27"]
    assert sorted(c["family"] for c in test) == sorted(FAMILIES * 2)
    main = json.loads((DEMO / "datalist.json").read_text())
    assert [c["case"] for c in splits["training"]] == [c["case"] for c in main["training"]]
    for case in test:
        image, _ = load_volume(case["image"])
        brain, _ = load_volume(case["foreground_mask"])
        label, _ = load_volume(case["label"])
        assert 1_000 < label.sum() and float((label * (1 - brain)).sum()) == 0.0
        assert float(image[brain == 0].max()) == 0.0
