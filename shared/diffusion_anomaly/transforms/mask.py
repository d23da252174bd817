"""The brain mask a case may lack. Zeroing outside it is MONAI's ``MaskIntensityd`` (shapes are checked, with file
names, by ``CheckInputd`` before)."""

from __future__ import annotations

from typing import Mapping

from monai.transforms import MapTransform


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
