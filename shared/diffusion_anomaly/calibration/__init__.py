"""Method steps that follow training and precede inference, run as each bundle's ``configs/calibrate.json``:
settings chosen on validation data (never on test labels), written as a config overlay."""

from .anofpdm import AnoFPDMConstants, choose_thr_cls
from .objectives import LesionValidationAP, SimulatedLesionDice
from .overlay import write_config_overlay
from .search import SettingSearch

__all__ = ["AnoFPDMConstants", "LesionValidationAP", "SettingSearch", "SimulatedLesionDice", "choose_thr_cls",
           "write_config_overlay"]
