"""Loading of the images a case may lack (brain mask, label)."""

from __future__ import annotations

import os
from typing import Mapping

from monai.config import KeysCollection
from monai.transforms import LoadImaged, MapTransform

from ..errors import InputDataError


class LoadImagesIfGivend(MapTransform):
    """Loads each of ``keys`` whose value is a file path; absent keys and already loaded arrays are left alone.

    Bundles load ``image`` with MONAI's ``LoadImaged`` and optional masks with this. MONAI Label swaps every
    ``LoadImaged`` for a loader that requires all of its keys, so one ``LoadImaged`` with ``allow_missing_keys``
    would fail on a request that has no brain mask. MONAI Deploy drops it like any ``LoadImage*`` transform.

    Args:
        keys: keys to load when present.
        image_only: as for ``LoadImaged``.
    """

    def __init__(self, keys: KeysCollection, image_only: bool = True):
        super().__init__(keys, allow_missing_keys=True)
        self.image_only = image_only

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in [k for k in self.keys if isinstance(d.get(k), (str, os.PathLike))]:
            path = d[key]
            try:
                d = LoadImaged(keys=key, image_only=self.image_only)(d)
            except Exception as err:  # a truncated mask raised an EOFError that named no file
                cause = err.__cause__ or err
                raise InputDataError(path, f"cannot be read as an image ({type(cause).__name__}: {cause})") from err
        return d
