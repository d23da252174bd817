#!/usr/bin/env bash
# Train the demo weights of all three diffusion bundles on one CUDA GPU, in bf16, with the shared intensity
# standardisation, on the in-domain benchmark's training split (no benchmark subject is seen), MINUTES of wall time
# per bundle (default 3: about 10 minutes in all). Writes, under OUT (default runs/demo_weights):
#   <bundle>/models/model.pt           final weights (the run ends as a completed one when its time is up)
#   <bundle>/best_model.pt             best weights by the synthetic-lesion validation (validation_curve.json)
#   anofpdm/models/constants.json      AnoFPDM's constants derived for its new weights (validation only)
#   train_log.json                     per bundle: iterations, minutes, best validation AP and where it was reached
# Without a CUDA GPU it refuses (train on the CPU with shared/training_runs/README.md instead) unless ALLOW_CPU=1,
# which is meant for a smoke run (e.g. ALLOW_CPU=1 MINUTES=0.2).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-3}
OUT=${OUT:-runs/demo_weights}
DATALIST=${DATALIST:-$PWD/shared/demo_data/in_domain_benchmark.json}
BUNDLES=${BUNDLES:-"disyre synomaly anofpdm"}

bash scripts/setup.sh
if ! .venv/bin/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  if [ "${ALLOW_CPU:-0}" != 1 ]; then
    echo "train_demo_weights.sh: no CUDA GPU; train on the CPU with the commands in shared/training_runs/README.md," \
      "or set ALLOW_CPU=1 for a smoke run" >&2
    exit 2
  fi
fi

# Larger batches than the CPU defaults (the GPU is idle otherwise); the cosine schedule spans 200 epochs and the
# time budget ends the run earlier.
declare -A GPU_BATCH=(
  [disyre]="--volumes_per_batch 8 --slices_per_volume 8"
  [synomaly]="--volumes_per_batch 8 --slices_per_volume 8"
  [anofpdm]="--volumes_per_batch 8 --slices_per_volume 8"
)
mkdir -p "$OUT"
for bundle in $BUNDLES; do
  echo "== $bundle: $MINUTES min"
  # shellcheck disable=SC2086
  .venv/bin/python -m monai.bundle run --config_file "bundles/$bundle/configs/train.json" \
    --intensity standard --datalist "$DATALIST" --output_dir "$PWD/$OUT/$bundle" --ckpt_dir "$PWD/$OUT/$bundle/models" \
    --max_minutes "$MINUTES" --max_epochs 200 --val_interval 2 ${GPU_BATCH[$bundle]} ${EXTRA_ARGS:-}
done

if [[ " $BUNDLES " == *" anofpdm "* ]]; then
  echo "== anofpdm: constants for the new weights"
  .venv/bin/python -m monai.bundle run \
    --config_file "['bundles/anofpdm/configs/inference.json','bundles/anofpdm/configs/calibrate.json']" \
    --datalist "$DATALIST" --intensity standard --checkpoint "$PWD/$OUT/anofpdm/models/model.pt" \
    --calibration_dir "$PWD/$OUT/anofpdm/calibration"
  cp "$OUT/anofpdm/calibration/constants.json" "$OUT/anofpdm/models/constants.json"
fi

.venv/bin/python - "$OUT" "$MINUTES" $BUNDLES <<'EOF'
import json, sys
from pathlib import Path

import torch

out, minutes, bundles = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
log = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "minutes_per_bundle": minutes}
for bundle in bundles:
    checkpoint = torch.load(out / bundle / "checkpoint.pt", map_location="cpu", weights_only=True)
    curve_file = out / bundle / "validation_curve.json"
    curve = json.loads(curve_file.read_text()) if curve_file.is_file() else {}
    trainer = checkpoint["trainer"]
    log[bundle] = {"iterations": int(trainer["iteration"]), "epochs": int(trainer["iteration"]) / trainer["epoch_length"],
                   "weights": str(out / bundle / "models/model.pt"), "best_weights": str(out / bundle / "best_model.pt"),
                   "best_validation": curve.get("best"), "validations": len(curve.get("curve", []))}
(out / "train_log.json").write_text(json.dumps(log, indent=2) + "\n")
print(json.dumps(log, indent=2))
EOF
