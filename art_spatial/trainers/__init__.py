"""Adversarial trainers as ART ``art.defences.trainer.Trainer`` subclasses.

PGD AT (Madry), Spatial AT and Pareto AT (Pareto Adversarial Robustness §2.4, §4), Joint AT (joint
spatial-pixel AT §4.2), Ave / Max AT (Tramèr & Boneh), CuSP (curriculum spatial-adversarial training),
FAT and GAIRAT (Zhang et al.). One loop (:mod:`art_spatial.trainers.base`) serves all of them.

>>> from art_spatial.trainers import ParetoAdversarialTrainer, PGDAdversarialTrainer, pareto_weights
"""

from .base import AdversarialTrainerBase, BatchContext, BatchObjective
from .curriculum import OFFICIAL_CIFAR10_STAGES, CurriculumAdversarialTrainer
from .friendly import FAT_TAU_SCHEDULE, FriendlyAdversarialTrainer, GeometryAwareAdversarialTrainer
from .multi import AverageAdversarialTrainer, MaxAdversarialTrainer, MultiAttackTrainer
from .pareto import (
    FrontPoint,
    InfeasibleTargetError,
    ParetoAdversarialTrainer,
    feasible_range,
    nondominated,
    pareto_front,
    pareto_matrix,
    pareto_weights,
)
from .single import (
    JointAdversarialTrainer,
    NaturalTrainer,
    PGDAdversarialTrainer,
    SingleAttackTrainer,
    SpatialAdversarialTrainer,
)

__all__ = [
    "AdversarialTrainerBase",
    "BatchContext",
    "BatchObjective",
    "NaturalTrainer",
    "SingleAttackTrainer",
    "MultiAttackTrainer",
    "PGDAdversarialTrainer",
    "SpatialAdversarialTrainer",
    "JointAdversarialTrainer",
    "AverageAdversarialTrainer",
    "MaxAdversarialTrainer",
    "ParetoAdversarialTrainer",
    "CurriculumAdversarialTrainer",
    "FriendlyAdversarialTrainer",
    "GeometryAwareAdversarialTrainer",
    "pareto_weights",
    "pareto_matrix",
    "feasible_range",
    "pareto_front",
    "nondominated",
    "FrontPoint",
    "InfeasibleTargetError",
    "OFFICIAL_CIFAR10_STAGES",
    "FAT_TAU_SCHEDULE",
]
