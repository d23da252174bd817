#!/usr/bin/env bash
# README command 1: set up (if needed), then write anomaly maps for the embedded demo test set with every
# bundle, through the MONAI bundle CLI. Outputs: bundles/<name>/eval/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
found=0
for config in bundles/*/configs/inference.json; do
  [ -f "$config" ] || continue
  found=1
  bundle=$(basename "$(dirname "$(dirname "$config")")")
  echo "== $bundle: python -m monai.bundle run --config_file $config"
  .venv/bin/python -m monai.bundle run --config_file "$config"
  echo "== $bundle: outputs in bundles/$bundle/eval/"
done
[ "$found" = 1 ] || echo "no bundle with configs/inference.json yet"
