"""Training, evaluation and fine-tuning loops."""

from axdnn.train.evaluate import EvalResult, evaluate, predict_logits, score_logits
from axdnn.train.loop import EpochRecord, TrainConfig, TrainHistory, cross_entropy, fit

__all__ = [
    "EpochRecord",
    "EvalResult",
    "TrainConfig",
    "TrainHistory",
    "cross_entropy",
    "evaluate",
    "fit",
    "predict_logits",
    "score_logits",
]
