#!/usr/bin/env bash
# Set up .venv-monailabel: MONAI Label 0.8.5 in its own environment, apart from .venv, because it needs
#   - a torchvision built for the same torch (a CPU-only torch with PyPI's torchvision fails at import),
#   - numpy < 2 and pydicom < 3 (pydicom-seg 0.4.1 and MONAI Label 0.8.5 break otherwise),
#   - no sam2 (only an sdist on PyPI; building it downloads another torch). Start the server with --conf sam2 false.
# The bundles need nothing from this repository there: they run from their release zips (vendored package).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-monailabel}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.28.0}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"

# "===" (arbitrary equality) matches the PyPI build of torch only, never a local "+cpu" wheel, so torch and
# torchvision come from the same place and torchvision's compiled operators load.
if ! "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
  $PIP install "torch===$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

if ! "$VENV/bin/python" -c "import monailabel" 2>/dev/null; then
  $PIP install --no-deps "monailabel==0.8.5"
  # monailabel 0.8.5's requirements, less sam2 and the torchvision extra (installed above).
  $PIP install "torch===$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" "numpy<2" "pydicom>=2.4.4,<3" \
    "monai[fire,gdown,ignite,itk,lmdb,mlflow,nibabel,openslide,pillow,psutil,skimage,tensorboard,tqdm]==1.6.1" \
    "uvicorn>=0.29.0" "pydantic>=2.7.0" "pydantic-settings>=2.2.1" "python-dotenv>=1.0.1" "fastapi>=0.110.2" \
    "python-multipart>=0.0.9" "httpx>=0.27.0" "schedule>=1.2.1" "dicomweb-client[gcp]>=0.59.1" \
    "timeloop>=1.0.2" "expiringdict>=1.2.2" "expiring_dict>=1.1.0" "cachetools>=5.3.3" "watchdog>=4.0.0" \
    "pydicom-seg>=0.4.1" "pynetdicom>=2.0.2" "pynrrd>=1.0.0" "numpymaxflow>=0.0.7" "girder-client>=3.2.3" \
    "ninja>=1.11.1.1" "einops>=0.7.0" "pyyaml>=6.0.1" "filelock>=3.11.0" "passlib>=1.7.4" "pyjwt>=2.8.0" \
    "bcrypt>=4.1.2" "shapely>=2.0.4" "requests>=2.31.0" "requests-toolbelt>=1.0.0" "urllib3>=2.2.1" \
    scikit-learn scipy "google-auth>=2.29.0"
fi

"$VENV/bin/python" -c "import torch, torchvision, monai, monailabel, numpy, pydicom; print('monailabel', \
monailabel.__version__, '| monai', monai.__version__, '| torch', torch.__version__, '| torchvision', \
torchvision.__version__, '| numpy', numpy.__version__, '| pydicom', pydicom.__version__)"
