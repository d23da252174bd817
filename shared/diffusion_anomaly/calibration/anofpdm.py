"""AnoFPDM's two constants, thr_cls and Delta_max, from validation slices with image-level labels only."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import Dataset
from tqdm import tqdm

from ..inferers import cosine_similarity
from ..inferers.anofpdm import CONSTANT_SETTINGS
from ..io import atomic_write_json
from ..transforms import RandTumourd, range_change
from .overlay import write_config_overlay

logger = logging.getLogger(__name__)

IMAGE_LEVEL_KEYS = ("image", "foreground_mask", "slice_labels", "case", "subject")


def choose_thr_cls(healthy: np.ndarray, unhealthy: np.ndarray) -> float:
    """The reference's grid: for q in linspace(0.005, 0.095, 100), candidate = q-quantile of the healthy slices'
    similarities; errors = #(unhealthy with sim > candidate) + #(healthy with sim < candidate); the first
    candidate with the fewest errors."""
    candidates = [float(np.quantile(healthy, q)) for q in np.linspace(0.005, 0.095, 100)]
    errors = [int((unhealthy > c).sum() + (healthy < c).sum()) for c in candidates]
    return candidates[int(np.argmin(errors))]  # argmin: the first of equally good candidates


class AnoFPDMConstants:
    """Derive ``thr_cls`` and ``Delta_max`` (Che et al. 2024) for the bundle's inference settings.

    No pixel label is read: validation entries are cut down to their image, object mask and (if present) the
    per-slice ``slice_labels`` that ``python -m diffusion_anomaly prepare-dataset`` stores for data sets with
    lesion masks. If no validation slice is unhealthy (the demo data: healthy volunteers), a tumour from the
    training simulator is painted into every other slice and only its image-level label (1) is kept.

    thr_cls comes from :func:`choose_thr_cls` on the cosine similarities of the guided and reference MSE curves;
    Delta_max[m] = max over unhealthy slices of max_t Delta_{t,m}. Both depend on the inference settings
    (t_max, step_stride, guidance, ...), which are stored with them: ``read_constants`` refuses other settings.

    ``output_dir`` receives ``constants.json`` (the format of the bundle's ``models/constants.json``) and a config
    overlay ``calibrated.json`` whose ``constants_path`` points to it.

    Args:
        data: validation entries.
        preprocessing: the bundle's inference preprocessing.
        inferer: the bundle's AnoFPDM inferer (its constants are not used).
        network: the trained class-conditional network.
        settings: the values of ``CONSTANT_SETTINGS`` (t_max, step_stride, ..., intensity) the inferer runs with.
        output_dir: where the constants and the overlay go.
        stride: every ``stride``-th axial slice is used.
        min_foreground_fraction: slices whose object mask covers less are skipped.
        seed: seed of the simulated tumours.
        device: where the network runs.
        amp: bf16 autocast on CUDA.
    """

    def __init__(self, data: Sequence[Mapping], preprocessing: Callable, inferer: Any, network: torch.nn.Module,
                 settings: Mapping[str, Any], output_dir: str | os.PathLike, stride: int = 3,
                 min_foreground_fraction: float = 0.05, seed: int = 2024, device: torch.device | str = "cpu",
                 amp: bool = False):
        missing = sorted(set(CONSTANT_SETTINGS) - set(settings))
        if missing:
            raise ValueError(f"AnoFPDM constants: settings {missing} are missing; the constants depend on them")
        if stride < 1:
            raise ValueError(f"setting 'calibration_stride' must be >= 1, got {stride}")
        self.entries = [{k: v for k, v in entry.items() if k in IMAGE_LEVEL_KEYS} for entry in data]
        self.preprocessing, self.inferer, self.network = preprocessing, inferer, network
        self.settings = {k: settings[k] for k in CONSTANT_SETTINGS}
        self.output_dir, self.stride, self.seed = Path(output_dir), stride, seed
        self.min_fraction = min_foreground_fraction
        self.device, self.amp = torch.device(device), amp

    def validation_slices(self) -> tuple[list[tuple[torch.Tensor, np.ndarray]], bool]:
        """Per validation volume: slices (N, C, H, W) in the network's range and their image-level labels; and
        whether the unhealthy slices are simulated. Volumes stay apart because their slice sizes differ."""
        dataset = Dataset(self.entries, self.preprocessing)
        volumes: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = []  # slices, masks, labels (edited below)
        for i in range(len(dataset)):
            item = dataset[i]
            image, mask = torch.as_tensor(item["image"]), torch.as_tensor(item["foreground_mask"])
            slice_labels = self.entries[i].get("slice_labels")
            zs = [z for z in range(0, image.shape[-1], self.stride)
                  if float(mask[..., z].float().mean()) >= self.min_fraction]
            if zs:
                labels = np.array([int(slice_labels[z]) if slice_labels is not None else 0 for z in zs])
                volumes.append((torch.stack([image[..., z] for z in zs]).float(),
                                torch.stack([mask[..., z] for z in zs]), labels))
        if not volumes:
            raise ValueError(f"no validation slice has an object mask covering >= {self.min_fraction} of the "
                             "slice; lower setting 'calibration_min_foreground_fraction'")
        simulated = not any(labels.any() for _, _, labels in volumes)
        if simulated:  # a tumour into every other healthy slice; only the image-level label is kept
            painter = RandTumourd(prob=1.0)
            painter.set_random_state(self.seed)
            to_network_range = range_change(self.settings["intensity"])  # as train.json after the tumour
            for slices, masks, labels in volumes:
                for j in range(1, len(slices), 2):
                    painted = painter({"image": (slices[j] + 1) / 2 * (masks[j] > 0), "foreground_mask": masks[j]})
                    if painted["label"].any():
                        slices[j] = to_network_range({"image": painted["image"].float()})["image"]
                        labels[j] = 1
        return [(slices, labels) for slices, _, labels in volumes], simulated

    def run(self) -> dict:
        volumes, simulated = self.validation_slices()
        labels = np.concatenate([v[1] for v in volumes])
        logger.info(f"{len(labels)} validation slices: {int((labels == 0).sum())} healthy, {int(labels.sum())} "
                    "unhealthy" + (" (simulated tumours)" if simulated else ""))
        similarities, delta_max_parts = [], []
        batch, nfe_before = self.inferer.slice_batch_size, self.inferer.nfe
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16,
                                             enabled=self.amp and self.device.type == "cuda"):
            for slices, _ in tqdm(volumes, desc="forward process", unit="volume"):
                for i in range(0, len(slices), batch):
                    curves = self.inferer.slice_curves(slices[i : i + batch].to(self.device), self.network)
                    similarities.append(cosine_similarity(curves.mse_guided, curves.mse_reference).float().cpu())
                    delta_max_parts.append(curves.delta.amax(2).float().cpu())
        sims, dmax = torch.cat(similarities).numpy(), torch.cat(delta_max_parts).numpy()
        healthy, unhealthy = sims[labels == 0], sims[labels == 1]
        if len(healthy) == 0 or len(unhealthy) == 0:
            raise ValueError("AnoFPDM constants need healthy and unhealthy validation slices")
        thr_cls = choose_thr_cls(healthy, unhealthy)
        delta_max = dmax[labels == 1].max(0)
        if (delta_max <= 0).any():
            raise ValueError("the guided and the reference predictions never differ on unhealthy slices: is the "
                             "network trained with class labels?")
        accuracy = float(((sims <= thr_cls) == (labels == 1)).mean())
        constants_path = self.output_dir / "constants.json"
        atomic_write_json(constants_path, {
            "thr_cls": thr_cls, "delta_max": [float(v) for v in delta_max], "settings": self.settings,
            "validation": {"healthy_slices": int(len(healthy)), "unhealthy_slices": int(len(unhealthy)),
                           "simulated_tumours": simulated, "slice_stride": self.stride,
                           "classification_accuracy": accuracy,
                           "nfe_per_slice": (self.inferer.nfe - nfe_before) / len(labels)}})
        overlay = write_config_overlay(self.output_dir / "calibrated.json",
                                       {"constants_path": str(constants_path.resolve())})
        logger.info(f"thr_cls {thr_cls:.6f}, delta_max {[round(float(v), 6) for v in delta_max]}, validation slice "
                    f"accuracy {accuracy:.3f}; constants {constants_path}, overlay {overlay}")
        return {"thr_cls": thr_cls, "delta_max": [float(v) for v in delta_max], "constants": str(constants_path),
                "overlay": str(overlay)}
