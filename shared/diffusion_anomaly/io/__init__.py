from .atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from .nifti import nifti_bytes, save_nifti
from .overlay import save_panels_png

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "nifti_bytes", "save_nifti",
           "save_panels_png"]
