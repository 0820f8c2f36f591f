"""Shared machinery of the attacks: the named result, the ART façade, model-state handling, guards.

Every attack class of the package is built from two parts:

* a *core* mixin that owns the hyper-parameters as attributes, validates them (``_check_core``) and
  attacks one batch of tensors (``_attack_batch``) with any ``x -> logits`` callable. Gradient attacks
  derive from :class:`IterativeCore` (e.g. :class:`art_spatial.attacks.spatial._FlowCore`): they only
  turn their hyper-parameters into an :class:`AttackSpec` for the one loop in
  :mod:`art_spatial.attacks.engine`; the grid search and the ensemble derive from :class:`AttackCore`;
* a *façade*: :class:`ARTAttack` (an ART ``EvasionAttack`` driven through a ``PyTorchClassifier``,
  including its ``preprocessing``) or the AdverTorch façade in :mod:`art_spatial.attacks.advertorch`.

``generate`` is the one entry point that validates, runs the attack batch by batch, re-projects to the
budget and the input range, computes success and stores an :class:`AttackResult` in ``last_result``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin

from .. import warp as W
from .._checks import (
    check_bool,
    check_choice,
    check_images,
    check_int,
    check_labels,
    check_number,
    guard_logits,
)
from .engine import AttackSpec, EngineOutput, run_attack

logger = logging.getLogger(__name__)

__all__ = [
    "AttackResult",
    "model_eval",
    "estimator_logits_fn",
    "estimator_inputs",
    "attack_labels",
    "engine_result",
    "ARTAttackMixin",
    "ARTAttack",
    "AttackCore",
    "IterativeCore",
    "LOOP_DEFAULTS",
    "ART_DEFAULTS",
    "check_number",
    "check_int",
    "check_choice",
    "check_bool",
]


# ----------------------------------------------------------------------------------------- result
@dataclass
class AttackResult:
    """Named result of an attack.

    Attributes:
        x_adv: adversarial images, float32 ``N x C x H x W`` (numpy from ART ``generate``, a tensor from
            the tensor API), inside the clip range.
        params: parameters found per block (``"flow"``: ``N x H x W x 2`` in the attack's flow units,
            ``"affine"``: ``N x 2 x 3`` increments, ``"rt"``: ``N x 3`` (degrees, px, px), ``"pixel"``:
            ``N x C x H x W``), as numpy arrays.
        success: ``N`` bool, the attack's goal reached on the returned image (misclassified, or the
            target predicted when targeted).
        max_displacement_px / mean_displacement_px: ``N``, realised displacement of the sampling grid
            against the identity, in pixels (0 for pixel-only attacks).
        rotation_deg / translation_px: ``N`` and ``N x 2``, the content rotation and (dx, dy) shift
            implied by the affine part (0 when there is none).
        pixel_linf: ``N``, ``‖x_adv − x_spatial‖∞`` of the pixel part (0 when there is none).
        kappa / stop_step: ``N`` ints, see :mod:`art_spatial.attacks.engine`.
        correct: ``N x (K+1)`` bool correctness of every iterate when recorded, else None.
        n_forward / n_backward: example-level model passes spent.
    """

    x_adv: Any
    params: dict[str, np.ndarray]
    success: np.ndarray
    max_displacement_px: np.ndarray
    mean_displacement_px: np.ndarray
    rotation_deg: np.ndarray
    translation_px: np.ndarray
    pixel_linf: np.ndarray
    kappa: np.ndarray
    stop_step: np.ndarray
    correct: np.ndarray | None = None
    n_forward: int = 0
    n_backward: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        """Fraction of examples on which the attack reached its goal."""
        return float(np.mean(self.success)) if len(self.success) else float("nan")

    @staticmethod
    def concatenate(parts: list) -> AttackResult:
        """Concatenate batch results along the example axis."""
        if len(parts) == 1:
            return parts[0]

        def cat(vals):
            if vals[0] is None:
                return None
            if isinstance(vals[0], torch.Tensor):
                return torch.cat(vals)
            return np.concatenate(vals)

        first = parts[0]
        return AttackResult(
            x_adv=cat([p.x_adv for p in parts]),
            params={k: cat([p.params[k] for p in parts]) for k in first.params},
            success=cat([p.success for p in parts]),
            max_displacement_px=cat([p.max_displacement_px for p in parts]),
            mean_displacement_px=cat([p.mean_displacement_px for p in parts]),
            rotation_deg=cat([p.rotation_deg for p in parts]),
            translation_px=cat([p.translation_px for p in parts]),
            pixel_linf=cat([p.pixel_linf for p in parts]),
            kappa=cat([p.kappa for p in parts]),
            stop_step=cat([p.stop_step for p in parts]),
            correct=cat([p.correct for p in parts]),
            n_forward=sum(p.n_forward for p in parts),
            n_backward=sum(p.n_backward for p in parts),
            extras={k: cat([p.extras[k] for p in parts]) for k in first.extras},
        )


# ---------------------------------------------------------------------------------- model handling
@contextlib.contextmanager
def model_eval(module: torch.nn.Module | None):
    """Eval mode and frozen parameters for the duration of an attack; restores both afterwards.

    Every submodule's ``training`` flag and every parameter's ``requires_grad`` are recorded and put
    back exactly, so a mixed state survives (e.g. a BatchNorm frozen in eval mode inside a model in
    train mode, or a frozen backbone).
    """
    if module is None or not isinstance(module, torch.nn.Module):
        yield
        return
    modes = [(m, m.training) for m in module.modules()]
    flags = [(p, p.requires_grad) for p in module.parameters()]
    if any(training for _, training in modes):
        logger.debug("model was (partly) in train mode; attacking it in eval mode")
    module.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in modes:
            m.training = training


def estimator_inputs(estimator, x: torch.Tensor, *, fit: bool = False) -> torch.Tensor:
    """``x`` (``N x C x H x W``) as the model of an ART ``PyTorchClassifier`` takes it (differentiable).

    Transposes to ``N x H x W x C`` for an estimator with ``channels_first=False``, then applies the
    estimator's PyTorch preprocessing (``_apply_preprocessing(..., no_grad=False)``, the path ART's own
    ``loss_gradient`` uses). The logits are then ``estimator.model(inputs)``; ``fit=True`` is the
    preprocessing of a training step (the trainers' update).
    """
    if not getattr(estimator, "channels_first", True):
        x = x.permute(0, 2, 3, 1)
    xp, _ = estimator._apply_preprocessing(x, y=None, fit=fit, no_grad=False)
    return xp


def estimator_logits_fn(estimator):
    """``x -> logits`` through an ART ``PyTorchClassifier`` *including* its preprocessing (mean/std).

    Gradients flow through ART's PyTorch preprocessing and the classifier's model (ART's public
    ``model`` property), see :func:`estimator_inputs`.

    The function always takes ``N x C x H x W`` images, the package's layout: for an estimator with
    ``channels_first=False`` it transposes them to ``N x H x W x C`` before the preprocessing and the
    model (which then see the estimator's own layout).
    """
    from art.estimators.classification import PyTorchClassifier

    if not isinstance(estimator, PyTorchClassifier):
        raise TypeError(
            "estimator must be an art.estimators.classification.PyTorchClassifier (the attacks "
            f"differentiate through a PyTorch model), got {type(estimator).__name__}"
        )
    if not getattr(estimator, "all_framework_preprocessing", True):
        raise ValueError(
            "estimator preprocessing must be implemented in PyTorch (e.g. "
            "preprocessing=(mean, std) "
            "or PyTorch preprocessing defences) so that gradients reach the warp parameters"
        )

    def logits(x: torch.Tensor) -> torch.Tensor:
        return estimator.model(estimator_inputs(estimator, x))

    return logits


def attack_labels(y, n: int, *, targeted: bool, predict, empty, nb_classes=None, name: str = "y"):
    """The labels an attack works on: ``y`` checked by :func:`art_spatial._checks.check_labels`
    (indices or one-hot rows), or — when ``y`` is None and the attack is untargeted — ``predict()``,
    the model's own predictions (``empty`` for an empty batch, without calling the model)."""
    if y is None:
        if targeted:
            raise ValueError("y (the target labels) is required when targeted=True")
        return empty if n == 0 else predict()
    return check_labels(y, n, nb_classes, name=name)


# ------------------------------------------------------------------------------------------ core
class AttackCore:
    """Attribute-based logic shared by the ART and AdverTorch façades of every attack.

    Subclasses define ``_check_core`` (calling this one: ``targeted``, ``seed``, ``padding_mode``)
    and ``_attack_batch``; gradient attacks derive from :class:`IterativeCore` instead. The
    hyper-parameters are plain attributes (set by the façade's constructor).
    """

    #: flow units of the "flow" block for displacement reporting
    flow_units: str = "normalized"

    def _check_core(self) -> None:
        check_bool("targeted", self.targeted)
        check_int("seed", self.seed, minimum=0)
        check_choice("padding_mode", self.padding_mode, W.PADDING_MODES)

    def _attack_batch(
        self, model, x, y, clip, *, seed, y_true, record, final_eval, as_numpy
    ) -> AttackResult:  # pragma: no cover - abstract
        """Attack one batch ``x`` (``N x C x H x W``) with labels ``y`` and the random streams of ``seed``."""
        raise NotImplementedError

    def _loss_fn(self):
        """The per-example loss ``(logits, labels) -> N`` the attack ascends (None: cross-entropy)."""
        return None

    def _grid_of(self, params: dict[str, torch.Tensor], shape: tuple) -> torch.Tensor | None:
        """The sampling grid the spatial parameters define (None for pixel-only attacks)."""
        return None

    def _affine_of(self, params: dict[str, torch.Tensor], shape: tuple) -> torch.Tensor | None:
        """The full backward affine matrix ``N x 2 x 3`` of the parameters (None if no affine part)."""
        return None

    def _run_empty(
        self,
        x: torch.Tensor,
        clip: tuple,
        *,
        seed: int,
        record: bool = False,
        as_numpy: bool = True,
    ) -> AttackResult:
        """The (empty) result of an empty batch ``0 x C x H x W``, without calling the model.

        ART's own attacks return an empty array for an empty ``x``; models often cannot take an empty
        batch (any reduction over it fails), so the attack runs on a stand-in with two classes.
        """

        def no_model(z: torch.Tensor) -> torch.Tensor:
            return z.flatten(1).sum(1, keepdim=True).expand(-1, 2) * 0.0

        y = torch.zeros(0, dtype=torch.long, device=x.device)
        return self._attack_batch(
            no_model,
            x,
            y,
            clip,
            seed=seed,
            y_true=None,
            record=record,
            final_eval=True,
            as_numpy=as_numpy,
        )

    def attack_tensor(
        self,
        model,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        clip_values=(0.0, 1.0),
        y_true=None,
        record: bool = False,
        final_eval: bool = True,
        seed: int | None = None,
    ) -> AttackResult:
        """Tensor API: attack ``x`` (``N x C x H x W``, on the model's device) with labels ``y`` (``N``).

        ``model`` is any differentiable ``x -> logits`` callable (an ``nn.Module`` is put in eval mode
        with frozen parameters for the duration). Used by the trainers and the harness: no NumPy round
        trip. Returns an :class:`AttackResult` holding tensors.

        ``x`` must be finite float images inside ``clip_values`` (``ValueError`` naming ``x``
        otherwise, see :func:`art_spatial._checks.check_images`); an empty batch gives an empty result.
        ``y`` / ``y_true``: class indices (or one-hot rows), checked by
        :func:`art_spatial._checks.check_labels`; labels beyond the model's logits are refused at its
        first forward pass (no extra pass).

        ``seed``: the seed of this call's random streams in place of the attack's ``seed`` attribute,
        which stays as it is (e.g. the trainers' per-batch seeds on a shared attack); None = the
        attribute's. The attack object is never modified.
        """
        if seed is not None:
            check_int("seed", seed, minimum=0)
        self._check_core()
        seed = int(self.seed if seed is None else seed)
        clip = _clip_tuple(clip_values)
        check_images(x, name="x", clip_values=clip_values)
        n = x.shape[0]
        y = torch.as_tensor(check_labels(y, n, name="y"), device=x.device)
        if y_true is not None:
            y_true = torch.as_tensor(check_labels(y_true, n, name="y_true"), device=x.device)
        if n == 0:
            return self._run_empty(x.detach(), clip, seed=seed, record=record, as_numpy=False)
        logits = guard_logits(model, y, name="y")
        if y_true is not None:
            logits = guard_logits(logits, y_true, name="y_true")
        with model_eval(model if isinstance(model, torch.nn.Module) else None):
            return self._attack_batch(
                logits,
                x.detach(),
                y,
                clip,
                seed=seed,
                y_true=y_true,
                record=record,
                final_eval=final_eval,
                as_numpy=False,
            )


def _as_output(t: torch.Tensor | None, as_numpy: bool):
    if t is None:
        return None
    return t.detach().cpu().numpy() if as_numpy else t


def engine_result(
    core: AttackCore, out: EngineOutput, x: torch.Tensor, spec: AttackSpec, as_numpy: bool = True
) -> AttackResult:
    """The :class:`AttackResult` of an engine run: realised displacement, rotation / translation and
    pixel change from the core's ``_grid_of`` / ``_affine_of`` and the spec's ``pixel_first``."""
    n = x.shape[0]
    shape = tuple(x.shape)
    with torch.no_grad():
        grid = core._grid_of(out.params, shape)
        if grid is not None:
            disp = W.displacement_pixels(grid)
            dmax, dmean = disp.flatten(1).amax(1), disp.flatten(1).mean(1)
            x_spatial = W.sample(x, grid, core.padding_mode)
        else:
            dmax = dmean = torch.zeros(n, device=x.device)
            x_spatial = x
        A = core._affine_of(out.params, shape)
        if A is not None:
            rt = W.affine_to_rt(A, shape[2], shape[3])
            rot, trans = rt[:, 0], rt[:, 1:]
        else:
            rot, trans = torch.zeros(n, device=x.device), torch.zeros(n, 2, device=x.device)
        if "pixel" not in out.params:
            plinf = torch.zeros(n, device=x.device)
        elif spec.pixel_first:  # the pixel change happens before the warp
            plinf = out.params["pixel"].abs().flatten(1).amax(1)
        else:
            plinf = (out.x_adv - x_spatial).abs().flatten(1).amax(1)
    if out.final_correct is not None:
        success = ~out.final_correct
    else:
        success = torch.zeros(n, dtype=torch.bool, device=x.device)
    return AttackResult(
        x_adv=_as_output(out.x_adv, as_numpy),
        params={k: _as_output(v, as_numpy) for k, v in out.params.items()},
        success=_as_output(success, as_numpy),
        max_displacement_px=_as_output(dmax, as_numpy),
        mean_displacement_px=_as_output(dmean, as_numpy),
        rotation_deg=_as_output(rot, as_numpy),
        translation_px=_as_output(trans, as_numpy),
        pixel_linf=_as_output(plinf, as_numpy),
        kappa=_as_output(out.kappa, as_numpy),
        stop_step=_as_output(out.stop_step, as_numpy),
        correct=_as_output(out.correct, as_numpy),
        n_forward=out.n_forward,
        n_backward=out.n_backward,
    )


class IterativeCore(AttackCore):
    """Core of the gradient attacks: an :class:`AttackSpec` (``_spec``) run by the engine's loop.

    Subclasses implement ``_spec(shape, clip)`` and, for spatial blocks, ``_grid_of`` / ``_affine_of``.
    Common hyper-parameters: ``max_iter``, ``targeted``, ``random_init``, ``early_stop_tau``, ``seed``,
    ``padding_mode``.
    """

    def _check_core(self) -> None:
        check_int("max_iter", self.max_iter, minimum=0)
        check_bool("random_init", self.random_init)
        check_int("early_stop_tau", self.early_stop_tau, minimum=0, allow_none=True)
        super()._check_core()

    def _spec(self, shape: tuple, clip: tuple) -> AttackSpec:  # pragma: no cover - abstract
        raise NotImplementedError

    def _engine_kwargs(self, seed: int) -> dict:
        kwargs = dict(
            max_iter=int(self.max_iter),
            random_init=bool(self.random_init),
            seed=int(seed),
            early_stop_tau=self.early_stop_tau,
        )
        if self._loss_fn() is not None:
            kwargs["loss_fn"] = self._loss_fn()
        return kwargs

    def _run(self, model, x, y, spec, *, seed, y_true, record, final_eval) -> EngineOutput:
        return run_attack(
            model,
            x,
            y,
            spec,
            targeted=bool(self.targeted),
            y_true=y_true,
            record=record,
            final_eval=final_eval,
            **self._engine_kwargs(seed),
        )

    def _summarize(self, out: EngineOutput, x, spec: AttackSpec, as_numpy: bool) -> AttackResult:
        return engine_result(self, out, x, spec, as_numpy)

    def _attack_batch(self, model, x, y, clip, *, seed, y_true, record, final_eval, as_numpy):
        spec = self._spec(tuple(x.shape), clip)
        out = self._run(
            model, x, y, spec, seed=seed, y_true=y_true, record=record, final_eval=final_eval
        )
        return self._summarize(out, x, spec, as_numpy)


def _clip_tuple(clip_values) -> tuple:
    if clip_values is None:
        return (-math.inf, math.inf)
    lo, hi = float(np.asarray(clip_values[0]).min()), float(np.asarray(clip_values[1]).max())
    if not lo < hi:
        raise ValueError(f"clip_values must satisfy min < max, got {clip_values!r}")
    return (lo, hi)


def clamp_images(x: torch.Tensor, clip: tuple) -> torch.Tensor:
    """Clip images to the estimator's range with a straight-through gradient (no-op for an infinite range).

    The value is ``x.clamp(lo, hi)``; the gradient is the identity. ``torch.clamp``'s own gradient is
    zero at the bounds, which would freeze every pixel sitting exactly at 0 or 1 (most of an MNIST
    digit) — ART's PGD differentiates at the clipped point with the identity too.
    """
    lo, hi = clip
    if math.isinf(lo) and math.isinf(hi):
        return x
    return x + (x.clamp(lo, hi) - x).detach()


# ------------------------------------------------------------------------------------ ART façade
#: keyword arguments ``generate`` accepts besides ``x`` and ``y``
_GENERATE_KWARGS = ("record", "y_true")
#: what an ART façade of a gradient attack needs from its estimator
_ESTIMATOR_REQUIREMENTS = (BaseEstimator, LossGradientsMixin, ClassifierMixin)
#: the loop's hyper-parameters and their defaults (an attack's ``_defaults`` may override them)
LOOP_DEFAULTS: dict[str, Any] = {
    "max_iter": 20,
    "targeted": False,
    "random_init": False,
    "early_stop_tau": None,
    "seed": 0,
    "padding_mode": "zeros",
}
#: the ART façade's own parameters: the batch size of ``generate`` and its progress bar
ART_DEFAULTS: dict[str, Any] = {"batch_size": 128, "verbose": True}


class ARTAttackMixin:
    """``generate`` for ART: numpy in, float32 numpy out, batch loop with tqdm, ``last_result``.

    Must precede ``art.attacks.EvasionAttack`` in the MRO (see :class:`ARTAttack`).
    """

    def _check_params(self) -> None:
        super()._check_params()
        check_int("batch_size", self.batch_size, minimum=1)
        check_bool("verbose", self.verbose)
        estimator_logits_fn(
            self.estimator
        )  # a PyTorchClassifier with PyTorch preprocessing, or an error
        self._check_core()

    @property
    def last_result(self) -> AttackResult | None:
        """The :class:`AttackResult` of the latest ``generate`` call (None before the first)."""
        return getattr(self, "_last_result", None)

    def _labels(self, x: np.ndarray, y, name: str = "y") -> np.ndarray:
        def predict() -> np.ndarray:
            preds = self.estimator.predict(x, batch_size=self.batch_size)
            return np.argmax(preds, axis=1).astype(np.int64)

        return attack_labels(
            y,
            x.shape[0],
            targeted=self.targeted,
            predict=predict,
            empty=np.zeros(0, dtype=np.int64),
            nb_classes=self.estimator.nb_classes,
            name=name,
        )

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """Adversarial examples for ``x`` (float32 numpy of ``x``'s shape, inside ``clip_values``).

        :param x: images ``N x C x H x W`` in the estimator's ``clip_values``.
        :param y: true labels (untargeted) or target labels (targeted), one-hot or indices; when None
            and untargeted, the estimator's predictions are used.
        :param y_true: optional keyword: true labels for κ / early stop in targeted mode.
        :param record: optional keyword: keep per-iterate correctness in ``last_result.correct``.
        """
        self._check_params()
        unknown = sorted(set(kwargs) - set(_GENERATE_KWARGS))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}.generate got unknown keyword argument(s) {unknown}; "
                f"accepted: {list(_GENERATE_KWARGS)}"
            )
        x = np.asarray(x)
        channels_first = bool(getattr(self.estimator, "channels_first", True))
        check_images(
            x,
            name="x",
            input_shape=self.estimator.input_shape,
            channels_first=channels_first,
            clip_values=self.estimator.clip_values,
        )
        labels = self._labels(x, y)  # predictions of the estimator in its own layout when y is None
        x_in = x if channels_first else x.transpose(0, 3, 1, 2)  # the attacks work channels-first
        y_true = kwargs.get("y_true")
        if y_true is not None:
            y_true = self._labels(x, y_true, name="y_true")
        result = self._generate_batches(x_in, labels, y_true, bool(kwargs.get("record", False)))
        if not channels_first:  # back to the estimator's layout
            result.x_adv = result.x_adv.transpose(0, 2, 3, 1)
            if "pixel" in result.params:
                result.params["pixel"] = np.ascontiguousarray(
                    result.params["pixel"].transpose(0, 2, 3, 1)
                )
        result.x_adv = np.ascontiguousarray(result.x_adv, dtype=np.float32).reshape(x.shape)
        self._last_result = result
        logger.info(
            "%s: success rate %.3f, mean max displacement %.3f px",
            type(self).__name__,
            result.success_rate,
            float(np.mean(result.max_displacement_px)) if x.shape[0] else 0.0,
        )
        return result.x_adv

    def _generate_batches(self, x_in: np.ndarray, labels, y_true, record: bool) -> AttackResult:
        """The attack on channels-first numpy images, ``batch_size`` at a time (numpy result)."""
        from tqdm.auto import tqdm

        clip = _clip_tuple(self.estimator.clip_values)
        device = getattr(self.estimator, "_device", torch.device("cpu"))
        model = estimator_logits_fn(self.estimator)
        seed = int(self.seed)
        parts = []
        n = x_in.shape[0]
        with model_eval(getattr(self.estimator, "model", None)):
            batches = range(0, n, self.batch_size)
            for start in tqdm(batches, desc=type(self).__name__, disable=not self.verbose):
                sl = slice(start, start + self.batch_size)
                xb = torch.as_tensor(x_in[sl], dtype=torch.float32, device=device).contiguous()
                yb = torch.as_tensor(labels[sl], device=device)
                ytb = None if y_true is None else torch.as_tensor(y_true[sl], device=device)
                parts.append(
                    self._attack_batch(
                        model,
                        xb,
                        yb,
                        clip,
                        seed=seed,
                        y_true=ytb,
                        record=record,
                        final_eval=True,
                        as_numpy=True,
                    )
                )
        if n == 0:  # an empty result of the right shape, as ART's own attacks return
            x0 = torch.zeros(x_in.shape, dtype=torch.float32, device=device)
            parts.append(self._run_empty(x0, clip, seed=seed, record=record))
        return AttackResult.concatenate(parts)


def _keyword_init(cls: type):
    """``cls.__init__(self, estimator, *, <cls._defaults>)``: one keyword-only parameter per entry."""

    def __init__(self, estimator, **params):
        ARTAttack.__init__(self, estimator, **params)

    P = inspect.Parameter
    __init__.__signature__ = inspect.Signature(
        [P("self", P.POSITIONAL_OR_KEYWORD), P("estimator", P.POSITIONAL_OR_KEYWORD)]
        + [P(name, P.KEYWORD_ONLY, default=value) for name, value in cls._defaults.items()]
    )
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__module__ = cls.__module__
    return __init__


class ARTAttack(ARTAttackMixin, EvasionAttack):
    """The ART façade of every attack of the package: ``estimator`` plus keyword-only hyper-parameters.

    A subclass ``class MyAttack(_MyCore, ARTAttack)`` declares its hyper-parameters and their defaults
    once, in ``_defaults`` (e.g. ``{**budget defaults, **LOOP_DEFAULTS, **ART_DEFAULTS}``); its
    ``__init__(self, estimator, *, **_defaults)`` signature and ART's ``attack_params`` follow from it.
    The constructor stores every value as an attribute (``targeted`` as ART's ``_targeted``), calls
    ``_init_state`` and checks everything (``_check_params``, which calls the core's ``_check_core``).

    Example:
        >>> import inspect
        >>> from art_spatial.attacks import PixelAttack
        >>> str(inspect.signature(PixelAttack))[:48]
        '(estimator, *, eps=0.3, eps_step=0.01, max_iter='
    """

    _estimator_requirements = _ESTIMATOR_REQUIREMENTS
    #: hyper-parameter name -> default, in signature order
    _defaults: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_defaults" in cls.__dict__:
            cls.__init__ = _keyword_init(cls)
            if "attack_params" not in cls.__dict__:
                cls.attack_params = EvasionAttack.attack_params + list(cls._defaults)

    def __init__(self, estimator, **params):
        unknown = sorted(set(params) - set(self._defaults))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword argument(s) {unknown}; "
                f"accepted: {list(self._defaults)}"
            )
        super().__init__(estimator=estimator)
        for name, default in self._defaults.items():
            setattr(self, "_targeted" if name == "targeted" else name, params.get(name, default))
        self._init_state()
        self._check_params()

    def _init_state(self) -> None:
        """Hook: normalise the hyper-parameters / reset the attack's state before the checks."""
