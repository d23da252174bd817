"""Batch inference reruns: leftovers of a killed run, stale outputs of a case that now fails, merged failures,
resuming with skip_existing."""

import json

import numpy as np
import pytest
import torch
from monai.data import Dataset
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from diffusion_anomaly.engines import CaseRunner
from diffusion_anomaly.errors import CasesFailedError
from diffusion_anomaly.inferers import IntensityInferer
from diffusion_anomaly.io import save_nifti
from diffusion_anomaly.transforms import SaveMapd


def _runner(tmp_path, cases, **kw):
    entries = [{"case": c, "image": str(tmp_path / f"{c}.nii.gz")} for c in cases]
    preprocessing = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image")])
    return CaseRunner(Dataset(entries, preprocessing), IntensityInferer(), None, SaveMapd("pred", tmp_path / "out"),
                      output_dir=tmp_path / "out", progress=False, **kw)


def _image(tmp_path, name, value=1.0):
    save_nifti(np.full((4, 5, 3), value, np.float32) + np.arange(3), np.eye(4), tmp_path / f"{name}.nii.gz")


def test_reruns_clean_up_and_merge_failures(tmp_path):
    for name in ("a", "b"):
        _image(tmp_path, name)
    _runner(tmp_path, ["a", "b"]).run()
    out = tmp_path / "out"
    assert (out / "b/pred.nii.gz").is_file()
    (out / "a/.pred.nii.gz.x1y2.tmp").write_bytes(b"half")  # what kill -9 during a write leaves
    (tmp_path / "b.nii.gz").write_bytes(b"\x1f\x8b\x08 now corrupt")
    with pytest.raises(CasesFailedError, match="1 of 2 cases failed"):
        _runner(tmp_path, ["a", "b"]).run()
    assert not list(out.rglob("*.tmp"))
    assert not (out / "b").exists()  # b's earlier map is not this run's result
    assert [f["case"] for f in json.loads((out / "failures.json").read_text())] == ["b"]
    with pytest.raises(CasesFailedError):
        _runner(tmp_path, ["c"]).run()  # c does not exist; b's failure (not rerun) is kept
    assert sorted(f["case"] for f in json.loads((out / "failures.json").read_text())) == ["b", "c"]


def test_skip_existing_resumes_a_killed_batch(tmp_path):
    for name in ("a", "b"):
        _image(tmp_path, name)
    _runner(tmp_path, ["a"]).run()
    before = (tmp_path / "out/a/pred.nii.gz").stat().st_mtime_ns
    summary = _runner(tmp_path, ["a", "b"], skip_existing=True).run()
    assert summary["skipped_existing"] == ["a"] and summary["done"] == ["b"]
    assert (tmp_path / "out/a/pred.nii.gz").stat().st_mtime_ns == before


def _truncated(path, source):
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_errors_of_truncated_files_and_checkpoints_name_the_file(tmp_path):
    from diffusion_anomaly.errors import InputDataError
    from diffusion_anomaly.networks.weights import load_weights
    from diffusion_anomaly.transforms import LoadImagesIfGivend

    _image(tmp_path, "good")
    _truncated(tmp_path / "cut.nii.gz", tmp_path / "good.nii.gz")  # gzip ends early: an EOFError naming nothing
    with pytest.raises(CasesFailedError):
        _runner(tmp_path, ["cut"]).run()
    failure = json.loads((tmp_path / "out/failures.json").read_text())[0]["error"]
    assert str(tmp_path / "cut.nii.gz") in failure
    # an uncompressed file cut short ("Expected 147456 bytes, got 73728" named no file)
    save_nifti(np.ones((48, 48, 16), np.float32), np.eye(4), tmp_path / "plain.nii")
    _truncated(tmp_path / "cutplain.nii.gz", tmp_path / "plain.nii")  # the runner's names end in .nii.gz
    (tmp_path / "cutplain.nii").write_bytes((tmp_path / "cutplain.nii.gz").read_bytes())
    (tmp_path / "cutplain.nii.gz").unlink()
    entries = [{"case": "cutplain", "image": str(tmp_path / "cutplain.nii")}]
    preprocessing = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image")])
    runner = CaseRunner(Dataset(entries, preprocessing), IntensityInferer(), None, SaveMapd("pred", tmp_path / "out"),
                        output_dir=tmp_path / "out", progress=False)
    with pytest.raises(CasesFailedError):
        runner.run()
    failures = {f["case"]: f["error"] for f in json.loads((tmp_path / "out/failures.json").read_text())}
    assert str(tmp_path / "cutplain.nii") in failures["cutplain"]
    with pytest.raises(InputDataError, match="cut.nii.gz: cannot be read"):
        LoadImagesIfGivend(["label"])({"label": str(tmp_path / "cut.nii.gz")})
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(InputDataError, match="model.pt: not a readable PyTorch checkpoint"):
        load_weights(torch.nn.Linear(1, 1), tmp_path / "model.pt")


def test_configuration_mistakes_stop_the_run_instead_of_failing_every_case(tmp_path):
    """Issue: a typo in a writer's keys wrote no map, an empty failures.json and exit 0."""
    _image(tmp_path, "a")
    entries = [{"case": "a", "image": str(tmp_path / "a.nii.gz")}]
    preprocessing = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image")])
    runner = CaseRunner(Dataset(entries, preprocessing), IntensityInferer(), None,
                        SaveMapd("pred_typo", tmp_path / "out"), output_dir=tmp_path / "out", progress=False)
    with pytest.raises(KeyError, match="pred_typo"):
        runner.run()
    assert not (tmp_path / "out/failures.json").exists()  # nothing claims the run went through


def _training(tmp_path, max_epochs, record):
    """A small pipeline with every kind of randomness a bundle has: a seeded sampler, a random transform, a
    prepare-batch with its own generator, and the global torch RNG."""
    from ignite.engine import Engine
    from monai.data import DataLoader
    from monai.transforms import RandGaussianNoised
    from monai.utils import set_determinism

    from diffusion_anomaly.training import ResumeCheckpoint

    set_determinism(0)  # what every bundle's config does at start, resumed or not
    data = [{"image": torch.full((1, 2, 2), float(i))} for i in range(6)]
    dataset = Dataset(data, Compose([RandGaussianNoised("image", prob=1.0)]))
    sampler = torch.utils.data.RandomSampler(dataset, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=0)

    class Noise:
        generator = torch.Generator().manual_seed(1)

    noise = Noise()

    def step(engine, batch):
        record.append((engine.state.epoch, batch["image"].sum().item(), torch.rand(1, generator=noise.generator)
                       .item(), torch.rand(1).item()))

    engine = Engine(step)
    ResumeCheckpoint(tmp_path / "checkpoint.pt", {}, random_sources=[loader, noise]).attach(engine)
    engine.run(loader, max_epochs=max_epochs)


def test_resume_does_not_replay_the_first_epoch(tmp_path):
    """Issue: a resumed run replayed epoch 1's batches and noise. Now the generators continue where they were:
    the prepare-batch noise and the global torch draws equal the uninterrupted run's exactly (the sampler's order
    may differ: torch's RandomSampler draws one more permutation when an exhausted epoch iterator is advanced)."""
    straight, resumed, fresh = [], [], []
    _training(tmp_path / "a", 3, straight)
    _training(tmp_path / "b", 1, resumed)  # killed after epoch 1 ...
    _training(tmp_path / "b", 3, resumed)  # ... and started again
    _training(tmp_path / "c", 1, fresh)  # what a resume without the random state replays
    assert [r[2:] for r in resumed] == [r[2:] for r in straight]
    assert [r[1:] for r in resumed[3:6]] != [r[1:] for r in fresh]
    assert [r[2:] for r in resumed[3:6]] != [r[2:] for r in fresh]
