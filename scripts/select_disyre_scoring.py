#!/usr/bin/env python
"""Choose DISYRE's default score on the validation split: v2 ensemble vs ISBI Algorithm 1 healing.

Both scores run on the same held-out healthy validation patches carrying the same seeded synthetic lesions
(the patches and corruption of ``configs/train.json``'s validation); the pixel AP of each is printed and
written to ``--out``. No test image is read.

Usage: python scripts/select_disyre_scoring.py [--bundle bundles/disyre] [--patches 96] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import torch
from monai.bundle import ConfigParser

from diffusion_anomaly.corruptions import DisyreCorruption
from diffusion_anomaly.inferers import DisyreInferer
from diffusion_anomaly.networks import load_weights
from diffusion_anomaly.training import SyntheticLesionValidation

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles/disyre")
    parser.add_argument("--patches", type=int, default=96)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--out", type=Path, default=REPO / "runs/disyre_scoring_selection.json")
    args = parser.parse_args()

    config = ConfigParser()
    config.read_config(str(args.bundle / "configs/train.json"))
    config["bundle_root"] = str(args.bundle.resolve())
    scheduler = config.get_parsed_content("scheduler")
    dataset = config.get_parsed_content("validate#dataset")
    network = load_weights(config.get_parsed_content("network_def"), args.bundle / "models/model.pt")
    kind = config.get_parsed_content("corruption_kind")
    results = {}
    for mode in ("ensemble", "healing"):
        validation = SyntheticLesionValidation(
            dataset, DisyreInferer(scheduler, mode=mode), network,
            DisyreCorruption(scheduler, kind=kind, seed=args.seed), max_patches=args.patches)
        engine = SimpleNamespace(state=SimpleNamespace(metrics={}, epoch=0))
        with torch.no_grad():
            results[mode] = validation(engine)
        print(f"{mode}: synthetic-lesion pixel AP on validation = {results[mode]:.4f}")
    best = max(results, key=results.get)
    report = {"validation_ap": results, "best": best, "patches": args.patches, "seed": args.seed,
              "corruption": kind}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"best: {best}")


if __name__ == "__main__":
    main()
