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

from .. import warp as W
from ..threats import ThreatModel
from .base import ART_DEFAULTS, LOOP_DEFAULTS, ARTAttack, IterativeCore, clamp_images
from .budgets import (
    AFFINE_SCOPES,
    FLOW_NORMS,
    FLOW_UNITS,
    PARAMETRIZATIONS,
    AffineBudget,
    FlowBudget,
    spatial_blocks,
)
from .engine import AttackSpec

__all__ = ["FlowAttack", "AffineAttack", "IntegratedSpatialAttack"]
__all__ += ["FLOW_NORMS", "FLOW_UNITS", "PARAMETRIZATIONS", "AFFINE_SCOPES"]

#: the attacks' parameter names of the :class:`FlowBudget` / :class:`AffineBudget` fields
FLOW_NAMES = ("eps", "eps_step", "norm", "units")
FLOW_NAMES_PREFIXED = ("eps_flow", "eps_step_flow", "flow_norm", "units")
_AFFINE_BOX = (
    "parametrization",
    "max_rotation",
    "max_translation",
    "rotation_step",
    "translation_step",
)
AFFINE_NAMES = ("eps", "eps_step", *_AFFINE_BOX, "affine_scope")
AFFINE_NAMES_PREFIXED = ("eps_affine", "eps_step_affine", *_AFFINE_BOX, "affine_scope")


def _affine_matrix(params: dict[str, torch.Tensor], shape: tuple) -> torch.Tensor | None:
    if "affine" in params:
        return W.affine_matrix(params["affine"])
    if "rt" in params:
        return W.rt_to_affine(params["rt"], shape[2], shape[3])
    return None


class _SpatialCore(IterativeCore):
    """Spatial parameter blocks -> one grid -> one bilinear sample, clipped to the image range.

    A subclass names the attributes holding its budgets (``_flow_names`` / ``_affine_names``, the
    parameter name of every budget field, None: no such block); checks, blocks and flow units follow.
    """

    _flow_names: tuple | None = None
    _affine_names: tuple | None = None

    @property
    def flow_units(self):  # type: ignore[override]
        return self.units if self._flow_names is not None else "normalized"

    def _budgets(self) -> tuple[FlowBudget | None, AffineBudget | None]:
        """The attack's flow and affine budgets, read from its attributes (checked once each)."""
        flow = None if self._flow_names is None else FlowBudget.of(self, self._flow_names)
        affine = None if self._affine_names is None else AffineBudget.of(self, self._affine_names)
        return flow, affine

    def _check_core(self):
        super()._check_core()
        _, affine = self._budgets()
        if affine is not None and affine.scope == "batch" and self.early_stop_tau is not None:
            raise ValueError(
                "affine_scope='batch' (one affine parameter for the whole batch) cannot be combined "
                f"with early_stop_tau={self.early_stop_tau!r}: stopping examples one by one would "
                "change the batch the shared parameter is fitted on; use early_stop_tau=None"
            )

    def _blocks(self) -> dict[str, ThreatModel]:
        return spatial_blocks(*self._budgets())

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
    _flow_names = FLOW_NAMES


class _AffineCore(_SpatialCore):
    _affine_names = AFFINE_NAMES


class _IntegratedCore(_SpatialCore):
    _flow_names = FLOW_NAMES_PREFIXED
    _affine_names = AFFINE_NAMES_PREFIXED


class FlowAttack(_FlowCore, ARTAttack):
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

    _defaults = {**FlowBudget.defaults(FLOW_NAMES), **LOOP_DEFAULTS, **ART_DEFAULTS}


class AffineAttack(_AffineCore, ARTAttack):
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

    _defaults = {**AffineBudget.defaults(AFFINE_NAMES), **LOOP_DEFAULTS, **ART_DEFAULTS}


class IntegratedSpatialAttack(_IntegratedCore, ARTAttack):
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

    _defaults = {
        **FlowBudget.defaults(FLOW_NAMES_PREFIXED),
        **AffineBudget.defaults(AFFINE_NAMES_PREFIXED),
        **LOOP_DEFAULTS,
        **ART_DEFAULTS,
    }
