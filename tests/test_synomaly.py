"""Synomaly: noise generator statistics, one-step inversion, multi-stage stopping and fusion, batching."""

import numpy as np
import pytest
import torch
from monai.networks.schedulers import DDPMScheduler
from scipy import ndimage

from diffusion_anomaly.corruptions import SynomalyNoise
from diffusion_anomaly.inferers import SynomalyInferer
from diffusion_anomaly.inferers.slicing import content_seeds, seeded_noise
from diffusion_anomaly.inferers.synomaly import blur_kernel
from diffusion_anomaly.ops import opencv_gaussian_kernel
from diffusion_anomaly.training import SynomalyPrepareBatch


def test_brain_preset_blob_fraction_matches_spec():
    noise = SynomalyNoise.preset("brain_mri", seed=0)
    fractions = []
    for _ in range(10):
        _, blobs = noise(torch.zeros(50, 1, 128, 128))
        fractions += blobs.float().mean(dim=(1, 2, 3)).tolist()
    p10, p50, p90 = np.percentile(fractions, [10, 50, 90])
    assert 0.07 <= p50 <= 0.13  # spec: about 10 % of the pixels (10th-90th percentile 3-18 %)
    assert 0.02 <= p10 <= 0.06 and 0.14 <= p90 <= 0.22


@pytest.mark.parametrize("preset,sign", [("brain_mri", 1.0), ("liver_ct", -1.0)])
def test_one_offset_per_image_with_the_preset_sign(preset, sign):
    gen = SynomalyNoise.preset(preset, seed=3)
    region = torch.ones(8, 1, 64, 64)
    gen.generator.manual_seed(3)
    noise, blobs = gen(torch.zeros(8, 1, 64, 64), region)
    gen.generator.manual_seed(3)
    background = torch.randn((8, 1, 64, 64), generator=gen.generator)
    offsets = noise - background
    o = SynomalyNoise.preset(preset).offset
    for i in range(8):
        inside = offsets[i][blobs[i]]
        assert float(offsets[i][~blobs[i]].abs().max()) < 1e-6  # no offset outside the blobs
        assert float(inside.max() - inside.min()) < 1e-5  # every blob of an image has the same offset
        value = float(inside[0]) * sign
        assert o <= value <= o + 1  # d * (u + o), u in [0, 1)


def test_blobs_stay_in_the_region_and_seed_repeats():
    region = torch.zeros(4, 1, 64, 64)
    region[:, :, 16:48, 16:48] = 1
    _, blobs = SynomalyNoise.preset("liver_ct", seed=1)(torch.zeros(4, 1, 64, 64), region)
    assert not bool(blobs[region == 0].any()) and bool(blobs.any())
    _, disc_blobs = SynomalyNoise.preset("ultrasound", seed=1)(torch.zeros(4, 1, 64, 64))
    yy, xx = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    outside = ((yy - 32) ** 2 + (xx - 32) ** 2) > (64 / 2.2) ** 2
    assert not bool(disc_blobs[:, 0][:, outside].any())
    a, _ = SynomalyNoise(seed=7)(torch.zeros(2, 1, 32, 32))
    b, _ = SynomalyNoise(seed=7)(torch.zeros(2, 1, 32, 32))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="region mask"):
        SynomalyNoise.preset("liver_ct")(torch.zeros(1, 1, 16, 16))


def test_blob_threshold_on_rescaled_blur():
    gen = SynomalyNoise(sigma=2.0, threshold=200.0)
    field = torch.randn(1, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    blurred = ndimage.gaussian_filter(field[0, 0].numpy().astype(np.float64), 2.0, mode="mirror", truncate=4.0)
    scaled = (blurred - blurred.min()) / (blurred.max() - blurred.min()) * 255
    expected = scaled > 200
    got = gen.blobs(field)[0, 0].numpy()
    assert (got != expected).mean() < 0.002  # the same blobs up to rounding at the threshold


def test_prepare_batch_returns_synomaly_noise_as_target():
    prep = SynomalyPrepareBatch(1000, SynomalyNoise(seed=0), seed=0)
    images = torch.rand(4, 1, 32, 32)
    x, target, args, kwargs = prep({"image": images})
    assert torch.equal(x, images) and torch.equal(kwargs["noise"], target) and args == ()
    assert kwargs["timesteps"].shape == (4,) and int(kwargs["timesteps"].max()) < 1000


class TrueNoise(torch.nn.Module):
    """Predicts exactly the noise that was added (knows x0 and the schedule)."""

    def __init__(self, x0, scheduler):
        super().__init__()
        self.x0, self.s = x0, scheduler

    def forward(self, x_t, t):
        abar = self.s.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x_t - abar.sqrt() * self.x0[: len(x_t)]) / (1 - abar).sqrt()


def test_one_step_prediction_inverts_q_sample():
    scheduler = DDPMScheduler(1000, schedule="cosine")
    x0 = torch.rand(3, 1, 32, 32) * 2 - 1
    inferer = SynomalyInferer(scheduler, noise_level=250, max_stages=1, min_component=1)
    score, mask, restoration, stages = inferer.multi_stage(x0, TrueNoise(x0, scheduler))
    assert torch.allclose(restoration, x0, atol=1e-4)
    assert float(score.abs().max()) == 0.0 and stages.tolist() == [1, 1, 1]


class Shrinker(torch.nn.Module):
    """A 'restoration' that pulls a fixed square towards -1: a persistent anomaly the stages converge on."""

    def __init__(self, scheduler):
        super().__init__()
        self.s = scheduler

    def forward(self, x_t, t):
        abar = self.s.alphas_cumprod[t].view(-1, 1, 1, 1)
        x0 = x_t.clone()
        x0[..., 8:24, 8:24] = -1.0
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()


def test_multi_stage_stops_and_fuses_only_inside_the_mask():
    scheduler = DDPMScheduler(1000, schedule="cosine")
    x = torch.full((2, 1, 32, 32), 0.5)
    inferer = SynomalyInferer(scheduler, noise_level=5, blur_kernel=3, threshold=0.3, max_stages=5)
    score, mask, restoration, stages = inferer.multi_stage(x, Shrinker(scheduler))
    assert stages.max() <= 5 and stages.tolist() == [2, 2]  # stage 2 reproduces stage 1's mask: change 0 < 1 %
    assert bool(mask[..., 12:20, 12:20].all()) and not bool(mask[..., :4, :4].any())
    assert inferer.nfe == 4
    # one stage by hand: the fused image is the input outside the mask and the restoration inside
    x_tilde = (1 - mask) * x + mask * restoration
    assert torch.equal(x_tilde[mask == 0], x[mask == 0])
    assert float(score[mask == 0].abs().max()) == 0.0


def test_stops_after_max_stages_when_the_mask_keeps_changing():
    scheduler = DDPMScheduler(1000, schedule="cosine")

    class Growing(torch.nn.Module):
        calls = 0

        def forward(self, x_t, t):
            Growing.calls += 1
            abar = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
            x0 = x_t.clone()
            x0[..., : 4 * Growing.calls, :] = -1.0  # a larger anomaly at every stage
            return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()

    x = torch.full((1, 1, 32, 32), 0.5)
    inferer = SynomalyInferer(scheduler, noise_level=5, blur_kernel=1, threshold=0.5, min_component=1, max_stages=3)
    *_, stages = inferer.multi_stage(x, Growing())
    assert stages.tolist() == [3]


def test_batch_equals_one_by_one_and_volumes_equal_slices():
    torch.manual_seed(0)
    from diffusion_anomaly.networks import diffusion_unet

    net = diffusion_unet("synomaly", "demo").eval()
    for p in net.out.parameters():
        torch.nn.init.normal_(p, std=0.05)
    scheduler = DDPMScheduler(1000, schedule="cosine")
    inferer = SynomalyInferer(scheduler, noise_level=200, blur_kernel=5, threshold=0.05, min_component=5)
    x = torch.rand(3, 1, 40, 36) * 2 - 1
    x[2] = -1.0  # an empty slice scores 0 and costs nothing
    with torch.no_grad():
        batch = inferer(x, net)
        for i in range(3):
            single = inferer(x[i : i + 1], net)
            for key in ("pred", "mask", "restoration"):
                assert torch.allclose(batch[key][i], single[key][0], atol=1e-5), key
            assert batch["stages"][i] == single["stages"][0]
        assert batch["pred"].shape == (3, 1, 40, 36) and int(batch["stages"][2]) == 0
        volume = torch.movedim(x, 0, -1)[None]  # (1, 1, 40, 36, 3)
        out = inferer(volume, net)
        assert torch.allclose(out["pred"][0, :, :, :, 1], batch["pred"][1], atol=1e-5)
        assert out["stages"].shape == (1, 3)


def test_blur_kernel_is_opencvs_for_sigma_zero():
    """cv2.getGaussianKernel(k, 0): fixed tables for k <= 7, else a Gaussian with sigma 0.3 ((k - 1) / 2 - 1) + 0.8."""
    assert opencv_gaussian_kernel(1).tolist() == [1.0]
    assert opencv_gaussian_kernel(3).tolist() == [0.25, 0.5, 0.25]
    assert opencv_gaussian_kernel(5).tolist() == [0.0625, 0.25, 0.375, 0.25, 0.0625]
    assert opencv_gaussian_kernel(7).tolist() == [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125]
    sigma = 0.3 * (4 - 1) + 0.8  # k = 9
    taps = np.exp(-np.arange(-4, 5) ** 2 / (2 * sigma**2))
    np.testing.assert_allclose(opencv_gaussian_kernel(9).numpy(), taps / taps.sum(), rtol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        opencv_gaussian_kernel(4)


@pytest.mark.parametrize("k, width", [(3, 12), (7, 12), (7, 3), (15, 5)])
def test_blur_is_separable_with_reflect101_borders_at_any_size(k, width):
    rng = np.random.default_rng(k)
    img = rng.random((6, width)).astype(np.float32)
    kern = opencv_gaussian_kernel(k).numpy().astype(np.float64)
    r = k // 2
    padded = np.pad(img.astype(np.float64), r, mode="reflect")  # numpy's reflect is OpenCV's REFLECT_101
    rows = np.stack([np.convolve(row, kern, mode="valid") for row in padded])
    expected = np.stack([np.convolve(col, kern, mode="valid") for col in rows.T]).T
    ours = blur_kernel(torch.as_tensor(img)[None, None], k)[0, 0].numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-6)


class Growing(torch.nn.Module):
    """Stage c restores ``rows`` x ``cols + c * step`` pixels to -1 (plus ``extra`` pixels of row 30 from stage 2
    on): the mask grows by ``rows * step`` per stage."""

    def __init__(self, scheduler, rows=2, cols=8, step=1, extra=None):
        super().__init__()
        self.s, self.rows, self.cols, self.step, self.extra = scheduler, rows, cols, step, extra
        self.calls, self.inputs = 0, []

    def forward(self, x_t, t):
        self.calls += 1
        self.inputs.append(x_t.clone())
        abar = self.s.alphas_cumprod[t].view(-1, 1, 1, 1)
        x0 = x_t.clone()
        x0[..., : self.rows, : self.cols + self.calls * self.step] = -1.0
        if self.extra is not None and self.calls > 1:
            x0[..., 30, : self.extra] = -1.0
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()


def test_stop_rule_is_the_references():
    """Continue while |n_k - n_(k-1)| / max(n_(k-1), 500) > 0.01 (n_0 = all pixels)."""
    scheduler = DDPMScheduler(1000, schedule="cosine")
    x = torch.full((1, 1, 32, 32), 0.5)
    settings = dict(noise_level=5, blur_kernel=1, threshold=0.5, min_component=1, max_stages=5)
    # masks of 18, 20, ... px: change 2 / 500 = 0.004 -> stop after stage 2 (the old rule, 2 / 18, ran all 5)
    *_, stages = SynomalyInferer(scheduler, **settings).multi_stage(x, Growing(scheduler, rows=2))
    assert stages.tolist() == [2]
    *_, stages = SynomalyInferer(scheduler, change_floor=1, **settings).multi_stage(x, Growing(scheduler, rows=2))
    assert stages.tolist() == [5]
    # 500 px, then 505 px: change exactly 5 / 500 = 0.01 is not > 0.01 -> stop after stage 2
    net = Growing(scheduler, rows=20, cols=25, step=0, extra=5)
    *_, stages = SynomalyInferer(scheduler, **settings).multi_stage(x, net)
    assert stages.tolist() == [2]
    # 500 px, then 506 px: 0.012 > 0.01 -> a third stage, which changes nothing -> stop
    net = Growing(scheduler, rows=20, cols=25, step=0, extra=6)
    *_, stages = SynomalyInferer(scheduler, **settings).multi_stage(x, net)
    assert stages.tolist() == [3]


def _fused_input_of_stage_two(fusion):
    scheduler = DDPMScheduler(1000, schedule="cosine")
    x = torch.full((1, 1, 32, 32), 0.5)
    net = Growing(scheduler, rows=4, cols=8, step=0)
    inferer = SynomalyInferer(scheduler, noise_level=5, blur_kernel=1, threshold=0.5, min_component=1,
                              max_stages=2, fusion=fusion)
    inferer.multi_stage(x, net)
    abar = float(scheduler.alphas_cumprod[5])
    noise = seeded_noise(content_seeds(x, 0), x.shape[1:], 1, x.device)
    return (net.inputs[1] - (1 - abar) ** 0.5 * noise) / abar**0.5


def test_fusion_mask_and_difference():
    """Stage 1 restores the 4 x 8 block to -1 (D = |0.5 - (-1)| = 1.5): the mask fusion puts -1 there, the
    reference's continuous fusion (1 - D) x + D x0 = -0.5 * 0.5 + 1.5 * (-1) = -1.75; 0.5 elsewhere in both."""
    for fusion, inside in (("mask", -1.0), ("difference", -1.75)):
        x_tilde = _fused_input_of_stage_two(fusion)[0, 0]
        assert torch.allclose(x_tilde[:4, :8], torch.full((4, 8), inside), atol=1e-4), fusion
        assert torch.allclose(x_tilde[4:], torch.full((28, 32), 0.5), atol=1e-4), fusion
    with pytest.raises(ValueError, match="fusion"):
        SynomalyInferer(DDPMScheduler(1000, schedule="cosine"), fusion="blend")
