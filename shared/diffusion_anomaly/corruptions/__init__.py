from .disyre import DisyreCorruption
from .foreign_patch import ForeignPatchCache, minmax_match
from .intensity_bias import CODEBOOK, intensity_bias
from .shapes import gaussian_blur, place_mask, random_shape
from .synomaly import SynomalyNoise
from .tumour import TumourParameters, paint_tumour, sample_tumour

__all__ = [
    "DisyreCorruption",
    "ForeignPatchCache",
    "minmax_match",
    "CODEBOOK",
    "intensity_bias",
    "gaussian_blur",
    "place_mask",
    "random_shape",
    "SynomalyNoise",
    "TumourParameters",
    "paint_tumour",
    "sample_tumour",
]
