"""Render one axial slice per demo case (the slice with the most lesion, else the middle brain slice) to PNG,
with the brain-mask and lesion contours, so a person can check masks against the anatomy.

Usage: python -m diffusion_anomaly render-demo-data [--out runs/demo_data_png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from diffusion_anomaly.data import load_datalist, load_volume
from diffusion_anomaly.io import save_panels_png

from . import REPO


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datalist", type=Path, default=REPO / "shared/demo_data/datalist.json")
    parser.add_argument("--out", type=Path, default=REPO / "runs/demo_data_png")
    args = parser.parse_args(argv)
    for split in ("training", "validation", "test"):
        for case in load_datalist(args.datalist, split, keys=("image", "foreground_mask", "label")):
            image, _ = load_volume(case["image"])
            brain, _ = load_volume(case["foreground_mask"])
            label, _ = load_volume(case["label"])
            per_slice = label.sum(axis=(0, 1))
            z = int(per_slice.argmax()) if per_slice.max() > 0 else int(np.mean(np.nonzero(brain.any((0, 1)))))
            out = save_panels_png(
                args.out / f"{split}_{case['case']}.png",
                [("T1", image[:, :, z])],
                contours=[("brain mask", brain[:, :, z]), ("lesion label", label[:, :, z])],
                cmaps=["gray"],
                title=f"{case['case']} ({split}), axial slice {z}",
            )
            print(out)


if __name__ == "__main__":
    main()
