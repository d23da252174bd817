"""AnoFPDM (Che et al. 2024): anomaly maps from the forward process of a classifier-free-guided DDPM.

For t = 0, s, 2s, ... < t_max (stride s = 1 for the full method): x_t from the input (DDPM forward: fresh noise
per step; DDIM forward: a deterministic step from the previous latent with the null-label noise; "ddim_reference":
the reference code's DDIM encoding, see ``AnoFPDMInferer``); one network call on the batch [x_t | x_t] with
labels [healthy | null] gives eps_c and eps_null (2 NFE per slice);
guided eps = (1 + w) eps_c - w eps_null gives the healthy x0_h; the reference x0_ref comes from eps_c (w = 0,
the reference code and default) or eps_null (the paper's figure). Per step and modality m:
S_t = (x0_h - x)^2, Delta_t = mean (x0_h - x0_ref)^2, and the curves MSE_h, MSE_ref.

The end step t_e = argmax_t Delta_t is known only after the pass, and the map is the mean of S_t over t < t_e.
Instead of keeping every S_t (the reference keeps all predictions: ~157 MB per slice), the pass keeps a running
sum and, whenever Delta reaches a new maximum, a copy of the sum so far: two maps per slice and modality,
whatever t_max is. If t_e is the first step (nothing before it), the map is S at that step.

Per slice: A = mean_m A_m, 5x5 median filter (reflect-101 borders, torch's "reflect" as the reference);
q_m from r_m = clamp(max Delta_m / Delta_max_m, 0, 1) on the reference's grid (``quantile_level``);
theta = mean_m quantile_{q_m}(A_m) on the unfiltered maps; mask = A_filtered >= theta;
healthy/unhealthy = cosine(MSE_h, MSE_ref) <= thr_cls (unhealthy); the mask is emptied for healthy slices
(``gate``); components of <= 40 px (8-connectivity) are removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import Inferer

from ..networks.presets import HEALTHY, NULL_CLASS
from ..postprocess import median_filter_slices, remove_small_components
from ..progress import SliceProgress
from ..settings import check_bool, check_float, check_int
from .slicing import content_seeds, on_axial_slices, seeded_noise


@dataclass
class ForwardProcessCurves:
    """Result of the forward pass on a batch of (N, C, H, W) slices, for the ``steps`` used."""

    steps: list[int]
    maps: torch.Tensor  # (N, M, H, W): mean of S_t over t < t_e per modality
    end_index: torch.Tensor  # (N, M): index into ``steps`` of argmax Delta
    delta: torch.Tensor  # (N, M, S)
    mse_guided: torch.Tensor  # (N, S)
    mse_reference: torch.Tensor  # (N, S)

    @property
    def end_step(self) -> torch.Tensor:
        return torch.as_tensor(self.steps)[self.end_index]


def guided_noise(eps_conditional: torch.Tensor, eps_null: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance: (1 + w) eps_c - w eps_null."""
    return (1 + guidance) * eps_conditional - guidance * eps_null


FORWARD_PROCESSES = ("ddpm", "ddim", "ddim_reference")


def quantile_level(ratio: torch.Tensor, low: float = 0.90, high: float = 0.98) -> torch.Tensor:
    """The reference's quantile: index = int64(round(clamp(r, 0, 1), 2) * 100) in float32, q = grid[index] with
    grid = linspace(low, high, 101) reversed (float32), i.e. q ~ high - (high - low) * index / 100.

    The float32 product is truncated, not rounded, so a ratio that rounds to 0.53 gives index 52 (0.53 is
    0.52999997 in float32), q = 0.9384 rather than 0.9376; we keep that so thresholds equal the reference's.
    """
    r = torch.round(torch.as_tensor(ratio).float().clamp(0, 1), decimals=2) * 100
    grid = torch.flip(torch.linspace(low, high, 101, dtype=torch.float32), dims=(0,)).to(r.device)
    return grid[r.to(torch.int64)]


def cosine_similarity(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Cosine of two batches of curves (N, S)."""
    return F.cosine_similarity(a.double(), b.double(), dim=1, eps=eps).float()


class AnoFPDMInferer(Inferer):
    """``inferer(inputs, network)`` -> ``{"pred", "mask", "slice_label", "end_step", "similarity"}``.

    Inputs are (B, C, H, W) slices or (B, C, H, W, D) volumes (processed as batches of axial slices), scaled
    per slice and channel to [-1, 1] with background at -1; slices with no foreground are skipped (score 0,
    label 0, end step -1). ``pred`` is the median-filtered map, ``mask`` the gated, cleaned binary mask,
    ``slice_label`` 1 for slices classified unhealthy, ``end_step`` t_e per slice and modality,
    ``similarity`` the cosine of the two MSE curves.

    Args:
        scheduler: the DDPM scheduler the network was trained with (epsilon prediction).
        thr_cls: slices with similarity <= thr_cls are unhealthy (derived on validation without pixel labels).
        delta_max: per modality, the largest max Delta of unhealthy validation slices (same derivation).
        t_max: forward steps t = 0 .. t_max - 1.
        step_stride: use every ``step_stride``-th t (fast mode; 1 = the full method).
        guidance: w of the healthy-guided prediction.
        reference: "healthy" (eps_c, w = 0; reference code, default) or "null" (eps_null; paper figure).
        forward_process: "ddpm" (fresh noise every step; default), "ddim" (deterministic encoding with the
            null-label eps of the previous step, 2 NFE per step:
            x_t' = sqrt(abar_t') x0_null + sqrt(1 - abar_t') eps_null, eps as predicted) or "ddim_reference"
            (the reference code's encoding, for matching its numbers: at each t >= 1 an extra null-label call at
            timestep t on the previous latent, eps re-derived from the clipped x0, and the result taken to level
            t + 1 while it is scored at t, an off-by-one; 3 NFE per step, step_stride 1 only).
        modalities: channel indices scored (e.g. FLAIR and T2 of [FLAIR, T1, T1ce, T2]: [0, 3]); None = all.
        quantile_range: (a, b) of the dynamic quantile grid.
        median_size: median filter size of the final map.
        max_component: connected components of at most this many pixels (at the network's resolution) are
            removed from the mask (8-connectivity).
        gate: empty the masks of slices classified healthy (the "mixed" setting).
        slice_batch_size: slices per network call (each call evaluates them twice).
        divisible: pad H and W to a multiple of this (the UNet's downsampling factor).
        axial_dim: spatial axis of 3-D inputs that indexes slices.
        downsample: integer factor by which slices are reduced (area averaging) before the network.
        seed: base seed of the per-slice noise (noise depends on the slice content, not on the batching).
        progress: report slices done (a bar on a terminal, log lines every 10 s elsewhere, see ``SliceProgress``).
    """

    def __init__(self, scheduler: Any, thr_cls: float, delta_max: float | Sequence[float], t_max: int = 600,
                 step_stride: int = 1, guidance: float = 2.0, reference: str = "healthy", forward_process: str = "ddpm",
                 modalities: Sequence[int] | None = None, quantile_range: Sequence[float] = (0.90, 0.98),
                 median_size: int = 5, max_component: int = 40, gate: bool = True, slice_batch_size: int = 32,
                 divisible: int = 16, axial_dim: int = 2, downsample: int = 1, seed: int = 0,
                 progress: bool = True):
        super().__init__()
        t_max = check_int("t_max", t_max, 1, scheduler.num_train_timesteps)
        step_stride = check_int("step_stride", step_stride, 1)
        guidance = check_float("guidance", guidance)
        median_size = check_int("median_size", median_size, 1, odd=True)
        max_component = check_int("max_component", max_component, 0)
        slice_batch_size = check_int("slice_batch_size", slice_batch_size, 1)
        divisible = check_int("divisible", divisible, 1)
        downsample = check_int("downsample", downsample, 1)
        thr_cls = check_float("thr_cls", thr_cls)
        gate = check_bool("gate", gate)
        low, high = (check_float("quantile_range", q, 0.0, 1.0) for q in quantile_range)
        if low > high:
            raise ValueError(f"setting 'quantile_range' must be (low, high) with low <= high, got {quantile_range}")
        if reference not in ("healthy", "null"):
            raise ValueError(f"reference must be 'healthy' or 'null', got {reference!r}")
        if forward_process not in FORWARD_PROCESSES:
            raise ValueError(f"setting 'forward_process' must be one of {FORWARD_PROCESSES}, got {forward_process!r}")
        if forward_process == "ddim_reference" and step_stride != 1:
            raise ValueError("forward_process='ddim_reference' reproduces the reference's full pass: it needs "
                             f"step_stride=1, got {step_stride}")
        self.scheduler, self.t_max, self.step_stride = scheduler, t_max, step_stride
        self.guidance, self.reference, self.forward_process = float(guidance), reference, forward_process
        self.modalities = None if modalities is None else [int(m) for m in modalities]
        self.thr_cls = float(thr_cls)
        self.delta_max = torch.as_tensor(delta_max, dtype=torch.float32).flatten()
        if (self.delta_max <= 0).any():
            raise ValueError(f"delta_max must be positive, got {self.delta_max.tolist()}")
        self.quantile_range = (float(quantile_range[0]), float(quantile_range[1]))
        self.median_size, self.max_component, self.gate = median_size, max_component, gate
        self.slice_batch_size, self.divisible, self.axial_dim = slice_batch_size, divisible, axial_dim
        self.downsample, self.seed = int(downsample), seed
        self.progress = check_bool("progress", progress)
        self.nfe = 0

    @property
    def steps(self) -> list[int]:
        return list(range(0, self.t_max, self.step_stride))

    # ---- the forward pass -------------------------------------------------------------------------------------
    def _abar(self, t: int) -> float:
        return float(self.scheduler.alphas_cumprod[t])

    def _x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        abar = self._abar(t)
        return ((x_t - (1 - abar) ** 0.5 * eps) / abar**0.5).clamp(-1, 1)

    def predict(self, network: Callable[..., Any], x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """eps for the healthy and the null label, in one batched call (2 NFE per slice)."""
        n = len(x_t)
        labels = torch.cat([torch.full((n,), HEALTHY), torch.full((n,), NULL_CLASS)]).to(x_t.device)
        timesteps = torch.full((2 * n,), t, dtype=torch.long, device=x_t.device)
        self.nfe += 2 * n
        eps = network(torch.cat([x_t, x_t]), timesteps=timesteps, class_labels=labels).float()
        return eps[:n], eps[n:]

    def reference_ddim_encode(self, network: Callable[..., Any], x_prev: torch.Tensor, t: int) -> torch.Tensor:
        """The reference's ``ddim_reverse_sample`` at t (1 NFE per slice): eps_null at timestep t on the previous
        latent; x0 clipped to [-1, 1]; eps re-derived as (x / sqrt(abar_t) - x0) / sqrt(1 / abar_t - 1); returns
        sqrt(abar_(t+1)) x0 + sqrt(1 - abar_(t+1)) eps (abar_T = 0)."""
        n = len(x_prev)
        timesteps = torch.full((n,), t, dtype=torch.long, device=x_prev.device)
        labels = torch.full((n,), NULL_CLASS, device=x_prev.device)
        self.nfe += n
        eps = network(x_prev, timesteps=timesteps, class_labels=labels).float()
        abar = self._abar(t)
        x0 = self._x0(x_prev, eps, t)
        eps = (x_prev / abar**0.5 - x0) / (1 / abar - 1) ** 0.5
        abar_next = self._abar(t + 1) if t + 1 < self.scheduler.num_train_timesteps else 0.0
        return abar_next**0.5 * x0 + (1 - abar_next) ** 0.5 * eps

    def forward_pass(self, x: torch.Tensor, network: Callable[..., Any], size: tuple[int, int] | None = None,
                     progress: SliceProgress | None = None) -> ForwardProcessCurves:
        """Stream the forward process over ``self.steps`` for slices ``x`` (N, C, H, W); memory is independent of
        the number of steps apart from the (N, M, S) curves. Statistics and maps cover the top-left ``size``
        (the slice without its padding; default: all of it). ``progress`` advances by N / steps after each step,
        so a batch of slices reports while it runs."""
        mods = self.modalities if self.modalities is not None else list(range(x.shape[1]))
        vh, vw = size if size is not None else x.shape[-2:]
        steps = self.steps
        n, m = len(x), len(mods)
        seeds = content_seeds(x, self.seed)
        target = x[:, mods, :vh, :vw].float()
        running = torch.zeros_like(target)
        best_sum, first = torch.zeros_like(target), torch.zeros_like(target)
        best_delta = torch.full((n, m), -float("inf"), device=x.device)
        best_index = torch.zeros((n, m), dtype=torch.long, device=x.device)
        delta = torch.zeros((n, m, len(steps)), device=x.device)
        mse_h, mse_r = torch.zeros((n, len(steps)), device=x.device), torch.zeros((n, len(steps)), device=x.device)
        x_t = x.float()  # replaced at k = 0 by the first noised image
        for k, t in enumerate(steps):
            if self.forward_process == "ddpm" or k == 0:
                x_t = self.scheduler.add_noise(x.float(), seeded_noise(seeds, x.shape[1:], k, x.device),
                                               torch.full((n,), t, dtype=torch.long, device=x.device))
            elif self.forward_process == "ddim_reference":
                x_t = self.reference_ddim_encode(network, x_t, t)
            eps_c, eps_null = self.predict(network, x_t, t)
            x0_h = self._x0(x_t, guided_noise(eps_c, eps_null, self.guidance), t)
            x0_r = self._x0(x_t, eps_c if self.reference == "healthy" else eps_null, t)
            h_crop, r_crop = x0_h[:, mods, :vh, :vw], x0_r[:, mods, :vh, :vw]
            sub = (h_crop - target) ** 2
            mse_h[:, k] = sub.flatten(1).mean(1)
            mse_r[:, k] = ((r_crop - target) ** 2).flatten(1).mean(1)
            d = ((h_crop - r_crop) ** 2).flatten(2).mean(2)
            delta[:, :, k] = d
            new = d > best_delta  # strict: argmax keeps the first maximum
            best_sum = torch.where(new[..., None, None], running, best_sum)
            best_index = torch.where(new, torch.full_like(best_index, k), best_index)
            best_delta = torch.where(new, d, best_delta)
            if k == 0:
                first = sub.clone()
            running += sub
            if progress is not None:
                progress.update(n / len(steps))
            if self.forward_process == "ddim" and k + 1 < len(steps):
                # deterministic encoding: x_{t'} = sqrt(abar_t') x0_null + sqrt(1 - abar_t') eps_null
                t_next = steps[k + 1]
                x0_null = self._x0(x_t, eps_null, t)
                x_t = self._abar(t_next) ** 0.5 * x0_null + (1 - self._abar(t_next)) ** 0.5 * eps_null
        count = best_index.clamp_min(1).to(running.dtype)[..., None, None]
        maps = torch.where((best_index == 0)[..., None, None], first, best_sum / count)
        return ForwardProcessCurves(steps, maps, best_index, delta, mse_h, mse_r)

    # ---- per-slice decisions ------------------------------------------------------------------------------------
    def decide(self, curves: ForwardProcessCurves) -> dict:
        """Map, threshold, label and similarity from the curves (no pixel labels involved)."""
        maps = curves.maps
        n, m = maps.shape[:2]
        delta_max = self.delta_max.to(maps.device)
        if delta_max.numel() == 1:
            delta_max = delta_max.expand(m)
        if delta_max.numel() != m:
            raise ValueError(f"delta_max has {delta_max.numel()} values for {m} scored modalities")
        ratio = curves.delta.amax(2) / delta_max
        q = quantile_level(ratio, *self.quantile_range)  # (N, M)
        theta = torch.stack([torch.stack([torch.quantile(maps[i, j].flatten(), float(q[i, j])) for j in range(m)])
                             for i in range(n)]).mean(1)
        mean_map = maps.mean(1)  # (N, H, W)
        filtered = torch.as_tensor(
            np.stack([median_filter_slices(a, self.median_size) for a in mean_map.cpu().numpy()]), device=maps.device)
        similarity = cosine_similarity(curves.mse_guided, curves.mse_reference)
        unhealthy = similarity <= self.thr_cls
        return {"pred": filtered[:, None], "threshold": theta, "slice_label": unhealthy.long(),
                "similarity": similarity, "end_step": curves.end_step, "quantile": q}

    def mask(self, score: torch.Tensor, theta: torch.Tensor, unhealthy: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """(score >= theta), emptied for healthy slices if gated, without components <= max_component * scale^2."""
        mask = score >= theta.view(-1, 1, 1, 1)
        if self.gate:
            mask = mask & unhealthy.bool().view(-1, 1, 1, 1)
        keep = np.stack([remove_small_components(mk[0], self.max_component * scale**2 + 1, connectivity=2,
                                                 per_slice_axis=None) for mk in mask.cpu().numpy()])
        return torch.as_tensor(keep, device=score.device)[:, None].float()

    # ---- batching, sizes, volumes ---------------------------------------------------------------------------
    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> dict:
        inputs = inputs.as_tensor() if hasattr(inputs, "as_tensor") else inputs  # MetaTensor -> plain tensor
        if inputs.ndim == 4:
            return self._slices(inputs, network)
        if inputs.ndim != 5:
            raise ValueError(f"expected (B, C, H, W) or (B, C, H, W, D) inputs, got shape {tuple(inputs.shape)}")
        return on_axial_slices(inputs, self.axial_dim, lambda slices: self._slices(slices, network))

    def _working_size(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Slices reduced by ``downsample`` and padded with background to a multiple of ``divisible``."""
        h, w = x.shape[-2:]
        small = x.float() if self.downsample == 1 else F.interpolate(
            x.float(), size=(h // self.downsample, w // self.downsample), mode="area")
        sh, sw = small.shape[-2:]
        return F.pad(small, (0, (-sw) % self.divisible, 0, (-sh) % self.divisible), value=-1.0), (sh, sw)

    def slice_curves(self, x: torch.Tensor, network: Callable[..., Any]) -> ForwardProcessCurves:
        """Forward-pass curves and maps of (N, C, H, W) slices at the working size, in batches."""
        padded, size = self._working_size(x)
        parts = []
        with SliceProgress(len(padded), "AnoFPDM", enabled=self.progress) as progress:
            for start in range(0, len(padded), self.slice_batch_size):
                parts.append(self.forward_pass(padded[start : start + self.slice_batch_size], network, size,
                                               progress))
        return ForwardProcessCurves(self.steps, *(torch.cat([getattr(p, f) for p in parts]) for f in
                                                  ("maps", "end_index", "delta", "mse_guided", "mse_reference")))

    def _slices(self, x: torch.Tensor, network: Callable[..., Any]) -> dict:
        n, _, h, w = x.shape
        m = len(self.modalities) if self.modalities is not None else x.shape[1]
        sh, sw = h // self.downsample, w // self.downsample
        score = torch.zeros((n, 1, sh, sw), device=x.device)
        theta, label = torch.zeros(n, device=x.device), torch.zeros(n, dtype=torch.long, device=x.device)
        similarity = torch.ones(n, device=x.device)
        end_step = torch.full((n, m), -1, dtype=torch.long, device=x.device)
        active = torch.nonzero((x > -1).flatten(1).any(1)).flatten()  # empty slices are skipped
        if len(active):
            out = self.decide(self.slice_curves(x[active], network))
            score[active], theta[active], label[active] = out["pred"], out["threshold"], out["slice_label"]
            similarity[active], end_step[active] = out["similarity"], out["end_step"].to(x.device)
        if self.downsample > 1:
            score = F.interpolate(score, size=(h, w), mode="bilinear", align_corners=False)
        score = score * (x > -1).any(dim=1, keepdim=True)  # nothing outside the imaged object
        mask = self.mask(score, theta, label, self.downsample)
        return {"pred": score, "mask": mask, "slice_label": label, "end_step": end_step, "similarity": similarity}

CONSTANT_SETTINGS = ("t_max", "step_stride", "guidance", "reference", "forward_process", "modalities", "downsample",
                     "intensity", "bias_field")


def read_constants(path: str, **settings: Any) -> dict:
    """``thr_cls`` and ``delta_max`` as written by the bundle's calibration
    (``--config_file "['configs/inference.json','configs/calibrate.json']"``, see
    ``diffusion_anomaly.calibration.AnoFPDMConstants``).

    ``settings`` (t_max, step_stride, ...) are compared with those the constants were derived with; a mismatch
    raises, because both constants depend on them.
    """
    import json
    import os

    from ..errors import InputDataError

    if not os.path.isfile(path):
        raise InputDataError(path, "AnoFPDM constants file does not exist; derive it with python -m monai.bundle "
                                   "run --config_file \"['configs/inference.json','configs/calibrate.json']\" "
                                   "and pass the overlay it writes (calibration/calibrated.json) after inference.json")
    try:
        constants = json.loads(open(path).read())
        thr_cls, delta_max = float(constants["thr_cls"]), [float(v) for v in constants["delta_max"]]
    except (ValueError, KeyError, TypeError) as err:
        raise InputDataError(path, f"not a valid AnoFPDM constants file ({type(err).__name__}: {err})") from err
    derived = constants.get("settings", {})
    different = {k: (v, derived[k]) for k, v in settings.items() if k in derived and derived[k] != v}
    if different:
        detail = ", ".join(f"{k}={v!r} (constants: {d!r})" for k, (v, d) in different.items())
        raise InputDataError(path, f"constants were derived with other settings: {detail}; re-derive them or "
                                   "use the settings they were derived with")
    return {"thr_cls": thr_cls, "delta_max": delta_max, "settings": derived}
