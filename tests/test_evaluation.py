"""The shared evaluation: calibration blind to test labels, metrics equal to direct computation, bad cases."""

import csv
import json

import numpy as np
import pytest
import torch
from monai.data import Dataset, MetaTensor

from diffusion_anomaly.errors import CasesFailedError, InputDataError
from diffusion_anomaly.evaluation import AnomalyEvaluation
from diffusion_anomaly.inferers import IntensityInferer
from diffusion_anomaly.metrics import PooledScores, dice_from_counts, exact_curve, overlap_counts


def _case(seed, name, lesion=True, shape=(12, 10, 6), label_shape=None, nan=False, with_label=True):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0.2, 1.0, size=(1,) + shape).astype(np.float32)
    brain = np.zeros((1,) + shape, np.float32)
    brain[:, 1:-1, 1:-1, :] = 1
    label = np.zeros((1,) + (label_shape or shape), np.float32)
    if lesion:
        label[:, 3:6, 3:6, 2:4] = 1
        image[:, 3:6, 3:6, 2:4] += 0.5
    image *= brain
    if nan:
        image[0, 2, 2, 2] = np.nan
    case = {"case": name, "subject": name, "image": MetaTensor(torch.as_tensor(image)),
            "foreground_mask": MetaTensor(torch.as_tensor(brain))}
    if with_label:
        case["label"] = MetaTensor(torch.as_tensor(label))
    return case


def _evaluation(tmp_path, test_cases, calibration_cases=None, **kwargs):
    calibration_cases = calibration_cases or [_case(100 + i, f"val{i}", lesion=False) for i in range(2)]
    return AnomalyEvaluation(Dataset(test_cases), Dataset(calibration_cases), IntensityInferer(), None,
                             tmp_path / "eval", method="intensity", progress=False, **kwargs)


def test_threshold_ignores_test_labels(tmp_path):
    cases = [_case(i, f"t{i}") for i in range(3)]
    flipped = [dict(c, label=MetaTensor(1 - c["label"])) for c in cases]
    a = _evaluation(tmp_path / "a", cases).run()
    b = _evaluation(tmp_path / "b", flipped).run()
    for key in ("fpr_1", "fpr_5"):
        assert a["calibrated"][key]["threshold"] == b["calibrated"][key]["threshold"]
    assert a["pooled"]["ap"] != b["pooled"]["ap"]  # the labels did change the test metrics


def test_metrics_equal_direct_computation(tmp_path):
    cases = [_case(i, f"t{i}") for i in range(3)]
    calibration = [_case(100 + i, f"val{i}", lesion=False) for i in range(2)]
    m = _evaluation(tmp_path, cases, calibration).run()

    healthy = PooledScores()
    for c in calibration:
        b = c["foreground_mask"].numpy()[0] > 0
        healthy.update(c["image"].numpy()[0][b], np.zeros(b.sum(), bool))
    t5 = healthy.threshold_at_fpr(0.05)
    scores = np.concatenate([c["image"].numpy()[0][c["foreground_mask"].numpy()[0] > 0] for c in cases])
    labels = np.concatenate([c["label"].numpy()[0][c["foreground_mask"].numpy()[0] > 0] > 0 for c in cases])
    direct = exact_curve(scores, labels)
    assert m["pooled"]["ap"] == pytest.approx(direct.ap, abs=1e-9)
    assert m["pooled"]["oracle_dice"] == pytest.approx(direct.oracle_dice, abs=1e-9)
    assert m["calibrated"]["fpr_5"]["threshold"] == pytest.approx(t5)
    assert m["calibrated"]["fpr_5"]["dice"] == pytest.approx(dice_from_counts(*overlap_counts(scores >= t5, labels)))
    # what a viewer would paint at that threshold: the fraction of the test brain voxels at or above it
    assert m["calibrated"]["fpr_5"]["labelled_fraction"] == pytest.approx(np.mean(scores >= t5))
    assert m["n_test_cases"] == 3 and m["failures"] == []
    assert set(m["slice_level"]) == {"mean", "max", "topk"}
    assert m["slice_level"]["max"]["n_unhealthy"] == 3 * 2  # two lesion slices per case

    out = tmp_path / "eval"
    assert json.loads((out / "metrics.json").read_text())["pooled"]["n_pos"] == int(labels.sum())
    rows = list(csv.DictReader((out / "per_case.csv").open()))
    assert [r["case"] for r in rows] == ["t0", "t1", "t2"]
    assert float(rows[0]["ap"]) == pytest.approx(exact_curve(
        cases[0]["image"].numpy()[0][cases[0]["foreground_mask"].numpy()[0] > 0],
        cases[0]["label"].numpy()[0][cases[0]["foreground_mask"].numpy()[0] > 0]).ap, rel=1e-5)
    brain0 = cases[0]["foreground_mask"].numpy()[0] > 0
    assert float(rows[0]["labelled_fpr5"]) == pytest.approx(np.mean(cases[0]["image"].numpy()[0][brain0] >= t5))
    assert (out / "pr_curve.png").stat().st_size > 1000
    assert (out / "overlays/t0/overlay.png").is_file()


def test_bad_cases_are_reported_and_evaluation_goes_on(tmp_path):
    cases = [
        _case(0, "good"),
        _case(1, "wrong_shape", label_shape=(12, 10, 5)),
        _case(2, "has_nan", nan=True),
        _case(3, "no_label", with_label=False),
    ]
    with pytest.raises(CasesFailedError, match="2 case"):  # every report written, the exit code says it failed
        _evaluation(tmp_path, cases).run()
    m = json.loads((tmp_path / "eval/metrics.json").read_text())
    errors = {f["case"]: f["error"] for f in m["failures"]}
    assert errors["wrong_shape"].startswith("wrong_shape: anomaly map shape (12, 10, 6) differs from the label shape")
    assert errors["has_nan"] == "has_nan: anomaly map has 1 NaN or infinite values"
    assert m["skipped_for_pixel_metrics"] == [{"case": "no_label", "reason": "no label"}]
    assert m["n_test_cases"] == 1
    assert json.loads((tmp_path / "eval/failures.json").read_text()) == m["failures"]


def test_no_usable_calibration_case_is_an_error(tmp_path):
    evaluation = _evaluation(tmp_path, [_case(0, "t")], [_case(9, "bad", nan=True, lesion=False)])
    with pytest.raises(ValueError, match="no calibration case could be scored"):
        evaluation.run()
    assert evaluation.failures == [{"stage": "calibration", "case": "bad",
                                    "error": "bad: anomaly map has 1 NaN or infinite values"}]


def test_metrics_per_group_equal_direct_computation(tmp_path):
    """Cases with a ``family`` get pooled and calibrated metrics per family, computed on that family alone."""
    cases = [_case(i, f"t{i}") | {"family": "bright" if i < 2 else "other"} for i in range(3)]
    m = _evaluation(tmp_path, cases).run()
    assert set(m["groups"]) == {"bright", "other"}
    t5 = m["calibrated"]["fpr_5"]["threshold"]
    members = cases[:2]
    scores = np.concatenate([c["image"].numpy()[0][c["foreground_mask"].numpy()[0] > 0] for c in members])
    labels = np.concatenate([c["label"].numpy()[0][c["foreground_mask"].numpy()[0] > 0] > 0 for c in members])
    direct = exact_curve(scores, labels)
    assert m["groups"]["bright"]["ap"] == pytest.approx(direct.ap, abs=1e-9)
    assert m["groups"]["bright"]["dice_fpr5"] == pytest.approx(
        dice_from_counts(*overlap_counts(scores >= t5, labels)))
    assert m["groups"]["bright"]["n_pos"] == int(labels.sum())
    plain = _evaluation(tmp_path / "plain", [_case(i, f"t{i}") for i in range(3)]).run()
    assert plain["groups"] == {}


def test_unwritable_output_folder_fails_before_any_case(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    evaluation = AnomalyEvaluation(Dataset([_case(0, "t")]), Dataset([_case(1, "v", lesion=False)]),
                                   IntensityInferer(), None, blocker / "eval", progress=False)
    calls = []
    evaluation.calibrate = lambda: calls.append("calibrate")
    with pytest.raises(InputDataError, match="output folder cannot be created"):
        evaluation.run()
    assert calls == []
