"""Label-map output for viewers (MONAI Label): ``pred`` becomes a binary mask, the float map is kept beside it.

MONAI Label's ``BundleInferTask`` calls ``inferer(inputs, network)`` itself, stores the (decollated) result as
``data["pred"]`` and runs the bundle's ``postprocessing``; viewers (3D Slicer, OHIF) show ``pred`` as a label
map. Our inferers return a dict (map, mask, restoration, ...), which the bundle's own runner spreads into the
item. These two transforms, first and last in ``postprocessing``, make that same post-processing work in both:
``UnpackInfererOutputd`` spreads a dict found in ``pred`` and marks the item; ``LabelMapd`` then turns ``pred``
of marked items into a uint8 mask and keeps the float map as ``anomaly_map`` (already written to disk by the
post-processing's writers). Items from the bundle's own runner pass through both unchanged.

A server answers the same case many times (a user re-runs it, two users open one study), so each marked item
also gets a ``request_id`` (UTC time + random suffix): the writers put that request's files in
``<output_dir>/<case>/<request_id>/`` instead of overwriting ``<output_dir>/<case>/``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Mapping

import torch
from monai.transforms import MapTransform

from .intensity import like

LABEL_MAP_REQUEST = "label_map_request"
REQUEST_ID = "request_id"


def new_request_id() -> str:
    """Sortable and unique: ``20261206T051233Z-1a2b3c4d``."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


class UnpackInfererOutputd(MapTransform):
    """If ``pred`` is a dict of inferer outputs: ``pred`` = its ``pred``, its other entries become item keys."""

    def __init__(self, key: str = "pred"):
        super().__init__([key])
        self.key = key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        outputs = d.get(self.key)
        if isinstance(outputs, Mapping):
            image = d.get("image")
            for name, value in outputs.items():
                value = torch.as_tensor(value)
                value = value.float() if value.is_floating_point() else value
                if image is not None and tuple(value.shape[1:]) == tuple(image.shape[1:]):
                    value = like(value, image)  # the image's transform history, so Invertd can map it back
                d[self.key if name == "pred" else name] = value
            d[LABEL_MAP_REQUEST] = True
            d.setdefault(REQUEST_ID, new_request_id())
        return d


class LabelMapd(MapTransform):
    """For items marked by :class:`UnpackInfererOutputd`: ``anomaly_map`` = the float ``pred``; ``pred`` =
    ``pred >= threshold`` when a threshold is set, else the method's own binary ``mask`` (uint8, 1 = anomaly).

    Args:
        threshold: score threshold (the bundle's ``label_threshold``, calibrated for a 1 % false-positive rate on
            healthy validation voxels); it wins over the method's mask, so every bundle's label follows the
            same rule. None uses the ``mask``.
    """

    def __init__(self, threshold: float | None = None, key: str = "pred", mask_key: str = "mask",
                 map_key: str = "anomaly_map"):
        super().__init__([key])
        self.threshold, self.key, self.mask_key, self.map_key = threshold, key, mask_key, map_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        if not d.pop(LABEL_MAP_REQUEST, False):
            return d
        score = d[self.key]
        if self.threshold is not None:
            mask = torch.as_tensor(score) >= self.threshold
        elif self.mask_key in d:
            mask = torch.as_tensor(d[self.mask_key]) > 0
        else:
            raise ValueError("this bundle has no mask output; set 'label_threshold' in its inference config")
        d[self.map_key] = score
        d[self.key] = like(mask.to(torch.uint8), score)
        return d
