"""AdverTorch façades of the package's attacks: ``advertorch.attacks.Attack`` subclasses on tensors.

Same maths, same loop, same defaults as the ART classes of :mod:`art_spatial.attacks` (Pareto AT
Eq. 2, 5-6, 7-9; Madry et al.'s PGD) — only the calling convention differs:

* ``Attack(predict, loss_fn=None, *, clip_min=0., clip_max=1., **hyper_parameters)`` (everything after
  ``loss_fn`` by keyword: a third positional value raises ``TypeError``) where ``predict``
  is any differentiable ``x -> logits`` callable (an ``nn.Module`` is attacked in eval mode with frozen
  parameters and restored afterwards) and the hyper-parameters are exactly those of the ART twin
  (e.g. ``eps``, ``eps_step``, ``max_iter``, ``norm``, ``units``, ``targeted``, ``seed`` ...), with the
  same defaults — minus the ART-only ``estimator``, ``batch_size`` and ``verbose``.
* ``perturb(x, y=None)``: ``x`` a float tensor ``N x C x H x W`` in ``[clip_min, clip_max]``, ``y``
  index labels ``N`` (true labels, or targets when ``targeted=True``); ``y=None`` (untargeted) attacks
  the model's own predictions. Returns the adversarial tensor (same shape, device and dtype as ``x``);
  the named :class:`~art_spatial.attacks.base.AttackResult` (parameters found, realised displacement in
  pixels, rotation/translation, κ ...) is kept in ``last_result``.
* ``loss_fn``: ``None`` = cross-entropy (as the ART classes). A torch loss module with a
  ``reduction`` attribute (AdverTorch's habit: ``nn.CrossEntropyLoss(reduction="sum")``) is used per
  example (a copy with ``reduction="none"``); any other callable must return one loss per example.

Under the same ``seed`` and hyper-parameters ``perturb`` returns what the ART class's ``generate``
returns (per-example random streams make batching irrelevant).

Importing this module needs the ``advertorch`` extra (``pip install 'art-spatial[advertorch]'``); it
raises an :class:`ImportError` naming it otherwise, while ``import art_spatial.attacks`` never needs it.

Adding a façade (e.g. for a new ART attack ``art_spatial.attacks.joint.JointSpatialPixelAttack`` built
as ``class JointSpatialPixelAttack(_JointCore, ARTAttack)``) takes three lines: subclass its core mixin
and :class:`_AdvertorchBase`, and name the ART twin, whose ``__init__`` signature (its ``_defaults``)
defines the accepted hyper-parameters and their defaults::

    class JointSpatialPixelAttack(_JointCore, _AdvertorchBase):
        \"\"\"AdverTorch façade of :class:`art_spatial.attacks.joint.JointSpatialPixelAttack`.\"\"\"
        _art_class = _joint.JointSpatialPixelAttack

Validation (``_check_core``), the attack spec and the summary all come from the core mixin; nothing is
duplicated. Add the name to ``__all__`` and a ``perturb == generate`` test.

Example:
    >>> import torch
    >>> from art_spatial.models import SmallCNN
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = SmallCNN().eval()
    >>> attack = FlowAttack(model, eps=0.3, eps_step=0.01, max_iter=2)
    >>> x_adv = attack.perturb(torch.rand(2, 1, 28, 28), torch.tensor([3, 7]))
    >>> x_adv.shape, bool(float(attack.last_result.params["flow"].abs().max()) <= 0.3 + 1e-6)
    (torch.Size([2, 1, 28, 28]), True)
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable
from typing import Any

import torch

from .._checks import check_images
from .._compat import import_advertorch
from . import pixel as _pixel
from . import spatial as _spatial
from .base import AttackCore, AttackResult, attack_labels
from .pixel import _PixelCore
from .spatial import _AffineCore, _FlowCore, _IntegratedCore

_at = import_advertorch()

logger = logging.getLogger(__name__)

__all__ = ["FlowAttack", "AffineAttack", "IntegratedSpatialAttack", "PixelAttack"]

#: constructor arguments of the ART classes that have no meaning for AdverTorch
_ART_ONLY = ("self", "estimator", "batch_size", "verbose")


def _per_example_loss(loss_fn: Callable | None) -> Callable | None:
    """A per-example version of an AdverTorch ``loss_fn`` (None stays None = cross-entropy)."""
    if loss_fn is None:
        return None
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable or None, got {loss_fn!r}")
    if isinstance(loss_fn, torch.nn.Module) and hasattr(loss_fn, "reduction"):
        per_example = copy.copy(loss_fn)
        per_example.reduction = "none"
        return per_example

    def checked(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = loss_fn(logits, labels)
        if out.shape != (logits.shape[0],):
            raise ValueError(
                "loss_fn must return one loss per example (shape (N,)), got shape "
                f"{tuple(out.shape)}; pass a torch loss module or reduction='none'"
            )
        return out

    return checked


class _AdvertorchBase(AttackCore, _at.Attack, _at.LabelMixin):
    """Generic AdverTorch façade: hyper-parameters from the ART twin's signature, ``perturb`` on tensors.

    Subclasses: ``class X(_XCore, _AdvertorchBase): _art_class = <the ART class>``. The core mixin
    provides ``_check_core`` / ``_spec`` / ``_grid_of`` / ``_affine_of``; this class provides the
    AdverTorch constructor, the label handling and ``perturb``.
    """

    #: the ART attack whose constructor defines the hyper-parameters and their defaults
    _art_class: type | None = None

    @classmethod
    def hyper_parameters(cls) -> dict[str, Any]:
        """Hyper-parameter names and defaults (the ART twin's, minus estimator/batch_size/verbose)."""
        if cls._art_class is None:
            raise TypeError(f"{cls.__name__} does not name its ART twin (_art_class)")
        sig = inspect.signature(cls._art_class.__init__)
        return {
            name: p.default
            for name, p in sig.parameters.items()
            if name not in _ART_ONLY and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def __init__(
        self,
        predict: Callable[[torch.Tensor], torch.Tensor],
        loss_fn: Callable | None = None,
        *args,
        clip_min: float = 0.0,
        clip_max: float = 1.0,
        **kwargs,
    ):
        if args:
            raise TypeError(
                f"{type(self).__name__} takes predict and loss_fn as positional arguments only; "
                f"got {len(args)} more positional value(s) {args!r}: pass eps, clip_min, "
                "clip_max and every other hyper-parameter by keyword (AdverTorch's positional "
                "order differs from attack to attack)"
            )
        if not callable(predict):
            raise ValueError(f"predict must be a callable x -> logits, got {predict!r}")
        _at.Attack.__init__(self, predict, loss_fn, clip_min, clip_max)
        defaults = self.hyper_parameters()
        unknown = sorted(set(kwargs) - set(defaults))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} got unknown hyper-parameter(s) {unknown}; "
                f"accepted: {sorted(defaults)}"
            )
        for name, default in defaults.items():
            setattr(self, name, kwargs.get(name, default))
        self._per_example_loss = _per_example_loss(loss_fn)
        self._check_core()
        self._last_result: AttackResult | None = None

    @property
    def last_result(self) -> AttackResult | None:
        """The :class:`AttackResult` (tensors) of the latest ``perturb`` call."""
        return self._last_result

    def _check_core(self) -> None:
        super()._check_core()
        try:
            lo, hi = float(self.clip_min), float(self.clip_max)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"clip_min and clip_max must be numbers, got {self.clip_min!r}, {self.clip_max!r}"
            ) from exc
        if not lo < hi:
            raise ValueError(f"clip_min must be < clip_max, got {lo} and {hi}")

    def _loss_fn(self):
        return self._per_example_loss

    def _labels(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        # indices or one-hot rows; the upper bound is checked against the logits in attack_tensor
        labels = attack_labels(
            y,
            x.shape[0],
            targeted=self.targeted,
            predict=lambda: self._get_predicted_label(x),
            empty=torch.zeros(0, dtype=torch.long, device=x.device),
        )
        return labels if y is None else torch.as_tensor(labels, device=x.device)

    def perturb(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Adversarial examples for ``x`` (``N x C x H x W``) with labels ``y`` (``N``) or predictions.

        ``x``: finite float images in ``[clip_min, clip_max]``; ``y``: class indices (or one-hot rows).
        Anything else raises ``ValueError`` naming the argument (see :mod:`art_spatial._checks`).
        """
        self._check_core()
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(
                f"x must be a tensor N x C x H x W, got {getattr(x, 'shape', type(x))}"
            )
        x = x.detach()
        check_images(x, name="x", clip_values=(self.clip_min, self.clip_max))
        y = self._labels(x, y)
        result = self.attack_tensor(self.predict, x, y, clip_values=(self.clip_min, self.clip_max))
        self._last_result = result
        return result.x_adv.to(x.dtype)


class FlowAttack(_FlowCore, _AdvertorchBase):
    """AdverTorch façade of :class:`art_spatial.attacks.FlowAttack` (Pareto AT Eq. 2; Joint AT Alg. 1).

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    >>> attack = FlowAttack(model, eps=1.0, eps_step=0.5, units="pixels", norm="2,inf", max_iter=2)
    >>> _ = attack.perturb(torch.rand(2, 1, 8, 8), torch.tensor([0, 2]))
    >>> bool(attack.last_result.max_displacement_px.max() <= 1.0 + 1e-4)  # pixels
    True
    """

    _art_class = _spatial.FlowAttack


class AffineAttack(_AffineCore, _AdvertorchBase):
    """AdverTorch façade of :class:`art_spatial.attacks.AffineAttack` (Pareto AT Eq. 5-6; RT box).

    >>> import torch
    >>> attack = AffineAttack(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)),
    ...                       parametrization="rotation-translation", max_iter=2)
    >>> attack.perturb(torch.rand(2, 1, 8, 8), torch.tensor([0, 2])).shape
    torch.Size([2, 1, 8, 8])
    """

    _art_class = _spatial.AffineAttack


class IntegratedSpatialAttack(_IntegratedCore, _AdvertorchBase):
    """AdverTorch façade of :class:`art_spatial.attacks.IntegratedSpatialAttack` (Pareto AT Eq. 7-9).

    >>> import torch
    >>> x = torch.rand(2, 1, 8, 8)
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    >>> IntegratedSpatialAttack(model, max_iter=2).perturb(x, torch.tensor([0, 2])).shape == x.shape
    True
    """

    _art_class = _spatial.IntegratedSpatialAttack


class PixelAttack(_PixelCore, _AdvertorchBase):
    """AdverTorch façade of :class:`art_spatial.attacks.PixelAttack` (L∞ PGD, FAT's PGD-K-τ).

    >>> import torch
    >>> attack = PixelAttack(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)),
    ...                      eps=0.1, eps_step=0.05, max_iter=2)
    >>> x = torch.rand(2, 1, 8, 8)
    >>> bool((attack.perturb(x, torch.tensor([0, 2])) - x).abs().max() <= 0.1 + 1e-6)
    True
    """

    _art_class = _pixel.PixelAttack


# ------------------------------------------------ joint spatial+pixel and grid attacks (issue 4)
from . import grid as _grid  # noqa: E402
from . import joint as _joint  # noqa: E402
from .grid import _GridCore  # noqa: E402
from .joint import _JointCore  # noqa: E402

__all__ += ["JointSpatialPixelAttack", "GridSpatialAttack"]


class JointSpatialPixelAttack(_JointCore, _AdvertorchBase):
    """AdverTorch façade of :class:`art_spatial.attacks.JointSpatialPixelAttack` (Joint AT Alg. 2).

    ``nb_classes`` (training mode) defaults to the width of the model's logits.

    >>> import torch
    >>> attack = JointSpatialPixelAttack(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)),
    ...                                  training_mode=True, max_iter=2)
    >>> y = torch.tensor([0, 2])
    >>> _ = attack.perturb(torch.rand(2, 1, 8, 8), y)
    >>> bool((attack.last_result.extras["target"] != y).all())  # random targets, never the label
    True
    """

    _art_class = _joint.JointSpatialPixelAttack


class GridSpatialAttack(_GridCore, _AdvertorchBase):
    """AdverTorch façade of :class:`art_spatial.attacks.GridSpatialAttack` (Engstrom et al. grid).

    >>> import torch
    >>> attack = GridSpatialAttack(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)),
    ...                            rotations=[-10, 10], translations_x=[0], translations_y=[0])
    >>> _ = attack.perturb(torch.rand(2, 1, 8, 8), torch.tensor([0, 2]))
    >>> attack.last_result.n_forward  # 2 transforms x 2 images, no gradient
    4
    """

    _art_class = _grid.GridSpatialAttack
