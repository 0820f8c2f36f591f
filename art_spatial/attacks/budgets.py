"""Threat-model budgets of the attacks: small frozen objects that check themselves once and build blocks.

A budget holds the radius, the step and the options of one parameter block (Pareto Adversarial
Robustness, arXiv:2111.01996, Eq. 2, 5-6, 7-9; Joint AT Alg. 1-2 for the ℓ2,∞ flow ball):

* :class:`FlowBudget` — the per-pixel flow ``w_F`` (``‖w_F‖∞ ≤ eps`` or the ℓ2,∞ ball), in ``units``;
* :class:`AffineBudget` — the global block: affine increments ``w_RT`` (``‖w_RT‖∞ ≤ eps``) or the
  rotation-translation box ``(|angle| ≤ max_rotation°, |t| ≤ max_translation px)``, per example or
  shared by the batch (``scope``);
* :class:`PixelBudget` — the additive ``‖δ‖∞ ≤ eps`` perturbation.

The attacks name these fields differently (``eps`` of :class:`~art_spatial.attacks.FlowAttack` is
``eps_flow`` of :class:`~art_spatial.attacks.IntegratedSpatialAttack`): ``names`` gives the attack's
parameter name of every field, so a bad value raises a ``ValueError`` naming the attack's parameter.
:meth:`~_Budget.of` reads a budget from an attack's attributes, :meth:`~_Budget.defaults` gives the
attack's parameter defaults.

Example:
    >>> b = FlowBudget(eps=1.0, eps_step=0.25, units="pixels")
    >>> b.threat().name, AffineBudget(parametrization="rotation-translation").threat().name
    ('flow', 'rt')
    >>> FlowBudget(eps=-1.0, names=("eps_flow", "eps_step_flow", "flow_norm", "units"))
    Traceback (most recent call last):
    ...
    ValueError: eps_flow must be non-negative, got -1.0
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..threats import L2InfFlowBall, LinfBox, ThreatModel
from .base import check_choice, check_number

__all__ = [
    "FlowBudget",
    "AffineBudget",
    "PixelBudget",
    "flow_threat",
    "affine_threat",
    "spatial_blocks",
    "FLOW_NORMS",
    "FLOW_UNITS",
    "PARAMETRIZATIONS",
    "AFFINE_SCOPES",
]

FLOW_NORMS = ("inf", "2,inf")
FLOW_UNITS = ("normalized", "pixels")
PARAMETRIZATIONS = ("affine", "rotation-translation")
AFFINE_SCOPES = ("per-example", "batch")


def flow_threat(eps: float, eps_step: float, norm: str) -> ThreatModel:
    """The flow block: ``LinfBox`` (``norm="inf"``) or ``L2InfFlowBall`` (``norm="2,inf"``)."""
    if norm == "inf":
        return LinfBox("flow", eps, eps_step, "flow")
    return L2InfFlowBall("flow", eps, eps_step)


def affine_threat(
    parametrization: str,
    eps,
    eps_step,
    max_rotation,
    max_translation,
    rotation_step,
    translation_step,
    shared: bool = False,
) -> ThreatModel:
    """The global block: affine increments ``w_RT`` (``N x 2 x 3``) or rotation-translation ``N x 3``.

    ``shared=True`` makes it one parameter for the whole batch (``affine_scope="batch"``).
    """
    if parametrization == "affine":
        return LinfBox("affine", eps, eps_step, "affine", shared=shared)
    return LinfBox(
        "rt",
        (max_rotation, max_translation, max_translation),
        (rotation_step, translation_step, translation_step),
        "rt",
        shared=shared,
    )


@dataclass(frozen=True)
class _Budget:
    """Common part of the budgets: the attack's parameter names of the fields (None: not a parameter)."""

    names: tuple = field(default=(), kw_only=True, repr=False, compare=False)

    @classmethod
    def _fields(cls) -> list:
        return [f for f in fields(cls) if f.name != "names"]

    def _name(self, field_name: str) -> str:
        """The attack's parameter name of a field (the field's own name by default)."""
        for f, name in zip(self._fields(), self.names, strict=False):
            if f.name == field_name and name is not None:
                return name
        return field_name

    @classmethod
    def of(cls, attack: Any, names: tuple) -> _Budget:
        """The budget held by ``attack``'s attributes ``names`` (one per field, None = the default)."""
        values = {
            f.name: getattr(attack, name)
            for f, name in zip(cls._fields(), names, strict=True)
            if name is not None
        }
        return cls(**values, names=names)

    @classmethod
    def defaults(cls, names: tuple, **overrides) -> dict[str, Any]:
        """``{attack parameter name: default}`` (``overrides`` by field name), in field order."""
        values = {f.name: overrides.get(f.name, f.default) for f in cls._fields()}
        return {
            name: values[f.name]
            for f, name in zip(cls._fields(), names, strict=True)
            if name is not None
        }


@dataclass(frozen=True)
class FlowBudget(_Budget):
    """Budget of the flow block: radius ``eps`` and step ``eps_step`` in ``units``, ``norm``."""

    eps: float = 0.3
    eps_step: float = 0.01
    norm: str = "inf"
    units: str = "normalized"

    def __post_init__(self):
        check_number(self._name("eps"), self.eps, nonneg=True)
        check_number(self._name("eps_step"), self.eps_step, positive=True)
        check_choice(self._name("norm"), self.norm, FLOW_NORMS)
        check_choice(self._name("units"), self.units, FLOW_UNITS)

    def threat(self) -> ThreatModel:
        """The ``"flow"`` block (``N x H x W x 2``)."""
        return flow_threat(self.eps, self.eps_step, self.norm)


@dataclass(frozen=True)
class AffineBudget(_Budget):
    """Budget of the global block: affine ``eps`` / ``eps_step`` (normalized units) or the
    rotation-translation box (degrees, pixels), fitted per example or per batch (``scope``)."""

    eps: float = 0.3
    eps_step: float = 0.1
    parametrization: str = "affine"
    max_rotation: float = 30.0
    max_translation: float = 3.0
    rotation_step: float = 3.0
    translation_step: float = 0.3
    scope: str = "per-example"

    def __post_init__(self):
        check_choice(self._name("parametrization"), self.parametrization, PARAMETRIZATIONS)
        check_number(self._name("eps"), self.eps, nonneg=True)
        check_number(self._name("eps_step"), self.eps_step, positive=True)
        check_number(self._name("max_rotation"), self.max_rotation, nonneg=True)
        check_number(self._name("max_translation"), self.max_translation, nonneg=True)
        check_number(self._name("rotation_step"), self.rotation_step, positive=True)
        check_number(self._name("translation_step"), self.translation_step, positive=True)
        check_choice(self._name("scope"), self.scope, AFFINE_SCOPES)

    def threat(self) -> ThreatModel:
        """The ``"affine"`` (``N x 2 x 3``) or ``"rt"`` (``N x 3``) block, shared if ``scope="batch"``."""
        return affine_threat(
            self.parametrization,
            self.eps,
            self.eps_step,
            self.max_rotation,
            self.max_translation,
            self.rotation_step,
            self.translation_step,
            shared=self.scope == "batch",
        )


@dataclass(frozen=True)
class PixelBudget(_Budget):
    """Budget of the additive pixel block: ``‖δ‖∞ ≤ eps``, sign steps ``eps_step`` (image units)."""

    eps: float = 0.3
    eps_step: float = 0.01

    def __post_init__(self):
        check_number(self._name("eps"), self.eps, nonneg=True)
        check_number(self._name("eps_step"), self.eps_step, positive=True)

    def threat(self) -> ThreatModel:
        """The ``"pixel"`` block (``N x C x H x W``)."""
        return LinfBox("pixel", self.eps, self.eps_step, "pixel")


def spatial_blocks(flow: FlowBudget | None, affine: AffineBudget | None) -> dict[str, ThreatModel]:
    """The spatial blocks of the budgets given, flow first (the order of the random draws)."""
    blocks: dict[str, ThreatModel] = {}
    if flow is not None:
        blocks["flow"] = flow.threat()
    if affine is not None:
        g = affine.threat()
        blocks[g.name] = g
    return blocks
