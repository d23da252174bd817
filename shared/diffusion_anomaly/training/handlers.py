"""Ignite handlers for the bundles' trainers: gradient clipping and atomic resume checkpoints."""

from __future__ import annotations

import io
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents

from ..io.atomic import atomic_write_bytes
from ..networks.weights import load_checkpoint, load_weights

logger = logging.getLogger(__name__)


def save_weights(network: torch.nn.Module, path: str | os.PathLike) -> Path:
    """The state dict of ``network`` (of its ``.module`` for DDP or an EMA copy) to ``path``, atomically."""
    module = getattr(network, "module", network)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return atomic_write_bytes(path, buffer.getvalue())


class GradientClipping:
    """Clip the global gradient norm after every backward pass (unscaling first under AMP)."""

    def __init__(self, max_norm: float = 1.0):
        if max_norm <= 0:
            raise ValueError(f"max_norm must be positive, got {max_norm}")
        self.max_norm = max_norm

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Any) -> None:  # a SupervisedTrainer (network, optimizer, scaler)
        if getattr(engine, "amp", False) and getattr(engine, "scaler", None) is not None:
            engine.scaler.unscale_(engine.optimizer)
        torch.nn.utils.clip_grad_norm_(engine.network.parameters(), self.max_norm)


def random_generators(obj, seen: set | None = None) -> list:
    """Every ``torch.Generator`` and ``numpy.random.RandomState`` reachable from ``obj`` through the attributes
    a training pipeline keeps them under (a data loader's dataset, transforms and sampler; a prepare-batch's
    corruption or noise; a transform's ``R``), in a fixed order."""
    seen = set() if seen is None else seen
    if obj is None or id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, (torch.Generator, np.random.RandomState)):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [g for item in obj for g in random_generators(item, seen)]
    found = []
    for attr in ("dataset", "sampler", "generator", "transform", "transforms", "corruption", "noise", "R"):
        found += random_generators(getattr(obj, attr, None), seen)
    return found


def _state(g):
    if isinstance(g, torch.Generator):
        return g.get_state()
    name, keys, pos, has_gauss, cached = g.get_state()
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def _set_state(g, state) -> None:
    if isinstance(g, torch.Generator):
        g.set_state(state)
    else:
        name, keys, pos, has_gauss, cached = state
        g.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


class ResumeCheckpoint:
    """Resume training: load ``path`` when training starts, save it every ``interval`` epochs (atomically).

    The checkpoint holds ``{name: obj.state_dict()}`` for ``save_dict`` plus the trainer's own state
    (epoch, iteration) and the random state (torch's, numpy's and Python's global generators and every generator
    of ``random_sources``, see ``random_generators``), loaded with ``weights_only=True``. A killed run restarts
    from its last saved epoch and goes on drawing from where its generators were (without the random state it
    replayed the first epoch's batches and noise); the corruption noise and global draws equal the uninterrupted
    run's, while a sampler's order may not (torch's ``RandomSampler`` draws one more permutation when an exhausted
    epoch iterator is advanced). Under DDP each rank keeps its own seeds, so the random state is
    not restored there. A kill while writing leaves the previous checkpoint intact. The configured
    ``max_epochs`` wins over the saved one, so a finished run can be extended by raising it.
    """

    def __init__(self, path: str | os.PathLike, save_dict: Mapping[str, Any], interval: int = 1,
                 random_sources: object = None):
        if interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}")
        self.path, self.save_dict, self.interval = Path(path), dict(save_dict), interval
        self.random_sources = random_sources

    def _random_state(self) -> dict:
        return {"torch": torch.get_rng_state(), "numpy": _state(np.random.mtrand._rand), "python": random.getstate(),
                "sources": [_state(g) for g in random_generators(self.random_sources)]}

    def _restore_random_state(self, state: dict) -> None:
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            return
        generators = random_generators(self.random_sources)
        if len(generators) != len(state["sources"]):
            logger.warning("the training pipeline's random generators changed since the checkpoint; "
                           "random state not restored")
            return
        torch.set_rng_state(state["torch"])
        _set_state(np.random.mtrand._rand, state["numpy"])
        random.setstate(state["python"])
        for g, s in zip(generators, state["sources"]):
            _set_state(g, s)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.load)
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self.save)
        engine.add_event_handler(Events.COMPLETED, self.save)

    def load(self, engine: Engine) -> None:
        if not self.path.is_file():
            return
        checkpoint = load_checkpoint(self.path)
        for name, obj in self.save_dict.items():
            obj.load_state_dict(checkpoint[name])
        if "random" in checkpoint:
            self._restore_random_state(checkpoint["random"])
        max_epochs = engine.state.max_epochs
        engine.load_state_dict(checkpoint["trainer"])
        engine.state.max_epochs = max_epochs
        logger.info(f"resumed from {self.path}: epoch {engine.state.epoch}, iteration {engine.state.iteration}")
        if max_epochs is not None and engine.state.epoch >= max_epochs:
            logger.info(f"already trained for {engine.state.epoch} >= max_epochs={max_epochs} epochs")
            engine.terminate()

    def save(self, engine: Engine) -> None:
        if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
            return  # one writer under DDP; every rank loads the same file
        state = {name: obj.state_dict() for name, obj in self.save_dict.items()}
        state["trainer"] = engine.state_dict()
        state["random"] = self._random_state()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())
        logger.info(f"saved checkpoint {self.path} at epoch {engine.state.epoch}, iteration {engine.state.iteration}")


class FinalWeights:
    """Write the trained network's state dict to ``path`` when training *completes*, atomically.

    MONAI's ``CheckpointSaver(save_final=True)`` also saves when training raises (a bad resume checkpoint, a
    Ctrl-C after two iterations), which replaced the shipped ``models/model.pt`` with an untrained network. This
    handler writes only on ``Events.COMPLETED`` (a finished run, or a resume of a run that had already finished),
    on rank 0 under DDP, to a temporary file renamed over the old weights.

    Args:
        path: the final weights file (``models/model.pt``).
        network: the network (or an object with ``.module``, e.g. DDP or the EMA handler) whose weights to save.
    """

    def __init__(self, path: str | os.PathLike, network: torch.nn.Module):
        self.path, self.network = Path(path), network

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
            return
        save_weights(self.network, self.path)
        logger.info(f"saved final weights {self.path} at epoch {engine.state.epoch}")


class ExponentialMovingAverage:
    """An EMA copy of ``network``'s weights, updated after every iteration: w_ema <- d * w_ema + (1 - d) * w.

    ``module`` is the averaged network (save it as the model); ``state_dict``/``load_state_dict`` make the
    average part of a resume checkpoint. Buffers are copied, not averaged.

    Why not ignite's ``EMAHandler``: its momentum warm-up and its own ``ema_model`` would change the averaged
    weights of the AnoFPDM run in progress (resumed from checkpoints holding this object's state); it is the
    natural replacement at the next retraining from scratch.
    """

    def __init__(self, network: torch.nn.Module, decay: float = 0.9999):
        import copy

        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(network).eval().requires_grad_(False)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    @torch.no_grad()
    def update(self, network: torch.nn.Module) -> None:
        network = getattr(network, "module", network)  # DistributedDataParallel
        for avg, new in zip(self.module.parameters(), network.parameters()):
            avg.lerp_(new.detach().to(avg.device), 1.0 - self.decay)
        for avg_buffer, new_buffer in zip(self.module.buffers(), network.buffers()):
            avg_buffer.copy_(new_buffer)

    def __call__(self, engine: Any) -> None:  # a SupervisedTrainer (it has the network)
        self.update(engine.network)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping) -> None:
        self.module.load_state_dict(state)


class InitialWeights:
    """Fine-tuning: load ``path`` into ``network`` when a *fresh* run starts.

    Attach it before ``ResumeCheckpoint``: a resumed run loads its own checkpoint afterwards, so the initial weights
    only ever seed iteration 0. ``path`` None (the configs' default) trains from the preset's random initialisation.
    The file loads with ``weights_only=True`` (a state dict, or one under "model"/"network"). ``ema`` (an
    ``ExponentialMovingAverage``) starts from the same weights, else it would average towards them from random ones.
    """

    def __init__(self, network: torch.nn.Module, path: str | os.PathLike | None = None,
                 ema: ExponentialMovingAverage | None = None):
        self.network, self.path, self.ema = network, Path(path) if path else None, ema
        if self.path is not None and not self.path.is_file():
            raise FileNotFoundError(f"setting 'initial_weights': no such file {self.path}")

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        if self.path is None or engine.state.iteration > 0:
            return
        module = getattr(self.network, "module", self.network)
        device = next(module.parameters()).device
        load_weights(module, self.path, device=device, eval_mode=False)
        module.train()
        if self.ema is not None:
            self.ema.module.load_state_dict(module.state_dict())
        logger.info(f"initial weights loaded from {self.path}")


class WeightSnapshots:
    """Keep the network's weights of every ``interval``-th epoch as ``<folder>/weights_iteration<N>.pt``.

    The resume checkpoint holds only the latest state; snapshots let a later, separate step (a benchmark on
    held-out data, never the test labels) pick among the states a run went through. Written atomically, rank 0.
    """

    def __init__(self, folder: str | os.PathLike, network: torch.nn.Module, interval: int = 10):
        if interval < 1:
            raise ValueError(f"setting 'snapshot_interval' must be an integer >= 1, got {interval}")
        self.folder, self.network, self.interval = Path(folder), network, interval

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
            return
        path = save_weights(self.network, self.folder / f"weights_iteration{engine.state.iteration:06d}.pt")
        logger.info(f"saved weight snapshot {path}")


class TimeBudget:
    """End training after ``max_minutes`` of wall time (checked after every iteration), as a *completed* run.

    Ignite's ``terminate()`` fires ``COMPLETED``, so the final weights (``FinalWeights``) and the resume checkpoint
    are written as for a run that reached ``max_epochs``: a GPU run given ten minutes ends with usable weights.
    Under DDP rank 0's clock decides and every rank stops at the same iteration. None: no budget.
    """

    def __init__(self, max_minutes: float | None = None):
        if max_minutes is not None and not float(max_minutes) > 0:
            raise ValueError(f"setting 'max_minutes' must be a positive number or null, got {max_minutes}")
        self.seconds = None if max_minutes is None else 60.0 * float(max_minutes)
        self._start = 0.0

    def attach(self, engine: Engine) -> None:
        if self.seconds is None:
            return
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _started(self, engine: Engine) -> None:
        self._start = time.monotonic()

    def __call__(self, engine: Engine) -> None:
        if self.seconds is None:
            return
        stop = time.monotonic() - self._start >= self.seconds
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            nccl = torch.distributed.get_backend() == "nccl"
            flag = torch.tensor([float(stop)], device=torch.device("cuda", torch.cuda.current_device()) if nccl
                                else "cpu")
            torch.distributed.broadcast(flag, src=0)
            stop = bool(flag.item())
        if stop:
            logger.info(f"time budget of {self.seconds / 60:g} min reached at iteration {engine.state.iteration}")
            engine.terminate()
