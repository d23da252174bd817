#!/usr/bin/env bash
# Lay out a MONAI Label app that serves every bundle from its release zip, and a studies folder of demo volumes:
#   runs/monailabel/monaibundle/        MONAI Label's stock "monaibundle" sample app
#   runs/monailabel/monaibundle/model/  the bundles, unzipped from dist/ (their package is vendored inside)
#   runs/monailabel/studies/            demo T1 volumes, one NIfTI file per case
# Needs .venv (scripts/setup.sh) and .venv-monailabel (scripts/setup_monailabel.sh). Then start the server with the
# command in README.md ("Use with MONAI Label").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=runs/monailabel

bash scripts/setup.sh  # .venv packages the bundles (quick when it is already set up)
.venv/bin/python -m diffusion_anomaly package
rm -rf "$OUT/monaibundle" "$OUT/studies"
mkdir -p "$OUT/studies"
PATH="$PWD/.venv-monailabel/bin:$PATH" monailabel apps --download --name monaibundle --output "$OUT"
for zip in dist/*.zip; do
  .venv/bin/python -m zipfile -e "$zip" "$OUT/monaibundle/model/"
done
# the demo test cases, whole and cropped to a 64 x 64 x 6 block (a quick request on a CPU)
.venv/bin/python - "$OUT/studies" <<'EOF'
import json, sys
from pathlib import Path

import nibabel as nib
import numpy as np

from diffusion_anomaly.io import save_nifti

studies, demo = Path(sys.argv[1]), Path("shared/demo_data")
for entry in json.loads((demo / "datalist.json").read_text())["test"]:
    nii = nib.load(demo / entry["image"])
    save_nifti(np.asarray(nii.dataobj, np.float32), nii.affine, studies / f"{entry['case']}.nii.gz")
    corner = np.array(nii.shape) // 2 - np.array([32, 32, 3])
    affine = nii.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ corner
    x, y, z = corner
    block = np.asarray(nii.dataobj, np.float32)[x:x + 64, y:y + 64, z:z + 6]
    save_nifti(block, affine, studies / f"{entry['case']}_block.nii.gz")
print("studies:", ", ".join(sorted(p.name for p in studies.iterdir())))
EOF
echo "bundles: $(ls "$OUT/monaibundle/model" | tr '\n' ' ')"
