"""Method-agnostic validation during training: the benchmark's lesion families painted into held-out healthy
volumes, scored by the bundle's own inferer, pixel AP inside the brain; drives the best-weights choice."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.transforms import Compose

from ..corruptions.benchmark_lesions import FAMILIES, paint_lesions
from ..io.atomic import atomic_write_json
from ..metrics import exact_curve
from ..settings import check_bool
from .handlers import save_weights

logger = logging.getLogger(__name__)


class LesionValidation:
    """Every ``interval`` epochs (and, with ``validate_at_start``, once before a fresh run trains), the pooled and
    per-family pixel AP of the network on synthetic lesions in the validation volumes; the best weights so far go
    to ``best_path``.

    The validation set is built once. Each volume of ``data`` goes through ``loading`` (the bundle's volume steps
    up to and including the brain masking: raw intensities, background 0). For each of ``families`` three lesions
    are painted with :func:`paint_lesions` (seeded from ``seed``, the volume's index and the family, so every
    validation and every resume sees the same lesions; ``foreign_texture`` takes its donor tissue from the next
    validation volume, or from the volume itself when there is one). The painted volume then goes through
    ``intensity`` (the bundle's intensity step into its inferer's range), and the ``slices_per_family`` axial
    slices with the largest lesion area are kept. All slices of one volume form one volume for ``inferer``, so
    each validation costs ``len(families) * slices_per_family`` slices per volume.

    The curve (iteration, epoch, pooled and per-family AP) is kept in ``curve_path`` and TensorBoard; a resumed
    run reads the curve back, so its best is not replaced by a worse one.

    Args:
        data: validation entries (``image`` and optional ``foreground_mask`` paths); empty: no validation (the
            Synomaly liver-CT and ultrasound presets, whose anomalies are not brain lesions).
        loading: transform (or list of transforms) from an entry to raw channel-first tensors.
        intensity: transform into the inferer's intensity range.
        inferer: the bundle's inferer; ``inferer(volume, network)`` returns the map or a dict with "pred".
        network: the network whose weights are validated and saved (e.g. the EMA copy for AnoFPDM).
        curve_path: JSON file of the validation curve; None: kept in memory only (calibration scores one
            network once).
        best_path: where the best weights are written (atomically); None to keep none.
        families: lesion families (default: all five of the in-domain benchmark).
        slices_per_family: axial slices kept per painted volume.
        radii: lesion radii range in voxels (the benchmark's (5, 12) at 1 mm; smaller for small volumes).
        interval: epochs between validations.
        validate_at_start: also validate before the first iteration of a fresh run (the starting point of a
            fine-tuning run; of no use for random weights).
        seed: seed of the painted lesions.
        axial_dim: spatial axis of the slices.
        device: where the network runs.
        amp: bf16 autocast on CUDA.
        summary_writer: TensorBoard writer.
        metric_name: key in ``engine.state.metrics``.
    """

    def __init__(self, data: Sequence[dict], loading: Callable | Sequence[Callable], intensity: Callable,
                 inferer: Callable, network: torch.nn.Module, curve_path: str | os.PathLike | None = None,
                 best_path: str | os.PathLike | None = None, families: Sequence[str] = FAMILIES,
                 slices_per_family: int = 4, radii: Sequence[float] = (5.0, 12.0), interval: int = 5,
                 validate_at_start: bool = False, seed: int = 12345, axial_dim: int = 2,
                 device: torch.device | str = "cpu", amp: bool = False, summary_writer: Any = None,
                 metric_name: str = "val_lesion_ap"):
        if interval < 1:
            raise ValueError(f"setting 'val_interval' must be an integer >= 1, got {interval}")
        if slices_per_family < 1:
            raise ValueError(f"slices_per_family must be >= 1, got {slices_per_family}")
        unknown = set(families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown lesion families {sorted(unknown)}; choose from {FAMILIES}")
        if len(data) == 0:  # e.g. 2-D ultrasound frames or liver CT: the lesion families are brain-MRI lesions
            logger.info("no validation volumes: synthetic-lesion validation is off for this run")
        self.data, self.intensity, self.inferer, self.network = list(data), intensity, inferer, network
        self.loading = loading if callable(loading) else Compose(list(loading))
        self.curve_path = None if curve_path is None else Path(curve_path)
        self.best_path = None if best_path is None else Path(best_path)
        self.families, self.slices_per_family, self.interval = tuple(families), slices_per_family, interval
        self.validate_at_start = check_bool("val_at_start", validate_at_start)
        self.radii = (float(radii[0]), float(radii[1]))
        self.seed, self.axial_dim, self.device, self.amp = seed, axial_dim, torch.device(device), amp
        self.writer, self.metric_name = summary_writer, metric_name
        self._set: list[tuple[torch.Tensor, np.ndarray, np.ndarray, list[str]]] | None = None
        self.curve: list[dict] = []
        self.best: float = -1.0

    def attach(self, engine: Engine) -> None:
        if not self.data:
            return
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def _start(self, engine: Engine) -> None:
        if self.curve_path is not None and self.curve_path.is_file():
            self.curve = json.loads(self.curve_path.read_text())["curve"]
            self.best = max((row["ap"] for row in self.curve), default=-1.0)
        fresh = engine.state.iteration == 0 and not any(row["iteration"] == 0 for row in self.curve)
        if self.validate_at_start and fresh:
            self(engine)  # where a fresh (or fine-tuning) run starts from

    # ---- the fixed validation set -----------------------------------------------------------------------------
    def build(self) -> list[tuple[torch.Tensor, np.ndarray, np.ndarray, list[str]]]:
        """Per validation volume: (slices in the inferer's range (C, H, W, N), labels (H, W, N), brain (H, W, N),
        the family of each slice)."""
        loaded = [self.loading(dict(entry)) for entry in self.data]
        out = []
        for index, item in enumerate(loaded):
            image, brain = item["image"], item["foreground_mask"][0] > 0
            donor = loaded[(index + 1) % len(loaded)]
            slices, labels, brains, names = [], [], [], []
            for f, family in enumerate(self.families):
                rng = np.random.default_rng([self.seed, index, f])
                try:
                    painted, label = paint_lesions(image[0].numpy(), brain.numpy(), family, rng, radii=self.radii,
                                                   donor=donor["image"][0].numpy(),
                                                   donor_brain=donor["foreground_mask"][0].numpy() > 0)
                except ValueError as err:
                    raise ValueError(f"validation volume {self.data[index].get('image')}: {err}; lower the lesion "
                                     "radii (validate#lesions#radii)") from err
                volume = image.clone()
                volume[0] = torch.as_tensor(painted)
                scaled = self.intensity({"image": volume, "foreground_mask": item["foreground_mask"]})["image"]
                area = np.moveaxis(label, self.axial_dim, -1).reshape(-1, label.shape[self.axial_dim]).sum(0)
                keep = np.sort(np.argsort(-area, kind="stable")[: self.slices_per_family])
                slices.append(torch.as_tensor(scaled).index_select(self.axial_dim + 1, torch.as_tensor(keep)))
                labels.append(np.take(label, keep, axis=self.axial_dim))
                brains.append(np.take(brain.numpy(), keep, axis=self.axial_dim))
                names += [family] * len(keep)
            out.append((torch.cat(slices, self.axial_dim + 1).float(), np.concatenate(labels, self.axial_dim),
                        np.concatenate(brains, self.axial_dim), names))
        return out

    # ---- one validation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def scores(self) -> dict:
        """Pooled and per-family AP of the current network."""
        if self._set is None:
            self._set = self.build()
        module = getattr(self.network, "module", self.network)
        was_training = module.training
        module.eval()
        pooled_s: list[np.ndarray] = []
        pooled_l: list[np.ndarray] = []
        per_family: dict[str, tuple[list, list]] = {f: ([], []) for f in self.families}
        try:
            for volume, label, brain, names in self._set:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp and self.device.type == "cuda"):
                    out = self.inferer(volume[None].to(self.device), self.network)
                pred = (out["pred"] if isinstance(out, dict) else out)[0, 0].float().cpu().numpy()
                for z, family in enumerate(names):
                    take = (slice(None),) * self.axial_dim + (z,)
                    inside = brain[take]
                    s, lab = pred[take][inside], label[take][inside]
                    pooled_s.append(s)
                    pooled_l.append(lab)
                    per_family[family][0].append(s)
                    per_family[family][1].append(lab)
        finally:
            module.train(was_training)
        result: dict[str, Any] = {"ap": exact_curve(np.concatenate(pooled_s), np.concatenate(pooled_l)).ap}
        result["per_family"] = {f: exact_curve(np.concatenate(s), np.concatenate(lab)).ap
                                for f, (s, lab) in per_family.items()}
        return result

    def __call__(self, engine: Engine) -> float:
        result = self.scores()
        ap, iteration = float(result["ap"]), int(engine.state.iteration)
        engine.state.metrics[self.metric_name] = ap
        row = {"iteration": iteration, "epoch": int(engine.state.epoch), "ap": round(ap, 5),
               "per_family": {f: round(float(v), 5) for f, v in result["per_family"].items()}}
        self.curve = [r for r in self.curve if r["iteration"] != iteration] + [row]
        improved = ap > self.best
        if improved:
            self.best = ap
            if self.best_path is not None:
                save_weights(self.network, self.best_path)
        best_row = max(self.curve, key=lambda r: r["ap"])
        if self.curve_path is not None:
            atomic_write_json(self.curve_path, {"metric": "pixel AP inside the brain, synthetic lesions on the "
                                                          "validation volumes", "best": best_row, "curve": self.curve})
        if self.writer is not None:
            self.writer.add_scalar(self.metric_name, ap, iteration)
            for family, value in result["per_family"].items():
                self.writer.add_scalar(f"{self.metric_name}/{family}", value, iteration)
        families = ", ".join(f"{f} {v:.3f}" for f, v in result["per_family"].items())
        logger.info(f"iteration {iteration}: {self.metric_name} = {ap:.4f} ({families})"
                    + (f"; best so far, saved to {self.best_path}" if improved and self.best_path else ""))
        return ap

