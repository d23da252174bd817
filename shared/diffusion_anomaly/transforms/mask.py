"""The foreground mask a case may lack. Zeroing outside it is MONAI's ``MaskIntensityd`` (shapes are checked, with
file names, by ``CheckInputd`` before)."""

from __future__ import annotations

from typing import Mapping

from monai.transforms import MapTransform
from monai.utils import deprecated


class EnsureForegroundMaskd(MapTransform):
    """Add ``mask_key`` = any channel of ``image_key`` is non-zero, when the case has no foreground mask.

    The foreground is the object the methods model: the brain (inputs skull-stripped, as in the published
    methods), the liver of a CT preset, the sector of an ultrasound preset. MONAI Label and Deploy send only an
    image, so the mask is derived from it.
    """

    def __init__(self, image_key: str = "image", mask_key: str = "foreground_mask"):
        super().__init__([image_key])
        self.image_key, self.mask_key = image_key, mask_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        if d.get(self.mask_key) is None or isinstance(d.get(self.mask_key), str):
            image = d[self.image_key]
            d[self.mask_key] = (image != 0).any(dim=0, keepdim=True).to(image.dtype)
        return d


@deprecated(since="0.1.3", msg_suffix="use EnsureForegroundMaskd (the mask also holds liver and ultrasound regions)")
class EnsureBrainMaskd(EnsureForegroundMaskd):
    """The 0.1.2 name of ``EnsureForegroundMaskd``, kept for configs written against it (its mask key stays
    ``brain_mask`` by default)."""

    def __init__(self, image_key: str = "image", mask_key: str = "brain_mask"):
        super().__init__(image_key, mask_key)
