"""Write a MONAI datalist for a public data set in its published folder layout.

Examples:
  python -m diffusion_anomaly prepare-dataset brats2021 /data/BraTS2021 --out /data/brats21_datalist.json
  python -m diffusion_anomaly prepare-dataset brats2023 /data/BraTS-GLI --modalities flair t2 --out brats23.json
  python -m diffusion_anomaly prepare-dataset ixi /data/IXI --modalities T1 --fractions 0.9 0.1 0 --out ixi.json
  python -m diffusion_anomaly prepare-dataset folder /data/scans --masks /data/masks --out mine.json \\
      --preprocess-dir /data/scans_1mm --intensity disyre

Layouts: brats2020, brats2021, brats2023 (all modalities in the order flair, t1, t1ce, t2; label > 0 is the
anomaly), ixi and camcan (healthy), atlas2 (BIDS, lesion masks), lits (tumour = label 2, liver region) and
folder (any NIfTI files, optional masks folder). Splits are by subject with a seed. Cases that cannot be used
are skipped and listed in ``<out>.report.json``; the scan goes on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from diffusion_anomaly.data.datalist import write_datalist
from diffusion_anomaly.data.layouts import LAYOUTS
from diffusion_anomaly.data.prepare import INTENSITY_PRESETS, build_datalist, preprocess_case
from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.io import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layout", choices=sorted(LAYOUTS))
    parser.add_argument("root", type=Path, help="the data set's top folder")
    parser.add_argument("--out", type=Path, required=True, help="datalist JSON to write")
    parser.add_argument("--modalities", nargs="+", help="modalities to stack as channels (layout default if omitted)")
    parser.add_argument("--masks", type=Path, help="folder of anomaly masks (layout 'folder' only)")
    parser.add_argument("--fractions", nargs=3, type=float, default=(0.75, 0.05, 0.2), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preprocess-dir", type=Path, help="also write RAS, 1 mm, normalised copies here")
    parser.add_argument("--intensity", choices=sorted(INTENSITY_PRESETS), default="none")
    parser.add_argument("--spacing", type=float, default=1.0)
    args = parser.parse_args(argv)

    if not args.root.is_dir():
        parser.error(f"{args.root}: data set folder does not exist")
    scan = LAYOUTS[args.layout]
    kwargs = {"masks": args.masks} if args.layout == "folder" else {}
    try:
        cases, problems = scan(args.root, args.modalities, **kwargs)
    except ValueError as err:
        parser.error(str(err))
    if not cases:
        print(f"no {args.layout} cases found under {args.root}", file=sys.stderr)
        return 1
    datalist, report = build_datalist(cases, problems, args.layout, args.fractions, args.seed)
    if args.preprocess_dir:
        for split, entries in datalist.items():
            kept = []
            for case in tqdm(entries, desc=f"preprocess {split}", unit="case"):
                try:
                    kept.append(preprocess_case(case, args.preprocess_dir, args.intensity, args.spacing))
                except InputDataError as err:
                    report["skipped"].append({"path": err.source, "reason": err.problem})
            datalist[split] = kept
    write_datalist(args.out, datalist)
    atomic_write_json(args.out.with_suffix(".report.json"), report)
    counts = ", ".join(f"{k} {len(v)}" for k, v in datalist.items())
    print(f"{args.out}: {counts} cases; {len(report['skipped'])} skipped (see {args.out.with_suffix('.report.json')})")
    for item in report["skipped"]:
        print(f"  skipped {item['path']}: {item['reason']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
