"""AnoFPDM: guidance, the streaming forward pass against a keep-everything version, per-slice decisions with a
stub network whose predictions are known, NFE, edge cases, the tumour simulator and training batches."""

import numpy as np
import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from diffusion_anomaly.corruptions import paint_tumour, sample_tumour
from diffusion_anomaly.inferers import AnoFPDMInferer, guided_noise, quantile_level
from diffusion_anomaly.networks import diffusion_unet
from diffusion_anomaly.networks.presets import HEALTHY, NULL_CLASS
from diffusion_anomaly.training import ClassifierFreePrepareBatch
from diffusion_anomaly.transforms import ImageLabeld, RandTumourd

torch.set_num_threads(1)
SCHEDULER = DDPMScheduler(num_train_timesteps=1000, schedule="linear_beta", beta_start=1e-4, beta_end=0.02)


def inferer(**kw):
    args = dict(thr_cls=0.99, delta_max=[0.05], t_max=12, divisible=8, median_size=1, max_component=0) | kw
    return AnoFPDMInferer(SCHEDULER, **args)


class KnownPredictions(torch.nn.Module):
    """Returns the eps whose one-step x0 is ``clean + a(t) * pattern`` (a per class label), so every
    prediction of the forward pass is known in closed form."""

    def __init__(self, clean, pattern, a_healthy, a_null):
        super().__init__()
        self.clean, self.pattern, self.a = clean, pattern, {HEALTHY: a_healthy, NULL_CLASS: a_null}
        self.calls = 0

    def forward(self, x_t, timesteps, class_labels):
        self.calls += len(x_t)
        abar = SCHEDULER.alphas_cumprod[timesteps].view(-1, 1, 1, 1).double()
        n = len(x_t) // 2
        clean = torch.cat([self.clean] * 2).double()
        amp = torch.tensor([float(self.a[int(c)](int(t))) for c, t in zip(class_labels, timesteps)]).double()
        x0 = clean + amp.view(-1, 1, 1, 1) * self.pattern.double()
        assert n >= 1
        return ((x_t.double() - abar.sqrt() * x0) / (1 - abar).sqrt()).float()


def bump(peak, height=0.15, width=3.0):
    return lambda t: height * np.exp(-((t - peak) ** 2) / (2 * width**2))


def case(seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(1, 1, 16, 16, generator=g) - 0.5
    pattern = torch.zeros(1, 1, 16, 16)
    pattern[..., 4:9, 5:11] = 1.0
    return clean, pattern


def test_guidance_formula():
    c, n = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.0])
    torch.testing.assert_close(guided_noise(c, n, 2.0), 3 * c - 2 * n)
    torch.testing.assert_close(guided_noise(c, n, 0.0), c)


def test_quantile_level_follows_the_reference_grid():
    """Reference: index = int64(round(clamp(r, 0, 1), 2) * 100) in float32; q = flip(linspace(0.90, 0.98, 101))."""
    cases = {0.0: 0, 0.004: 0, 0.333: 33, 0.5: 50, 0.987: 99, 1.0: 100, 1.7: 100, -0.2: 0,
             0.53: 52, 0.59: 58, 0.531: 52, 0.57: 57, 0.29: 29}  # 0.53 and 0.59 are x.x99999 after * 100 in float32
    for r, index in cases.items():
        assert float(quantile_level(torch.tensor(r))) == pytest.approx(0.98 - 0.0008 * index, abs=1e-6), r
    assert float(quantile_level(torch.tensor(0.53))) == pytest.approx(0.9384, abs=1e-6)  # not 0.9376


def test_end_step_map_threshold_and_gate_match_hand_computation():
    clean, pattern = case()
    w, peak = 2.0, 7
    net = KnownPredictions(clean, pattern, bump(peak), lambda t: 0.05)
    inf = inferer(guidance=w, delta_max=[0.01], thr_cls=0.999)
    curves = inf.forward_pass(clean, net)
    steps = np.arange(12)
    a_c, a_n = np.array([bump(peak)(t) for t in steps]), np.full(12, 0.05)
    guided = (1 + w) * a_c - w * a_n  # x0_h - x, in units of the pattern
    p2 = float((pattern**2).mean())
    delta = (guided - a_c) ** 2 * p2
    assert int(curves.end_index[0, 0]) == int(np.argmax(delta)) == peak
    np.testing.assert_allclose(curves.delta[0, 0].numpy(), delta, rtol=1e-3, atol=1e-7)
    expected_map = (np.mean(guided[:peak] ** 2) * pattern[0, 0]).numpy()
    np.testing.assert_allclose(curves.maps[0, 0].numpy(), expected_map, rtol=1e-3, atol=1e-6)

    out = inf.decide(curves)
    ratio = min(delta.max() / 0.01, 1.0)
    q = 0.98 - 0.08 * round(ratio, 2)
    assert float(out["quantile"][0, 0]) == pytest.approx(q, abs=1e-6)
    assert float(out["threshold"][0]) == pytest.approx(float(np.quantile(expected_map, q)), rel=1e-3)
    mse_h, mse_r = guided**2 * p2, a_c**2 * p2
    sim = mse_h @ mse_r / np.linalg.norm(mse_h) / np.linalg.norm(mse_r)
    assert float(out["similarity"][0]) == pytest.approx(sim, abs=1e-5)
    assert int(out["slice_label"][0]) == int(sim <= 0.999) == 1
    # the mask lies on the pattern; a healthy decision empties it
    mask = inf.mask(out["pred"], out["threshold"], out["slice_label"])
    assert mask.sum() > 0 and (mask[0, 0] <= pattern[0, 0]).all()
    assert inf.mask(out["pred"], out["threshold"], torch.zeros(1)).sum() == 0


def test_end_step_zero_uses_the_first_step():
    clean, pattern = case(1)
    net = KnownPredictions(clean, pattern, lambda t: 0.15 if t == 0 else 0.01, lambda t: 0.0)
    curves = inferer().forward_pass(clean, net)
    assert int(curves.end_index[0, 0]) == 0
    expected = ((1 + 2.0) * 0.15) ** 2 * pattern[0, 0]
    torch.testing.assert_close(curves.maps[0, 0], expected, rtol=1e-3, atol=1e-6)
    assert torch.isfinite(curves.maps).all()


def naive_forward_pass(inf, x, network):
    """Keep every prediction, then aggregate (the reference's memory behaviour)."""
    import zlib
    seeds = [inf.seed ^ zlib.crc32(img.numpy().tobytes()) for img in x]
    x0_h, x0_r = [], []
    for k, t in enumerate(inf.steps):
        noise = torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(s + k)) for s in seeds])
        abar = float(SCHEDULER.alphas_cumprod[t])
        x_t = abar**0.5 * x + (1 - abar) ** 0.5 * noise
        tt = torch.full((len(x),), t)
        eps_c = network(x_t, timesteps=tt, class_labels=torch.full((len(x),), HEALTHY))
        eps_n = network(x_t, timesteps=tt, class_labels=torch.full((len(x),), NULL_CLASS))
        eps_g = (1 + inf.guidance) * eps_c - inf.guidance * eps_n
        x0_h.append(((x_t - (1 - abar) ** 0.5 * eps_g) / abar**0.5).clamp(-1, 1))
        x0_r.append(((x_t - (1 - abar) ** 0.5 * eps_c) / abar**0.5).clamp(-1, 1))
    h, r = torch.stack(x0_h, 2), torch.stack(x0_r, 2)  # (N, C, S, H, W)
    delta = ((h - r) ** 2).mean((3, 4))
    end = delta.argmax(2)
    sub = (h - x[:, :, None]) ** 2
    maps = torch.stack([torch.stack([sub[i, c, : max(int(end[i, c]), 1)].mean(0) for c in range(x.shape[1])])
                        for i in range(len(x))])
    return maps, end, delta


@torch.no_grad()
def test_streaming_pass_equals_keep_everything_and_costs_two_nfe_per_step():
    torch.manual_seed(0)
    net = diffusion_unet("anofpdm", "demo", in_channels=2, out_channels=2).eval()
    x = torch.rand(3, 2, 32, 32) * 2 - 1
    calls = []
    counted = lambda *a, **k: calls.append(len(a[0])) or net(*a, **k)  # noqa: E731
    inf = inferer(t_max=40, step_stride=3)
    curves = inf.forward_pass(x, counted)
    maps, end, delta = naive_forward_pass(inf, x, net)
    assert sum(calls) == 2 * len(x) * len(inf.steps) == inf.nfe
    torch.testing.assert_close(curves.end_index, end)
    torch.testing.assert_close(curves.delta, delta, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(curves.maps, maps, rtol=1e-5, atol=1e-7)


@torch.no_grad()
def test_volumes_batches_and_empty_slices():
    torch.manual_seed(0)
    net = diffusion_unet("anofpdm", "demo").eval()
    volume = -torch.ones(1, 1, 24, 20, 5)
    volume[..., 1:4] = torch.rand(1, 1, 24, 20, 3) * 2 - 1
    inf = inferer(t_max=6, slice_batch_size=2, downsample=1, max_component=2)
    out = inf(volume, net)
    assert out["pred"].shape == out["mask"].shape == volume.shape
    assert out["slice_label"].shape == (1, 5) and out["end_step"].shape == (1, 5, 1)
    assert (out["end_step"][0, [0, 4]] == -1).all() and (out["pred"][..., [0, 4]] == 0).all()
    assert inf.nfe == 2 * 3 * 6  # empty slices cost nothing
    one_slice = inferer(t_max=6, slice_batch_size=1, max_component=2)
    one_by_one = torch.cat([one_slice(volume[..., z], net)["pred"][..., None] for z in range(5)], -1)
    torch.testing.assert_close(out["pred"], one_by_one)


@torch.no_grad()
def test_all_healthy_slices_give_empty_masks():
    clean, pattern = case(2)
    net = KnownPredictions(clean, pattern, bump(5, 0.1), bump(5, 0.1))  # guided == reference: healthy
    out = inferer(thr_cls=0.9)(clean, net)
    assert int(out["slice_label"][0]) == 0 and out["mask"].sum() == 0


def test_options_are_checked():
    with pytest.raises(ValueError, match="reference"):
        inferer(reference="guided")
    with pytest.raises(ValueError, match="t_max"):
        inferer(t_max=0)
    with pytest.raises(ValueError, match="delta_max"):
        inferer(delta_max=[0.0])


def test_tumour_simulator_paints_a_labelled_mass_inside_the_brain():
    yy, xx = np.mgrid[:96, :96]
    brain = ((yy - 48) ** 2 + (xx - 48) ** 2 < 40**2)
    image = torch.as_tensor(brain * 0.5, dtype=torch.float32)[None]
    params = sample_tumour(brain, 1, np.random.RandomState(3))
    out, lesion = paint_tumour(image, torch.as_tensor(brain)[None].float(), params)
    assert lesion.sum() > 20 and (lesion[0].bool() <= torch.as_tensor(brain)).all()
    assert (out[0][lesion[0] > 0] - 0.5).abs().mean() > 0.05  # visible contrast
    assert out.min() >= 0 and out.max() <= 1 and (out[0][~torch.as_tensor(brain)] == 0).all()
    same, _ = paint_tumour(image, torch.as_tensor(brain)[None].float(), params)
    torch.testing.assert_close(out, same)  # seeded


def test_tumour_transform_sets_the_image_level_label():
    yy, xx = np.mgrid[:64, :64]
    brain = torch.as_tensor((yy - 32) ** 2 + (xx - 32) ** 2 < 28**2)[None].float()
    item = {"image": brain * 0.6, "foreground_mask": brain, "label": torch.zeros_like(brain)}
    always, never = RandTumourd(prob=1.0), RandTumourd(prob=0.0)
    always.set_random_state(0)
    labelled = ImageLabeld()(always(item))
    assert int(labelled["class_label"]) == 1 and labelled["label"].sum() > 0
    assert int(ImageLabeld()(never(item))["class_label"]) == 0


def test_prepare_batch_drops_labels_to_the_null_class():
    batch = {"image": torch.zeros(4000, 1, 2, 2), "class_label": torch.ones(4000, dtype=torch.long)}
    images, target, _, kwargs = ClassifierFreePrepareBatch(1000, null_prob=0.1, seed=0)(batch)
    labels = kwargs["class_labels"]
    assert set(labels.tolist()) == {1, NULL_CLASS}
    assert 0.08 < float((labels == NULL_CLASS).float().mean()) < 0.12
    torch.testing.assert_close(target, kwargs["noise"])
    with pytest.raises(KeyError, match="class_label"):
        ClassifierFreePrepareBatch(1000)({"image": torch.zeros(1, 1, 2, 2)})


def test_ddim_forward_matches_ddpm_when_predictions_ignore_the_latent():
    """The stub's x0 predictions do not depend on x_t, so both encodings must give the same curves; the DDIM
    path still costs 2 NFE per step (it reuses the null-label eps of the guidance)."""
    clean, pattern = case(3)
    net = KnownPredictions(clean, pattern, bump(6), lambda t: 0.02)
    ddpm = inferer(forward_process="ddpm").forward_pass(clean, net)
    ddim_inferer = inferer(forward_process="ddim")
    ddim = ddim_inferer.forward_pass(clean, net)
    torch.testing.assert_close(ddim.maps, ddpm.maps, rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(ddim.end_index, ddpm.end_index)
    assert ddim_inferer.nfe == 2 * len(ddim_inferer.steps)


class LatentDependentEps(torch.nn.Module):
    """eps = 0.3 x_t + 0.002 t + 0.05 [null label]: depends on the latent, so the encoding path matters."""

    def __init__(self):
        super().__init__()
        self.paired_inputs = []

    def forward(self, x_t, timesteps, class_labels):
        if len(torch.unique(class_labels)) == 2:
            self.paired_inputs.append(x_t[: len(x_t) // 2].clone())
        null = (class_labels == NULL_CLASS).float().view(-1, 1, 1, 1)
        return 0.3 * x_t + 0.002 * timesteps.float().view(-1, 1, 1, 1) + 0.05 * null


def test_ddim_reference_encoding_reproduces_the_reference_formula():
    """The reference's calc_pred_xstart_loop with d_reverse: x_(lat,0) = q_sample(x, 0); for t >= 1 its
    ddim_reverse_sample(x_lat, t) with the null model: x0 = clip(pred_xstart), eps re-derived as
    (sqrt(1 / abar_t) x_lat - x0) / sqrt(1 / abar_t - 1), x_lat <- x0 sqrt(abar_(t+1)) + sqrt(1 - abar_(t+1)) eps;
    the latent scored at step t is that x_lat."""
    from diffusion_anomaly.inferers.slicing import content_seeds, seeded_noise

    clean, _ = case(4)
    net = LatentDependentEps()
    inf = inferer(forward_process="ddim_reference", t_max=6)
    inf.forward_pass(clean, net)
    abar = SCHEDULER.alphas_cumprod.double()
    x = clean.double()
    noise = seeded_noise(content_seeds(clean, 0), clean.shape[1:], 0, clean.device).double()
    lat = abar[0].sqrt() * x + (1 - abar[0]).sqrt() * noise
    expected = [lat]
    for t in range(1, 6):
        eps = 0.3 * lat + 0.002 * t + 0.05
        x0 = ((lat - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(-1, 1)
        eps = ((1 / abar[t]).sqrt() * lat - x0) / (1 / abar[t] - 1).sqrt()
        lat = x0 * abar[t + 1].sqrt() + (1 - abar[t + 1]).sqrt() * eps
        expected.append(lat)
    assert len(net.paired_inputs) == 6
    for got, want in zip(net.paired_inputs, expected):
        torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-5)
    assert inf.nfe == 2 * 6 + 5  # the extra null-label call at every t >= 1
    ours = inferer(forward_process="ddim", t_max=6)
    ours_net = LatentDependentEps()
    ours.forward_pass(clean, ours_net)
    assert float((ours_net.paired_inputs[5] - net.paired_inputs[5]).abs().max()) > 1e-4  # the paths differ
    with pytest.raises(ValueError, match="step_stride"):
        inferer(forward_process="ddim_reference", step_stride=2)
