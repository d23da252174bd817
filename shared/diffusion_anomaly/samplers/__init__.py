from .patches import RandForegroundPatchd
from .slices import AxialSlicesd, RandAxialSlicesd, nonempty_slice_range

__all__ = ["RandForegroundPatchd", "AxialSlicesd", "RandAxialSlicesd", "nonempty_slice_range"]
