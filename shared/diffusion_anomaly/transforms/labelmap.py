"""Label-map output for viewers (MONAI Label): ``pred`` becomes a binary mask, the float map is kept beside it.

MONAI Label's ``BundleInferTask`` calls ``inferer(inputs, network)`` itself, stores the (decollated) result as
``data["pred"]`` and runs the bundle's ``postprocessing``; viewers (3D Slicer, OHIF) show ``pred`` as a label
map. Our inferers return a dict (map, mask, restoration, ...), which the bundle's own runner spreads into the
item. These two transforms, first and last in ``postprocessing``, make that same post-processing work in both:
``UnpackInfererOutputd`` spreads a dict found in ``pred`` and marks the item; ``LabelMapd`` then turns ``pred``
of marked items into a uint8 mask and keeps the float map as ``anomaly_map`` (already written to disk by the
post-processing's writers). Items from the bundle's own runner pass through both unchanged.
"""

from __future__ import annotations

from typing import Mapping

import torch
from monai.transforms import MapTransform

from .intensity import like

LABEL_MAP_REQUEST = "label_map_request"


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
        return d


class LabelMapd(MapTransform):
    """For items marked by :class:`UnpackInfererOutputd`: ``anomaly_map`` = the float ``pred``; ``pred`` = the
    method's binary ``mask`` if there is one, else ``pred >= threshold`` (uint8, 1 = anomaly).

    Args:
        threshold: score threshold for methods without a mask of their own (e.g. calibrated for a 1 % false-positive
            rate on healthy validation voxels); None requires a ``mask``.
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
        if self.mask_key in d:
            mask = torch.as_tensor(d[self.mask_key]) > 0
        elif self.threshold is not None:
            mask = torch.as_tensor(score) >= self.threshold
        else:
            raise ValueError("this bundle has no mask output; set 'label_threshold' in its inference config")
        d[self.map_key] = score
        d[self.key] = like(mask.to(torch.uint8), score)
        return d
