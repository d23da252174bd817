from .classifier_free import ClassConditionalDiffusionInferer, ClassifierFreePrepareBatch
from .disyre import DisyrePrepareBatch
from .handlers import (
    ExponentialMovingAverage,
    FinalWeights,
    GradientClipping,
    InitialWeights,
    ResumeCheckpoint,
    WeightSnapshots,
)
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
    "InitialWeights",
    "WeightSnapshots",
    "SyntheticLesionValidation",
]
