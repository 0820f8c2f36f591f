"""RobustBench-style harness: suites, scores, profiles, leaderboard entries, plots, RobustBench loading.

Scores follow Pareto Adversarial Robustness §4.4 / Table 1 (robustness score of a category = mean
accuracy over its attack strengths; universal score = Σ (score − natural reference score)); profiles
follow CuSP ("Evaluation Metrics").

>>> from art_spatial.bench import evaluate, get_suite, RobustnessReport
>>> get_suite("pareto-mnist").categories
['sensitivity', 'local', 'global']
"""

from .evaluate import evaluate, reliability_checks
from .plots import plot_pareto_front, plot_profiles
from .scores import RobustnessReport, category_scores, universal_score
from .shards import merge_partials
from .state import EvaluationState
from .suites import SUITES, Suite, get_suite, list_suites, register_suite, validate_suite

__all__ = [
    "evaluate",
    "reliability_checks",
    "RobustnessReport",
    "category_scores",
    "universal_score",
    "SUITES",
    "get_suite",
    "list_suites",
    "register_suite",
    "validate_suite",
    "Suite",
    "EvaluationState",
    "merge_partials",
    "plot_pareto_front",
    "plot_profiles",
    "to_model_info",
    "render_leaderboard",
    "load_robustbench_model",
    "load_cifar10_robustbench",
]


def __getattr__(name):  # lazy: leaderboard (jsonschema) and robustbench are optional at import time
    if name in ("to_model_info", "render_leaderboard", "validate_model_info"):
        from . import leaderboard

        return getattr(leaderboard, name)
    if name in ("load_robustbench_model", "load_cifar10_robustbench"):
        from . import robustbench

        return getattr(robustbench, name)
    raise AttributeError(f"module 'art_spatial.bench' has no attribute {name!r}")
