from .intensity import IntensityInferer

__all__ = ["IntensityInferer"]
