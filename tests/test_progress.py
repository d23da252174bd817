"""Per-slice progress in every inferer: servers get log lines, terminals a bar, tests can switch it off."""

import logging

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from diffusion_anomaly.inferers import AnoFPDMInferer, DisyreInferer, SynomalyInferer
from diffusion_anomaly.networks import diffusion_unet
from diffusion_anomaly.progress import SliceProgress
from diffusion_anomaly.schedulers import DisyreScheduler

VOLUME = torch.rand(1, 1, 32, 28, 7) * 2 - 1  # 7 axial slices with content everywhere


def _inferers(progress):
    torch.manual_seed(0)
    return {
        "DISYRE": (DisyreInferer(DisyreScheduler(100, 0.001, 0.2), roi_size=(16, 16), progress=progress),
                   lambda x, t: x, (VOLUME + 1) / 2),  # DISYRE's range is [0, 1]
        "Synomaly": (SynomalyInferer(DDPMScheduler(1000), noise_level=50, max_stages=1, slice_batch_size=3,
                                     progress=progress), lambda x, t: torch.zeros_like(x), VOLUME),
        "AnoFPDM": (AnoFPDMInferer(DDPMScheduler(1000), thr_cls=0.99, delta_max=[0.05], t_max=4, divisible=8,
                                   slice_batch_size=3, progress=progress),
                    diffusion_unet("anofpdm", "demo").eval(), VOLUME),
    }


@pytest.mark.parametrize("method", ["DISYRE", "Synomaly", "AnoFPDM"])
def test_every_inferer_reports_all_slices_of_a_volume(method, caplog):
    inferer, network, volume = _inferers(True)[method]
    with caplog.at_level(logging.INFO, logger="diffusion_anomaly.progress"), torch.no_grad():
        inferer(volume, network)
    messages = [r.getMessage() for r in caplog.records if r.name == "diffusion_anomaly.progress"]
    assert messages and messages[-1].startswith(f"{method}: 7/7 slices (100 %)")


@pytest.mark.parametrize("method", ["DISYRE", "Synomaly", "AnoFPDM"])
def test_progress_false_is_silent(method, caplog):
    inferer, network, volume = _inferers(False)[method]
    with caplog.at_level(logging.INFO, logger="diffusion_anomaly.progress"), torch.no_grad():
        inferer(volume, network)
    assert not [r for r in caplog.records if r.name == "diffusion_anomaly.progress"]


def test_log_lines_are_spaced_and_estimate_the_time_left(caplog):
    with caplog.at_level(logging.INFO, logger="diffusion_anomaly.progress"):
        with SliceProgress(152, "DISYRE", log_every=3600, terminal=False) as progress:
            for _ in range(152):
                progress.update(1)
    assert len(caplog.records) == 1  # only the last one, within an hour
    progress = SliceProgress(152, "DISYRE", terminal=False)
    progress.done = 5
    assert progress.message(10.0) == "DISYRE: 5/152 slices (3 %), 10 s elapsed, about 294 s left"


def test_terminal_bar_counts_fractional_window_updates(capsys):
    with SliceProgress(4, "DISYRE", terminal=True) as progress:
        for _ in range(8):
            progress.update(0.5)  # half a slice's windows per call
        assert progress._bar.n == pytest.approx(4.0)
