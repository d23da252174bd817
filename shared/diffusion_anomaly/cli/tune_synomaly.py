"""Choose Synomaly's inference settings (t_s, blur kernel, threshold) on the validation split, never on test.

The validation volumes are healthy, so lesions are simulated on their axial slices with a generator the model
never saw in training (DISYRE's foreign-patch corruption, "fpi", at full strength), and each setting of the
grid runs the full multi-stage inference. The score is the mean Dice over slices (the reference's criterion,
per image); the false-positive rate on the healthy pixels of the same slices is reported next to it. The best
setting is written into ``configs/inference.json``, or into the data set's overlay given by ``--overlay``
(``noise_level``, ``blur_kernel``, ``threshold``, ``fusion``), and the whole grid into ``--out``.

Usage: python -m diffusion_anomaly tune-synomaly [--bundle bundles/synomaly] [--overlay inference_liver_ct.json]
           [--datalist /data/lits/datalist.json] [--stride 4] [--noise-levels 100 150 ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import Dataset
from tqdm import tqdm

from diffusion_anomaly.corruptions import DisyreCorruption
from diffusion_anomaly.data import load_datalist
from diffusion_anomaly.io.atomic import atomic_write_text
from diffusion_anomaly.metrics import dice_from_counts, overlap_counts
from diffusion_anomaly.networks import load_weights
from diffusion_anomaly.schedulers import DisyreScheduler

from . import REPO


def validation_slices(config: ConfigParser, stride: int, min_fraction: float = 0.15) -> torch.Tensor:
    """Every ``stride``-th slice of the validation volumes whose object mask (brain, liver) covers at least
    ``min_fraction`` of the slice, preprocessed like inference: (N, 1, H, W)."""
    data = load_datalist(config.get_parsed_content("datalist"), "validation")
    dataset = Dataset(data, config.get_parsed_content("preprocessing"))
    slices = []
    for i in range(len(dataset)):
        item = dataset[i]
        image, brain = item["image"], item["foreground_mask"]
        occupied = torch.nonzero(brain[0].flatten(0, 1).any(0)).flatten().tolist()
        for z in occupied[::stride]:
            if float(brain[0, :, :, z].mean()) >= min_fraction:  # enough object to hold a lesion
                slices.append(torch.as_tensor(image[..., z]))
    if not slices:
        raise SystemExit(f"no validation slice has an object mask covering >= {min_fraction} of the slice; "
                         "lower --min-object-fraction")
    h = max(s.shape[-2] for s in slices)
    w = max(s.shape[-1] for s in slices)
    padded = [torch.nn.functional.pad(s, (0, w - s.shape[-1], 0, h - s.shape[-2]), value=-1.0) for s in slices]
    return torch.stack(padded)  # background is -1 after the per-slice scaling


def add_lesions(slices: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreign-patch lesions on [-1, 1] slices; returns lesioned slices and binary lesion masks."""
    unit = (slices + 1) / 2
    scheduler = DisyreScheduler()
    corruption = DisyreCorruption(scheduler, kind="fpi", seed=seed, smooth_prob=0.0)
    lesioned, masks, _ = corruption(unit, scheduler.strength(torch.full((len(unit),), 100)),
                                    [str(i) for i in range(len(unit))])
    labels = (masks >= 0.5) & (unit > 0)
    return lesioned * 2 - 1, labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles/synomaly")
    parser.add_argument("--overlay", help="inference overlay in the bundle's configs/ (e.g. inference_liver_ct.json)")
    parser.add_argument("--datalist", type=Path, help="datalist with a 'validation' split (default: the config's)")
    parser.add_argument("--stride", type=int, default=4, help="use every n-th validation slice")
    parser.add_argument("--min-object-fraction", type=float, default=0.15,
                        help="use slices whose brain/liver mask covers at least this fraction")
    parser.add_argument("--noise-levels", nargs="+", type=int, default=[100, 150, 200, 250, 300])
    parser.add_argument("--kernels", nargs="+", type=int, default=[3, 5, 7, 11])
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45])
    parser.add_argument("--fusions", nargs="+", default=["mask"], choices=["mask", "difference"],
                        help="fusion rules to compare (difference = the reference code's)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, default=REPO / "runs/synomaly_tuning.json")
    parser.add_argument("--dry-run", action="store_true", help="do not write the choice into inference.json")
    args = parser.parse_args(argv)

    config = ConfigParser()
    target = args.bundle / "configs" / (args.overlay or "inference.json")
    config.read_config([str(args.bundle / "configs/inference.json")] + ([str(target)] if args.overlay else []))
    config["bundle_root"] = str(args.bundle.resolve())
    if args.datalist:
        config["datalist"] = str(args.datalist.resolve())
    network = load_weights(config.get_parsed_content("network_def"), config.get_parsed_content("checkpoint"))
    slices = validation_slices(config, args.stride, args.min_object_fraction)
    lesioned, labels = add_lesions(slices, args.seed)
    brain = (slices > -1).any(1, keepdim=True)
    print(f"{len(slices)} validation slices with simulated lesions ({int(labels.sum())} lesion pixels)")

    results = []
    grid = list(itertools.product(args.noise_levels, args.kernels, args.thresholds, args.fusions))
    for t_s, k, theta, fusion in tqdm(grid, desc="grid", unit="setting"):
        config["noise_level"], config["blur_kernel"], config["threshold"], config["fusion"] = t_s, k, theta, fusion
        inferer = config.get_parsed_content("inferer", instantiate=True, lazy=False)
        with torch.no_grad():
            out = inferer(lesioned, network)
        pred = out["mask"] > 0
        dices = [dice_from_counts(*overlap_counts(p[b], g[b])) for p, g, b in zip(pred, labels, brain)]
        healthy = brain & ~labels
        fpr = float((pred & healthy).sum()) / max(int(healthy.sum()), 1)
        results.append({"noise_level": t_s, "blur_kernel": k, "threshold": theta, "fusion": fusion,
                        "mean_dice": float(np.mean(dices)),
                        "healthy_fpr": fpr, "mean_stages": float(out["stages"].float().mean()), "nfe": inferer.nfe})
    best = max(results, key=lambda r: r["mean_dice"])
    report = {"best": best, "validation_slices": len(slices), "stride": args.stride, "seed": args.seed,
              "lesions": "DISYRE fpi corruption at t = 100 (not seen in training)", "grid": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"best: t_s={best['noise_level']}, kernel={best['blur_kernel']}, threshold={best['threshold']}, "
          f"fusion={best['fusion']}: "
          f"mean Dice {best['mean_dice']:.3f}, healthy FPR {best['healthy_fpr']:.4f}")
    if not args.dry_run:
        path = target
        text = path.read_text()
        for key in ("noise_level", "blur_kernel", "threshold", "fusion"):
            value = json.dumps(best[key])

            def keep_indent(match: re.Match[str], value: str = value) -> str:
                return match.group(1) + value + ","

            text, found = re.subn(rf'^(    "{key}": )[^,\n]+,', keep_indent, text, count=1, flags=re.M)
            if not found:  # an overlay that did not set it yet
                text = text.replace("{\n", "{\n    " + json.dumps(key) + ": " + value + ",\n", 1)
        atomic_write_text(path, text)
        print(f"wrote the choice into {path}")


if __name__ == "__main__":
    main()
