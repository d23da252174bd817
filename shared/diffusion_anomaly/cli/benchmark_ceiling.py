"""How detectable the painted lesions of a synthetic-anomaly benchmark are: the score of an oracle that sees the
healthy scan each case was painted into.

The oracle's map is |painted - healthy host| / (brain median of the host) inside the brain: how much of each label
is visible at all (a lesion voxel whose intensity did not change can only be inferred from its surroundings).
Reported per lesion family and pooled, with the same pooled AP / AUROC as the evaluator, plus the fraction of
each family's label whose intensity changed by more than ``tolerance`` (the benchmark uses 5 % of the brain median) and
the fraction of healthy brain voxels that changed that much (tissue a deformation moved outside its label).

Each test case of the datalist that carries a ``family`` is matched to its host through ``provenance.json``
(written by ``prepare-demo-data`` next to the datalist: ``source.host``); the host's image is
``<datalist folder>/<host>/t1.nii.gz`` (the demo data layout) with the same grid as the painted volume.

``python -m diffusion_anomaly benchmark`` adds this table to its report whenever the datalist's test cases carry
a ``family`` and a ``provenance.json`` names their hosts (the in-domain benchmark).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data import load_datalist, load_volume
from ..errors import InputDataError
from ..metrics import PooledScores


def oracle_map(painted: np.ndarray, host: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """|painted - host| in units of the host's brain median (0 outside the brain)."""
    median = float(np.median(host[brain]))
    if median <= 0:
        raise ValueError("the host's brain median is not positive")
    return np.where(brain, np.abs(painted.astype(np.float64) - host) / median, 0.0)


class FamilyCeiling:
    """Pooled oracle scores of one family (or all), and how much of its label changed by more than a tolerance."""

    def __init__(self, tolerance: float):
        self.tolerance, self.scores = tolerance, PooledScores()
        self.lesion = self.lesion_changed = self.healthy = self.healthy_changed = 0

    def update(self, score: np.ndarray, label: np.ndarray) -> None:
        changed = score > self.tolerance
        self.scores.update(score, label)
        self.lesion += int(label.sum())
        self.lesion_changed += int((changed & label).sum())
        self.healthy += int((~label).sum())
        self.healthy_changed += int((changed & ~label).sum())

    def summary(self) -> dict:
        curve = self.scores.metrics()
        return {"ap": curve.ap, "auroc": curve.auroc, "oracle_dice": curve.oracle_dice,
                "lesion_voxels": self.lesion,
                "lesion_changed": self.lesion_changed / max(self.lesion, 1),
                "healthy_changed": self.healthy_changed / max(self.healthy, 1)}


def hosts_from_provenance(datalist: Path) -> dict[str, str]:
    """case -> host name, from the ``provenance.json`` written next to the datalist."""
    path = datalist.parent / "provenance.json"
    if not path.is_file():
        raise InputDataError(str(path), "no provenance.json next to the datalist: it names each case's healthy host")
    try:
        entries = json.loads(path.read_text())
        return {e["case"]: e["source"]["host"] for e in entries
                if isinstance(e, dict) and isinstance(e.get("source"), dict) and e["source"].get("host")}
    except (ValueError, KeyError, TypeError) as err:
        raise InputDataError(str(path), f"cannot read the cases' hosts: {err!r}") from err


def ceiling(datalist: Path, tolerance: float) -> dict[str, dict]:
    """Per-family and pooled oracle summaries of the painted test cases of ``datalist``."""
    hosts = hosts_from_provenance(datalist)
    cases = [e for e in load_datalist(datalist, "test", keys=("image", "foreground_mask", "label")) if "family" in e]
    if not cases:
        raise InputDataError(str(datalist), "no test case carries a 'family': not a painted benchmark")
    families: dict[str, FamilyCeiling] = {}
    pooled = FamilyCeiling(tolerance)
    host_path_read, host = "", np.zeros(0)  # a host's cases follow one another (one per family): read it once
    for entry in cases:
        case = entry["case"]
        if case not in hosts:
            raise InputDataError(str(datalist.parent / "provenance.json"), f"no healthy host recorded for {case!r}")
        host_path = str(datalist.parent / hosts[case] / "t1.nii.gz")
        if host_path != host_path_read:
            host_path_read, host = host_path, load_volume(host_path, dtype=np.float64)[0]
        painted = load_volume(entry["image"], dtype=np.float64)[0]
        brain, label = load_volume(entry["foreground_mask"])[0] > 0, load_volume(entry["label"])[0] > 0
        if not painted.shape == host.shape == brain.shape == label.shape:
            raise InputDataError(host_path, f"host grid {host.shape} differs from case {case!r} {painted.shape}")
        try:
            score = oracle_map(painted, host, brain)
        except ValueError as err:
            raise InputDataError(host_path, str(err)) from err
        for target in (families.setdefault(entry["family"], FamilyCeiling(tolerance)), pooled):
            target.update(score[brain], label[brain])
    return {**{f: families[f].summary() for f in sorted(families)}, "pooled": pooled.summary()}


def markdown(results: dict[str, dict], tolerance: float) -> str:
    """One row per family and the pooled row."""
    lines = [f"| family | oracle AP | oracle AUROC | share of lesion voxels | label changed > {tolerance:g} median | "
             f"healthy changed > {tolerance:g} median |", "|---|---|---|---|---|---|"]
    total = results["pooled"]["lesion_voxels"]
    for family, s in results.items():
        lines.append(f"| {family} | {s['ap']:.3f} | {s['auroc']:.3f} | {s['lesion_voxels'] / max(total, 1):.3f} | "
                     f"{s['lesion_changed']:.3f} | {s['healthy_changed']:.4f} |")
    return "\n".join(lines) + "\n"
