"""One evaluation for every bundle: the same metrics, the same honest thresholds, the same reports.

Protocol (documented in every model card):
1. Calibration: the method runs on the *validation* cases; their healthy voxels (brain, outside any lesion
   label) give thresholds at target false-positive rates (1 % and 5 %). Test labels are never read here.
2. Test: the method runs on every test case. Pixel metrics are pooled over the voxels of all test cases
   inside the brain mask (option: whole image): AP, AUROC and the oracle Dice (best threshold, chosen on the
   test labels: an upper bound, never an operating point). At the calibrated thresholds: Dice, sensitivity
   and precision, pooled and per case. Per-case AP/AUROC/oracle Dice (mean and sd over cases), slice-level
   AUROC/AP from per-slice reductions of the map, results by lesion-size stratum, and, when test cases carry a
   ``group_key`` (the in-domain benchmark's ``family``), the pooled and calibrated metrics per group.
3. Reports: ``metrics.json``, ``per_case.csv``, ``pr_curve.png``, an overlay PNG per test case, and
   ``failures.json`` (cases that could not be evaluated, with the reason; the run goes on).
"""

from __future__ import annotations

import csv
import io
import os
import resource
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..engines.case_runner import describe_error, run_cases
from ..errors import CasesFailedError, InputDataError, check_writable_folder
from ..io import atomic_write_json, atomic_write_text
from ..io.overlay import save_pr_curve_png
from ..metrics import (
    PooledScores,
    dice_from_counts,
    exact_curve,
    labelled_fraction,
    overlap_counts,
    sensitivity_precision,
    size_strata,
    slice_labels,
    slice_scores,
)
from ..transforms.writers import SaveOverlayd, spatial_array


def check_score_map(score: np.ndarray, reference: np.ndarray, name: str, what: str) -> None:
    if score.shape != reference.shape:
        raise InputDataError(name, f"anomaly map shape {score.shape} differs from the {what} shape {reference.shape}")
    bad = ~np.isfinite(score)
    if bad.any():
        raise InputDataError(name, f"anomaly map has {int(bad.sum())} NaN or infinite values")


def _mean_sd(values: Sequence[float]) -> dict:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    return {"mean": float(v.mean()) if v.size else None, "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "n": int(v.size), "n_undefined": int(len(values) - v.size)}


class AnomalyEvaluation:
    """Run a bundle's inferer on calibration and test data and compute every metric of the toolkit.

    Args:
        test_dataset: MONAI ``Dataset`` of test cases (keys ``image``, ``foreground_mask``, ``label``) with the
            bundle's preprocessing as its transform.
        calibration_dataset: validation cases; only their healthy voxels are used.
        inferer: the method's inferer, called as ``inferer(inputs, network)``.
        network: the network (None for network-free baselines).
        output_dir: where the reports go.
        method: the name shown in the reports.
        device: where the network runs.
        amp: bf16 autocast on CUDA.
        restrict_to_foreground: pixel metrics inside the brain mask (True) or over the whole image.
        fprs: target false-positive rates of the calibrated operating points.
        reductions: slice-level reductions ("mean", "max", "topk").
        topk: k of the "topk" reduction.
        exact_limit: pooled voxels kept for exact metrics before switching to the streaming histogram.
        overlays: write an overlay PNG per test case.
        progress: progress bars over cases.
        group_key: key of the test cases that groups them (e.g. "family"); pooled metrics are reported per group
            as well as over all cases.
    """

    def __init__(
        self,
        test_dataset: Any,
        calibration_dataset: Any,
        inferer: Any,
        network: torch.nn.Module | None,
        output_dir: str | os.PathLike,
        method: str = "method",
        device: torch.device | str = "cpu",
        amp: bool = True,
        restrict_to_foreground: bool = True,
        fprs: Sequence[float] = (0.01, 0.05),
        reductions: Sequence[str] = ("mean", "max", "topk"),
        topk: int = 100,
        exact_limit: int = 50_000_000,
        overlays: bool = True,
        progress: bool = True,
        group_key: str | None = "family",
    ):
        self.test_dataset, self.calibration_dataset = test_dataset, calibration_dataset
        self.inferer, self.network, self.device, self.amp = inferer, network, torch.device(device), amp
        self.output_dir, self.method = Path(output_dir), method
        self.restrict_to_foreground, self.fprs = restrict_to_foreground, tuple(fprs)
        self.reductions, self.topk, self.exact_limit = tuple(reductions), topk, exact_limit
        self.overlays, self.progress, self.group_key = overlays, progress, group_key
        self.failures: list[dict] = []

    # -- running the method -------------------------------------------------------------------------
    def _cases(self, dataset: Any, desc: str):
        """(name, item, seconds, nfe) of every case that could be inferred; the others go to ``failures``."""
        for outcome in run_cases(dataset, self.inferer, self.network, self.device, self.amp, desc=desc,
                                 progress=self.progress):
            if outcome.error is not None:
                self.failures.append({"stage": desc, "case": outcome.name,
                                      "error": describe_error(outcome.error, outcome.source)})
                tqdm.write(f"FAILED {desc} {outcome.name}: {self.failures[-1]['error']}")
                continue
            yield outcome.name, outcome.item, outcome.seconds, outcome.nfe

    def _region(self, item: dict, score: np.ndarray, name: str) -> np.ndarray:
        if not self.restrict_to_foreground:
            return np.ones(score.shape, bool)
        brain = spatial_array(item["foreground_mask"]) > 0
        check_score_map(score, brain, name, "brain mask")
        return brain

    def calibrate(self) -> dict[float, float]:
        """Thresholds at ``self.fprs`` from the healthy voxels of the calibration cases only."""
        healthy = PooledScores(self.exact_limit)
        for name, item, _, _ in self._cases(self.calibration_dataset, "calibration"):
            score = spatial_array(item["pred"])
            try:
                region = self._region(item, score, name)
                if isinstance(item.get("label"), torch.Tensor):
                    check_score_map(score, spatial_array(item["label"]), name, "label")
                    region = region & (spatial_array(item["label"]) == 0)
                check_score_map(score, region, name, "image")
            except InputDataError as err:
                self.failures.append({"stage": "calibration", "case": name, "error": str(err)})
                continue
            healthy.update(score[region], np.zeros(int(region.sum()), bool))
        if not healthy.counts()[0].size:
            raise InputDataError("calibration", "no calibration case could be scored, so no threshold exists")
        return {fpr: healthy.threshold_at_fpr(fpr) for fpr in self.fprs}

    # -- evaluation ---------------------------------------------------------------------------------
    def run(self) -> dict:
        self.failures = []
        check_writable_folder(self.output_dir)
        if self.network is not None:
            self.network.eval()
        thresholds = self.calibrate()
        pooled = PooledScores(self.exact_limit)
        calibrated = {fpr: np.zeros(3, dtype=np.int64) for fpr in self.fprs}
        groups: dict[str, tuple[PooledScores, dict]] = {}
        slice_data: dict[str, tuple[list, list]] = {r: ([], []) for r in self.reductions}
        rows, unlabelled, seconds, nfes, n_slices = [], [], [], [], []
        for name, item, elapsed, nfe in self._cases(self.test_dataset, "test"):
            seconds.append(elapsed)
            nfes.append(nfe)
            score = spatial_array(item["pred"])
            n_slices.append(score.shape[-1])
            if not isinstance(item.get("label"), torch.Tensor):
                unlabelled.append(name)
                continue
            try:
                label = spatial_array(item["label"]) > 0
                check_score_map(score, label, name, "label")
                region = self._region(item, score, name)
            except InputDataError as err:
                self.failures.append({"stage": "test", "case": name, "error": str(err)})
                continue
            s, g = score[region], label[region]
            pooled.update(s, g)
            group = item.get(self.group_key) if self.group_key else None
            if isinstance(group, str):
                if group not in groups:
                    groups[group] = (PooledScores(self.exact_limit),
                                     {fpr: np.zeros(3, dtype=np.int64) for fpr in self.fprs})
                groups[group][0].update(s, g)
                for fpr, t in thresholds.items():
                    groups[group][1][fpr] += overlap_counts(s >= t, g)
            curve = exact_curve(s, g)
            row = {"case": name, "subject": item.get("subject", name), "seconds": round(elapsed, 3), "nfe": nfe,
                   "lesion_ml": float(label.sum() * _voxel_ml(item)), "ap": curve.ap, "auroc": curve.auroc,
                   "oracle_dice": curve.oracle_dice}
            for fpr, t in thresholds.items():
                counts = overlap_counts(s >= t, g)
                calibrated[fpr] += counts
                row[f"dice_fpr{_pct(fpr)}"] = dice_from_counts(*counts)
                row[f"sensitivity_fpr{_pct(fpr)}"], row[f"precision_fpr{_pct(fpr)}"] = sensitivity_precision(*counts)
                row[f"labelled_fpr{_pct(fpr)}"] = labelled_fraction(*counts, len(s))
            brain = spatial_array(item["foreground_mask"]) > 0 if "foreground_mask" in item else region
            labels_per_slice = slice_labels(label)
            for r in self.reductions:
                per_slice = slice_scores(score, brain, r, self.topk)
                keep = np.isfinite(per_slice)
                slice_data[r][0].append(per_slice[keep])
                slice_data[r][1].append(labels_per_slice[keep])
            rows.append(row)
            if self.overlays:
                SaveOverlayd(self.output_dir / "overlays", threshold=thresholds[max(self.fprs)])(item)
        for row, stratum in zip(rows, size_strata([r["lesion_ml"] for r in rows])):
            row["stratum"] = stratum
        metrics = self._summarise(pooled, thresholds, calibrated, slice_data, rows, unlabelled, seconds, nfes,
                                  n_slices)
        metrics["groups"] = {name: self._group_summary(scores, counts)
                             for name, (scores, counts) in sorted(groups.items())}
        self._write(metrics, rows, pooled)
        if self.failures:  # every report is written; the exit code still says that something failed
            raise CasesFailedError(f"{len(self.failures)} case(s) could not be evaluated (listed in "
                                   f"{self.output_dir / 'failures.json'} and metrics.json)")
        return metrics

    def _group_summary(self, pooled: PooledScores, calibrated: dict) -> dict:
        curve = pooled.metrics()
        return {"ap": curve.ap, "auroc": curve.auroc, "oracle_dice": curve.oracle_dice, "n_pos": curve.n_pos,
                "n_neg": curve.n_neg} | {f"dice_fpr{_pct(fpr)}": dice_from_counts(*counts)
                                         for fpr, counts in calibrated.items()}

    def _summarise(self, pooled, thresholds, calibrated, slice_data, rows, unlabelled, seconds, nfes, n_slices):
        curve = pooled.metrics()
        operating = {}
        for fpr, counts in calibrated.items():
            sens, prec = sensitivity_precision(*counts)
            operating[f"fpr_{_pct(fpr)}"] = {"target_fpr": fpr, "threshold": thresholds[fpr],
                                             "dice": dice_from_counts(*counts), "sensitivity": sens,
                                             "precision": prec,
                                             "labelled_fraction": labelled_fraction(*counts, curve.n_pos + curve.n_neg)}
        slice_level = {}
        for r, (scores, labels) in slice_data.items():
            if scores:
                c = exact_curve(np.concatenate(scores), np.concatenate(labels))
                slice_level[r] = {"auroc": c.auroc, "ap": c.ap, "n_slices": c.n_pos + c.n_neg, "n_unhealthy": c.n_pos}
        strata = {}
        for name in ("small", "medium", "large"):
            members = [r for r in rows if r.get("stratum") == name]
            if members:
                strata[name] = {"n": len(members), "ap": _mean_sd([r["ap"] for r in members]),
                                "dice_fpr5": _mean_sd([r.get("dice_fpr5") for r in members])}
        usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        total_slices = sum(n_slices)
        return {
            "method": self.method,
            "protocol": "pixels inside the brain mask" if self.restrict_to_foreground else "all pixels",
            "pooled": {"ap": curve.ap, "auroc": curve.auroc, "oracle_dice": curve.oracle_dice,
                       "oracle_threshold": curve.oracle_threshold, "n_pos": curve.n_pos, "n_neg": curve.n_neg,
                       "exact": pooled.exact},
            "calibrated": operating,
            "per_case": {k: _mean_sd([r[k] for r in rows]) for k in ("ap", "auroc", "oracle_dice")}
            | {f"dice_fpr{_pct(f)}": _mean_sd([r[f"dice_fpr{_pct(f)}"] for r in rows]) for f in self.fprs},
            "slice_level": slice_level,
            "strata": strata,
            "cost": {"seconds_per_volume": float(np.mean(seconds)) if seconds else None,
                     "nfe_per_slice": (sum(nfes) / total_slices) if total_slices else None,
                     "peak_rss_mb": round(usage, 1),
                     "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
                     if self.device.type == "cuda" else None,
                     "device": str(self.device)},
            "n_test_cases": len(rows),
            "skipped_for_pixel_metrics": [{"case": n, "reason": "no label"} for n in unlabelled],
            "failures": self.failures,
        }

    def _write(self, metrics: dict, rows: list[dict], pooled: PooledScores) -> None:
        atomic_write_json(self.output_dir / "metrics.json", _jsonable(metrics))
        atomic_write_json(self.output_dir / "failures.json", self.failures)
        if rows:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
            atomic_write_text(self.output_dir / "per_case.csv", buf.getvalue())
        thresholds, pos, neg = pooled.counts()
        if pos.sum() > 0:
            tp, fp = np.cumsum(pos), np.cumsum(neg)
            save_pr_curve_png(self.output_dir / "pr_curve.png", tp / tp[-1], tp / np.maximum(tp + fp, 1),
                              f"{self.method}: AP {metrics['pooled']['ap']:.3f}, oracle Dice "
                              f"{metrics['pooled']['oracle_dice']:.3f}")


def _pct(fpr: float) -> str:
    return f"{fpr * 100:g}"


def _voxel_ml(item: dict) -> float:
    affine = getattr(item.get("label"), "affine", None)
    if affine is None:
        return 0.001
    return float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3]))) / 1000.0


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
