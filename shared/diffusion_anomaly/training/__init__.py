from .disyre import DisyrePrepareBatch
from .handlers import GradientClipping, ResumeCheckpoint
from .synomaly import SynomalyPrepareBatch
from .validation import SyntheticLesionValidation

__all__ = [
    "DisyrePrepareBatch",
    "SynomalyPrepareBatch",
    "GradientClipping",
    "ResumeCheckpoint",
    "SyntheticLesionValidation",
]
