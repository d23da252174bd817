from .classifier_free import ClassConditionalDiffusionInferer, ClassifierFreePrepareBatch
from .disyre import DisyrePrepareBatch
from .handlers import (
    ExponentialMovingAverage,
    FinalWeights,
    GradientClipping,
    InitialWeights,
    ResumeCheckpoint,
    TimeBudget,
    WeightSnapshots,
)
from .lesion_validation import LesionValidation
from .synomaly import SynomalyPrepareBatch

__all__ = [
    "DisyrePrepareBatch",
    "SynomalyPrepareBatch",
    "GradientClipping",
    "ExponentialMovingAverage",
    "ClassifierFreePrepareBatch",
    "ClassConditionalDiffusionInferer",
    "ResumeCheckpoint",
    "FinalWeights",
    "InitialWeights",
    "WeightSnapshots",
    "TimeBudget",
    "LesionValidation",
]
