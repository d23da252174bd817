"""The shared intensity standardisation as a dictionary transform (see ``diffusion_anomaly.standardisation``)."""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, ScaleIntensityRanged

from ..bias_field import n4_bias_field
from ..errors import InputDataError
from ..standardisation import (
    LANDMARK_PERCENTILES,
    REFERENCES,
    check_landmarks,
    histogram_standardise,
    tissue_reference,
    to_range,
)
from .checks import source_name
from .intensity import ScalePercentiled, SliceMinMaxd, _as_tensor, like


class StandardiseIntensityd(MapTransform):
    """Per channel: reference = ``tissue_reference`` of the voxels inside ``mask_key``; then
    ``[0, upper * reference]`` -> ``[b_min, b_max]`` (clipped unless ``clip`` is False). Outside the mask the
    image is expected to be 0 (MONAI's ``MaskIntensityd`` first), so the background lands on ``b_min``.

    Args:
        keys: image keys.
        mask_key: foreground mask (brain, liver, ...) the reference is taken in.
        reference: "median" or "mode".
        upper: the intensity, in reference units, that maps to ``b_max`` (room above the healthy tissue for
            hyperintense lesions).
        b_min: output of intensity 0 (and of the background).
        b_max: output of ``upper`` x reference.
        clip: clip to ``[b_min, b_max]``.
        landmarks: standard landmarks (median units) of the foreground ``percentiles``: when given, the
            histogram standardisation (``histogram_standardise``) runs between the division by the median and the range.
        percentiles: the foreground percentiles the landmarks belong to.
    """

    def __init__(self, keys: KeysCollection, mask_key: str = "foreground_mask", reference: str = "median",
                 upper: float = 2.5, b_min: float = 0.0, b_max: float = 1.0, clip: bool = True,
                 allow_missing_keys: bool = False, landmarks: Sequence[float] | None = None,
                 percentiles: Sequence[float] = LANDMARK_PERCENTILES):
        super().__init__(keys, allow_missing_keys)
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        if upper <= 0 or b_max == b_min:
            raise ValueError(f"need upper > 0 and b_max != b_min, got upper={upper}, b_min={b_min}, b_max={b_max}")
        self.mask_key, self.reference, self.upper = mask_key, reference, float(upper)
        self.b_min, self.b_max, self.clip = float(b_min), float(b_max), clip
        self.percentiles = tuple(float(p) for p in percentiles)
        if landmarks is not None and reference != "median":
            raise ValueError("histogram standardisation works in brain-median units: use reference 'median'")
        self.landmarks = None if landmarks is None else check_landmarks(landmarks, self.percentiles)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        mask = _as_tensor(d[self.mask_key]) > 0
        for key in self.key_iterator(d):
            img = _as_tensor(d[key]).float()
            out = torch.empty_like(img)
            for c in range(img.shape[0]):
                inside = mask[0 if mask.shape[0] == 1 else c]
                try:
                    if self.landmarks is None:
                        out[c] = to_range(img[c], tissue_reference(img[c][inside], self.reference), self.upper,
                                          self.b_min, self.b_max, self.clip)
                    else:
                        units = histogram_standardise(img[c], img[c][inside], self.landmarks, self.percentiles)
                        out[c] = to_range(units, 1.0, self.upper, self.b_min, self.b_max, self.clip)
                except ValueError as err:
                    raise InputDataError(source_name(d, key), str(err)) from err
            d[key] = like(out, d[key])
        return d


class CorrectBiasFieldd(MapTransform):
    """Divide each channel by its N4 bias field (``diffusion_anomaly.bias_field.n4_bias_field``), fitted inside
    ``mask_key``; the voxel size comes from the image's meta data (1 mm when it has none). The field has median 1
    in the mask, so the intensity scale is unchanged and any standardisation may follow.

    Args:
        keys: image keys.
        mask_key: foreground mask the field is fitted in (the background is left as it is).
        shrink: the fit runs on every ``shrink``-th voxel per axis.
    """

    def __init__(self, keys: KeysCollection, mask_key: str = "foreground_mask", shrink: int = 4,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.mask_key, self.shrink = mask_key, int(shrink)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        mask = _as_tensor(d[self.mask_key]) > 0
        for key in self.key_iterator(d):
            img = _as_tensor(d[key]).float()
            spacing = d[key].pixdim.tolist() if isinstance(d[key], MetaTensor) else None
            out = img.clone()
            for c in range(img.shape[0]):
                inside = mask[0 if mask.shape[0] == 1 else c].cpu().numpy()
                try:
                    field = n4_bias_field(img[c].cpu().numpy(), inside, spacing, self.shrink,
                                          threads=torch.get_num_threads())
                except ValueError as err:
                    raise InputDataError(source_name(d, key), f"bias field: {err}") from err
                out[c] = torch.where(torch.as_tensor(inside), img[c] / torch.as_tensor(field), img[c])
            d[key] = like(out, d[key])
        return d


INTENSITY_MODES = ("paper", "standard", "histogram")
BIAS_FIELDS = ("none", "n4")
PAPER_METHODS = ("disyre", "synomaly", "anofpdm", "intensity_baseline")


def read_landmarks(landmarks: str | os.PathLike | Sequence[float] | None) -> tuple[list[float], list[float]]:
    """(percentiles, standard landmarks) from a bundle's landmark file (JSON with "percentiles" and
    "landmarks", written by ``select-standardisation``) or a list of landmarks at ``LANDMARK_PERCENTILES``."""
    if landmarks is None:
        raise ValueError("intensity 'histogram' needs setting 'intensity_landmarks' (the bundle's "
                         "models/intensity_landmarks.json, or a list of standard landmarks)")
    if isinstance(landmarks, (str, os.PathLike)):
        try:
            with open(landmarks) as f:
                content = json.load(f)
            return [float(p) for p in content["percentiles"]], [float(v) for v in content["landmarks"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"setting 'intensity_landmarks': cannot read {landmarks}: {err}") from err
    return list(LANDMARK_PERCENTILES), [float(v) for v in np.asarray(landmarks, dtype=np.float64).ravel()]


def intensity_scaling(method: str, intensity: str = "standard", keys: KeysCollection = "image",
                      mask_key: str = "foreground_mask", b_min: float = 0.0, b_max: float = 1.0, upper: float = 2.5,
                      clip: bool = True, landmarks: str | os.PathLike | Sequence[float] | None = None,
                      bias_field: str = "none") -> MapTransform:
    """The volume-level intensity step of a bundle, identical in its training and inference configs.

    ``bias_field="n4"`` first divides the image by its N4 bias field (:class:`CorrectBiasFieldd`), whatever the
    ``intensity`` (:class:`BiasCorrectedScalingd`); ``"none"`` leaves it as it is.

    ``intensity="standard"``: the shared standardisation (:class:`StandardiseIntensityd`, brain median -> 1,
    ``[0, upper]`` -> ``[b_min, b_max]``). ``intensity="histogram"``: the same after the piecewise-linear
    histogram standardisation onto ``landmarks`` (a landmark file or list, read only in this mode; see
    :func:`read_landmarks`). ``intensity="paper"``: the method's published normalisation onto the
    same range: DISYRE [p0, p98] of the volume after clipping negatives; Synomaly and AnoFPDM min-max per axial
    slice; the intensity baseline x / p99 of the brain (``b_min``, ``b_max`` and ``clip`` do not apply to it).
    """
    if intensity not in INTENSITY_MODES:
        raise ValueError(f"intensity must be one of {INTENSITY_MODES}, got {intensity!r}")
    if method not in PAPER_METHODS:
        raise ValueError(f"method must be one of {PAPER_METHODS}, got {method!r}")
    if bias_field not in BIAS_FIELDS:
        raise ValueError(f"setting 'bias_field' must be one of {BIAS_FIELDS}, got {bias_field!r}")
    scaling = _scaling(method, intensity, keys, mask_key, b_min, b_max, upper, clip, landmarks)
    if bias_field == "n4":
        return BiasCorrectedScalingd(CorrectBiasFieldd(keys, mask_key), scaling)
    return scaling


class BiasCorrectedScalingd(MapTransform):
    """``correction`` (a :class:`CorrectBiasFieldd`), then ``scaling``, as one deterministic transform.

    Not a ``Compose``: MONAI's ``Compose`` is ``Randomizable``, so ``CacheDataset`` stops caching at a nested one and
    would fit N4 again every time a training volume is drawn (training with N4 about 5 x slower).
    """

    def __init__(self, correction: CorrectBiasFieldd, scaling: MapTransform):
        super().__init__(scaling.keys, scaling.allow_missing_keys)
        self.correction, self.scaling = correction, scaling

    def __call__(self, data: Mapping) -> dict:
        return dict(self.scaling(self.correction(data)))


def _scaling(method, intensity, keys, mask_key, b_min, b_max, upper, clip, landmarks) -> MapTransform:
    if intensity == "standard":
        return StandardiseIntensityd(keys, mask_key, "median", upper, b_min, b_max, clip)
    if intensity == "histogram":
        percentiles, standard = read_landmarks(landmarks)
        return StandardiseIntensityd(keys, mask_key, "median", upper, b_min, b_max, clip, landmarks=standard,
                                     percentiles=percentiles)
    if method == "disyre":
        return ScalePercentiled(keys, lower=0.0, upper=98.0, b_min=b_min, b_max=b_max, clip=clip, floor=0.0)
    if method == "intensity_baseline":
        return ScalePercentiled(keys, lower=None, upper=99.0, foreground=mask_key, clip=False)
    return SliceMinMaxd(keys, b_min=b_min, b_max=b_max, axis=-1)


def range_change(intensity: str = "standard", keys: KeysCollection = "image", source: tuple = (0.0, 1.0),
                 target: tuple = (-1.0, 1.0)) -> MapTransform:
    """Move an image already scaled by :func:`intensity_scaling` from ``source`` to ``target`` (AnoFPDM paints its
    simulated tumours in [0, 1] and trains in [-1, 1]): a linear map for "standard" and "histogram" (the volume's
    scale is kept),
    min-max per slice for "paper" (what the AnoFPDM reference does)."""
    if intensity not in INTENSITY_MODES:
        raise ValueError(f"intensity must be one of {INTENSITY_MODES}, got {intensity!r}")
    if intensity == "paper":
        return SliceMinMaxd(keys, b_min=target[0], b_max=target[1])
    # "standard" and "histogram" both end in a linear map of [0, upper] brain-median units
    return ScaleIntensityRanged(keys, a_min=source[0], a_max=source[1], b_min=target[0], b_max=target[1], clip=True)
