from .disyre import DisyreInferer
from .intensity import IntensityInferer
from .synomaly import SynomalyInferer

__all__ = ["DisyreInferer", "IntensityInferer", "SynomalyInferer"]
