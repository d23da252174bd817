"""The MONAI Deploy app's path (deploy/anomaly_map_app), without installing the SDK (it breaks ``import monai`` in
this environment unless pydicom and highdicom come too): ``export_model.py`` writes the TorchScript model; the
configs are read back from it as MONAI Deploy App SDK 4.0.0's ``get_bundle_config`` does (``extra/metadata.json``
as ``_meta_``, then ``inference`` and ``inference_deploy`` merged); ``LoadImage*`` transforms are dropped; the
image arrives as a bare array with metadata; the inferer is called as ``inferer(inputs=..., network=...)`` with the
TorchScript module; ``ensure_tuple(outputs)[0]`` goes through the post-processing; the SDK casts the result to
uint8. The map must equal the bundle's own float map scaled by 255/2 (within one grey level)."""

import importlib.util
import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor, decollate_batch
from monai.transforms import Compose, Invertd
from monai.utils import ensure_tuple

pytestmark = pytest.mark.slow  # runs the bundle CLI in subprocesses

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "deploy/anomaly_map_app"
BUNDLES = sorted(p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/export.json"))
QUICK = {"disyre": {"roi_size": [32, 32]}, "synomaly": {"max_stages": 2},
         "anofpdm": {"gate": False}}  # its shipped constants, embedded into the model by export_model.py


def export_model():
    spec = importlib.util.spec_from_file_location("export_model", APP / "export_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sdk_config(model_ts: Path, overrides: dict) -> ConfigParser:
    parser = ConfigParser()
    root = model_ts.stem
    with zipfile.ZipFile(model_ts) as archive:
        parser.read_meta(f=ConfigParser.load_config_file(_extract(archive, f"{root}/extra/metadata.json", model_ts)))
        files = [_extract(archive, f"{root}/extra/{name}.json", model_ts) for name in ("inference", "inference_deploy")]
    parser.read_config(files)
    for key, value in overrides.items():
        parser[key] = value
    parser["device"] = "$torch.device('cpu')"
    return parser


def _extract(archive: zipfile.ZipFile, member: str, model_ts: Path) -> str:
    return archive.extract(member, model_ts.parent / "extracted")


def without_loaders(compose: Compose) -> Compose:
    return Compose([t for t in compose.transforms if not type(t).__name__.startswith(("LoadImage", "SaveImage"))])


@pytest.mark.parametrize("bundle", BUNDLES)
def test_deploy_app_path_gives_the_bundle_map_scaled_to_uint8(bundle, tmp_path):
    bundle_dir = tmp_path / bundle
    shutil.copytree(REPO / "bundles" / bundle, bundle_dir, ignore=shutil.ignore_patterns("runs", "eval"))
    model_ts = export_model().export(bundle_dir, tmp_path / "model" / "model.ts")
    config = sdk_config(model_ts, QUICK[bundle])
    assert "method_inferer" in config and config["_meta_"]["version"]

    rng = np.random.default_rng(0)
    volume = np.zeros((40, 48, 5), np.float32)
    volume[6:34, 8:40] = rng.uniform(0.2, 1.0, (28, 32, 5))
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    meta = {"affine": affine, "original_affine": affine, "original_channel_dim": "no_channel",
            "spatial_shape": np.asarray(volume.shape), "filename_or_obj": "case.nii.gz"}
    preprocessing = without_loaders(config.get_parsed_content("preprocessing"))
    inputs = preprocessing({"image": MetaTensor.ensure_torch_and_prune_meta(volume, meta)})

    network = torch.jit.load(str(model_ts), map_location="cpu").eval()
    with torch.no_grad():
        outputs = config.get_parsed_content("inferer")(inputs=inputs["image"][None], network=network)
    assert isinstance(outputs, torch.Tensor)
    post = without_loaders(config.get_parsed_content("postprocessing"))
    pred = post({"pred": ensure_tuple(outputs)[0], **inputs})["pred"]
    sent = np.squeeze(np.asarray(pred), 0).astype(np.uint8)  # what the SDK hands to the next operator
    assert sent.shape == volume.shape

    # the bundle's own path: its inferer and eager network, the float map in the input's grid
    own = ConfigParser()
    own.read_config(str(bundle_dir / "configs/inference.json"))
    own["bundle_root"] = str(bundle_dir)
    own["device"] = "$torch.device('cpu')"
    for key, value in QUICK[bundle].items():
        own[key] = value
    path = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), path)
    item = own.get_parsed_content("preprocessing")({"image": str(path)})
    with torch.no_grad():
        own_out = own.get_parsed_content("inferer")(item["image"][None], own.get_parsed_content("network"))
    item["pred"] = decollate_batch(own_out)[0]["pred"]
    own_map = Invertd(keys="pred", transform=own.get_parsed_content("preprocessing"), orig_keys="image")(item)["pred"]
    expected = np.clip(np.asarray(own_map, np.float64)[0] * 255.0 / 2.0, 0, 255).astype(np.uint8)
    assert np.abs(expected.astype(int) - sent.astype(int)).max() <= 1
    assert (expected == sent).mean() > 0.99
    assert float(own_map.max()) > 0.01 and sent.max() > 0, float(own_map.max())  # a map, not an empty volume
