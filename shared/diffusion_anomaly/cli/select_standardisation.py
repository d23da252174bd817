"""Choose the shared intensity standardisation on healthy training and validation volumes, without any label.

A standardisation is good when the healthy tissue of a new scan lands where the training scans' healthy tissue
lies, whatever the scanner, bias field or contrast agent did. So each validation volume is scored as it is and
after label-free acquisition changes:

* ``gamma 0.7`` / ``gamma 1.4``: a different contrast curve, x -> max (x / max)^gamma;
* ``bias field``: a smooth multiplicative field exp(0.25 f), f a blurred noise field scaled to [-1, 1];
* ``contrast agent``: 3 % of the brain (smooth blobs: vessels, dura, enhancing tissue) raised to 2.5x the
  brain median, then the volume rescaled so its brain p99.5 is what it was: what the 8-bit demo test scans
  went through;
* ``scale 0.5``: all intensities halved.

For every candidate the distance of a (perturbed) validation volume is the mean over percentiles 1..99 of
|Q_val(p) - Q_train(p)| of the standardised healthy brain voxels (voxels the contrast agent touched excluded),
Q_train pooled over the training volumes, divided by the training inter-quartile range so that candidates with
different output ranges compare. The candidate with the smallest mean distance is chosen. Candidates: each
method's published scaling ("disyre": p0-p98 of the volume, "anofpdm": x / p99 of the brain, "synomaly":
min-max per axial slice), the shared references ("median", "mode") and the histogram standardisation
("histogram": median units, then the piecewise-linear map onto landmarks learned here from the training volumes).
No test image is read.

The bias-field correction is chosen on the same validation volumes, voxel by voxel (a field moves voxels, not
quantiles): for ``none`` and N4 with 2, 3 and 4 fitting levels, the median-standardised volume after correction
is compared with the volume as acquired (taken as unbiased) under ``as acquired``, ``bias field`` (above) and
two ``coil field`` s, the usual model of a receive-coil field: exp of a 3rd-order polynomial of the normalised
coordinates with coefficients ~ U(-0.5, 0.5) (TorchIO's RandomBiasField defaults) (mean |difference| in healthy
brain voxels, in training IQRs), and on three painted hyperintense lesions (the
benchmark's generator, radii 5-12 mm) the lesion-minus-surrounding contrast it keeps is reported (1 = all). The
correction with the smallest mean difference among those that keep at least 97 % of the lesion contrast is
chosen. By its construction the histogram candidate pulls every scan's quantiles onto the
training ones, so its distance is small on every perturbation that keeps the voxel order; the criterion then
says how far each cheaper candidate is from that. ``--landmarks-out`` writes the learned landmarks as the
bundles' ``models/intensity_landmarks.json``.

Usage: python -m diffusion_anomaly select-standardisation [--datalist shared/demo_data/in_domain_benchmark.json]
           [--out FILE] [--landmarks-out bundles/*/models/intensity_landmarks.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from diffusion_anomaly.bias_field import n4_bias_field
from diffusion_anomaly.corruptions.benchmark_lesions import paint_lesions
from diffusion_anomaly.data import load_datalist
from diffusion_anomaly.data.checks import load_volume
from diffusion_anomaly.io import atomic_write_json
from diffusion_anomaly.standardisation import (
    LANDMARK_PERCENTILES,
    histogram_standardise,
    learn_landmarks,
    minmax_per_slice,
    percentile_scale,
    tissue_reference,
)

from . import REPO

PERCENTILES = np.arange(1, 100)


def standardise(x: np.ndarray, brain: np.ndarray, candidate: str, landmarks: list[float] | None = None) -> np.ndarray:
    t = torch.as_tensor(x)
    if candidate == "histogram":
        return histogram_standardise(t.clamp_min(0), x[brain], np.asarray(landmarks)).numpy()
    if candidate == "disyre":
        return percentile_scale(t, 0.0, 98.0, floor=0.0).numpy()
    if candidate == "anofpdm":
        return percentile_scale(t, None, 99.0, clip=False, selection=torch.as_tensor(brain)).numpy()
    if candidate == "synomaly":
        return minmax_per_slice(t[None], axis=-1, b_min=0.0, b_max=1.0)[0].numpy()
    return np.clip(x, 0, None) / tissue_reference(x[brain], candidate)


def smooth_field(shape, rng, sigma=20.0) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return 2 * (f - f.min()) / (f.max() - f.min()) - 1


def coil_field(shape, rng, order: int = 3, coefficient: float = 0.5) -> np.ndarray:
    """exp(sum c_ijk x^i y^j z^k), i + j + k <= ``order``, coordinates in [-1, 1], c ~ U(-coefficient, coefficient)."""
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    log_field = np.zeros(shape)
    for powers in np.ndindex(*(order + 1,) * len(shape)):
        if sum(powers) <= order:
            term = rng.uniform(-coefficient, coefficient)
            for axis, power in zip(axes, powers):
                term = term * axis**power
            log_field += term
    return np.exp(log_field)


def perturbations(x: np.ndarray, brain: np.ndarray, rng: np.random.Generator):
    """(name, perturbed volume, voxels to leave out of the comparison)."""
    none = np.zeros_like(brain)
    yield "as acquired", x, none
    top = x[brain].max()
    for gamma in (0.7, 1.4):
        yield f"gamma {gamma}", top * (np.clip(x, 0, None) / top) ** gamma, none
    yield "bias field", x * np.exp(0.25 * smooth_field(x.shape, rng)), none
    blobs = ndimage.gaussian_filter(rng.standard_normal(x.shape), 2.0)
    enhanced = brain & (blobs > np.quantile(blobs[brain], 0.97))
    agent = x.copy()
    agent[enhanced] = 2.5 * np.median(x[brain])
    agent *= np.percentile(x[brain], 99.5) / np.percentile(agent[brain], 99.5)
    yield "contrast agent", agent, enhanced
    yield "scale 0.5", 0.5 * x, none


BIAS_CORRECTIONS = {"none": None, "n4 (2 levels)": 2, "n4 (3 levels)": 3, "n4 (4 levels)": 4}
KEPT_CONTRAST = 0.97


def corrected(x: np.ndarray, brain: np.ndarray, levels: int | None) -> np.ndarray:
    """``x`` divided by its N4 field with ``levels`` fitting levels (unchanged for None), in brain medians."""
    y = x if levels is None else np.where(brain, x / n4_bias_field(x, brain, levels=levels), x)
    return standardise(y, brain, "median")


def bias_field_report(validation, iqr: float, seed: int) -> dict:
    """Per correction: healthy-voxel difference from the scan as acquired, and lesion contrast kept. Every
    correction sees the same perturbed and painted volumes (drawn once per case from ``seed``)."""
    rng = np.random.default_rng(seed)
    cases = []
    for case, x, brain in validation:
        fields = {"as acquired": 1.0, "bias field": np.exp(0.25 * smooth_field(x.shape, rng)),
                  "coil field 1": coil_field(x.shape, rng), "coil field 2": coil_field(x.shape, rng)}
        painted, lesion = paint_lesions(x, brain, "hyperintense", rng)
        ring = ndimage.binary_dilation(lesion, iterations=6) & ~ndimage.binary_dilation(lesion, iterations=2) & brain
        cases.append((case, x, brain, fields, painted, lesion, ring, corrected(x, brain, None),
                      corrected(painted, brain, None)))
    report: dict = {}
    for name, levels in BIAS_CORRECTIONS.items():
        rows = {}
        for case, x, brain, fields, painted, lesion, ring, reference, painted_uncorrected in cases:
            for perturbation, field in fields.items():
                difference = np.abs(corrected(x * field, brain, levels) - reference)[brain].mean()
                rows[f"{case}: {perturbation}"] = float(difference / iqr)
            contrast = [v[lesion].mean() - v[ring].mean()
                        for v in (corrected(painted, brain, levels), painted_uncorrected)]
            rows[f"{case}: lesion contrast kept"] = float(contrast[0] / contrast[1])
        distance = float(np.mean([v for k, v in rows.items() if "kept" not in k]))
        kept = float(np.min([v for k, v in rows.items() if "kept" in k]))
        report[name] = {"distance": distance, "lesion_contrast_kept": kept, "per_case": rows}
        print(f"bias field {name:14s} mean voxel difference {distance:.3f}  lesion contrast kept {kept:.3f}")
    eligible = {k: v["distance"] for k, v in report.items() if v["lesion_contrast_kept"] >= KEPT_CONTRAST}
    return {"best": min(eligible, key=lambda k: eligible[k]), "candidates": report}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datalist", type=Path, default=REPO / "shared/demo_data/in_domain_benchmark.json",
                        help="training and validation splits (default: validation = Colin27 only, so the benchmark "
                             "subjects stay unseen)")
    parser.add_argument("--candidates", nargs="+",
                        default=["disyre", "anofpdm", "synomaly", "median", "mode", "histogram"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "runs/standardisation_selection.json")
    parser.add_argument("--landmarks-out", type=Path, nargs="*", default=[],
                        help="landmark files to write (the bundles' models/intensity_landmarks.json)")
    args = parser.parse_args(argv)

    def volumes(split):
        for entry in load_datalist(args.datalist, split, keys=("image", "foreground_mask")):
            x, _ = load_volume(entry["image"])
            brain = load_volume(entry["foreground_mask"])[0] > 0
            yield entry.get("case", entry["image"]), x * brain, brain

    training = list(volumes("training"))
    validation = list(volumes("validation"))
    # headroom for intensity_upper: where the brightest healthy training tissue lies, in brain medians
    ratios = {case: float(np.percentile(x[b], 99.5) / np.median(x[b])) for case, x, b in training}
    print("training brain p99.5 / median: " + ", ".join(f"{c} {r:.2f}" for c, r in ratios.items()))
    landmarks = learn_landmarks([x[b] for _, x, b in training])
    print(f"histogram landmarks at foreground percentiles {list(LANDMARK_PERCENTILES)}: {landmarks}")
    report: dict = {"distance": {}, "per_case": {}, "training_p99_5_over_median": ratios, "landmarks": landmarks}
    for candidate in args.candidates:
        pooled = np.concatenate([standardise(x, b, candidate, landmarks)[b] for _, x, b in training])
        q_train = np.percentile(pooled, PERCENTILES)
        iqr = q_train[74] - q_train[24]
        rng = np.random.default_rng(args.seed)
        rows = {}
        for case, x, brain in validation:
            for name, perturbed, skip in perturbations(x, brain, rng):
                keep = brain & ~skip
                q = np.percentile(standardise(perturbed, brain, candidate, landmarks)[keep], PERCENTILES)
                rows[f"{case}: {name}"] = float(np.mean(np.abs(q - q_train)) / iqr)
        report["per_case"][candidate] = rows
        report["distance"][candidate] = float(np.mean(list(rows.values())))
        print(f"{candidate:10s} mean distance {report['distance'][candidate]:.3f}  "
              + "  ".join(f"{k.split(': ')[1]} {v:.2f}" for k, v in rows.items() if k.startswith(validation[0][0])))
    best = min(report["distance"], key=report["distance"].get)
    pooled = np.concatenate([standardise(x, b, "median")[b] for _, x, b in training])
    iqr = float(np.subtract(*np.percentile(pooled, [75, 25])))
    report["bias_field"] = bias_field_report(validation, iqr, args.seed)
    print(f"bias field: {report['bias_field']['best']}")
    report.update(best=best, seed=args.seed, datalist=str(args.datalist))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)
    print(f"best: {best} (written to {args.out})")
    content = {"percentiles": list(LANDMARK_PERCENTILES), "landmarks": landmarks, "units": "brain median",
               "learned_from": [case for case, _, _ in training],
               "command": "python -m diffusion_anomaly select-standardisation"
                          + (f" --datalist {args.datalist}" if argv and "--datalist" in argv else "")}
    for path in args.landmarks_out:
        atomic_write_json(path, content)
        print(f"landmarks written to {path}")


if __name__ == "__main__":
    main()
