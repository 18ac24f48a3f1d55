"""Design-space exploration: spaces of per-layer approximation choices, objectives from real table
simulation and the cost model, strategies (resilience-guided greedy, Optuna NSGA-II and TPE,
random search) and Pareto fronts of plans, every evaluation a trial in an Optuna storage."""

from axdnn.search.greedy import GreedyWalk
from axdnn.search.objectives import OBJECTIVES, Cost, Evaluator, Measure
from axdnn.search.space import (
    CHOICES,
    BoundSpace,
    ChoiceKind,
    Constraints,
    Group,
    Option,
    Space,
    catalogue_specs,
    register_choice,
)
from axdnn.search.study import (
    STRATEGIES,
    Explorer,
    SearchSettings,
    Strategy,
    TrialRecord,
    open_storage,
    pareto_front,
    register_strategy,
    storage_url,
)

__all__ = [
    "CHOICES",
    "OBJECTIVES",
    "STRATEGIES",
    "BoundSpace",
    "ChoiceKind",
    "Constraints",
    "Cost",
    "Evaluator",
    "Explorer",
    "GreedyWalk",
    "Group",
    "Measure",
    "Option",
    "SearchSettings",
    "Space",
    "Strategy",
    "TrialRecord",
    "catalogue_specs",
    "open_storage",
    "pareto_front",
    "register_choice",
    "register_strategy",
    "storage_url",
]
