"""One command-line entry point: ``python -m diffusion_anomaly <verb>``."""

import subprocess
import sys

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
