"""Choose DISYRE's default score on the validation split: v2 ensemble vs ISBI Algorithm 1 healing.

Both scores run on the same slices of the validation volumes carrying the same seeded synthetic lesions of the
in-domain benchmark's five families (``configs/train.json``'s ``validate#lesions``, the validation the training
records); the pooled pixel AP of each is printed and written to ``--out``. No test image is read.

Usage: python -m diffusion_anomaly select-disyre-scoring [--bundle bundles/disyre] [--weights FILE] [--datalist FILE]
           [--intensity paper|standard] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from monai.bundle import ConfigParser

from diffusion_anomaly.inferers import DisyreInferer
from diffusion_anomaly.networks import load_weights

from . import REPO


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles/disyre")
    parser.add_argument("--weights", type=Path, help="default: the bundle's models/model.pt")
    parser.add_argument("--datalist", type=Path, help="default: the bundle's training datalist")
    parser.add_argument("--intensity", choices=["paper", "standard"], help="default: the bundle's")
    parser.add_argument("--out", type=Path, default=REPO / "runs/disyre_scoring_selection.json")
    args = parser.parse_args(argv)

    config = ConfigParser()
    config.read_config(str(args.bundle / "configs/train.json"))
    config["bundle_root"] = str(args.bundle.resolve())
    config["output_dir"] = str(args.out.parent / "disyre_scoring_selection")
    for key in ("datalist", "intensity"):
        if getattr(args, key) is not None:
            config[key] = str(getattr(args, key))
    network = load_weights(config.get_parsed_content("network_def"), args.weights or args.bundle / "models/model.pt")
    validation = config.get_parsed_content("validate#lesions")
    validation.network = network
    results = {}
    for mode in ("ensemble", "healing"):
        validation.inferer = DisyreInferer(config.get_parsed_content("scheduler"), scoring=mode, progress=False)
        results[mode] = validation.scores()
        per_family = ", ".join(f"{f} {v:.3f}" for f, v in results[mode]["per_family"].items())
        print(f"{mode}: synthetic-lesion pixel AP on validation = {results[mode]['ap']:.4f} ({per_family})")
    best = max(results, key=lambda mode: results[mode]["ap"])
    report = {"validation": results, "best": best, "datalist": config["datalist"], "intensity": config["intensity"],
              "weights": str(args.weights or args.bundle / "models/model.pt")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"best: {best}")


if __name__ == "__main__":
    main()
