"""Spatial, pixel and joint attacks as ART ``EvasionAttack`` subclasses (AdverTorch façades in
:mod:`art_spatial.attacks.advertorch`).

>>> from art_spatial.attacks import IntegratedSpatialAttack, FlowAttack, AffineAttack, PixelAttack
"""

from .base import AttackResult, estimator_logits_fn, model_eval
from .engine import APGDStep, AttackSpec, EngineOutput, run_attack
from .pixel import EarlyStoppedPGD, PixelAttack
from .spatial import AffineAttack, FlowAttack, IntegratedSpatialAttack

__all__ = [
    "AttackResult",
    "AttackSpec",
    "EngineOutput",
    "run_attack",
    "estimator_logits_fn",
    "model_eval",
    "FlowAttack",
    "AffineAttack",
    "IntegratedSpatialAttack",
    "PixelAttack",
    "EarlyStoppedPGD",
]

from .grid import GridSpatialAttack  # noqa: E402
from .joint import JointSpatialPixelAttack  # noqa: E402

__all__ += ["JointSpatialPixelAttack", "GridSpatialAttack"]

from .ensemble import SpatialAutoAttack  # noqa: E402

__all__ += ["SpatialAutoAttack", "APGDStep"]
