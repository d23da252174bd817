from ..postprocess import median_filter_slices, remove_small_components
from .checks import CheckDicomSeriesd, CheckInputd
from .intensity import Clipd, ScalePercentiled, SliceMinMaxd
from .labelmap import LabelMapd, UnpackInfererOutputd
from .labels import ImageLabeld, RandTumourd
from .loading import LoadImagesIfGivend
from .mask import EnsureBrainMaskd, EnsureForegroundMaskd
from .spacing import Spacingd
from .standardise import StandardiseIntensityd, intensity_scaling, range_change
from .writers import SaveJsond, SaveMapd, SaveOverlayd

__all__ = [
    "CheckDicomSeriesd",
    "CheckInputd",
    "ScalePercentiled",
    "SliceMinMaxd",
    "Clipd",
    "ImageLabeld",
    "LoadImagesIfGivend",
    "LabelMapd",
    "UnpackInfererOutputd",
    "RandTumourd",
    "EnsureBrainMaskd",
    "EnsureForegroundMaskd",
    "median_filter_slices",
    "StandardiseIntensityd",
    "intensity_scaling",
    "range_change",
    "remove_small_components",
    "SaveMapd",
    "SaveJsond",
    "SaveOverlayd",
    "Spacingd",
]
