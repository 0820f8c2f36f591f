"""Spatial, pixel and joint attacks as ART ``EvasionAttack`` subclasses (AdverTorch façades in
:mod:`art_spatial.attacks.advertorch`).

The exports, in three groups:

* the attacks: :class:`FlowAttack` (local), :class:`AffineAttack` (global), :class:`IntegratedSpatialAttack`
  (both in one sampling grid), :class:`JointSpatialPixelAttack` (spatial + pixel), :class:`PixelAttack`
  and :class:`EarlyStoppedPGD`, :class:`GridSpatialAttack` (exhaustive rotation-translation search),
  :class:`SpatialAutoAttack` (the parameter-free ensemble);
* what they return and take: :class:`AttackResult`, :class:`APGDStep`;
* what a new attack is built from (docs/architecture.md, "Adding an attack"): the façade
  :class:`ARTAttack` with :data:`LOOP_DEFAULTS` / :data:`ART_DEFAULTS`, the cores :class:`AttackCore`
  and :class:`IterativeCore`, the budgets :class:`FlowBudget`, :class:`AffineBudget`,
  :class:`PixelBudget`, and the engine: :class:`AttackSpec`, :func:`run_attack`, :func:`run_cascade`,
  :class:`EngineOutput`.

>>> from art_spatial.attacks import IntegratedSpatialAttack, FlowAttack, AffineAttack, PixelAttack
"""

from .base import (
    ART_DEFAULTS,
    LOOP_DEFAULTS,
    ARTAttack,
    AttackCore,
    AttackResult,
    IterativeCore,
    clamp_images,
)
from .budgets import AffineBudget, FlowBudget, PixelBudget
from .engine import APGDStep, AttackSpec, EngineOutput, run_attack, run_cascade
from .ensemble import SpatialAutoAttack
from .grid import GridSpatialAttack
from .joint import JointSpatialPixelAttack
from .pixel import EarlyStoppedPGD, PixelAttack
from .spatial import AffineAttack, FlowAttack, IntegratedSpatialAttack

__all__ = [
    # the attacks
    "FlowAttack",
    "AffineAttack",
    "IntegratedSpatialAttack",
    "JointSpatialPixelAttack",
    "PixelAttack",
    "EarlyStoppedPGD",
    "GridSpatialAttack",
    "SpatialAutoAttack",
    # what they return and take
    "AttackResult",
    "APGDStep",
    # building blocks of a new attack
    "ARTAttack",
    "LOOP_DEFAULTS",
    "ART_DEFAULTS",
    "AttackCore",
    "IterativeCore",
    "FlowBudget",
    "AffineBudget",
    "PixelBudget",
    "clamp_images",
    "AttackSpec",
    "run_attack",
    "run_cascade",
    "EngineOutput",
]

# importable from here for existing code, but plumbing rather than documented API
from .base import estimator_logits_fn as estimator_logits_fn  # noqa: E402
from .base import model_eval as model_eval  # noqa: E402
