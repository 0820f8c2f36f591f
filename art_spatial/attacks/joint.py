"""Joint spatial + pixel attack (Joint Adversarial Training, Zhang & Wang 2019, Eq. 10-11, Alg. 2).

Generation model (Eq. 10) with a spatial transformation ``T(.; ω)`` (flow, affine / rotation-translation
or integrated grid, :mod:`art_spatial.attacks.spatial`) and an additive pixel perturbation ``δ``:

* ``order="spatial-pixel"``: ``x_adv = clip(T(x; ω) + δ)`` (the paper's Eq. 10);
* ``order="pixel-spatial"``: ``x_adv = clip(T(clip(x + δ); ω))`` (§6.3);

with ``‖δ‖∞ ≤ eps_pixel`` and ``ω`` inside the spatial budget. The inner maximization of Eq. 11 is
solved with one of three schedules (§4.1, §6.2):

* ``"double-pass"`` (Alg. 2): per step, a forward/backward at ``(ω, δ)`` updates ``ω`` (generalized
  sign step, Alg. 1), then a second forward/backward at the *new* ``ω`` updates ``δ`` (sign step);
* ``"one-pass"``: one forward/backward per step updates both;
* ``"cascade"``: a full spatial attack (``max_iter`` steps, ``δ = 0``), then a full pixel attack
  (``max_iter`` steps) on its output, ``ω`` frozen.

``training_mode=True`` is the paper's training attack (§4.2): a uniformly random label different from
the true one per example (drawn from the example's own generator, see
:func:`art_spatial.attacks.engine.random_targets`) and descent on its cross-entropy; κ, early stop
and ``success`` still refer to the true label. Evaluation is untargeted (the default).

Early stop (FAT's PGD-K-τ) and κ come from the one loop (:func:`art_spatial.attacks.engine.run_attack`):
before each step (before the first pass of a double-pass step) an example already misclassified spends
one unit of τ, and stops once τ is exhausted. For the cascade, examples that stop during the spatial
stage are final; the others enter the pixel stage with a fresh τ, so ``early_stop_tau = max_iter``
reproduces every schedule exactly. κ counts correctly classified iterates over all steps (``2K``
iterates for the cascade), ``stop_step`` runs over ``0 .. K`` (``0 .. 2K`` for the cascade; the
maximum means "never stopped"), and ``n_forward`` / ``n_backward`` add up both stages.

Defaults are the paper's CIFAR evaluation settings (§6): ``eps_pixel = 8/255``, pixel step ``2/255``,
flow in the ℓ2,∞ ball of radius ``0.3`` px (1 % of the image size) with step ``0.15`` px, 20 steps,
random start. (The step sizes are from the arXiv version, arXiv:1907.10737 §6 "Test Time Attack".)

Example:
    >>> import numpy as np
    >>> from art_spatial.models import SmallCNN, make_classifier
    >>> attack = JointSpatialPixelAttack(make_classifier(SmallCNN()), max_iter=2, verbose=False)
    >>> x = np.random.rand(2, 1, 28, 28).astype("float32")
    >>> x_adv = attack.generate(x, y=np.array([3, 7]))
    >>> res = attack.last_result
    >>> bool(res.pixel_linf.max() <= 8 / 255 + 1e-6), bool(res.max_displacement_px.max() <= 0.3 + 1e-4)
    (True, True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .. import warp as W
from .base import (
    ART_DEFAULTS,
    LOOP_DEFAULTS,
    ARTAttack,
    check_bool,
    check_choice,
    check_int,
    clamp_images,
    engine_result,
)
from .budgets import AffineBudget, FlowBudget, PixelBudget, spatial_blocks
from .engine import (
    AttackSpec,
    EngineOutput,
    _generators,
    example_seeds,
    random_targets,
    run_attack,
    run_cascade,
)
from .spatial import AFFINE_NAMES_PREFIXED, FLOW_NAMES_PREFIXED, _SpatialCore

logger = logging.getLogger(__name__)

__all__ = ["JointSpatialPixelAttack", "SPATIAL_KINDS", "ORDERS", "SCHEDULES"]

SPATIAL_KINDS = ("flow", "affine", "integrated")
ORDERS = ("spatial-pixel", "pixel-spatial")
SCHEDULES = ("double-pass", "one-pass", "cascade")
#: the joint attack's parameter names of the budget fields (its affine block is never batch-shared)
PIXEL_NAMES = ("eps_pixel", "eps_step_pixel")
JOINT_AFFINE_NAMES = (*AFFINE_NAMES_PREFIXED[:-1], None)


@dataclass
class _JointOutput(EngineOutput):
    """:class:`EngineOutput` plus the random target labels of the training mode (None otherwise)."""

    targets: torch.Tensor | None = None


class _JointCore(_SpatialCore):
    """Core of the joint attack: blocks = spatial blocks + ``"pixel"``; render in either order."""

    _flow_names = FLOW_NAMES_PREFIXED
    _affine_names = JOINT_AFFINE_NAMES

    # ------------------------------------------------------------------------------ parameters
    @property
    def flow_units(self):  # type: ignore[override]
        if isinstance(self.spatial, _SpatialCore):
            return self.spatial.flow_units
        return self.units

    def _check_core(self):
        if isinstance(self.spatial, _JointCore) or not (
            isinstance(self.spatial, _SpatialCore) or self.spatial in SPATIAL_KINDS
        ):
            raise ValueError(
                f"spatial must be one of {SPATIAL_KINDS} or a FlowAttack / AffineAttack / "
                f"IntegratedSpatialAttack instance, got {self.spatial!r}"
            )
        if isinstance(self.spatial, _SpatialCore):
            self.spatial._check_core()
        super()._check_core()  # the loop's parameters and the flow / affine budgets
        PixelBudget.of(self, PIXEL_NAMES)
        check_choice("order", self.order, ORDERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_bool("training_mode", self.training_mode)
        if self.training_mode and self.targeted:
            raise ValueError(
                "training_mode draws its own random targets: use targeted=False with it"
            )
        if self.nb_classes is not None:
            check_int("nb_classes", self.nb_classes, minimum=2)

    def _spatial_blocks(self) -> dict:
        if isinstance(self.spatial, _SpatialCore):
            return dict(self.spatial._blocks())
        flow, affine = self._budgets()
        return spatial_blocks(
            flow if self.spatial in ("flow", "integrated") else None,
            affine if self.spatial in ("affine", "integrated") else None,
        )

    def _blocks(self):
        blocks = self._spatial_blocks()
        blocks["pixel"] = PixelBudget.of(self, PIXEL_NAMES).threat()
        return blocks

    # ---------------------------------------------------------------------------------- render
    def _spec(self, shape, clip):
        spatial_names = tuple(self._spatial_blocks())
        pad = self.padding_mode

        if self.order == "spatial-pixel":

            def render(x, p):
                xs = W.sample(x, self._grid_of(p, tuple(x.shape)), pad)
                return clamp_images(xs + p["pixel"], clip)

            def feasible(x, p):
                # keep T(x; ω) + δ inside the image range (as PGD keeps x + δ in range)
                out = dict(p)
                with torch.no_grad():
                    xs = W.sample(x, self._grid_of(p, tuple(x.shape)), pad)
                d = clamp_images(xs + p["pixel"], clip) - xs
                out["pixel"] = d.clamp(-float(self.eps_pixel), float(self.eps_pixel))
                return out
        else:

            def render(x, p):
                return clamp_images(
                    W.sample(
                        clamp_images(x + p["pixel"], clip), self._grid_of(p, tuple(x.shape)), pad
                    ),
                    clip,
                )

            def feasible(x, p):
                out = dict(p)
                out["pixel"] = clamp_images(x + p["pixel"], clip) - x
                return out

        return AttackSpec(
            blocks=self._blocks(),
            render=render,
            phases=(spatial_names, ("pixel",)) if self.schedule == "double-pass" else None,
            feasible=feasible,
            identity=lambda x: clamp_images(x, clip),
            pixel_first=self.order == "pixel-spatial",
        )

    # ------------------------------------------------------------------------------------- run
    def _nb_classes_of(self, model, x) -> tuple:
        """(number of classes, forwards spent finding it)."""
        if self.nb_classes is not None:
            return int(self.nb_classes), 0
        est = getattr(self, "estimator", None)
        if est is not None and getattr(est, "nb_classes", None):
            return int(est.nb_classes), 0
        with torch.no_grad():
            return int(model(x[:1]).shape[1]), 1

    def _run(self, model, x, y, spec, *, seed, y_true, record, final_eval):
        n = x.shape[0]
        gens = _generators(example_seeds(x, seed)) if n else []
        targeted = bool(self.targeted)
        targets = None
        extra_fwd = 0
        y_run = y
        if self.training_mode:
            nb, extra_fwd = self._nb_classes_of(model, x) if n else (2, 0)
            y_true = y
            targets = random_targets(y, nb, gens) if n else y.clone()
            y_run, targeted = targets, True
        kw = dict(targeted=targeted, y_true=y_true, generators=gens, **self._engine_kwargs(seed))
        kw.update(record=record, final_eval=final_eval)
        if self.schedule != "cascade":
            out = run_attack(model, x, y_run, spec, **kw)
        else:  # a full spatial attack (δ = 0), then a full pixel attack on its output (ω frozen)
            spatial_names = tuple(name for name in spec.blocks if name != "pixel")
            out = run_cascade(model, x, y_run, spec, stages=(spatial_names, ("pixel",)), **kw)
        out = _JointOutput(
            **{f: getattr(out, f) for f in EngineOutput.__dataclass_fields__}, targets=targets
        )
        out.n_forward += extra_fwd
        return out

    def _summarize(self, out, x, spec, as_numpy):
        res = engine_result(self, out, x, spec, as_numpy)
        targets = getattr(out, "targets", None)
        if targets is not None:
            res.extras["target"] = targets.detach().cpu().numpy() if as_numpy else targets
        return res


class JointSpatialPixelAttack(_JointCore, ARTAttack):
    """Joint spatial + pixel attack (Joint AT, Eq. 10-11, Alg. 2; ablations §6.2-6.3) as an ART attack.

    See the module docstring for the generation model, the schedules, the training mode and early stop.

    Args:
        estimator: ART ``PyTorchClassifier`` (its preprocessing is differentiated through).
        spatial: ``"flow"``, ``"affine"``, ``"integrated"``, or a :class:`FlowAttack` /
            :class:`AffineAttack` / :class:`IntegratedSpatialAttack` instance whose budgets, steps and
            flow units are used (its own ``max_iter``, seed etc. are ignored).
        eps_pixel, eps_step_pixel: ``‖δ‖∞`` budget and sign-step size, in image units.
        eps_flow, eps_step_flow, flow_norm, units: flow budget / step in ``units`` (default: the
            paper's ℓ2,∞ ball, pixels).
        eps_affine, eps_step_affine, parametrization, max_rotation, max_translation, rotation_step,
            translation_step: affine / rotation-translation budget, as :class:`AffineAttack`.
        max_iter: K, steps per attack (each stage of the cascade runs K steps).
        order: ``"spatial-pixel"`` or ``"pixel-spatial"``.
        schedule: ``"double-pass"``, ``"one-pass"`` or ``"cascade"``.
        random_init: random start in every block's budget (default True, as the paper).
        targeted: descend on the target labels given as ``y``.
        training_mode: random non-true target per example, descend on it (the paper's training attack).
        nb_classes: number of classes for the training mode (default: the estimator's).
        early_stop_tau, seed, padding_mode, batch_size, verbose: as for the spatial attacks.

    Shapes: ``generate(x N x C x H x W, y)``; ``last_result.params`` holds the spatial blocks and
    ``"pixel"`` (``N x C x H x W``); ``last_result.pixel_linf`` is ``‖x_adv − T(x; ω)‖∞``
    (spatial-pixel) or ``‖δ‖∞`` (pixel-spatial); displacements are in pixels.

    Example:
        >>> import numpy as np
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> atk = JointSpatialPixelAttack(make_classifier(SmallCNN()), spatial="affine",
        ...                               order="pixel-spatial", schedule="one-pass", max_iter=2,
        ...                               verbose=False)
        >>> atk.generate(np.random.rand(2, 1, 28, 28).astype("float32"), y=np.array([0, 1])).shape
        (2, 1, 28, 28)
    """

    _defaults = {
        "spatial": "flow",
        **PixelBudget.defaults(PIXEL_NAMES, eps=8 / 255, eps_step=2 / 255),
        **FlowBudget.defaults(FLOW_NAMES_PREFIXED, eps_step=0.15, norm="2,inf", units="pixels"),
        **AffineBudget.defaults(JOINT_AFFINE_NAMES),
        "order": "spatial-pixel",
        "schedule": "double-pass",
        "training_mode": False,
        "nb_classes": None,
        **LOOP_DEFAULTS,
        "random_init": True,
        **ART_DEFAULTS,
    }
