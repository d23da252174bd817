from .export import TimestepWrapper, trace_for_export
from .presets import PRESETS, diffusion_unet
from .weights import load_weights

__all__ = ["PRESETS", "diffusion_unet", "TimestepWrapper", "trace_for_export", "load_weights"]
