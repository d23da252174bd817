"""Accuracy cost of AnoFPDM's fast mode: full (every t) and fast (step stride) inference on the same test slices.

Every ``--slice-stride``-th test slice with brain is scored by each mode, with the constants derived for that
mode (``--constants NAME=PATH``; derive them with the bundle's calibration, ``python -m monai.bundle run
--config_file "['bundles/anofpdm/configs/inference.json','bundles/anofpdm/configs/calibrate.json']"
--step_stride ... --calibration_dir DIR``, which writes ``DIR/constants.json``).
Reported per mode: pixel AP and AUROC inside the brain, Dice of the gated masks (pooled over the slices), slice
classification accuracy against "slice has lesion", NFE and seconds per slice.

Usage: python -m diffusion_anomaly benchmark --what anofpdm-modes --mode full=1 --mode fast=10
           --constants full=runs/c_full.json --constants fast=bundles/anofpdm/models/constants.json
           [--slice-stride 6] [--out runs/modes.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import Dataset

from diffusion_anomaly.data import load_datalist
from diffusion_anomaly.inferers import read_constants
from diffusion_anomaly.io import atomic_write_json
from diffusion_anomaly.metrics import dice_from_counts, exact_curve, overlap_counts
from diffusion_anomaly.networks import load_weights

from . import REPO


def test_slices(config: ConfigParser, stride: int):
    """Per test volume (slice sizes differ between volumes): images (N, C, H, W), lesion masks, brain masks."""
    volumes = []
    data = load_datalist(config.get_parsed_content("datalist"), "test")
    dataset = Dataset(data, config.get_parsed_content("preprocessing"))
    for i in range(len(dataset)):
        item = dataset[i]
        brain = torch.as_tensor(item["foreground_mask"]) > 0
        zs = [z for z in range(brain.shape[-1]) if float(brain[..., z].float().mean()) >= 0.05][::stride]
        volumes.append((torch.stack([item["image"].as_tensor()[..., z] for z in zs]).float(),
                        torch.stack([torch.as_tensor(item["label"])[..., z] > 0 for z in zs]),
                        torch.stack([brain[..., z] for z in zs])))
    return volumes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles/anofpdm")
    parser.add_argument("--mode", action="append", required=True, help="NAME=STEP_STRIDE")
    parser.add_argument("--constants", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--slice-stride", type=int, default=6)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    modes = dict(m.split("=", 1) for m in args.mode)
    constants = dict(c.split("=", 1) for c in args.constants)

    config = ConfigParser()
    config.read_config(str(args.bundle / "configs/inference.json"))
    config["bundle_root"] = str(args.bundle.resolve())
    network = load_weights(config.get_parsed_content("network_def"), config.get_parsed_content("checkpoint"))
    volumes = test_slices(config, args.slice_stride)
    n_slices = sum(len(v[0]) for v in volumes)
    lesion_slices = torch.cat([v[1].flatten(1).any(1) for v in volumes])
    print(f"{n_slices} test slices, {int(lesion_slices.sum())} with lesion")
    results = {"slices": n_slices, "lesion_slices": int(lesion_slices.sum()), "slice_stride": args.slice_stride}
    for name, stride in modes.items():
        config["step_stride"] = int(stride)
        config["constants"] = read_constants(constants[name], step_stride=int(stride), t_max=config["t_max"])
        inferer = config.get_parsed_content("inferer", instantiate=True, lazy=False)
        scores, masks, truths, labels = [], [], [], []
        start = time.perf_counter()
        for images, lesions, brains in volumes:
            with torch.no_grad():
                out = inferer(images, network)
            inside = brains[:, 0].numpy()
            scores.append(out["pred"][:, 0].numpy()[inside])
            masks.append(out["mask"][:, 0].numpy()[inside] > 0)
            truths.append(lesions[:, 0].numpy()[inside])
            labels.append(out["slice_label"].bool())
        seconds = time.perf_counter() - start
        score, mask, gt = np.concatenate(scores), np.concatenate(masks), np.concatenate(truths)
        curve = exact_curve(score, gt)
        results[name] = {
            "step_stride": int(stride), "ap": curve.ap, "auroc": curve.auroc,
            "dice": dice_from_counts(*overlap_counts(mask, gt)),
            "slice_accuracy": float((torch.cat(labels) == lesion_slices).float().mean()),
            "nfe_per_slice": inferer.nfe / n_slices, "seconds_per_slice": round(seconds / n_slices, 3)}
        print(name, results[name], flush=True)
    if args.out:
        atomic_write_json(args.out, results)


if __name__ == "__main__":
    main()
