"""Every bundle loaded the way MONAI Label 0.8.5's BundleInferTask loads bundles (without installing MONAI Label,
which would replace torch here): ids ``network_def``, ``preprocessing``, ``inferer``, ``postprocessing``; weights
from ``models/model.pt`` with ``weights_only=True`` and ``strict=False``; ``bundle_root`` and ``device`` overridden;
``inferer(inputs, network)`` called positionally; a dict output decollated into ``data["pred"]``; ``SaveImaged``
dropped from the post-processing. The result must be a label map in ``pred`` with the float map beside it."""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import decollate_batch
from monai.transforms import LoadImaged, SaveImaged

from diffusion_anomaly.io import save_nifti

pytestmark = pytest.mark.slow  # runs the bundle CLI in subprocesses

REPO = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/metadata.json"))
QUICK = {"disyre": {"roi_size": [32, 32]}, "synomaly": {"max_stages": 2}, "intensity_baseline": {},
         "anofpdm": {"t_max": 20, "step_stride": 10, "constants": {"thr_cls": 0.99, "delta_max": [0.05]}}}


def monai_label_loader(load: LoadImaged):
    """MONAI Label sets ``image_only=False`` on every ``LoadImaged`` and wraps it in its ``LoadImageTensord``, which
    looks up each of the loader's keys first: a key the request lacks is a ``KeyError``, whatever
    ``allow_missing_keys`` says."""
    load._loader.image_only = False

    def wrapped(data: dict) -> dict:
        for key in load.keys:
            data[key]  # noqa: B018 - the lookup LoadImageTensord makes
        return load(data)

    return wrapped


def bundle_infer_task(bundle_dir: Path, image: Path, overrides: dict) -> dict:
    config = ConfigParser()
    config.read_config(str(bundle_dir / "configs/inference.json"))
    config["bundle_root"] = str(bundle_dir)  # BundleInferTask overwrites these two
    config["device"] = "cpu"
    for key, value in overrides.items():
        config[key] = value
    network = config.get_parsed_content("network_def", instantiate=True)
    checkpoint = torch.load(bundle_dir / "models/model.pt", map_location="cpu", weights_only=True)
    result = network.load_state_dict(checkpoint.get("model", checkpoint), strict=False)
    assert not result.missing_keys and not result.unexpected_keys  # strict=False would only warn
    network.eval()

    pre = list(config.get_parsed_content("preprocessing", instantiate=True).transforms)
    pre = [monai_label_loader(t) if isinstance(t, LoadImaged) else t for t in pre]
    # the request as MONAI Label 0.8.5's BasicInferTask builds it (its server log: "PRE - Input Keys")
    data = {"device": "cpu", "model_filename": ["model.pt"], "model": bundle_dir.name, "image": str(image),
            "description": "the bundle's description", "image_path": str(image)}
    for t in pre:
        data = t(data)
    inferer = config.get_parsed_content("inferer", instantiate=True)
    with torch.no_grad():
        outputs = inferer(data["image"][None], network)
    data["pred"] = decollate_batch(outputs)[0] if isinstance(outputs, dict) else outputs[0]
    post = [t for t in config.get_parsed_content("postprocessing", instantiate=True).transforms
            if not isinstance(t, SaveImaged)]
    for t in post:
        data = t(data)
    return data


@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_infer_task_path_gives_a_label_map_and_keeps_the_float_map(bundle, tmp_path):
    bundle_dir = tmp_path / bundle
    shutil.copytree(REPO / "bundles" / bundle, bundle_dir, ignore=shutil.ignore_patterns("runs", "eval"))
    rng = np.random.default_rng(0)
    vol = np.zeros((40, 48, 5), np.float32)
    vol[4:36, 4:44, 1:4] = rng.uniform(0.3, 1, size=(32, 40, 3))
    vol[15:22, 15:22, 2] = 1.4
    save_nifti(vol, np.diag([-1.0, -1.0, 1.0, 1.0]), tmp_path / "scan.nii.gz")

    data = bundle_infer_task(bundle_dir, tmp_path / "scan.nii.gz", QUICK[bundle])
    assert data["image_path"] == str(tmp_path / "scan.nii.gz")  # MONAI Label's writer names the result from it
    pred, score = data["pred"], data["anomaly_map"]
    assert pred.dtype == torch.uint8 and set(torch.unique(pred).tolist()) <= {0, 1}
    assert tuple(pred.shape) == tuple(score.shape) == (1, 40, 48, 5)  # back on the input grid
    assert score.is_floating_point()
    written = list((bundle_dir / "eval/scan").glob("*/pred.nii.gz"))  # the float map, saved beside the label map
    assert len(written) == 1 and (written[0].parent / "overlay.png").is_file()
    np.testing.assert_allclose(np.asarray(nib.load(str(written[0])).dataobj), score[0].numpy(), atol=1e-6)
    bundle_infer_task(bundle_dir, tmp_path / "scan.nii.gz", QUICK[bundle])  # the same case again
    assert len(list((bundle_dir / "eval/scan").glob("*/pred.nii.gz"))) == 2  # the first request's map is kept


@pytest.mark.parametrize("bundle", BUNDLES)
def test_monai_label_names_label_one_anomaly(bundle):
    """BundleInferTask takes the label names from the first output's ``channel_def``, dropping "background"."""
    import json

    metadata = json.loads((REPO / "bundles" / bundle / "configs/metadata.json").read_text())
    pred = next(iter(metadata["network_data_format"]["outputs"].values()))
    labels = {v.lower(): int(k) for k, v in pred.get("channel_def", {}).items() if v.lower() != "background"}
    assert labels == {"anomaly": 1}
