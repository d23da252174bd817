"""What the benchmark report adds to the evaluator's numbers: the test FPR its calibrated thresholds reach, the
mean over lesion families, and the detectability ceiling of a painted benchmark."""

import json

import nibabel as nib
import numpy as np
import pytest

from diffusion_anomaly.cli.benchmark import group_table, healthy_fpr_on_test
from diffusion_anomaly.cli.benchmark_ceiling import ceiling, markdown, oracle_map
from diffusion_anomaly.corruptions.benchmark_lesions import paint_lesions
from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.metrics import labelled_fraction, overlap_counts, sensitivity_precision


def test_test_fpr_is_recovered_from_the_evaluators_labelled_fraction_and_sensitivity():
    """The evaluator reports labelled fraction and sensitivity; the false positives they imply are the real ones."""
    rng = np.random.default_rng(0)
    label = rng.random(5000) < 0.03
    flagged = np.where(label, rng.random(5000) < 0.6, rng.random(5000) < 0.07)
    tp, fp, fn = overlap_counts(flagged, label)
    sensitivity, _ = sensitivity_precision(tp, fp, fn)
    metrics = {"pooled": {"n_pos": int(label.sum()), "n_neg": int((~label).sum())},
               "calibrated": {"fpr_5": {"labelled_fraction": labelled_fraction(tp, fp, fn, label.size),
                                        "sensitivity": sensitivity}}}
    assert healthy_fpr_on_test(metrics, "fpr_5") == pytest.approx((flagged & ~label).sum() / (~label).sum())
    assert healthy_fpr_on_test(metrics, "fpr_1") is None  # a threshold the evaluation did not calibrate
    assert healthy_fpr_on_test(dict(metrics, pooled={"n_pos": 0, "n_neg": 0}), "fpr_5") is None


def test_family_table_ends_with_the_pooled_row_and_the_mean_over_families():
    results = {"M": {"pooled": {"ap": 0.1}, "calibrated": {"fpr_5": {"dice": 0.05}},
                     "groups": {"a": {"ap": 0.2, "dice_fpr5": 0.1}, "b": {"ap": 0.6, "dice_fpr5": 0.3}}}}
    lines = group_table(results).splitlines()
    assert lines[-2] == "| pooled | 0.100 | 0.050 |"
    assert lines[-1] == "| mean over families | 0.400 | 0.200 |"


def _save(array, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array, np.float32), np.eye(4)), str(path))


@pytest.fixture
def painted_benchmark(tmp_path):
    """Demo layout: a healthy host, one case with a painted bright lesion, one whose label covers unchanged tissue."""
    grid = np.indices((32, 32, 32)) - 15.5
    brain = (grid**2).sum(0) < 13**2
    rng = np.random.default_rng(3)
    host = np.where(brain, 100 + 20 * (grid[0] > 0) + rng.normal(0, 1, brain.shape), 0).round()
    bright, bright_label = paint_lesions(host, brain, "hyperintense", np.random.default_rng(1), count=1, radii=(3, 4))
    unchanged_label = brain & (((grid - np.array([4, 0, 0]).reshape(3, 1, 1, 1)) ** 2).sum(0) < 4**2)
    _save(host, tmp_path / "host_a" / "t1.nii.gz")
    entries = []
    for case, family, image, label in (("host_a_hyperintense", "hyperintense", np.rint(bright), bright_label),
                                       ("host_a_deformation", "deformation", host, unchanged_label)):
        for stem, array in (("t1", image), ("brain_mask", brain), ("label", label)):
            _save(array, tmp_path / "benchmark" / case / f"{stem}.nii.gz")
        folder = f"benchmark/{case}"
        entries.append({"image": f"{folder}/t1.nii.gz", "foreground_mask": f"{folder}/brain_mask.nii.gz",
                        "label": f"{folder}/label.nii.gz", "case": case, "family": family})
    (tmp_path / "bench.json").write_text(json.dumps({"test": entries}))
    (tmp_path / "provenance.json").write_text(json.dumps(
        [{"case": e["case"], "source": {"host": "host_a"}} for e in entries] + [{"case": "host_a", "source": {}}]))
    return tmp_path


def test_ceiling_finds_painted_lesions_and_no_label_over_tissue_that_did_not_change(painted_benchmark):
    results = ceiling(painted_benchmark / "bench.json", 0.05)
    assert list(results) == ["deformation", "hyperintense", "pooled"]
    bright, unchanged = results["hyperintense"], results["deformation"]
    assert bright["lesion_changed"] == 1.0 and bright["ap"] > 0.99  # +40 % of the median at least: all visible
    assert unchanged["lesion_changed"] == 0.0 and unchanged["healthy_changed"] == 0.0
    # nothing changed in that case: every voxel ties at 0, so AP is the label's prevalence in the brain
    brain = nib.load(str(painted_benchmark / "benchmark/host_a_deformation/brain_mask.nii.gz")).get_fdata() > 0
    assert unchanged["ap"] == pytest.approx(unchanged["lesion_voxels"] / brain.sum())
    assert results["pooled"]["lesion_voxels"] == bright["lesion_voxels"] + unchanged["lesion_voxels"]
    table = markdown(results, 0.05).splitlines()
    assert table[0].startswith("| family | oracle AP") and table[-1].startswith("| pooled | ")


def test_ceiling_errors_name_the_file(painted_benchmark):
    (painted_benchmark / "provenance.json").write_text(json.dumps([{"case": "host_a_hyperintense",
                                                                    "source": {"host": "host_a"}}]))
    with pytest.raises(InputDataError, match="provenance.json: no healthy host recorded for 'host_a_deformation'"):
        ceiling(painted_benchmark / "bench.json", 0.05)
    (painted_benchmark / "provenance.json").write_text("[{\"case\": 1, \"source\": {\"host\": ")
    with pytest.raises(InputDataError, match="provenance.json: cannot read the cases' hosts"):
        ceiling(painted_benchmark / "bench.json", 0.05)
    (painted_benchmark / "provenance.json").unlink()
    with pytest.raises(InputDataError, match="no provenance.json next to the datalist"):
        ceiling(painted_benchmark / "bench.json", 0.05)


def test_ceiling_refuses_a_host_on_another_grid(painted_benchmark):
    _save(np.ones((8, 8, 8)), painted_benchmark / "host_a" / "t1.nii.gz")
    with pytest.raises(InputDataError, match=r"host_a/t1.nii.gz: host grid \(8, 8, 8\) differs"):
        ceiling(painted_benchmark / "bench.json", 0.05)


def test_oracle_map_is_the_change_in_brain_median_units():
    host = np.array([[0.0, 100.0, 100.0, 200.0]])
    brain = host > 0
    assert oracle_map(host + [[5.0, 10.0, 0.0, -50.0]], host, brain).tolist() == [[0.0, 0.1, 0.0, 0.5]]


def test_report_says_why_it_has_no_ceiling_and_writes_one_when_it_can(painted_benchmark, tmp_path):
    from diffusion_anomaly.cli.benchmark import _ceiling_section

    out = tmp_path / "report"
    section = _ceiling_section(painted_benchmark / "bench.json", out)
    assert section.endswith(markdown(ceiling(painted_benchmark / "bench.json", 0.05), 0.05))
    assert json.loads((out / "ceiling.json").read_text())["tolerance"] == 0.05
    (painted_benchmark / "provenance.json").unlink()
    assert _ceiling_section(painted_benchmark / "bench.json", out).startswith("\nNo detectability ceiling: ")
