from .classifier_free import ClassConditionalDiffusionInferer, ClassifierFreePrepareBatch
from .disyre import DisyrePrepareBatch
from .handlers import ExponentialMovingAverage, FinalWeights, GradientClipping, ResumeCheckpoint
from .synomaly import SynomalyPrepareBatch
from .validation import SyntheticLesionValidation

__all__ = [
    "DisyrePrepareBatch",
    "SynomalyPrepareBatch",
    "GradientClipping",
    "ExponentialMovingAverage",
    "ClassifierFreePrepareBatch",
    "ClassConditionalDiffusionInferer",
    "ResumeCheckpoint",
    "FinalWeights",
    "SyntheticLesionValidation",
]
