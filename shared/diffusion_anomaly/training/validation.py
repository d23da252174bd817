"""Validation during training without any real lesion: synthetic lesions on held-out healthy volumes."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from ignite.engine import Engine, Events

from ..corruptions.disyre import DisyreCorruption
from ..metrics import exact_curve

logger = logging.getLogger(__name__)


class SyntheticLesionValidation:
    """Every ``interval`` epochs, score a fixed set of corrupted validation patches and record the pixel AP.

    The set is built once: up to ``max_patches`` patches from ``dataset`` (healthy validation volumes, sampled
    by the config's transforms), corrupted by ``corruption`` at the strengths alpha_t of ``timesteps`` in turn
    (seeded, so every validation sees the same lesions). Ground truth = soft mask >= 0.5; AP over foreground pixels.
    The value
    goes to ``engine.state.metrics[metric_name]`` and, if given, to a TensorBoard ``summary_writer``.

    Args:
        dataset: healthy validation patches (items with "image" of shape (C, H, W), or lists of such items).
        inferer: the method's inferer (returns the map, or a dict with "pred").
        network: the network being trained.
        corruption: synthetic-lesion generator (a separate, seeded instance from the training one).
        timesteps: levels whose strengths alpha_t are cycled over the patches.
        interval: epochs between validations.
        max_patches: size of the fixed validation set.
        device: where the network runs.
        summary_writer: TensorBoard writer.
        metric_name: key in ``engine.state.metrics``.
    """

    def __init__(self, dataset: Any, inferer: Any, network: torch.nn.Module, corruption: DisyreCorruption,
                 timesteps: Sequence[int] = (25, 50, 75, 100), interval: int = 1, max_patches: int = 64,
                 device: torch.device | str = "cpu", summary_writer: Any = None,
                 metric_name: str = "val_synthetic_ap"):
        self.dataset, self.inferer, self.network, self.corruption = dataset, inferer, network, corruption
        self.timesteps, self.interval, self.max_patches = tuple(timesteps), interval, max_patches
        self.device, self.writer, self.metric_name = torch.device(device), summary_writer, metric_name
        self._set: tuple[torch.Tensor, torch.Tensor] | None = None
        self.history: list[tuple[int, float]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def _build(self) -> tuple[torch.Tensor, torch.Tensor]:
        patches, sources = [], []
        for index in range(len(self.dataset)):
            items = self.dataset[index]
            for item in items if isinstance(items, list) else [items]:
                patches.append(torch.as_tensor(item["image"]).float())
                sources.append(f"{index}")
                if len(patches) >= self.max_patches:
                    break
            if len(patches) >= self.max_patches:
                break
        if not patches:
            raise ValueError("the validation dataset produced no patches")
        images = torch.stack(patches)
        t = torch.tensor([self.timesteps[i % len(self.timesteps)] for i in range(len(images))])
        corrupted, masks, _ = self.corruption(images, self.corruption.scheduler.alpha(t), sources)
        return corrupted, (masks >= 0.5) & (images != 0)

    def __call__(self, engine: Engine) -> float:
        if self._set is None:
            self._set = self._build()
        corrupted, labels = self._set
        was_training = self.network.training
        self.network.eval()
        with torch.no_grad():
            out = self.inferer(corrupted.to(self.device), self.network)
        self.network.train(was_training)
        score = (out["pred"] if isinstance(out, dict) else out).float().cpu()
        foreground = corrupted != 0
        ap = exact_curve(score[foreground[:, :1]], labels[:, :1][foreground[:, :1]]).ap
        engine.state.metrics[self.metric_name] = ap
        self.history.append((engine.state.epoch, ap))
        if self.writer is not None:
            self.writer.add_scalar(self.metric_name, ap, engine.state.epoch)
        logger.info(f"epoch {engine.state.epoch}: {self.metric_name} = {ap:.4f}")
        return ap
