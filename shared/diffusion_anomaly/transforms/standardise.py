"""The shared intensity standardisation as a dictionary transform (see ``diffusion_anomaly.standardisation``)."""

from __future__ import annotations

from typing import Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..errors import InputDataError
from ..standardisation import REFERENCES, tissue_reference, to_range
from .checks import source_name
from .intensity import _as_tensor, like


class StandardiseIntensityd(MapTransform):
    """Per channel: reference = ``tissue_reference`` of the voxels inside ``mask_key``; then
    ``[0, upper * reference]`` -> ``[b_min, b_max]`` (clipped unless ``clip`` is False). Outside the mask the
    image is expected to be 0 (``ApplyMaskd`` first), so the background lands on ``b_min``.

    Args:
        keys: image keys.
        mask_key: foreground mask (brain, liver, ...) the reference is taken in.
        reference: "median" or "mode".
        upper: the intensity, in reference units, that maps to ``b_max`` (room above the healthy tissue for
            hyperintense lesions).
        b_min: output of intensity 0 (and of the background).
        b_max: output of ``upper`` x reference.
        clip: clip to ``[b_min, b_max]``.
    """

    def __init__(self, keys: KeysCollection, mask_key: str = "brain_mask", reference: str = "median",
                 upper: float = 3.0, b_min: float = 0.0, b_max: float = 1.0, clip: bool = True,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        if upper <= 0 or b_max == b_min:
            raise ValueError(f"need upper > 0 and b_max != b_min, got upper={upper}, b_min={b_min}, b_max={b_max}")
        self.mask_key, self.reference, self.upper = mask_key, reference, float(upper)
        self.b_min, self.b_max, self.clip = float(b_min), float(b_max), clip

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        mask = _as_tensor(d[self.mask_key]) > 0
        for key in self.key_iterator(d):
            img = _as_tensor(d[key]).float()
            out = torch.empty_like(img)
            for c in range(img.shape[0]):
                inside = mask[0 if mask.shape[0] == 1 else c]
                try:
                    ref = tissue_reference(img[c][inside], self.reference)
                except ValueError as err:
                    raise InputDataError(source_name(d, key), str(err)) from err
                out[c] = to_range(img[c], ref, self.upper, self.b_min, self.b_max, self.clip)
            d[key] = like(out, d[key])
        return d
