from .checks import CheckInputd
from .intensity import ScalePercentiled, SliceMinMaxd
from .mask import ApplyMaskd, EnsureBrainMaskd
from .postprocess import median_filter_slices, remove_small_components
from .writers import SaveMapd, SaveOverlayd

__all__ = [
    "CheckInputd",
    "ScalePercentiled",
    "SliceMinMaxd",
    "ApplyMaskd",
    "EnsureBrainMaskd",
    "median_filter_slices",
    "remove_small_components",
    "SaveMapd",
    "SaveOverlayd",
]
