"""Method-agnostic validation on synthetic lesions: fixed lesions, per-family AP, best weights, resume."""

import json
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine
from monai.transforms import EnsureChannelFirstd, LoadImaged, SpatialCropd

from diffusion_anomaly.training import LesionValidation

COLIN = Path(__file__).resolve().parents[1] / "shared/demo_data/colin27"
ENTRY = {"image": str(COLIN / "t1.nii.gz"), "foreground_mask": str(COLIN / "brain_mask.nii.gz")}
LOADING = [LoadImaged(["image", "foreground_mask"], image_only=True), EnsureChannelFirstd(["image", "foreground_mask"]),
           SpatialCropd(["image", "foreground_mask"], roi_center=(80, 98, 90), roi_size=(96, 112, 56))]  # keeps it fast


class Sign(torch.nn.Module):
    """A 'network' whose map is sign * intensity: +1 finds hyperintense lesions, -1 hypointense ones."""

    def __init__(self, sign):
        super().__init__()
        self.sign = torch.nn.Parameter(torch.tensor(float(sign)))


def _validation(tmp_path, network, families=("hyperintense", "hypointense"), validate_at_start=True):
    return LesionValidation([ENTRY], LOADING, lambda d: {**d, "image": d["image"] / 100.0},
                            lambda volume, net: {"pred": net.sign * volume}, network,
                            curve_path=tmp_path / "curve.json", best_path=tmp_path / "best.pt",
                            families=families, slices_per_family=3, interval=1,
                            validate_at_start=validate_at_start)


def test_the_set_is_fixed_and_holds_the_largest_lesion_slices(tmp_path):
    first, second = _validation(tmp_path, Sign(1)).build(), _validation(tmp_path, Sign(1)).build()
    (volume, label, brain, names), (volume2, label2, _, _) = first[0], second[0]
    assert torch.equal(volume, volume2) and np.array_equal(label, label2)  # seeded: same lesions every time
    assert volume.shape == (1, 96, 112, 6) and label.shape == brain.shape == (96, 112, 6)
    assert names == ["hyperintense"] * 3 + ["hypointense"] * 3
    assert (label.sum((0, 1)) > 50).all() and not (label & ~brain).any()  # lesion slices, inside the brain


def test_per_family_ap_follows_what_the_map_can_see(tmp_path):
    bright = _validation(tmp_path, Sign(1)).scores()["per_family"]
    dark = _validation(tmp_path, Sign(-1)).scores()["per_family"]
    assert bright["hyperintense"] > 0.5 > bright["hypointense"]
    assert dark["hypointense"] > dark["hyperintense"]


def test_best_weights_and_curve_survive_a_resume(tmp_path):
    network = Sign(1)
    validation = _validation(tmp_path, network, families=("hyperintense",))
    engine = Engine(lambda e, b: None)
    validation.attach(engine)
    engine.run(range(2), max_epochs=1)  # validates at iteration 0 (start) and after the epoch
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert [row["iteration"] for row in curve["curve"]] == [0, 2] and curve["best"]["ap"] > 0.5
    assert torch.load(tmp_path / "best.pt", weights_only=True)["sign"] == 1.0
    with torch.no_grad():
        network.sign.fill_(-1.0)  # a worse network after resuming
    resumed = _validation(tmp_path, network, families=("hyperintense",))
    engine = Engine(lambda e, b: None)
    resumed.attach(engine)
    engine.run(range(2), max_epochs=1)  # a fresh engine: iteration 0 is already on the curve, not re-validated
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert [row["iteration"] for row in curve["curve"]] == [0, 2]  # iteration 2 replaced by the worse network
    assert curve["curve"][-1]["ap"] < curve["best"]["ap"]
    assert torch.load(tmp_path / "best.pt", weights_only=True)["sign"] == 1.0  # the better weights are kept


def test_no_validation_at_start_unless_asked(tmp_path):
    validation = _validation(tmp_path, Sign(1), families=("hyperintense",), validate_at_start=False)
    engine = Engine(lambda e, b: None)
    validation.attach(engine)
    engine.run(range(2), max_epochs=1)
    assert [row["iteration"] for row in json.loads((tmp_path / "curve.json").read_text())["curve"]] == [2]


def test_no_validation_volumes_switch_the_validation_off(tmp_path):
    validation = LesionValidation([], LOADING, lambda d: d, lambda v, n: v, Sign(1), curve_path=tmp_path / "c.json")
    engine = Engine(lambda e, b: None)
    validation.attach(engine)
    engine.run(range(2), max_epochs=10)
    assert not (tmp_path / "c.json").exists()
