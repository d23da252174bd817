"""Synomaly multi-stage diffusion (Bi et al. 2024): noise, restore in one step, keep what changed, repeat.

Per stage, for every image still running: x_t = q_sample(x_tilde, t_s, fresh noise); x0_hat = one-step
prediction from the network's noise estimate, clamped to [-1, 1]; D = |blur_k(x) - blur_k(x0_hat)| against
the *original* x (blur_k = ``cv2.GaussianBlur(k, 0)``: OpenCV's fixed kernels for k <= 7, reflect-101 borders),
zeroed below ``threshold`` and with connected components under ``min_component`` pixels removed
(4-connectivity); binary mask m = D > 0. Fusion ``"mask"`` (default, the paper's figure):
x_tilde = (1 - m) x + m x0_hat; ``"difference"`` (the reference code): x_tilde = (1 - D) x + D x0_hat with the
continuous D (up to 2, so it extrapolates). The stop rule is the reference code's: with n_k the mask size of
stage k (n_0 = all pixels), an image stops once |n_k - n_(k-1)| / max(n_(k-1), ``change_floor``) <=
``change_tolerance``, or after ``max_stages``; stopped images leave the batch. The returned map is 0 outside
the input's foreground (background = -1). The continuous D of the last stage is the anomaly map. Noise is
seeded from each image's content, so results do not depend on batching.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import Inferer

from ..ops import opencv_gaussian_kernel, separable_blur2d
from ..postprocess import remove_small_components
from ..progress import SliceProgress
from ..settings import check_bool, check_float, check_int
from .slicing import content_seeds, on_axial_slices, seeded_noise

FUSIONS = ("mask", "difference")


def blur_kernel(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``cv2.GaussianBlur(x, (k, k), 0)`` per channel: OpenCV's kernel for sigma = 0, reflect-101 borders."""
    return separable_blur2d(x, opencv_gaussian_kernel(kernel_size, x.dtype), padding="reflect")


class SynomalyInferer(Inferer):
    """``inferer(inputs, network)`` -> ``{"pred", "mask", "restoration", "stages"}``.

    Inputs are (B, C, H, W) slices or (B, C, H, W, D) volumes (processed as batches of axial slices), scaled
    per slice to [-1, 1] with background at -1. Sizes are padded (with -1) to a multiple of ``divisible``.

    Args:
        scheduler: the DDPM scheduler the network was trained with (epsilon prediction).
        noise_level: t_s, the same every stage.
        blur_kernel: k of the difference map's Gaussian blur.
        threshold: differences below it are set to 0.
        min_component: connected components with fewer pixels are removed.
        max_stages: at most this many stages (1 = single-stage mode).
        change_tolerance: stop when |#m_n - #m_(n-1)| / max(#m_(n-1), change_floor) <= this.
        change_floor: smallest denominator of the change (the reference's 500 pixels, for 128 x 128 slices),
            so small masks do not run every stage on a few pixels' change.
        fusion: "mask" (binary mask, the paper's figure) or "difference" (continuous D, the reference code).
        slice_batch_size: slices per network call.
        divisible: pad H and W to a multiple of this (the UNet's downsampling factor).
        axial_dim: spatial axis of 3-D inputs that indexes slices.
        downsample: integer factor by which slices are reduced (area averaging) before the network; maps and
            restorations are returned at the input resolution (bilinear), the mask as ``map > 0``.
        seed: base seed of the per-image noise.
        progress: report slices done (a bar on a terminal, log lines every 10 s elsewhere, see ``SliceProgress``).
    """

    def __init__(self, scheduler: Any, noise_level: int = 250, blur_kernel: int = 15, threshold: float = 0.3,
                 min_component: int = 30, max_stages: int = 5, change_tolerance: float = 0.01,
                 change_floor: float = 500.0, fusion: str = "mask", slice_batch_size: int = 32, divisible: int = 16,
                 axial_dim: int = 2, downsample: int = 1,
                 seed: int = 0, progress: bool = True):
        super().__init__()
        noise_level = check_int("noise_level", noise_level, 0, scheduler.num_train_timesteps - 1)
        blur_kernel = check_int("blur_kernel", blur_kernel, 1, odd=True)
        threshold = check_float("threshold", threshold, 0.0)
        min_component = check_int("min_component", min_component, 0)
        max_stages = check_int("max_stages", max_stages, 1)
        change_tolerance = check_float("change_tolerance", change_tolerance, 0.0)
        change_floor = check_float("change_floor", change_floor, 1.0)
        slice_batch_size = check_int("slice_batch_size", slice_batch_size, 1)
        divisible = check_int("divisible", divisible, 1)
        downsample = check_int("downsample", downsample, 1)
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.scheduler, self.noise_level, self.kernel, self.threshold = scheduler, noise_level, blur_kernel, threshold
        self.min_component, self.max_stages, self.tol = min_component, max_stages, change_tolerance
        self.change_floor, self.fusion = float(change_floor), fusion
        self.slice_batch_size, self.divisible, self.axial_dim, self.seed = slice_batch_size, divisible, axial_dim, seed
        self.downsample = int(downsample)
        self.progress = check_bool("progress", progress)
        self.nfe = 0

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> dict:
        if inputs.ndim == 4:
            return self._slices(inputs, network)
        if inputs.ndim != 5:
            raise ValueError(f"expected (B, C, H, W) or (B, C, H, W, D) inputs, got shape {tuple(inputs.shape)}")
        return on_axial_slices(inputs, self.axial_dim, lambda slices: self._slices(slices, network))

    def _slices(self, x: torch.Tensor, network: Callable[..., Any]) -> dict:
        if self.downsample == 1:
            out = self._slices_at_working_size(x, network)
        else:
            h, w = x.shape[-2:]
            small = F.interpolate(x.float(), size=(h // self.downsample, w // self.downsample), mode="area")
            out = self._slices_at_working_size(small, network)
            for key in ("pred", "restoration"):
                out[key] = F.interpolate(out[key], size=(h, w), mode="bilinear", align_corners=False)
        # the blur spreads differences past the object's edge; nothing outside the imaged object is an anomaly
        out["pred"] = out["pred"] * (x > -1).any(dim=1, keepdim=True)
        out["mask"] = (out["pred"] > 0).float()
        return out

    def _slices_at_working_size(self, x: torch.Tensor, network: Callable[..., Any]) -> dict:
        n, _, h, w = x.shape
        pad_h, pad_w = (-h) % self.divisible, (-w) % self.divisible
        padded = F.pad(x, (0, pad_w, 0, pad_h), value=-1.0)
        score = torch.zeros((n, 1, h + pad_h, w + pad_w), dtype=torch.float32, device=x.device)
        mask, restoration = torch.zeros_like(score), padded.clone().float()
        stages = torch.zeros(n, dtype=torch.long)
        active = torch.nonzero((padded > -1).flatten(1).any(1)).flatten().tolist()  # empty slices score 0
        with SliceProgress(len(active), "Synomaly", enabled=self.progress) as progress:
            for start in range(0, len(active), self.slice_batch_size):
                idx = active[start : start + self.slice_batch_size]
                s, m, r, k = self.multi_stage(padded[idx].float(), network)
                score[idx], mask[idx], restoration[idx], stages[idx] = s, m, r, k
                progress.update(len(idx))
        crop = (slice(None), slice(None), slice(0, h), slice(0, w))
        return {"pred": score[crop], "mask": mask[crop], "restoration": restoration[crop], "stages": stages}

    def multi_stage(self, x: torch.Tensor, network: Callable[..., Any]):
        """The stage loop on a batch of slices; returns score, binary mask, restoration and stages used."""
        n = len(x)
        x_tilde, restoration = x.clone(), x.clone()
        score, mask = torch.zeros_like(x[:, :1]), torch.zeros_like(x[:, :1])
        previous = torch.full((n,), float(x[0, 0].numel()))
        stages = torch.zeros(n, dtype=torch.long)
        running = torch.ones(n, dtype=torch.bool)
        abar = float(self.scheduler.alphas_cumprod[self.noise_level])
        seeds = content_seeds(x, self.seed)
        for stage in range(self.max_stages):
            idx = torch.nonzero(running).flatten()
            if len(idx) == 0:
                break
            noise = seeded_noise([seeds[i] for i in idx.tolist()], x.shape[1:], stage, x.device)
            t = torch.full((len(idx),), self.noise_level, dtype=torch.long, device=x.device)
            x_t = self.scheduler.add_noise(x_tilde[idx], noise, t)
            self.nfe += len(idx)
            eps = network(x_t, t).float()
            x0 = ((x_t - (1 - abar) ** 0.5 * eps) / abar**0.5).clamp(-1, 1)
            d = self.difference_map(x[idx], x0)
            m = (d > 0).float()
            weight = m if self.fusion == "mask" else d
            x_tilde[idx] = (1 - weight) * x[idx] + weight * x0
            count = m.flatten(1).sum(1).cpu()
            change = (previous[idx] - count).abs() / previous[idx].clamp_min(self.change_floor)
            previous[idx] = count
            stages[idx] += 1
            score[idx], mask[idx], restoration[idx] = d, m, x0
            running[idx] = change > self.tol
        return score, mask, restoration, stages

    def difference_map(self, original: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        """Blurred, thresholded |original - restored| (mean over channels) without components < min_component."""
        d = (blur_kernel(original, self.kernel) - blur_kernel(restored, self.kernel)).abs().mean(1, keepdim=True)
        d = torch.where(d >= self.threshold, d, torch.zeros_like(d))
        if self.min_component > 1:
            keep = np.stack([remove_small_components(m[0], self.min_component, connectivity=1, per_slice_axis=None)
                             for m in (d > 0).cpu().numpy()])
            d = d * torch.as_tensor(keep, device=d.device)[:, None].to(d.dtype)
        return d
