from .anomaly_evaluation import AnomalyEvaluation, check_score_map

__all__ = ["AnomalyEvaluation", "check_score_map"]
