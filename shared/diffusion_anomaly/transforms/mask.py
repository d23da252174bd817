"""Brain-mask application: zero everything outside the mask (skull, background)."""

from __future__ import annotations

from typing import Mapping

from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..data.checks import check_same_spatial_shape
from .checks import source_name


class ApplyMaskd(MapTransform):
    """Multiply ``keys`` by ``mask_key > 0`` (broadcast over channels); shapes must match."""

    def __init__(self, keys: KeysCollection, mask_key: str = "brain_mask", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.mask_key = mask_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        mask = d[self.mask_key]
        for key in self.key_iterator(d):
            check_same_spatial_shape(d[key].shape[1:], mask.shape[1:], source_name(d, key),
                                     source_name(d, self.mask_key))
            d[key] = d[key] * (mask > 0).to(d[key].dtype) if hasattr(mask, "to") else d[key] * (mask > 0)
        return d


class EnsureBrainMaskd(MapTransform):
    """Add ``mask_key`` = any channel of ``image_key`` is non-zero, when the case has no brain mask.

    Inputs are expected skull-stripped (as in the published methods); MONAI Label and Deploy send only an
    image, so the mask is derived from it.
    """

    def __init__(self, image_key: str = "image", mask_key: str = "brain_mask"):
        super().__init__([image_key])
        self.image_key, self.mask_key = image_key, mask_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        if d.get(self.mask_key) is None or isinstance(d.get(self.mask_key), str):
            image = d[self.image_key]
            d[self.mask_key] = (image != 0).any(dim=0, keepdim=True).to(image.dtype)
        return d
