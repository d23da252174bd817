"""Choose inference settings on validation data: every combination of a grid, one objective, one overlay."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..io import atomic_write_json
from .overlay import write_config_overlay

logger = logging.getLogger(__name__)


class SettingSearch:
    """Build the bundle's inferer for every combination of ``grid``, score it with ``objective`` on validation
    data, and keep the combination with the highest ``metric``.

    Two files go to ``output_dir``: ``report_name`` (every combination's scores, the best one) and
    ``overlay_name``, a config overlay that sets the best combination's config ids. The grid's keys are both the
    inferer's argument names and the bundle's config ids (the bundles name them alike: ``scoring``,
    ``noise_level``, ``blur_kernel``, ...), so running the bundle with the overlay after ``inference.json``
    applies the choice:
    ``--config_file "['configs/inference.json','<output_dir>/calibrated.json']"``.
    Ties keep the first combination in grid order.

    Args:
        inferer_factory: the bundle's inferer with ``"_mode_": "callable"``: called with one combination of the
            grid as keyword arguments, it returns an inferer.
        grid: config id -> candidate values, e.g. ``{"scoring": ["ensemble", "healing"]}``.
        objective: ``objective(inferer, network)`` -> dict of scores on validation data.
        network: the trained network.
        metric: the key of the objective's dict to maximise.
        output_dir: where the report and the overlay go.
        overlay_name: file name of the config overlay (.json or .yaml).
        report_name: file name of the JSON report.
    """

    def __init__(self, inferer_factory: Callable[..., Any], grid: Mapping[str, Sequence], objective: Callable,
                 network: torch.nn.Module, metric: str, output_dir: str | os.PathLike,
                 overlay_name: str = "calibrated.json", report_name: str = "calibration_report.json"):
        if not grid:
            raise ValueError("setting 'calibration_grid' is empty: name at least one setting and its candidates")
        empty = [key for key, values in grid.items() if isinstance(values, str) or len(values) == 0]
        if empty:
            raise ValueError(f"setting 'calibration_grid': {empty} must each list one or more candidate values")
        self.inferer_factory, self.objective, self.network, self.metric = inferer_factory, objective, network, metric
        self.grid = {key: list(values) for key, values in grid.items()}
        self.output_dir = Path(output_dir)
        self.overlay_path, self.report_path = self.output_dir / overlay_name, self.output_dir / report_name

    def combinations(self) -> list[dict[str, Any]]:
        """The grid's combinations, the last key varying fastest."""
        return [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]

    def build(self, setting: Mapping[str, Any]) -> Any:
        try:
            return self.inferer_factory(**setting)
        except TypeError as err:  # a grid key the inferer does not take
            raise ValueError(f"setting 'calibration_grid': the inferer does not take {sorted(setting)} ({err})") \
                from err

    def run(self) -> dict:
        combinations = self.combinations()
        inferers = [self.build(setting) for setting in combinations]  # a bad candidate fails before any evaluation
        rows = []
        for setting, inferer in tqdm(list(zip(combinations, inferers)), desc="calibration", unit="setting"):
            with torch.no_grad():
                scores = dict(self.objective(inferer, self.network))
            if self.metric not in scores:
                raise KeyError(f"setting 'calibration_metric': the objective gives {sorted(scores)}, "
                               f"not {self.metric!r}")
            row = {**setting, **scores}
            if hasattr(inferer, "nfe"):
                row["nfe"] = int(inferer.nfe)
            rows.append(row)
            logger.info(f"{setting}: {self.metric} = {float(scores[self.metric]):.4f}")
        best = max(rows, key=lambda row: float(row[self.metric]))
        chosen = {key: best[key] for key in self.grid}
        atomic_write_json(self.report_path, {"metric": self.metric, "best": best, "grid": rows})
        write_config_overlay(self.overlay_path, chosen)
        logger.info(f"best: {chosen} ({self.metric} {float(best[self.metric]):.4f}); overlay {self.overlay_path}, "
                    f"report {self.report_path}")
        return {"best": best, "overlay": str(self.overlay_path), "report": str(self.report_path)}
