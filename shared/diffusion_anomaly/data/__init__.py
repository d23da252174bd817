from .checks import check_finite_nonempty, check_same_spatial_shape, check_single_dicom_series, load_volume
from .datalist import load_datalist, split_subjects, write_datalist
from .geometry import crop_affine, mask_bounding_box, to_ras_spacing

__all__ = [
    "check_finite_nonempty",
    "check_same_spatial_shape",
    "check_single_dicom_series",
    "load_volume",
    "crop_affine",
    "mask_bounding_box",
    "to_ras_spacing",
    "load_datalist",
    "split_subjects",
    "write_datalist",
]
