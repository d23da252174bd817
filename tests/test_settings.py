"""Bad numeric settings fail at construction with one clear error naming the setting and its range."""

import pytest
from monai.networks.schedulers import DDPMScheduler

from diffusion_anomaly.inferers import AnoFPDMInferer, DisyreInferer, SynomalyInferer
from diffusion_anomaly.schedulers import DisyreScheduler
from diffusion_anomaly.settings import check_bool, check_float, check_int

DDPM = DDPMScheduler(1000, schedule="cosine")


def disyre(**kw):
    return DisyreInferer(DisyreScheduler(), **kw)


def synomaly(**kw):
    return SynomalyInferer(DDPM, **kw)


def anofpdm(**kw):
    return AnoFPDMInferer(DDPM, **({"thr_cls": 0.99, "delta_max": [0.05]} | kw))


@pytest.mark.parametrize("make, setting, value", [
    (disyre, "sw_batch_size", -1), (disyre, "sw_batch_size", 0), (disyre, "step_size", 0), (disyre, "overlap", 1.0),
    (disyre, "roi_size", (128, -5)), (disyre, "strengths", (0.5, 1.5)), (disyre, "sigma_scale", 0.0),
    (synomaly, "slice_batch_size", -1), (synomaly, "slice_batch_size", 0), (synomaly, "noise_level", "abc"),
    (synomaly, "noise_level", 1000), (synomaly, "blur_kernel", 4), (synomaly, "threshold", float("nan")),
    (synomaly, "max_stages", 0), (synomaly, "downsample", 0), (synomaly, "min_component", -3),
    (anofpdm, "slice_batch_size", -1), (anofpdm, "t_max", 0), (anofpdm, "step_stride", 0),
    (anofpdm, "median_size", 4), (anofpdm, "downsample", 2.5), (anofpdm, "quantile_range", (0.98, 0.90)),
])
def test_bad_setting_names_itself(make, setting, value):
    with pytest.raises(ValueError, match=f"'{setting}'"):
        make(**{setting: value})


def test_checks_accept_good_values_and_refuse_bools():
    assert check_int("n", 3, 1) == 3 and check_float("x", 2, 0.0) == 2.0
    with pytest.raises(ValueError, match="'n' must be an integer >= 1"):
        check_int("n", True, 1)
    with pytest.raises(ValueError, match="> 0"):
        check_float("x", 0.0, 0.0, exclusive_minimum=True)
    assert synomaly(slice_batch_size=1, noise_level=0).slice_batch_size == 1


def test_boolean_settings_take_the_strings_the_cli_passes():
    """``--gate false`` arrives as the string "false", which is truthy: it must mean False."""
    assert check_bool("gate", "false") is False and check_bool("gate", "True") is True
    assert anofpdm(gate="false").gate is False
    with pytest.raises(ValueError, match="'gate' must be true or false"):
        anofpdm(gate="no")
    with pytest.raises(ValueError, match="'foreground_weighting'"):
        disyre(foreground_weighting="maybe")
