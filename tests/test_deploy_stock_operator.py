"""The stock MONAI Deploy path: an app built only from the SDK's own operators (its NIfTI loader and its
``MonaiBundleInferenceOperator``) runs each trainable bundle's exported model on a whole 3-D volume, and the map
equals the bundle's own map within one grey level.

It runs in ``.venv-deploy`` (``bash scripts/setup_deploy.sh``: the SDK changes what ``import monai`` needs), so it
is skipped where that environment is absent, CI included.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DEPLOY_PYTHON = REPO / ".venv-deploy/bin/python"
BUNDLES = ["disyre", "synomaly", "anofpdm"]

# An app of stock operators; the sink only saves what the bundle operator emits.
STOCK_APP = """
import sys
from pathlib import Path

import numpy as np
from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application, Image, IOType, Operator, OperatorSpec
from monai.deploy.operators.monai_bundle_inference_operator import (BundleConfigNames, IOMapping,
                                                                    MonaiBundleInferenceOperator)
from monai.deploy.operators.nii_data_loader_operator import NiftiDataLoader


class Sink(Operator):
    def setup(self, spec: OperatorSpec):
        spec.input("pred")

    def compute(self, op_input, op_output, context):
        image = op_input.receive("pred")
        np.save(Path(self.fragment.out) / "pred.npy", np.asarray(image.asnumpy()))


class StockApp(Application):
    def compose(self):
        context = Application.init_app_context(self.argv)
        self.out = context.output_path
        loader = NiftiDataLoader(self, CountCondition(self, 1), input_path=Path(context.input_path), name="loader")
        bundle = MonaiBundleInferenceOperator(
            self, app_context=context, name="bundle",
            bundle_config_names=BundleConfigNames(config_names=["inference", "inference_deploy"]),
            input_mapping=[IOMapping("image", Image, IOType.IN_MEMORY)],
            output_mapping=[IOMapping("pred", Image, IOType.IN_MEMORY)])
        self.add_flow(loader, bundle, {("image", "image")})
        self.add_flow(bundle, Sink(self, name="sink"), {("pred", "pred")})


StockApp().run()
"""


@pytest.mark.skipif(not DEPLOY_PYTHON.is_file(), reason="needs .venv-deploy (bash scripts/setup_deploy.sh)")
@pytest.mark.parametrize("bundle", BUNDLES)
def test_stock_sdk_operators_give_the_bundle_map(bundle, tmp_path):
    rng = np.random.default_rng(0)
    volume = np.zeros((40, 48, 6), np.float32)
    volume[6:34, 8:40] = rng.uniform(60, 200, (28, 32, 6))
    volume[14:20, 18:24, 2:4] = 250.0  # something bright to find
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "case.nii.gz")  # RAS, 1 mm: the loader keeps no affine

    model = tmp_path / "model/model.ts"
    subprocess.run([sys.executable, str(REPO / "deploy/anomaly_map_app/export_model.py"),
                    str(REPO / "bundles" / bundle), str(model)], check=True, capture_output=True)
    (tmp_path / "app.py").write_text(STOCK_APP)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, HOLOSCAN_LOG_LEVEL="ERROR")
    result = subprocess.run([str(DEPLOY_PYTHON), str(tmp_path / "app.py"), "-i", str(tmp_path / "case.nii.gz"),
                             "-o", str(out), "-m", str(model)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    sent = np.load(out / "pred.npy")

    datalist = {"test": [{"case": "case", "image": str(tmp_path / "case.nii.gz")}]}
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                    str(REPO / "bundles" / bundle / "configs/inference.json"), "--datalist",
                    str(tmp_path / "datalist.json"), "--output_dir", str(tmp_path / "own")], check=True,
                   capture_output=True)
    own = np.asarray(nib.load(str(tmp_path / "own/case/pred.nii.gz")).dataobj)
    # inference_deploy.json maps scores 0-2 to 0-255 and the SDK's uint8 cast truncates: cast the bundle's map alike
    expected = np.floor(np.clip(own / 2.0 * 255.0, 0, 255))
    sent = np.squeeze(sent)
    if sent.shape != expected.shape:  # the SDK hands images out as (D, H, W)
        sent = np.transpose(sent, (2, 1, 0))
    assert sent.shape == volume.shape  # the whole volume, not one slice
    # one grey level: the traced network differs from the eager one in the last bits, which can cross an integer
    assert np.abs(sent.astype(np.float64) - expected).max() <= 1.0
