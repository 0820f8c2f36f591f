"""Flow (local), affine / rotation-translation (global) and integrated spatial attacks as ART attacks.

Papers: Pareto Adversarial Robustness (arXiv:2111.01996), §2, Eq. 1-9;
Joint spatial-pixel adversarial training, Alg. 1 (the ℓ2,∞ flow ball in pixels).

* :class:`FlowAttack` — maximize CE(f(x_w), y) over a per-pixel flow ``w_F ∈ R^{H×W×2}``,
  ``‖w_F‖∞ ≤ ε_F`` with sign steps α_F (Eq. 2), or the ℓ2,∞ ball with the generalized sign.
* :class:`AffineAttack` — ``A = [[1,0,0],[0,1,0]] + w_RT``, ``‖w_RT‖∞ ≤ ε_RT`` with sign steps α_RT
  (Eq. 5-6); or the rotation-translation box (|angle| ≤ θ°, |t| ≤ s px, Engstrom et al.).
* :class:`IntegratedSpatialAttack` — grid ``A_{w_RT} [u, v, 1]^T + w_F``, one bilinear resampling,
  PGD on ``[w_F, w_RT]`` jointly with separate step sizes and budgets (Eq. 7-9).

Conventions (coordinates, units, rotation sign): see :mod:`art_spatial.warp`. Defaults are the Pareto
paper's MNIST values (Appendix E); the spatial attacks start from the identity unless ``random_init``.

``affine_scope`` (affine and integrated attacks): ``"per-example"`` (default) fits one ``w_RT`` per
example, as Eq. 5-9 are written; ``"batch"`` fits ONE ``w_RT`` (or rotation-translation vector) for the
whole attacked batch — gradient summed over the batch, one sign step, one projection, one random start
per batch — while the integrated attack's flow stays per example. The batch variant is a batch-level
attack (like ART's ``SpatialTransformation``): its result depends on the batch composition and size
(``batch_size`` of ``generate``, or the tensor given to ``attack_tensor``), and it cannot be combined with
``early_stop_tau``. Realised parameters are still reported per example (all rows equal).

Example:
    >>> import torch
    >>> from art_spatial.models import SmallCNN, make_classifier
    >>> clf = make_classifier(SmallCNN())
    >>> x = torch.rand(2, 1, 28, 28).numpy()
    >>> x_adv = FlowAttack(clf, max_iter=2, verbose=False).generate(x, y=[3, 7])
    >>> x_adv.shape, bool(FlowAttack(clf).eps == 0.3)
    ((2, 1, 28, 28), True)
"""

from __future__ import annotations

import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin

from .. import warp as W
from ..threats import L2InfFlowBall, LinfBox, ThreatModel
from .base import ARTAttackMixin, AttackCore, check_choice, check_number, clamp_images
from .engine import AttackSpec

__all__ = ["FlowAttack", "AffineAttack", "IntegratedSpatialAttack", "flow_threat", "affine_threat"]

FLOW_NORMS = ("inf", "2,inf")
FLOW_UNITS = ("normalized", "pixels")
PARAMETRIZATIONS = ("affine", "rotation-translation")
AFFINE_SCOPES = ("per-example", "batch")
_ESTIMATOR_REQUIREMENTS = (BaseEstimator, LossGradientsMixin, ClassifierMixin)


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


def _check_affine_scope(attack) -> None:
    check_choice("affine_scope", attack.affine_scope, AFFINE_SCOPES)
    if attack.affine_scope == "batch" and attack.early_stop_tau is not None:
        raise ValueError(
            "affine_scope='batch' (one affine parameter for the whole batch) cannot be combined "
            f"with early_stop_tau={attack.early_stop_tau!r}: stopping examples one by one would "
            "change the batch the shared parameter is fitted on; use early_stop_tau=None"
        )


def _affine_matrix(params: dict[str, torch.Tensor], shape: tuple) -> torch.Tensor | None:
    if "affine" in params:
        return W.affine_matrix(params["affine"])
    if "rt" in params:
        return W.rt_to_affine(params["rt"], shape[2], shape[3])
    return None


class _SpatialCore(AttackCore):
    """Spatial parameter blocks -> one grid -> one bilinear sample, clipped to the image range."""

    def _blocks(self) -> dict[str, ThreatModel]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _grid_of(self, params, shape):
        flow = params.get("flow")
        A = _affine_matrix(params, shape)
        if flow is None and A is None:
            return None
        return W.make_grid(
            shape,
            affine=A,
            flow=flow,
            flow_units=self.flow_units,
            device=(flow if flow is not None else A).device,
            dtype=(flow if flow is not None else A).dtype,
        )

    def _affine_of(self, params, shape):
        return _affine_matrix(params, shape)

    def _spec(self, shape, clip):
        def render(x, p):
            grid = self._grid_of(p, tuple(x.shape))
            return clamp_images(W.sample(x, grid, self.padding_mode), clip)

        return AttackSpec(
            blocks=self._blocks(), render=render, identity=lambda x: clamp_images(x, clip)
        )


class _FlowCore(_SpatialCore):
    _core_params = ("eps", "eps_step", "norm", "units")

    @property
    def flow_units(self):  # type: ignore[override]
        return self.units

    def _check_core(self):
        super()._check_core()
        check_number("eps", self.eps, nonneg=True)
        check_number("eps_step", self.eps_step, positive=True)
        check_choice("norm", self.norm, FLOW_NORMS)
        check_choice("units", self.units, FLOW_UNITS)

    def _blocks(self):
        return {"flow": flow_threat(self.eps, self.eps_step, self.norm)}


class _AffineCore(_SpatialCore):
    _core_params = (
        "eps",
        "eps_step",
        "parametrization",
        "max_rotation",
        "max_translation",
        "rotation_step",
        "translation_step",
        "affine_scope",
    )

    def _check_core(self):
        super()._check_core()
        check_choice("parametrization", self.parametrization, PARAMETRIZATIONS)
        check_number("eps", self.eps, nonneg=True)
        check_number("eps_step", self.eps_step, positive=True)
        check_number("max_rotation", self.max_rotation, nonneg=True)
        check_number("max_translation", self.max_translation, nonneg=True)
        check_number("rotation_step", self.rotation_step, positive=True)
        check_number("translation_step", self.translation_step, positive=True)
        _check_affine_scope(self)

    def _blocks(self):
        g = affine_threat(
            self.parametrization,
            self.eps,
            self.eps_step,
            self.max_rotation,
            self.max_translation,
            self.rotation_step,
            self.translation_step,
            shared=self.affine_scope == "batch",
        )
        return {g.name: g}


class _IntegratedCore(_SpatialCore):
    _core_params = (
        "eps_flow",
        "eps_affine",
        "eps_step_flow",
        "eps_step_affine",
        "flow_norm",
        "units",
        "parametrization",
        "max_rotation",
        "max_translation",
        "rotation_step",
        "translation_step",
        "affine_scope",
    )

    @property
    def flow_units(self):  # type: ignore[override]
        return self.units

    def _check_core(self):
        super()._check_core()
        check_number("eps_flow", self.eps_flow, nonneg=True)
        check_number("eps_affine", self.eps_affine, nonneg=True)
        check_number("eps_step_flow", self.eps_step_flow, positive=True)
        check_number("eps_step_affine", self.eps_step_affine, positive=True)
        check_choice("flow_norm", self.flow_norm, FLOW_NORMS)
        check_choice("units", self.units, FLOW_UNITS)
        check_choice("parametrization", self.parametrization, PARAMETRIZATIONS)
        check_number("max_rotation", self.max_rotation, nonneg=True)
        check_number("max_translation", self.max_translation, nonneg=True)
        check_number("rotation_step", self.rotation_step, positive=True)
        check_number("translation_step", self.translation_step, positive=True)
        _check_affine_scope(self)

    def _blocks(self):
        g = affine_threat(
            self.parametrization,
            self.eps_affine,
            self.eps_step_affine,
            self.max_rotation,
            self.max_translation,
            self.rotation_step,
            self.translation_step,
            shared=self.affine_scope == "batch",
        )
        return {"flow": flow_threat(self.eps_flow, self.eps_step_flow, self.flow_norm), g.name: g}


class _ARTSpatialAttack(ARTAttackMixin, EvasionAttack):
    _estimator_requirements = _ESTIMATOR_REQUIREMENTS

    def _set_common(
        self,
        max_iter,
        targeted,
        random_init,
        early_stop_tau,
        seed,
        padding_mode,
        batch_size,
        verbose,
    ):
        self.max_iter = max_iter
        self._targeted = targeted
        self.random_init = random_init
        self.early_stop_tau = early_stop_tau
        self.seed = seed
        self.padding_mode = padding_mode
        self.batch_size = batch_size
        self.verbose = verbose


class FlowAttack(_FlowCore, _ARTSpatialAttack):
    """Flow-based (local) spatial attack (Pareto AT Eq. 2; ℓ2,∞ variant: Joint AT Alg. 1).

    Maximizes ``CE(f(x(grid_id + w_F)), y)`` over a per-pixel flow ``w_F`` (``N x H x W x 2``) by
    projected steepest ascent; ``norm="inf"``: ``‖w_F‖∞ ≤ eps``, sign steps ``eps_step``;
    ``norm="2,inf"``: every pixel's flow vector has length ``≤ eps``, unit-vector steps.
    ``units="normalized"`` measures eps/eps_step in grid units (1 px = 2/(W−1)); ``"pixels"`` in pixels.
    The realised displacement in pixels is always reported in :attr:`last_result`.

    Args:
        estimator: ART ``PyTorchClassifier`` (its preprocessing is differentiated through).
        eps, eps_step: budget and step in ``units``.
        max_iter: number of steps.
        norm: ``"inf"`` or ``"2,inf"``.
        units: ``"normalized"`` or ``"pixels"``.
        random_init: start uniformly inside the budget instead of at the identity.
        targeted: descend on the target label given as ``y``.
        early_stop_tau: FAT's τ (None = plain attack), see :mod:`art_spatial.attacks.engine`.
        seed: seed of the per-example random streams.
        padding_mode: ``"zeros"`` (black fill) or ``"border"``.
        batch_size, verbose: batch size of ``generate`` and its progress bar.

    Example:
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> import numpy as np
        >>> attack = FlowAttack(make_classifier(SmallCNN()), eps=1.0, eps_step=0.25, units="pixels",
        ...                     max_iter=3, verbose=False)
        >>> x_adv = attack.generate(np.random.rand(2, 1, 28, 28).astype("float32"), y=np.array([1, 2]))
        >>> bool((attack.last_result.params["flow"] <= 1.0 + 1e-6).all())
        True
    """

    attack_params = (
        EvasionAttack.attack_params + list(_FlowCore._core_params) + ARTAttackMixin._common_params
    )

    def __init__(
        self,
        estimator,
        eps: float = 0.3,
        eps_step: float = 0.01,
        max_iter: int = 20,
        norm: str = "inf",
        units: str = "normalized",
        random_init: bool = False,
        targeted: bool = False,
        early_stop_tau: int | None = None,
        seed: int = 0,
        padding_mode: str = "zeros",
        batch_size: int = 128,
        verbose: bool = True,
    ):
        super().__init__(estimator=estimator)
        self.eps, self.eps_step, self.norm, self.units = eps, eps_step, norm, units
        self._set_common(
            max_iter, targeted, random_init, early_stop_tau, seed, padding_mode, batch_size, verbose
        )
        self._check_params()


class AffineAttack(_AffineCore, _ARTSpatialAttack):
    """Affine / rotation-translation (global) spatial attack (Pareto AT Eq. 5-6; Engstrom et al.).

    ``parametrization="affine"``: ``A = [[1,0,0],[0,1,0]] + w_RT``, ``‖w_RT‖∞ ≤ eps`` in normalized
    units, sign steps ``eps_step``. ``parametrization="rotation-translation"``: parameters
    ``(angle°, tx px, ty px)`` with ``|angle| ≤ max_rotation``, ``|t| ≤ max_translation``, sign steps
    ``rotation_step`` / ``translation_step`` (eps and eps_step are then unused).

    ``affine_scope="per-example"`` (default) fits one parameter per example (Eq. 5-6 as written);
    ``"batch"`` fits one parameter for each attacked batch (``batch_size`` images of ``generate``): the
    result depends on the batch composition and size, and ``early_stop_tau`` must be None (see the module
    docstring). Every other argument is as in :class:`FlowAttack`.

    Example:
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> import numpy as np
        >>> attack = AffineAttack(make_classifier(SmallCNN()), parametrization="rotation-translation",
        ...                       max_iter=3, verbose=False)
        >>> _ = attack.generate(np.random.rand(2, 1, 28, 28).astype("float32"), y=np.array([1, 2]))
        >>> bool(abs(attack.last_result.rotation_deg).max() <= 30 + 1e-4)
        True
    """

    attack_params = (
        EvasionAttack.attack_params + list(_AffineCore._core_params) + ARTAttackMixin._common_params
    )

    def __init__(
        self,
        estimator,
        eps: float = 0.3,
        eps_step: float = 0.1,
        max_iter: int = 20,
        parametrization: str = "affine",
        max_rotation: float = 30.0,
        max_translation: float = 3.0,
        rotation_step: float = 3.0,
        translation_step: float = 0.3,
        random_init: bool = False,
        targeted: bool = False,
        early_stop_tau: int | None = None,
        seed: int = 0,
        padding_mode: str = "zeros",
        batch_size: int = 128,
        verbose: bool = True,
        affine_scope: str = "per-example",
    ):
        super().__init__(estimator=estimator)
        self.eps, self.eps_step, self.parametrization = eps, eps_step, parametrization
        self.max_rotation, self.max_translation = max_rotation, max_translation
        self.rotation_step, self.translation_step = rotation_step, translation_step
        self.affine_scope = affine_scope
        self._set_common(
            max_iter, targeted, random_init, early_stop_tau, seed, padding_mode, batch_size, verbose
        )
        self._check_params()


class IntegratedSpatialAttack(_IntegratedCore, _ARTSpatialAttack):
    """Integrated spatial attack: flow and affine in one sampling grid (Pareto AT Eq. 7-9).

    ``x_w = x(A_{w_RT} [u, v, 1]^T + w_F)`` with one bilinear resampling; PGD on ``[w_F, w_RT]``
    jointly (one gradient per step), step sizes ``eps_step_flow`` / ``eps_step_affine`` and element-wise
    clipping to ``eps_flow`` / ``eps_affine`` (or the rotation-translation box with
    ``parametrization="rotation-translation"``). ``affine_scope="batch"`` makes the affine block one
    parameter per attacked batch (the flow stays per example), as in :class:`AffineAttack`.

    Example:
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> import numpy as np
        >>> clf = make_classifier(SmallCNN())
        >>> attack = IntegratedSpatialAttack(clf, eps_flow=0.3, eps_affine=0.3, max_iter=2, verbose=False)
        >>> attack.generate(np.random.rand(2, 1, 28, 28).astype("float32"), y=np.array([1, 2])).shape
        (2, 1, 28, 28)
    """

    attack_params = (
        EvasionAttack.attack_params
        + list(_IntegratedCore._core_params)
        + ARTAttackMixin._common_params
    )

    def __init__(
        self,
        estimator,
        eps_flow: float = 0.3,
        eps_affine: float = 0.3,
        eps_step_flow: float = 0.01,
        eps_step_affine: float = 0.1,
        max_iter: int = 20,
        flow_norm: str = "inf",
        units: str = "normalized",
        parametrization: str = "affine",
        max_rotation: float = 30.0,
        max_translation: float = 3.0,
        rotation_step: float = 3.0,
        translation_step: float = 0.3,
        random_init: bool = False,
        targeted: bool = False,
        early_stop_tau: int | None = None,
        seed: int = 0,
        padding_mode: str = "zeros",
        batch_size: int = 128,
        verbose: bool = True,
        affine_scope: str = "per-example",
    ):
        super().__init__(estimator=estimator)
        self.eps_flow, self.eps_affine = eps_flow, eps_affine
        self.eps_step_flow, self.eps_step_affine = eps_step_flow, eps_step_affine
        self.flow_norm, self.units, self.parametrization = flow_norm, units, parametrization
        self.max_rotation, self.max_translation = max_rotation, max_translation
        self.rotation_step, self.translation_step = rotation_step, translation_step
        self.affine_scope = affine_scope
        self._set_common(
            max_iter, targeted, random_init, early_stop_tau, seed, padding_mode, batch_size, verbose
        )
        self._check_params()
