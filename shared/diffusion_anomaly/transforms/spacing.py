"""In-plane resampling to the spacing a bundle was trained at, safe inside MONAI Label requests."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import monai.transforms
import torch


class Spacingd(monai.transforms.Spacingd):
    """MONAI's ``Spacingd`` (same arguments, same output) that leaves plain request values alone.

    Why ours: MONAI 1.6.1's ``Spacingd`` copies the resampled image's metadata into every entry whose name starts
    with ``<key>_`` (meant for the old ``image_meta_dict``) when the image was read from NIfTI, and raises
    "'str' object has no attribute 'update'" on any entry that is not a dictionary. MONAI Label puts the request's
    file name under ``image_path``, so every request to a bundle with ``Spacingd`` failed with HTTP 500. Entries
    under those names that are not mappings are set aside for the call and put back unchanged.
    """

    def __call__(self, data: Mapping[Hashable, torch.Tensor], lazy: bool | None = None) -> dict:
        d = dict(data)
        prefixes = tuple(f"{key}_" for key in self.keys if isinstance(key, str))
        plain = {k: d.pop(k) for k in list(d)
                 if isinstance(k, str) and k.startswith(prefixes) and not isinstance(d[k], Mapping)}
        out = super().__call__(d, lazy=lazy)
        out.update(plain)
        return out
