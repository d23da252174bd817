"""One command-line entry point: ``python -m diffusion_anomaly <verb>``."""

import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_anomaly.__main__ import BENCHMARKS, VERBS, main


def test_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(verb in out for verb in VERBS)


@pytest.mark.parametrize("verb", [*VERBS, *(f"benchmark --what {w}" for w in BENCHMARKS)])
def test_every_verb_has_its_own_help(verb, capsys):
    with pytest.raises(SystemExit) as done:
        main([*verb.split(), "--help"])
    assert done.value.code == 0
    assert f"python -m diffusion_anomaly {verb.split()[0]}" in capsys.readouterr().out


def test_unknown_verbs_and_benchmarks_are_refused(capsys):
    assert main(["prepare"]) == 2 and "unknown verb 'prepare'" in capsys.readouterr().err
    assert main(["benchmark", "--what", "fast"]) == 2 and "--what must be one of" in capsys.readouterr().err


def test_verbs_that_became_bundle_configs_say_where_they_went(capsys):
    assert main(["tune-synomaly", "--stride", "8"]) == 2
    err = capsys.readouterr().err
    assert "bundles/synomaly/configs/calibrate.json" in err and "calibration/calibrated.json" in err


def test_the_module_runs_as_a_program():
    result = subprocess.run([sys.executable, "-m", "diffusion_anomaly", "check-demo-data"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "demo data OK" in result.stdout


def test_benchmark_table_reads_each_column_from_the_evaluation_metrics():
    """The README's accuracy table: every number is the evaluation's own, in the column that names it."""
    from diffusion_anomaly.cli.benchmark import COLUMNS, markdown, row

    metrics = {"method": "m", "pooled": {"ap": 0.347, "auroc": 0.984, "oracle_dice": 0.533},
               "calibrated": {"fpr_1": {"dice": 0.527, "labelled_fraction": 0.0224}, "fpr_5": {"dice": 0.397}},
               "slice_level": {"mean": {"auroc": 0.662}},
               "cost": {"nfe_per_slice": 1.0, "seconds_per_volume": 23.2, "peak_rss_mb": 1736.1, "peak_gpu_mb": None,
                        "device": "cpu"}}
    r = row(metrics)
    assert (r["AP"], r["AUROC"], r["oracle Dice"], r["Dice @ FPR 5 %"], r["Dice @ FPR 1 %"],
            r["labelled @ FPR 1 %"], r["slice AUROC (mean)"]) == (0.347, 0.984, 0.533, 0.397, 0.527, 0.0224, 0.662)
    header, _, line = markdown([r]).splitlines()
    names, values = ([c.strip() for c in text.strip("|").split("|")] for text in (header, line))
    cells = dict(zip(names, values))
    assert list(cells) == list(COLUMNS)
    assert cells["AUROC"] == "0.984" and cells["labelled @ FPR 1 %"] == "0.022" and cells["s / volume"] == "23.20"
    assert row(dict(metrics, calibrated={}))["Dice @ FPR 1 %"] is None  # an evaluation without that threshold


def test_benchmark_resume_reads_back_only_a_run_of_the_same_command_and_files(tmp_path, monkeypatch):
    """A long CPU benchmark runs in pieces: --resume reuses a bundle's metrics only while its evaluation command
    (less the output folder), configs and weights are unchanged."""
    import json

    from diffusion_anomaly.cli import benchmark

    bundle = tmp_path / "bundles" / "fake"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    for name in ("inference.json", "evaluate.json"):
        (bundle / "configs" / name).write_text("{}")
    (bundle / "models" / "model.pt").write_bytes(b"weights v1")
    metrics = {"method": "Fake", "pooled": {"ap": 0.5, "auroc": 0.9, "oracle_dice": 0.4}, "calibrated": {},
               "slice_level": {}, "cost": {"nfe_per_slice": 0.0, "seconds_per_volume": 1.0, "peak_rss_mb": 1.0,
                                           "device": "cpu"}}
    runs = []

    def fake_run(cmd):
        runs.append(cmd)
        out = Path(cmd[cmd.index("--output_dir") + 1])
        (out / "evaluation").mkdir(parents=True, exist_ok=True)
        (out / "evaluation" / "metrics.json").write_text(json.dumps(metrics))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(benchmark, "REPO", tmp_path)
    monkeypatch.setattr(benchmark.subprocess, "run", fake_run)
    out = tmp_path / "runs"
    assert benchmark.main(["--bundles", "fake", "--out", str(out)]) == 0 and len(runs) == 1
    assert benchmark.main(["--bundles", "fake", "--out", str(out), "--resume"]) == 0 and len(runs) == 1
    assert "| Fake | 0.500 |" in (out / "benchmark.md").read_text()
    assert benchmark.main(["--bundles", "fake", "--out", str(out)]) == 0 and len(runs) == 2  # no --resume: runs
    assert benchmark.main(["--bundles", "fake", "--out", str(out), "--resume", "--intensity", "paper"]) == 0
    assert len(runs) == 3  # another command
    (bundle / "models" / "model.pt").write_bytes(b"weights v2")
    assert benchmark.main(["--bundles", "fake", "--out", str(out), "--resume", "--intensity", "paper"]) == 0
    assert len(runs) == 4  # new weights
    elsewhere = [str(tmp_path / "elsewhere") if arg == str(out / "fake") else arg for arg in runs[-1]]
    assert elsewhere != runs[-1] and benchmark.fingerprint(bundle, elsewhere) == benchmark.fingerprint(bundle, runs[-1])
