"""The project's command-line verbs (``python -m diffusion_anomaly <verb>``): data preparation, the demo data,
benchmarks, setting selection and release packaging. Bundles never import this package."""

from pathlib import Path

# the checkout the package is installed from (editable install of shared/): demo data, bundles, dist/
REPO = Path(__file__).resolve().parents[3]
