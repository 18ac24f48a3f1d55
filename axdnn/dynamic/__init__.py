"""Dynamic-effort inference: per-input effort knobs on a trained model without retraining
(DyVEDeep, Ganapathy et al., ACM TECS 2020: SPET, SDSS, SFMA) and confidence-based early exits
(BranchyNet), with exact per-input, per-layer operation accounting and kernels that gather the
active work, run a smaller dense computation and scatter back."""

from axdnn.dynamic.accounting import OVERHEAD_KINDS, EffortReport, LayerEffort, Ledger
from axdnn.dynamic.calibrate import Calibration, calibrate
from axdnn.dynamic.chain import Affine, Step, trace_chain
from axdnn.dynamic.exits import ExitHead
from axdnn.dynamic.model import DynamicModel
from axdnn.dynamic.plan import MECHANISMS, DynamicPlan, LayerSetting
from axdnn.dynamic.study import CONFIGS, StudySettings, best_config, run_study
from axdnn.dynamic.timing import Timing, compare_speed

__all__ = [
    "CONFIGS",
    "MECHANISMS",
    "OVERHEAD_KINDS",
    "Affine",
    "Calibration",
    "DynamicModel",
    "DynamicPlan",
    "EffortReport",
    "ExitHead",
    "LayerEffort",
    "LayerSetting",
    "Ledger",
    "Step",
    "StudySettings",
    "Timing",
    "best_config",
    "calibrate",
    "compare_speed",
    "run_study",
    "trace_chain",
]
