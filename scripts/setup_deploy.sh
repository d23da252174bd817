#!/usr/bin/env bash
# Set up .venv-deploy: MONAI Deploy App SDK 4.0.0 for deploy/anomaly_map_app, apart from .venv, because the SDK
# installs into MONAI's namespace (monai/deploy/) and then `import monai` needs pydicom and highdicom.
# torch is installed first, as in scripts/setup.sh (the CPU build on machines without an NVIDIA GPU).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-deploy}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
"$VENV/bin/python" -c "import torch" 2>/dev/null || $PIP install "torch==$TORCH_VERSION"
$PIP install -r deploy/anomaly_map_app/requirements.txt ./shared
"$VENV/bin/python" -c "import importlib.metadata as m, torch, monai, holoscan; print('monai-deploy-app-sdk', \
m.version('monai-deploy-app-sdk'), '| holoscan', m.version('holoscan-cu13'), '| monai', monai.__version__, \
'| torch', torch.__version__)"
