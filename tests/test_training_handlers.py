"""Fine-tuning from given weights and weight snapshots: what the demo-weight training runs rely on."""

import pytest
import torch
from ignite.engine import Engine

from diffusion_anomaly.training import ExponentialMovingAverage, InitialWeights, ResumeCheckpoint, WeightSnapshots


def _net(seed):
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def test_initial_weights_seed_a_fresh_run_and_its_ema(tmp_path):
    source = _net(1)
    torch.save(source.state_dict(), tmp_path / "shipped.pt")
    net = _net(2)
    ema = ExponentialMovingAverage(net, decay=0.5)
    engine = Engine(lambda e, b: None)
    InitialWeights(net, tmp_path / "shipped.pt", ema=ema).attach(engine)
    engine.run(range(1), max_epochs=1)
    assert torch.equal(net.weight, source.weight) and torch.equal(ema.module.weight, source.weight)


def test_a_resumed_run_keeps_its_own_weights_not_the_initial_ones(tmp_path):
    torch.save(_net(1).state_dict(), tmp_path / "shipped.pt")
    trained = _net(3)
    net = _net(2)
    resume = ResumeCheckpoint(tmp_path / "checkpoint.pt", {"network": trained})
    first = Engine(lambda e, b: None)
    resume.attach(first)
    first.run(range(2), max_epochs=1)  # writes the checkpoint of a run at iteration 2
    engine = Engine(lambda e, b: None)
    InitialWeights(net, tmp_path / "shipped.pt").attach(engine)  # attached first, as in the configs
    ResumeCheckpoint(tmp_path / "checkpoint.pt", {"network": net}).attach(engine)
    engine.run(range(2), max_epochs=2)
    assert torch.equal(net.weight, trained.weight)


def test_initial_weights_none_trains_from_scratch_and_a_missing_file_is_named(tmp_path):
    net = _net(2)
    before = net.weight.clone()
    engine = Engine(lambda e, b: None)
    InitialWeights(net, None).attach(engine)
    engine.run(range(1), max_epochs=1)
    assert torch.equal(net.weight, before)
    with pytest.raises(FileNotFoundError, match="initial_weights.*nowhere.pt"):
        InitialWeights(net, tmp_path / "nowhere.pt")


def test_weight_snapshots_every_interval_epochs_load_with_weights_only(tmp_path):
    net = _net(0)

    def step(engine, batch):
        with torch.no_grad():
            net.weight += 1.0

    engine = Engine(step)
    WeightSnapshots(tmp_path / "snapshots", net, interval=2).attach(engine)
    engine.run(range(3), max_epochs=4)
    names = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert names == ["weights_iteration000006.pt", "weights_iteration000012.pt"]
    state = torch.load(tmp_path / "snapshots" / names[-1], weights_only=True)
    assert torch.equal(state["weight"], net.weight)
    with pytest.raises(ValueError, match="snapshot_interval"):
        WeightSnapshots(tmp_path, net, interval=0)


def test_time_budget_ends_the_run_as_completed(tmp_path, monkeypatch):
    import time as clock

    from diffusion_anomaly.training import FinalWeights, TimeBudget

    now = [1000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])

    def step(engine, batch):
        now[0] += 30.0  # every iteration takes half a minute

    engine = Engine(step)
    TimeBudget(max_minutes=2).attach(engine)
    FinalWeights(tmp_path / "model.pt", _net(0)).attach(engine)
    engine.run(range(10), max_epochs=5)
    assert engine.state.iteration == 4  # 4 x 30 s = the 2-minute budget
    assert (tmp_path / "model.pt").is_file()  # written as for a completed run
    untimed = Engine(lambda e, b: None)
    TimeBudget(None).attach(untimed)
    untimed.run(range(10), max_epochs=5)
    assert untimed.state.iteration == 50
    with pytest.raises(ValueError, match="max_minutes"):
        TimeBudget(0)
