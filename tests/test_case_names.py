"""Output folders named after cases: nothing escapes the output folder, no two cases share a folder."""

import json

import pytest
import torch
from monai.data import MetaTensor

from diffusion_anomaly.data import load_datalist
from diffusion_anomaly.engines.case_runner import case_name
from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.transforms import SaveMapd


@pytest.mark.parametrize("name", ["../../escaped_case", "/tmp/escaped_case", "..", "a/../../b", "c:\\evil"])
def test_case_names_are_one_safe_path_component(name, tmp_path):
    safe = case_name({"case": name})
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".") and safe
    out = tmp_path / "out"
    item = {"case": name, "pred": MetaTensor(torch.zeros(1, 2, 2, 2), affine=torch.eye(4))}
    SaveMapd("pred", out)(item)
    written = list(tmp_path.rglob("pred.nii.gz"))
    assert len(written) == 1 and written[0].parent.parent == out  # inside the output folder, one level down


def _datalist(tmp_path, entries):
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"test": entries}))
    return path


def test_entries_without_case_get_unique_names_from_their_paths(tmp_path):
    path = _datalist(tmp_path, [{"image": "a/t1.nii.gz", "subject": "s"}, {"image": "b/t1.nii.gz", "subject": "s"},
                                {"image": "a/t1.nii.gz"}, {"image": "c.nii.gz", "case": "given"}])
    names = [e["case"] for e in load_datalist(path, "test")]
    assert names == ["a_t1", "b_t1", "a_t1_2", "given"]  # once, two */t1.nii.gz (or one subject) shared a folder
    assert len({case_name(e) for e in load_datalist(path, "test")}) == 4


def test_duplicate_case_names_and_plain_string_entries_are_refused(tmp_path):
    with pytest.raises(InputDataError, match=r"\['x'\] more than once"):
        load_datalist(_datalist(tmp_path, [{"image": "a.nii.gz", "case": "x"}, {"image": "b.nii.gz", "case": "x"}]),
                      "test")
    with pytest.raises(InputDataError, match="entry 1 must be an object"):
        load_datalist(_datalist(tmp_path, [{"image": "a.nii.gz"}, "b.nii.gz"]), "test")


def test_relative_dicom_folders_are_resolved_like_files(tmp_path):
    """Issue: a relative series folder (no file suffix) was left relative to the working directory."""
    (tmp_path / "series_01").mkdir()
    (tmp_path / "series_01" / "IM0001").write_bytes(b"")
    path = _datalist(tmp_path, [{"image": "series_01", "case": "colin27", "subject": "series_01"},
                                {"image": "absent_folder", "case": "x"}])
    entries = load_datalist(path, "test")
    assert entries[0]["image"] == str(tmp_path / "series_01")
    assert entries[0]["case"] == "colin27" and entries[0]["subject"] == "series_01"  # only image keys are paths
    assert entries[1]["image"] == str(tmp_path / "absent_folder")  # a loading error will name the full path
