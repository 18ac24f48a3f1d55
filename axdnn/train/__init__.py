"""Training, evaluation and fine-tuning loops; approximate training (reduced-precision storage,
stochastic rounding; data-parallel gradient compression in axdnn.train.distributed)."""

from axdnn.train.evaluate import EvalResult, evaluate, predict_logits, score_logits
from axdnn.train.loop import EpochRecord, TrainConfig, TrainHistory, cross_entropy, fit
from axdnn.train.memory import MemoryEnergy, price_traffic
from axdnn.train.precision import PrecisionSession, TrainPrecision

__all__ = [
    "EpochRecord",
    "EvalResult",
    "MemoryEnergy",
    "PrecisionSession",
    "TrainConfig",
    "TrainHistory",
    "TrainPrecision",
    "cross_entropy",
    "evaluate",
    "fit",
    "predict_logits",
    "price_traffic",
    "score_logits",
]
