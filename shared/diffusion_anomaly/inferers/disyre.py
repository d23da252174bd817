"""DISYRE scoring: heal the image with the restoration network and accumulate how much it changed.

Two scores (both from the papers, chosen by ``scoring``):
* "ensemble" (DISYRE v2, the reference code's default): mean over corruption strengths alpha of
  |x - P(x, t(alpha))|, single steps from the input, all levels in one batched network call.
* "healing" (ISBI Algorithm 1): from t = T down in steps of ``step_size``: x0 = P(x_cur, t);
  AS += |x0 - x_cur|; x_cur = (1 - alpha_next) x0 + alpha_next x_cur; the map is AS / (number of steps), the
  mean as in the reference code, so that both scores' thresholds live on the same scale.
Full slices go through sliding windows (roi 128, overlap 0.75, Gaussian blending with sigma 0.125 of the roi)
on the reference's window grid: the input is cropped to the bounding box of its foreground (> 0; per volume,
or over a batch of 2-D slices, which the reference feeds one volume at a time), then zero-padded evenly to at
least one window and to a size whose excess over the window is a multiple of the stride (200 px: windows at
-12, 20, 52, 84), so MONAI's SlidingWindowInferer places every window on that grid. With foreground
weighting each window's score is multiplied by its fraction of foreground (> 0) pixels, so windows without
any foreground score 0 and are not evaluated at all. 3-D volumes are processed as batches of axial slices by
MONAI's SliceInferer; the score is 0 on the background (pixels <= 0, which the DISYRE intensity scaling with
``floor=0`` keeps at exactly 0).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from monai.inferers import Inferer, SliceInferer, SlidingWindowInferer
from monai.transforms.utils import generate_spatial_bounding_box

from ..progress import SliceProgress
from ..schedulers.disyre import DisyreScheduler
from ..settings import check_bool, check_float, check_int

SCORINGS = ("ensemble", "healing")
V2_STRENGTHS = (0.005, 0.05, 0.27, 0.73)


def window_grid_padding(size: int, roi: int, stride: int) -> tuple[int, int]:
    """Zero padding (before, after) of one axis on the DISYRE reference's window grid.

    The padded size is at least ``roi`` and exceeds it by a multiple of ``stride``; the padding is split
    evenly, the odd pixel after. E.g. size 200, roi 128, stride 32 -> (12, 12); size 100 -> (14, 14).
    """
    padded = max(size, roi)
    rest = (padded - roi) % stride
    if rest:
        padded += stride - rest
    extra = padded - size
    return extra // 2, extra - extra // 2


class DisyreInferer(Inferer):
    """``inferer(inputs, network)`` -> ``{"pred": anomaly map, "restoration": healed image}``.

    Args:
        scheduler: the DISYRE schedule the network was trained with.
        scoring: "ensemble" (v2 mean of single-step restorations; the reference default) or "healing" (ISBI
            Algorithm 1, mean over its steps).
        strengths: corruption strengths of the ensemble levels (reference levels 0.005, 0.05, 0.27, 0.73).
        step_size: healing step S of Algorithm 1 (T = 100, S = 25 evaluates t = 100, 75, 50, 25).
        roi_size: sliding-window size.
        overlap: window overlap (0.75 = stride of a quarter window).
        sigma_scale: Gaussian blending sigma as a fraction of the window.
        foreground_weighting: multiply each window's score by its fraction of foreground (non-zero) pixels.
        sw_batch_size: windows per network call.
        axial_dim: spatial axis of 3-D inputs along which 2-D slices are taken (2 = last axis in RAS).
        channels_last: run the network in channels-last memory format (faster convolutions on CPU).
        cpu_bf16: bf16 autocast on the CPU (CUDA autocast is the caller's, e.g. the case runner's ``amp``).
        progress: report slices done (a bar on a terminal, log lines every 10 s elsewhere, see ``SliceProgress``);
            a slice counts as done when all its windows are.
    """

    def __init__(
        self,
        scheduler: DisyreScheduler,
        scoring: str = "ensemble",
        strengths: Sequence[float] = V2_STRENGTHS,
        step_size: int = 25,
        roi_size: Sequence[int] = (128, 128),
        overlap: float = 0.75,
        sigma_scale: float = 0.125,
        foreground_weighting: bool = True,
        sw_batch_size: int = 8,
        axial_dim: int = 2,
        channels_last: bool = True,
        cpu_bf16: bool = False,
        progress: bool = True,
    ):
        super().__init__()
        if scoring not in SCORINGS:
            raise ValueError(f"setting 'scoring' must be one of {SCORINGS}, got {scoring!r}")
        overlap = check_float("overlap", overlap, 0.0, 0.999)
        sw_batch_size = check_int("sw_batch_size", sw_batch_size, 1)
        foreground_weighting = check_bool("foreground_weighting", foreground_weighting)
        channels_last, cpu_bf16 = check_bool("channels_last", channels_last), check_bool("cpu_bf16", cpu_bf16)
        self.progress = check_bool("progress", progress)
        step_size = check_int("step_size", step_size, 1, scheduler.num_train_timesteps)
        sigma_scale = check_float("sigma_scale", sigma_scale, 0.0, exclusive_minimum=True)
        roi_size = [check_int("roi_size", r, 1) for r in roi_size]
        strengths = [check_float("strengths", a, 0.0, 1.0) for a in strengths]
        if len(strengths) == 0:
            raise ValueError("setting 'strengths' needs at least one corruption strength")
        self.scheduler, self.scoring = scheduler, scoring
        self.timesteps = [scheduler.timestep_for_strength(a) for a in strengths]
        self.healing_timesteps = [int(t) for t in scheduler.set_timesteps(step_size)]
        self.foreground_weighting, self.channels_last, self.cpu_bf16 = foreground_weighting, channels_last, cpu_bf16
        self.roi_size, self.axial_dim = tuple(int(r) for r in roi_size), axial_dim
        self.stride = tuple(max(1, int(r * (1 - overlap))) for r in self.roi_size)  # MONAI's scan interval
        window_args: dict[str, Any] = dict(
            roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, overlap=overlap, mode="gaussian",
            sigma_scale=sigma_scale, padding_mode="constant", cval=0.0, progress=False)
        self.window_inferer = SlidingWindowInferer(**window_args)
        self.slice_inferer = SliceInferer(spatial_dim=axial_dim, **window_args)
        self.nfe = 0  # network evaluations (one per image passed through the network)
        self._channels_last_networks: set[int] = set()

    @property
    def steps_per_window(self) -> int:
        return len(self.timesteps) if self.scoring == "ensemble" else len(self.healing_timesteps)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> dict:
        if inputs.ndim not in (4, 5):
            raise ValueError(f"expected (B, C, H, W) or (B, C, H, W, D) inputs, got shape {tuple(inputs.shape)}")
        inputs = inputs.as_tensor() if hasattr(inputs, "as_tensor") else inputs  # MetaTensor -> plain tensor
        # a volume's own bounding box; a batch of 2-D slices shares one (the reference's per-volume crop)
        groups = [inputs[i : i + 1] for i in range(len(inputs))] if inputs.ndim == 5 else [inputs]
        scores, restorations = zip(*(self._score_cropped(group, network) for group in groups))
        score, restoration = torch.cat(scores), torch.cat(restorations)
        foreground = (inputs > 0).any(dim=1, keepdim=True)
        return {"pred": score * foreground, "restoration": restoration}

    def _score_cropped(self, x: torch.Tensor, network: Callable[..., Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Score and restoration of ``x`` on the reference window grid (crop, even padding, windows, undo)."""
        score = torch.zeros_like(x[:, :1], dtype=torch.float32)
        restoration = x.clone().float()
        start, end = generate_spatial_bounding_box((x > 0).any(0), select_fn=lambda v: v > 0)
        if any(e <= s for s, e in zip(start, end)):
            return score, restoration  # no foreground: nothing to score
        box = (slice(None), slice(None), *(slice(s, e) for s, e in zip(start, end)))
        cropped = x[box].float()
        plane = [d for d in range(cropped.ndim - 2) if x.ndim == 4 or d != self.axial_dim]
        pads = [(0, 0)] * (cropped.ndim - 2)
        for d, roi, stride in zip(plane, self.roi_size, self.stride):
            pads[d] = window_grid_padding(cropped.shape[2 + d], roi, stride)
        padded = F.pad(cropped, [p for pair in reversed(pads) for p in pair])
        inferer = self.slice_inferer if x.ndim == 5 else self.window_inferer
        windows_per_slice = math.prod((padded.shape[2 + d] - roi) // stride + 1
                                      for d, roi, stride in zip(plane, self.roi_size, self.stride))
        slices = padded.shape[2 + self.axial_dim] if x.ndim == 5 else len(padded)

        def score_and_count(windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.score_windows(windows, network)
            progress.update(len(windows) / windows_per_slice)
            return out

        with SliceProgress(slices, "DISYRE", enabled=self.progress) as progress:
            s, r = inferer(padded, score_and_count)
        inner = (slice(None), slice(None), *(slice(b, b + n) for (b, _), n in zip(pads, cropped.shape[2:])))
        score[box], restoration[box] = s[inner].float(), r[inner].float()
        return score, restoration

    def score_windows(self, windows: torch.Tensor, network: Callable[..., Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Anomaly score (1 channel) and restoration of a batch of 2-D windows (N, C, h, w)."""
        fraction = (windows > 0).float().flatten(1).mean(1)  # over channels too, as the reference
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

    def restore(self, x: torch.Tensor, network: Callable[..., Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Score and restoration of windows that all contain foreground."""
        if self.scoring == "ensemble":
            n = len(self.timesteps)
            t = torch.tensor(self.timesteps, device=x.device).repeat_interleave(len(x))
            x0 = self._network(network, x.repeat(n, 1, 1, 1), t).view(n, *x.shape)
            score = (x0 - x).abs().mean(dim=(0, 2), keepdim=False).unsqueeze(1)
            return score, x0.mean(dim=0)
        x_cur, score = x, torch.zeros_like(x[:, :1])
        for i, timestep in enumerate(self.healing_timesteps):
            x0 = self._network(network, x_cur, torch.full((len(x),), timestep, device=x.device))
            score = score + (x0 - x_cur).abs().mean(dim=1, keepdim=True)
            if i + 1 < len(self.healing_timesteps):
                x_cur = self.scheduler.step(x0, x_cur, self.healing_timesteps[i + 1])
        return score / len(self.healing_timesteps), x0

    def _network(self, network: Callable[..., Any], x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.nfe += len(x)
        if x.device.type == "cpu" and self.channels_last:
            # weights and input both channels-last; a deployment's model wrapper may be only callable
            if id(network) not in self._channels_last_networks and isinstance(network, torch.nn.Module):
                network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to takes it
                self._channels_last_networks.add(id(network))
            x = x.contiguous(memory_format=torch.channels_last)
        if x.device.type == "cpu" and self.cpu_bf16:  # only ever enable: never switch off a caller's autocast
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return network(x, t).float().contiguous()
        return network(x, t).float().contiguous()
