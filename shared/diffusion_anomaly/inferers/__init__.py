from .anofpdm import (
    AnoFPDMInferer,
    ForwardProcessCurves,
    cosine_similarity,
    guided_noise,
    quantile_level,
    read_constants,
)
from .disyre import DisyreInferer
from .intensity import IntensityInferer
from .outputs import MapOnlyInferer
from .synomaly import SynomalyInferer

__all__ = [
    "AnoFPDMInferer",
    "ForwardProcessCurves",
    "cosine_similarity",
    "guided_noise",
    "quantile_level",
    "read_constants",
    "DisyreInferer",
    "IntensityInferer",
    "MapOnlyInferer",
    "SynomalyInferer",
]
