"""DISYRE: schedule, corruption, prepare-batch, inferer (Algorithm 1, ensemble, foreground weighting), export."""

import numpy as np
import pytest
import torch

from diffusion_anomaly.corruptions import DisyreCorruption, ForeignPatchCache, intensity_bias, random_shape
from diffusion_anomaly.inferers import DisyreInferer
from diffusion_anomaly.inferers.disyre import window_grid_padding
from diffusion_anomaly.networks import diffusion_unet, trace_for_export
from diffusion_anomaly.schedulers import DisyreScheduler
from diffusion_anomaly.training import DisyrePrepareBatch


class Identity(torch.nn.Module):
    def forward(self, x, t):
        return x


class Recorder(torch.nn.Module):
    """Returns a fixed fraction of the input and records every timestep batch it is called with."""

    def __init__(self, factor=0.5):
        super().__init__()
        self.factor, self.calls = factor, []

    def forward(self, x, t):
        self.calls.append(t.tolist())
        return x * self.factor


def test_schedule_matches_spec_table():
    s = DisyreScheduler()
    expected = {0: 0.9995, 10: 0.941, 24: 0.727, 49: 0.272, 74: 0.051, 99: 0.0045}
    for index, value in expected.items():
        assert float(s.sqrt_alphas_cumprod[index]) == pytest.approx(value, abs=6e-4)
    alphas = s.strength(torch.arange(0, 101))
    assert float(alphas[0]) == 0.0 and bool((alphas[1:] > alphas[:-1]).all())
    assert float(alphas[100]) == pytest.approx(1 - 0.0045, abs=6e-4)
    assert [s.timestep_for_strength(a) for a in (0.005, 0.05, 0.27, 0.73)] == [3, 10, 25, 50]
    assert s.set_timesteps(25).tolist() == [100, 75, 50, 25]
    with pytest.raises(ValueError):
        s.strength(101)


def test_corrupt_blend_and_step_formulas():
    s = DisyreScheduler()
    x0, fp, m = torch.full((1, 1, 2, 2), 0.2), torch.full((1, 1, 2, 2), 0.8), torch.tensor([[[[1.0, 0.5], [0, 1]]]])
    t = torch.tensor([50])
    a = float(s.strength(50))
    np.testing.assert_allclose(s.corrupt(x0, fp, m, t).numpy(), ((1 - a * m) * 0.2 + a * m * 0.8).numpy(), rtol=1e-6)
    assert torch.equal(s.corrupt(x0, fp, m, torch.tensor([0])), x0)
    a25 = float(s.strength(25))
    np.testing.assert_allclose(s.step(x0, fp, 25).numpy(), ((1 - a25) * 0.2 + a25 * 0.8) * np.ones((1, 1, 2, 2)),
                               rtol=1e-6)


def _brain_batch(n=6, size=128):
    g = torch.Generator().manual_seed(0)
    x = torch.rand((n, 1, size, size), generator=g) * 0.8 + 0.1
    x[:, :, :, : size // 4] = 0  # background strip
    return x


@pytest.mark.parametrize("kind", ["dag", "fpi"])
def test_corruption_identity_at_alpha_zero_masks_and_background(kind):
    s = DisyreScheduler()
    x = _brain_batch()
    corruption = DisyreCorruption(s, kind=kind, seed=1)
    same, masks, t = corruption(x, torch.zeros(len(x)))
    assert torch.equal(same, x)
    assert t.tolist() == [1] * len(x)  # nothing changed: told strength 0, the weakest level
    out, masks, t = corruption(x, torch.ones(len(x)))
    empty = masks.flatten(1).amax(1) == 0  # a shape can fall on background only: nothing applied, told 0
    assert t.tolist() == [1 if e else 100 for e in empty.tolist()]
    assert float(masks.min()) >= 0 and float(masks.max()) <= 1 and float(masks.max()) > 0.5
    background = x == 0
    assert float(masks[background].abs().max()) == 0.0
    assert torch.equal(out[background], x[background])  # background untouched
    assert not torch.equal(out, x)


def test_foreign_patch_never_comes_from_the_same_image():
    s = DisyreScheduler()
    values = torch.tensor([0.2, 0.4, 0.6, 0.8])
    x = values.view(4, 1, 1, 1).expand(4, 1, 128, 128).clone()
    corruption = DisyreCorruption(s, kind="fpi", smooth_prob=0.0, seed=3)
    for _ in range(5):
        a = float(s.strength(100))
        out, masks, _ = corruption(x, torch.full((4,), a), sources=["a", "b", "c", "d"])
        for i in range(4):
            inside = masks[i, 0] > 0.99
            implied = (out[i, 0][inside] - (1 - a) * values[i]) / a  # the pasted texture's value
            assert len(implied) > 0
            assert bool(((implied - values[i]).abs() > 0.05).all()), "texture came from the image itself"

    cache = ForeignPatchCache(box=4)
    g = torch.Generator().manual_seed(0)
    cache.push(torch.ones(2, 1, 8, 8), ["a", "a"], g)
    assert cache.pop("a", g) is None  # only its own patches: none is given
    cache.push(torch.zeros(1, 1, 8, 8) + 0.5, ["b"], g)
    assert float(cache.pop("a", g).mean()) == 0.5


def test_shapes_and_bias_properties():
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        m = random_shape(64, g)
        assert m.shape == (64, 64) and float(m.min()) >= 0 and float(m.max()) <= 1 and float(m.sum()) > 0
    image = torch.full((32, 32), 0.61)
    mask = torch.zeros(32, 32)
    mask[8:24, 8:24] = 1
    out = intensity_bias(image, mask, 0.2, 1.0, g)
    assert torch.equal(out[mask == 0], image[mask == 0])  # nothing changes outside the anomaly
    assert float(out[16, 16]) == pytest.approx(0.81, abs=1e-5)  # the only class present is always chosen
    assert float(out.max()) <= 1.0


def test_strength_to_timestep_mapping():
    s = DisyreScheduler()
    strengths = torch.tensor([0.0, 0.005, 0.05, 0.27, 0.73, 1.0])
    assert s.timesteps_for_strengths(strengths).tolist() == [1, 3, 10, 25, 50, 100]
    # nearest level: |alpha_t - a| is minimal over t in 1..100
    for a in torch.linspace(0, 1, 37).tolist():
        t = int(s.timesteps_for_strengths(torch.tensor([a]))[0])
        assert abs(float(s.strengths[t]) - a) == pytest.approx(float((s.strengths[1:] - a).abs().min()), abs=1e-12)


@pytest.mark.parametrize("kind, expected", [("dag", (0.0729, 0.4600, 0.4671)), ("fpi", (0.27, 0.46, 0.27))])
def test_training_strength_mix_follows_the_reference(kind, expected):
    """v2 code: alpha_tex, alpha_b ~ U(0, 1); told strength max of both ("dag": P(<= a) = a^2) or alpha_tex."""
    corruption = DisyreCorruption(DisyreScheduler(), kind=kind, seed=0)
    texture, bias = corruption.draw_strengths(40000)
    told = torch.maximum(texture, bias)
    fractions = [float((told <= 0.27).double().mean()), float(((told > 0.27) & (told <= 0.73)).double().mean()),
                 float((told > 0.73).double().mean())]
    assert fractions == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("kind", ["dag", "fpi"])
def test_timestep_is_the_level_of_the_strength_applied(kind):
    """With a fixed strength a, the blend uses a and the bias changes pixels by at most a: t = level nearest a."""
    s = DisyreScheduler()
    corruption = DisyreCorruption(s, kind=kind, box=16, smooth_prob=0.0, seed=2)
    x = _brain_batch(6, 32)
    for a in (0.1, 0.3, 0.6, 0.9):
        out, masks, t = corruption(x, torch.full((6,), a), sources=list("abcdef"))
        changed = ~(out == x).flatten(1).all(1)
        assert bool(changed.all())
        assert t.tolist() == [s.timestep_for_strength(a)] * 6
        inside = masks[:, :1] > 0.99
        if kind == "fpi":  # the blend itself: x (1 - a m) + x_fp a m, so |change| <= a inside the mask
            assert float((out - x)[inside].abs().max()) <= a + 1e-6


def test_prepare_batch_draws_timesteps_from_the_strength_mix():
    """fpi: the told strength is alpha_tex ~ U(0, 1), so P(t <= 25) = P(alpha_tex <= alpha_25 + half a gap)."""
    s = DisyreScheduler()
    prep = DisyrePrepareBatch(DisyreCorruption(s, kind="fpi", box=16, smooth_prob=0.0, seed=0))
    ts = []
    for i in range(40):
        x = _brain_batch(32, 32)
        ts.append(prep({"image": x, "subject": [f"{i}-{j}" for j in range(32)]})[3]["timesteps"])
    t = torch.cat(ts)
    boundary = float(s.strengths[25] + s.strengths[26]) / 2  # strengths below it map to t <= 25
    assert float((t <= 25).double().mean()) == pytest.approx(boundary, abs=0.04)
    boundary50 = float(s.strengths[50] + s.strengths[51]) / 2
    assert float((t > 50).double().mean()) == pytest.approx(1 - boundary50, abs=0.04)


def test_prepare_batch_targets_clean_images():
    s = DisyreScheduler()
    prep = DisyrePrepareBatch(DisyreCorruption(s, seed=0))
    x = _brain_batch(4)
    xt, target, args, kwargs = prep({"image": x, "subject": ["a", "b", "c", "d"]})
    assert torch.equal(target, x) and args == ()
    t = kwargs["timesteps"]
    assert t.shape == (4,) and int(t.min()) >= 1 and int(t.max()) <= 100
    assert xt.shape == x.shape


def test_algorithm1_timesteps_and_identity_network_scores_zero():
    s = DisyreScheduler()
    x = torch.rand(2, 1, 128, 128) + 0.1
    healing = DisyreInferer(s, scoring="healing", step_size=25)
    spy = Recorder()
    healing(x, spy)
    assert [sorted(set(c)) for c in spy.calls] == [[100], [75], [50], [25]]
    assert healing.nfe == 4 * 2
    for mode in ("healing", "ensemble"):
        out = DisyreInferer(s, scoring=mode)(x, Identity())
        assert float(out["pred"].abs().max()) == 0.0
        assert torch.allclose(out["restoration"], x, atol=1e-6)


def test_algorithm1_score_by_hand():
    """Network returns 0.5 x: x0 = x/2 at t=100; the score is the mean of |x0 - x_cur| over the 4 steps
    (the reference's multi-step-restoration divides the accumulated score by the number of steps)."""
    s = DisyreScheduler()
    x = torch.full((1, 1, 128, 128), 0.8)
    out = DisyreInferer(s, scoring="healing", foreground_weighting=False)(x, Recorder(0.5))
    cur, expected = 0.8, 0.0
    for t_next in (75, 50, 25, None):
        x0 = 0.5 * cur
        expected += abs(x0 - cur)
        if t_next is not None:
            a = float(s.strengths[t_next])
            cur = (1 - a) * x0 + a * cur
    assert float(out["pred"][0, 0, 64, 64]) == pytest.approx(expected / 4, rel=1e-5)


def test_ensemble_is_mean_of_single_steps_at_the_levels():
    s = DisyreScheduler()
    inferer = DisyreInferer(s, scoring="ensemble", strengths=(0.05, 0.73), foreground_weighting=False)
    spy = Recorder(0.25)
    x = torch.full((1, 1, 128, 128), 0.4)
    out = inferer(x, spy)
    assert sorted(set(spy.calls[0])) == [10, 50]  # both levels in one batched call
    assert float(out["pred"][0, 0, 10, 10]) == pytest.approx(0.75 * 0.4, rel=1e-6)


def test_foreground_weighting_scales_each_window_by_its_foreground_fraction():
    s = DisyreScheduler()
    inferer = DisyreInferer(s, roi_size=(8, 8))
    net = Recorder(0.0)  # restoration 0: raw score = |x|
    windows = torch.zeros(3, 1, 8, 8)
    windows[0] = 1.0  # all foreground
    windows[1, :, :4, :4] = 1.0  # a quarter foreground
    score, _ = inferer.score_windows(windows, net)
    assert torch.allclose(score[0], torch.ones(1, 8, 8))
    assert torch.allclose(score[1, :, :4, :4], torch.full((1, 4, 4), 0.25))
    assert float(score[2].abs().max()) == 0.0
    assert inferer.nfe == 2 * 4  # the empty window was never evaluated


def test_volume_inference_equals_slice_by_slice():
    torch.manual_seed(0)
    net = diffusion_unet("disyre", "demo").eval()
    for p in net.out.parameters():
        torch.nn.init.normal_(p, std=0.05)
    s = DisyreScheduler()
    inferer = DisyreInferer(s, roi_size=(32, 32), sw_batch_size=5)
    vol = torch.rand(1, 1, 40, 48, 3)
    vol[..., :6, :, :] = 0
    with torch.no_grad():
        whole = inferer(vol, net)["pred"]
        for z in range(3):
            single = inferer(vol[..., z], net)["pred"]
            assert torch.allclose(whole[..., z], single, atol=1e-5)


def test_traced_export_matches_eager():
    torch.manual_seed(0)
    net = diffusion_unet("disyre", "demo").eval()
    for p in net.out.parameters():
        torch.nn.init.normal_(p, std=0.05)
    traced = trace_for_export(net, (2, 1, 64, 64), timestep=10)
    x, t = torch.rand(3, 1, 32, 64), torch.tensor([3, 50, 100])
    with torch.no_grad():
        assert float((traced(x, t) - net(x, t)).abs().max()) < 1e-4


def test_bad_inputs_to_inferer():
    with pytest.raises(ValueError, match="scoring"):
        DisyreInferer(DisyreScheduler(), scoring="magic")
    with pytest.raises(ValueError, match="expected"):
        DisyreInferer(DisyreScheduler())(torch.rand(1, 128, 128), Identity())


def test_window_grid_padding_follows_the_reference_formula():
    # reference: padded = max(size, roi), raised to roi + k * stride; padding split evenly, odd pixel after
    assert window_grid_padding(200, 128, 32) == (12, 12)  # windows start at -12, 20, 52, 84
    assert window_grid_padding(170, 128, 32) == (11, 11)
    assert window_grid_padding(129, 128, 32) == (15, 16)
    assert window_grid_padding(100, 128, 32) == (14, 14)
    assert window_grid_padding(160, 128, 32) == (0, 0)
    assert window_grid_padding(128, 128, 32) == (0, 0)


class WindowMean(torch.nn.Module):
    """x0 = the window's mean scaled by the level: the score depends on where each window lies."""

    def forward(self, x, t):
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x) * (1 - t.view(-1, 1, 1, 1).float() / 200)


def _reference_map(image, levels, roi=32, stride=8, sigma_scale=0.125):
    """The reference's pipeline written out: crop to the non-zero box, pad evenly to roi + k * stride, unfold with
    the stride, per window mean_t |x - P(x, t)| times the window's fraction of pixels > 0 and times (x > 0),
    Gaussian-weighted fold, divide by the folded weights, crop back, paste into the full image."""
    from monai.data.utils import compute_importance_map

    rows, cols = torch.nonzero(image > 0, as_tuple=True)
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    x = image[r0:r1, c0:c1]
    sizes = []
    for d in x.shape:
        p = max(d, roi)
        p = p + stride - (p - roi) % stride if (p - roi) % stride else p
        sizes.append(p)
    (ph, pw), (h, w) = sizes, x.shape
    top, left = (ph - h) // 2, (pw - w) // 2
    padded = torch.zeros(ph, pw)
    padded[top : top + h, left : left + w] = x
    weight = compute_importance_map((roi, roi), mode="gaussian", sigma_scale=sigma_scale).float()
    num, den = torch.zeros(ph, pw), torch.zeros(ph, pw)
    for y in range(0, ph - roi + 1, stride):
        for xx in range(0, pw - roi + 1, stride):
            win = padded[y : y + roi, xx : xx + roi]
            score = torch.zeros(roi, roi)
            for t in levels:
                x0 = win.mean() * (1 - t / 200)
                score += (win - x0).abs()
            score = score / len(levels) * (win > 0).float().mean() * (win > 0).float()
            num[y : y + roi, xx : xx + roi] += score * weight
            den[y : y + roi, xx : xx + roi] += weight
    out = torch.zeros_like(image)
    out[r0:r1, c0:c1] = (num / den)[top : top + h, left : left + w]
    return out


@pytest.mark.parametrize("shape", [(50, 43), (40, 40), (29, 61)])
def test_window_grid_and_blending_equal_the_reference_pipeline(shape):
    g = torch.Generator().manual_seed(1)
    image = torch.zeros(64, 72)
    h, w = shape
    image[5 : 5 + h, 7 : 7 + w] = torch.rand(h, w, generator=g) * 0.9 + 0.05
    image[20:24, 10:30] = 0  # holes inside the brain stay background
    inferer = DisyreInferer(DisyreScheduler(), scoring="ensemble", strengths=(0.05, 0.73), roi_size=(32, 32))
    ours = inferer(image[None, None], WindowMean())["pred"][0, 0]
    expected = _reference_map(image, levels=(10, 50))
    assert float((ours - expected).abs().max()) < 1e-5
    assert float(ours.abs().max()) > 0.01


def test_volume_windows_use_the_volume_bounding_box():
    """A volume is cropped to its own 3-D box, as a batch of its slices is (the reference crops per volume)."""
    g = torch.Generator().manual_seed(2)
    vol = torch.zeros(1, 1, 60, 70, 4)
    vol[0, 0, 10:50, 5:45, 1] = torch.rand(40, 40, generator=g) + 0.1
    vol[0, 0, 15:40, 20:66, 2] = torch.rand(25, 46, generator=g) + 0.1
    inferer = DisyreInferer(DisyreScheduler(), scoring="ensemble", strengths=(0.27,), roi_size=(32, 32))
    out = inferer(vol, WindowMean())["pred"]
    assert float(out[..., 0].abs().max()) == 0.0 and float(out[..., 3].abs().max()) == 0.0
    # a 2-D batch of the volume's slices shares one box, the union of both slices' boxes: same windows
    slices = vol[0, :, :, :, 1:3].permute(3, 0, 1, 2)
    batch = inferer(slices, WindowMean())["pred"]
    for i, z in enumerate((1, 2)):
        assert torch.allclose(out[0, :, :, :, z], batch[i], atol=1e-6)
    # alone, slice 1 is cropped to its own smaller box and gets other windows
    alone = inferer(vol[..., 1], WindowMean())["pred"][0]
    assert float((alone - out[0, :, :, :, 1]).abs().max()) > 1e-3


def test_final_weights_only_after_a_completed_run(tmp_path):
    from ignite.engine import Engine

    from diffusion_anomaly.training import FinalWeights

    net = torch.nn.Linear(2, 1)
    path = tmp_path / "model.pt"
    path.write_bytes(b"old")

    def failing(engine, batch):
        if engine.state.iteration == 2:
            raise KeyboardInterrupt

    engine = Engine(failing)
    FinalWeights(path, net).attach(engine)
    with pytest.raises(KeyboardInterrupt):
        engine.run(range(4), max_epochs=1)
    assert path.read_bytes() == b"old"  # an interrupted run writes nothing
    done = Engine(lambda engine, batch: None)
    FinalWeights(path, net).attach(done)
    done.run(range(2), max_epochs=1)
    state = torch.load(path, weights_only=True)
    assert torch.equal(state["weight"], net.weight)
