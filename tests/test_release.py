"""Release packaging: deterministic self-contained zips that run without this repository, and the version gate."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from diffusion_anomaly.cli import package_bundles as pb
from diffusion_anomaly.io import save_nifti

REPO = Path(__file__).resolve().parents[1]

BUNDLES = pb.bundle_names()
QUICK = {"disyre": ["--roi_size", "[32, 32]"], "synomaly": ["--max_stages", "2"], "intensity_baseline": [],
         "anofpdm": ["--t_max", "20", "--step_stride", "10", "--constants", "{'thr_cls': 0.99, 'delta_max': [0.05]}"]}
ENV = dict(os.environ, OMP_NUM_THREADS="1")
# A Python that cannot see the repo or the installed (editable) shared package: only the unzipped bundle.
ISOLATED = """
import importlib, importlib.util, runpy, sys
repo = sys.argv.pop(1)
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
sys.path[:] = [p for p in sys.path if not p.startswith(repo) or p.startswith(sys.prefix)]  # keep the venv
sys.path.insert(0, "")
sys.path_importer_cache.clear()
origin = importlib.util.find_spec("diffusion_anomaly").origin
assert not origin.startswith(repo + "/shared"), origin
print("diffusion_anomaly from", origin, flush=True)
sys.argv = ["monai.bundle"] + sys.argv[1:]
runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_two_packaging_runs_give_identical_self_contained_zips(tmp_path):
    first = [pb.package(b, tmp_path / "a", "https://example.org") for b in BUNDLES]
    second = [pb.package(b, tmp_path / "b", "https://example.org") for b in BUNDLES]
    for one, two in zip(first, second):
        assert one.read_bytes() == two.read_bytes()
    for bundle, path in zip(BUNDLES, first):
        version = pb.metadata(bundle)["version"]
        assert path.name == f"{bundle}_v{version}.zip"
        names = zipfile.ZipFile(path).namelist()
        assert all(n.startswith(f"{bundle}/") for n in names)
        for required in ("LICENSE", "configs/metadata.json", "configs/inference.json", "docs/README.md",
                         "diffusion_anomaly/__init__.py", "diffusion_anomaly/inferers/__init__.py"):
            assert f"{bundle}/{required}" in names
        assert not any("/runs/" in n or "/eval/" in n or "__pycache__" in n for n in names)
        if (REPO / "bundles" / bundle / "models/model.pt").exists():
            assert f"{bundle}/models/model.pt" in names


def small_case(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    vol = np.zeros((40, 48, 5), np.float32)
    vol[4:36, 4:44, 1:4] = rng.uniform(0.3, 1, size=(32, 40, 3))
    vol[15:22, 15:22, 2] = 1.4
    folder.mkdir(parents=True, exist_ok=True)
    save_nifti(vol, np.diag([-1.0, -1.0, 1.0, 1.0]), folder / "case.nii.gz")
    (folder / "datalist.json").write_text(json.dumps({"test": [{"case": "case", "image": "case.nii.gz"}]}))
    return folder / "datalist.json"


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_release_zip_runs_without_the_repo_and_matches_the_repo(bundle, tmp_path):
    datalist = small_case(tmp_path / "data")
    zip_path = pb.package(bundle, tmp_path / "dist", "https://example.org")
    release = tmp_path / "release"
    zipfile.ZipFile(zip_path).extractall(release)
    args = ["--datalist", datalist, *QUICK[bundle]]
    isolated = subprocess.run([sys.executable, "-c", ISOLATED, str(REPO), "run", "--config_file",
                               "configs/inference.json", "--output_dir", tmp_path / "out_release", *map(str, args)],
                              cwd=release / bundle, capture_output=True, text=True, env=ENV)
    assert isolated.returncode == 0, isolated.stderr[-3000:]
    assert f"diffusion_anomaly from {release / bundle}" in isolated.stdout
    in_repo = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                              str(REPO / "bundles" / bundle / "configs/inference.json"), "--output_dir",
                              tmp_path / "out_repo", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                             env=ENV)
    assert in_repo.returncode == 0, in_repo.stderr[-3000:]
    released = np.asarray(nib.load(str(tmp_path / "out_release/case/pred.nii.gz")).dataobj)
    repo_map = np.asarray(nib.load(str(tmp_path / "out_repo/case/pred.nii.gz")).dataobj)
    np.testing.assert_array_equal(released, repo_map)


def test_committed_manifest_matches_every_bundle():
    assert pb.check_versions() == []


def test_content_change_without_version_bump_fails(tmp_path):
    root = tmp_path / "bundles"
    shutil.copytree(REPO / "bundles/intensity_baseline", root / "intensity_baseline",
                    ignore=shutil.ignore_patterns("eval", "runs"))
    manifest = tmp_path / "manifest.json"
    pb.update_manifest(root, manifest)
    assert pb.check_versions(root, manifest, check_git=False) == []
    readme = root / "intensity_baseline/docs/README.md"
    readme.write_text(readme.read_text() + "\nA change.\n")
    problems = pb.check_versions(root, manifest, check_git=False)
    assert len(problems) == 1 and "content changed but version is still" in problems[0]
    meta_path = root / "intensity_baseline/configs/metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = "9.9.9"
    meta_path.write_text(json.dumps(meta))
    assert "no changelog entry" in " ".join(pb.check_versions(root, manifest, check_git=False))
    meta["changelog"]["9.9.9"] = "docs"
    meta_path.write_text(json.dumps(meta))
    problems = pb.check_versions(root, manifest, check_git=False)
    assert "run python -m diffusion_anomaly package --update-manifest" in problems[0]
    pb.update_manifest(root, manifest)
    assert pb.check_versions(root, manifest, check_git=False) == []


def test_files_git_does_not_track_are_refused(tmp_path):
    """`ckpt_export --filepath bundles/<b>/models/model.ts` once made packaging ship an untracked 13 MB file under
    an unchanged version: --check and packaging now refuse untracked and ignored files."""
    root = tmp_path / "bundles"
    shutil.copytree(REPO / "bundles/intensity_baseline", root / "intensity_baseline",
                    ignore=shutil.ignore_patterns("eval", "runs"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text("*.ts\n")
    subprocess.run(git + ["add", "."], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-qm", "bundle"], cwd=tmp_path, check=True)
    def untracked():  # the vendored package is this repository's, checked by test_committed_manifest...
        return [p for p in pb.untracked_files("intensity_baseline", root) if p.startswith(str(root))]

    assert untracked() == []
    exported = root / "intensity_baseline/models/model.ts"
    exported.write_bytes(b"traced")  # ignored by git
    (root / "intensity_baseline/docs/notes.md").write_text("untracked")
    new_folder = root / "intensity_baseline/docs/figures"  # git tracks nothing in it: still checked
    new_folder.mkdir()
    (new_folder / "plot.png").write_bytes(b"png")
    assert untracked() == sorted([str(exported), str(root / "intensity_baseline/docs/notes.md"),
                                  str(new_folder / "plot.png")])
    manifest = tmp_path / "manifest.json"
    pb.update_manifest(root, manifest)
    assert any("model.ts is not tracked by git" in p for p in pb.check_versions(root, manifest))
    with pytest.raises(SystemExit, match="refusing to package files git does not track"):
        pb.package("intensity_baseline", tmp_path / "dist", "https://example.org", root)
    assert not list((tmp_path / "dist").glob("*.zip"))
