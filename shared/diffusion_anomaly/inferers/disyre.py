"""DISYRE scoring: heal the image with the restoration network and accumulate how much it changed.

Two scores (both from the papers, chosen by ``mode``):
* "ensemble" (DISYRE v2): mean over corruption strengths alpha of |x - P(x, t(alpha))|, single steps from
  the input, all levels in one batched network call.
* "healing" (ISBI Algorithm 1): from t = T down in steps of ``step_size``: x0 = P(x_cur, t);
  AS += |x0 - x_cur|; x_cur = (1 - alpha_next) x0 + alpha_next x_cur.
Full slices go through sliding windows (roi 128, overlap 0.75, Gaussian blending with sigma 0.125 of the roi);
with foreground weighting each window's score is multiplied by its foreground fraction, so windows without
any foreground score 0 and are not evaluated at all. 3-D volumes are processed as batches of axial slices
by MONAI's SliceInferer; the score is 0 on the background.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from monai.inferers import Inferer, SliceInferer, SlidingWindowInferer

from ..schedulers.disyre import DisyreScheduler

MODES = ("ensemble", "healing")
V2_ALPHAS = (0.005, 0.05, 0.27, 0.73)


class DisyreInferer(Inferer):
    """``inferer(inputs, network)`` -> ``{"pred": anomaly map, "restoration": healed image}``.

    Args:
        scheduler: the DISYRE schedule the network was trained with.
        mode: "ensemble" (v2 mean of single-step restorations) or "healing" (ISBI Algorithm 1).
        alphas: corruption strengths of the ensemble levels (reference levels 0.005, 0.05, 0.27, 0.73).
        step_size: healing step S of Algorithm 1 (T = 100, S = 25 evaluates t = 100, 75, 50, 25).
        roi_size: sliding-window size.
        overlap: window overlap (0.75 = stride of a quarter window).
        sigma_scale: Gaussian blending sigma as a fraction of the window.
        foreground_weighting: multiply each window's score by its fraction of foreground (non-zero) pixels.
        sw_batch_size: windows per network call.
        axial_dim: spatial axis of 3-D inputs along which 2-D slices are taken (2 = last axis in RAS).
        channels_last: run the network in channels-last memory format (faster convolutions on CPU).
    """

    def __init__(
        self,
        scheduler: DisyreScheduler,
        mode: str = "ensemble",
        alphas: Sequence[float] = V2_ALPHAS,
        step_size: int = 25,
        roi_size: Sequence[int] = (128, 128),
        overlap: float = 0.75,
        sigma_scale: float = 0.125,
        foreground_weighting: bool = True,
        sw_batch_size: int = 8,
        axial_dim: int = 2,
        channels_last: bool = True,
        cpu_bf16: bool = False,
        progress: bool = False,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
        self.scheduler, self.mode = scheduler, mode
        self.timesteps = [scheduler.timestep_for_alpha(a) for a in alphas]
        self.healing_timesteps = [int(t) for t in scheduler.set_timesteps(step_size)]
        self.foreground_weighting, self.channels_last, self.cpu_bf16 = foreground_weighting, channels_last, cpu_bf16
        window_args = dict(roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, overlap=overlap, mode="gaussian",
                           sigma_scale=sigma_scale, padding_mode="constant", cval=0.0, progress=progress)
        self.window_inferer = SlidingWindowInferer(**window_args)
        self.slice_inferer = SliceInferer(spatial_dim=axial_dim, **window_args)
        self.nfe = 0  # network evaluations (one per image passed through the network)
        self._channels_last_networks: set[int] = set()

    @property
    def steps_per_window(self) -> int:
        return len(self.timesteps) if self.mode == "ensemble" else len(self.healing_timesteps)

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args: Any, **kwargs: Any) -> dict:
        if inputs.ndim not in (4, 5):
            raise ValueError(f"expected (B, C, H, W) or (B, C, H, W, D) inputs, got shape {tuple(inputs.shape)}")
        inferer = self.slice_inferer if inputs.ndim == 5 else self.window_inferer
        score, restoration = inferer(inputs, lambda windows: self.score_windows(windows, network))
        foreground = (inputs != 0).any(dim=1, keepdim=True)
        return {"pred": score * foreground, "restoration": restoration}

    def score_windows(self, windows: torch.Tensor, network: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Anomaly score (1 channel) and restoration of a batch of 2-D windows (N, C, h, w)."""
        fraction = (windows != 0).any(dim=1).float().mean(dim=(1, 2))
        score = torch.zeros_like(windows[:, :1])
        restoration = windows.clone()
        active = fraction > 0 if self.foreground_weighting else torch.ones_like(fraction, dtype=torch.bool)
        if active.any():
            s, r = self.restore(windows[active], network)
            if self.foreground_weighting:
                s = s * fraction[active].view(-1, 1, 1, 1).to(s.dtype)
            score[active] = s.to(score.dtype)
            restoration[active] = r.to(restoration.dtype)
        return score, restoration

    def restore(self, x: torch.Tensor, network: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Score and restoration of windows that all contain foreground."""
        if self.mode == "ensemble":
            n = len(self.timesteps)
            t = torch.tensor(self.timesteps, device=x.device).repeat_interleave(len(x))
            x0 = self._network(network, x.repeat(n, 1, 1, 1), t).view(n, *x.shape)
            score = (x0 - x).abs().mean(dim=(0, 2), keepdim=False).unsqueeze(1)
            return score, x0.mean(dim=0)
        x_cur, score = x, torch.zeros_like(x[:, :1])
        for i, t in enumerate(self.healing_timesteps):
            x0 = self._network(network, x_cur, torch.full((len(x),), t, device=x.device))
            score = score + (x0 - x_cur).abs().mean(dim=1, keepdim=True)
            if i + 1 < len(self.healing_timesteps):
                x_cur = self.scheduler.step(x0, x_cur, self.healing_timesteps[i + 1])
        return score, x0

    def _network(self, network: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.nfe += len(x)
        if x.device.type == "cpu" and self.channels_last:
            # weights and input both channels-last; a deployment's model wrapper may be only callable
            if id(network) not in self._channels_last_networks and isinstance(network, torch.nn.Module):
                network.to(memory_format=torch.channels_last)
                self._channels_last_networks.add(id(network))
            x = x.contiguous(memory_format=torch.channels_last)
        if x.device.type == "cpu" and self.cpu_bf16:  # only ever enable: never switch off a caller's autocast
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return network(x, t).float().contiguous()
        return network(x, t).float().contiguous()
