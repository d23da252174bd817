#!/usr/bin/env bash
# Set up .venv (torch first: CUDA build where an NVIDIA GPU is present, CPU build elsewhere), install the
# requirements and the shared package, and check the embedded demo data. Safe to run again: it skips
# what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing the CUDA build of torch==$TORCH_VERSION"
    $PIP install "torch==$TORCH_VERSION"
  else
    # A CPU-only machine must not download several GB of CUDA wheels: use a local +cpu wheel if pip's
    # configuration offers one, else PyTorch's CPU index.
    offered=$($PIP install --dry-run --no-deps --quiet --report - "torch==$TORCH_VERSION" 2>/dev/null \
      | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['install'][0]['metadata']['version'])" \
      || echo unknown)
    if [[ "$offered" == *+cpu ]]; then
      echo "setup: no GPU, installing torch $offered"
      $PIP install "torch==$TORCH_VERSION"
    else
      echo "setup: no GPU, installing torch==$TORCH_VERSION from the PyTorch CPU index"
      $PIP install "torch==$TORCH_VERSION" --index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
    fi
  fi
fi

stamp=.venv/.requirements.sha256
want=$(cat requirements.txt shared/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  $PIP install -r requirements.txt
  echo "$want" > "$stamp"
fi

.venv/bin/python -m diffusion_anomaly check-demo-data
