#!/usr/bin/env python
"""Accuracy cost of AnoFPDM's fast mode: full (every t) and fast (step stride) inference on the same test slices.

Every ``--slice-stride``-th test slice with brain is scored by each mode, with the constants derived for that
mode (``--constants NAME=PATH``; derive them with ``scripts/derive_anofpdm_constants.py --config-override
step_stride=... --out PATH``). Reported per mode: pixel AP and AUROC inside the brain, Dice of the gated masks
(pooled over the slices), slice classification accuracy against "slice has lesion", NFE and seconds per slice.

Usage: python scripts/compare_anofpdm_modes.py --mode full=1 --mode fast=10 --constants full=runs/c_full.json
           --constants fast=bundles/anofpdm/models/constants.json [--slice-stride 6] [--out runs/modes.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import Dataset

from diffusion_anomaly.data import load_datalist
from diffusion_anomaly.inferers import read_constants
from diffusion_anomaly.metrics import dice_from_counts, exact_curve, overlap_counts
from diffusion_anomaly.networks import load_weights

REPO = Path(__file__).resolve().parents[1]


def test_slices(config: ConfigParser, stride: int):
    images, labels, brains = [], [], []
    data = load_datalist(config.get_parsed_content("datalist"), "test")
    for item in Dataset(data, config.get_parsed_content("preprocessing")):
        brain = torch.as_tensor(item["brain_mask"]) > 0
        zs = [z for z in range(brain.shape[-1]) if float(brain[..., z].float().mean()) >= 0.05][::stride]
        images += [item["image"].as_tensor()[..., z] for z in zs]
        labels += [torch.as_tensor(item["label"])[..., z] > 0 for z in zs]
        brains += [brain[..., z] for z in zs]
    return torch.stack(images).float(), torch.stack(labels), torch.stack(brains)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles/anofpdm")
    parser.add_argument("--mode", action="append", required=True, help="NAME=STEP_STRIDE")
    parser.add_argument("--constants", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--slice-stride", type=int, default=6)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    modes = dict(m.split("=", 1) for m in args.mode)
    constants = dict(c.split("=", 1) for c in args.constants)

    config = ConfigParser()
    config.read_config(str(args.bundle / "configs/inference.json"))
    config["bundle_root"] = str(args.bundle.resolve())
    network = load_weights(config.get_parsed_content("network_def"), config.get_parsed_content("checkpoint"))
    images, labels, brains = test_slices(config, args.slice_stride)
    lesion_slices = labels.flatten(1).any(1)
    print(f"{len(images)} test slices, {int(lesion_slices.sum())} with lesion")
    results = {"slices": len(images), "lesion_slices": int(lesion_slices.sum()), "slice_stride": args.slice_stride}
    for name, stride in modes.items():
        config["step_stride"] = int(stride)
        config["constants"] = read_constants(constants[name], step_stride=int(stride), t_max=config["t_max"])
        inferer = config.get_parsed_content("inferer", instantiate=True, lazy=False)
        start = time.perf_counter()
        with torch.no_grad():
            out = inferer(images, network)
        seconds = time.perf_counter() - start
        score, mask = out["pred"][:, 0].numpy(), out["mask"][:, 0].numpy() > 0
        inside = brains[:, 0].numpy()
        gt = labels[:, 0].numpy()
        curve = exact_curve(score[inside], gt[inside])
        results[name] = {
            "step_stride": int(stride), "ap": curve.ap, "auroc": curve.auroc,
            "dice": dice_from_counts(*overlap_counts(mask & inside, gt & inside)),
            "slice_accuracy": float((out["slice_label"].bool() == lesion_slices).float().mean()),
            "nfe_per_slice": inferer.nfe / len(images), "seconds_per_slice": round(seconds / len(images), 3)}
        print(name, results[name], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
