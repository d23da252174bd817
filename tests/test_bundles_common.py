"""Every bundle: required files, a name MONAI Label accepts, valid metadata offline, complete config properties."""

from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow, verify_metadata

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / ".ci/meta_schema_20240725.json"
BUNDLES = sorted(p.parent.parent for p in (REPO / "bundles").glob("*/configs/metadata.json"))
TRAINABLE = [b for b in BUNDLES if (b / "configs/train.json").exists()]


def test_there_are_bundles():
    assert {b.name for b in BUNDLES} >= {"intensity_baseline", "disyre"}


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_layout_and_name(bundle):
    for name in ("LICENSE", "configs/metadata.json", "configs/inference.json", "configs/evaluate.json",
                 "configs/logging.conf", "docs/README.md"):
        assert (bundle / name).is_file(), f"{bundle.name} lacks {name}"
    for word in ("detection", "segmentation", "classification"):
        assert word not in bundle.name  # MONAI Label guesses the task type from the folder name


@pytest.mark.parametrize("bundle", TRAINABLE, ids=[b.name for b in TRAINABLE])
def test_trainable_bundles_ship_training_configs_and_weights(bundle):
    for name in ("configs/train.json", "configs/multi_gpu_train.json", "models/model.pt"):
        assert (bundle / name).is_file(), f"{bundle.name} lacks {name}"
    assert (bundle / "models/model.pt").stat().st_size <= 25 * 2**20


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_metadata_verifies_offline(bundle):
    verify_metadata(meta_file=str(bundle / "configs/metadata.json"), filepath=str(SCHEMA))


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_inference_workflow_properties(bundle):
    wf = ConfigWorkflow(config_file=str(bundle / "configs/inference.json"), workflow_type="infer",
                        logging_file=False)
    wf.initialize()
    assert wf.check_properties() == []
    assert Path(wf.bundle_root).resolve() == bundle.resolve()  # found from the config's location


@pytest.mark.parametrize("bundle", TRAINABLE, ids=[b.name for b in TRAINABLE])
def test_train_workflow_properties(bundle):
    wf = ConfigWorkflow(config_file=str(bundle / "configs/train.json"), workflow_type="train", logging_file=False)
    wf.initialize()
    assert wf.check_properties() == []
