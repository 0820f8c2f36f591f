"""Pixel L∞ PGD on the package's loop, with FAT's early stop and GAIRAT's κ.

Madry et al. (2018) PGD: ``δ ← Π_{‖δ‖∞≤ε}(δ + α sign ∇_δ CE(f(x + δ), y))`` with ``x + δ`` kept in the
clip range, random start ``U(−ε, ε)``. With ``early_stop_tau`` it is FAT's PGD-K-τ ("friendly"
adversarial data, Zhang et al. 2020); the result's ``kappa`` is GAIRAT's κ (Zhang et al. 2021).

It exists so that every attack of the package — spatial, joint and pixel — shares one loop, one
early-stop rule and one result type; for plain PGD inside ART pipelines ART's own
``ProjectedGradientDescent`` remains the reference (the tests check that both agree in strength).

Example:
    >>> from art_spatial.models import SmallCNN, make_classifier
    >>> import numpy as np
    >>> attack = PixelAttack(make_classifier(SmallCNN()), eps=0.3, eps_step=0.01, max_iter=3, verbose=False)
    >>> x = np.random.rand(2, 1, 28, 28).astype("float32")
    >>> bool(np.abs(attack.generate(x, y=np.array([0, 1])) - x).max() <= 0.3 + 1e-6)
    True
"""

from __future__ import annotations

from art.attacks.attack import EvasionAttack

from ..threats import LinfBox
from .base import ARTAttackMixin, AttackCore, check_number, clamp_images
from .engine import AttackSpec
from .spatial import _ESTIMATOR_REQUIREMENTS, _ARTSpatialAttack

__all__ = ["PixelAttack", "EarlyStoppedPGD"]


class _PixelCore(AttackCore):
    _core_params = ("eps", "eps_step")

    def _check_core(self):
        super()._check_core()
        check_number("eps", self.eps, nonneg=True)
        check_number("eps_step", self.eps_step, positive=True)

    def _spec(self, shape, clip):
        def render(x, p):
            return clamp_images(x + p["pixel"], clip)

        def feasible(x, p):
            out = dict(p)
            out["pixel"] = clamp_images(x + p["pixel"], clip) - x
            return out

        return AttackSpec(
            blocks={"pixel": LinfBox("pixel", self.eps, self.eps_step, "pixel")},
            render=render,
            feasible=feasible,
        )


class PixelAttack(_PixelCore, _ARTSpatialAttack):
    """L∞ PGD on pixels (Madry et al.), optionally early-stopped (FAT PGD-K-τ), reporting κ.

    Args:
        estimator: ART ``PyTorchClassifier``.
        eps, eps_step: L∞ budget and sign-step size, in the image's units (e.g. 8/255).
        max_iter: K, the number of steps.
        random_init: uniform start in the ε-box (Madry); default True.
        early_stop_tau: τ of PGD-K-τ; None = plain PGD.
        targeted, seed, batch_size, verbose: as for the spatial attacks.
    """

    attack_params = (
        EvasionAttack.attack_params + list(_PixelCore._core_params) + ARTAttackMixin._common_params
    )
    _estimator_requirements = _ESTIMATOR_REQUIREMENTS

    def __init__(
        self,
        estimator,
        eps: float = 0.3,
        eps_step: float = 0.01,
        max_iter: int = 40,
        random_init: bool = True,
        targeted: bool = False,
        early_stop_tau: int | None = None,
        seed: int = 0,
        padding_mode: str = "zeros",
        batch_size: int = 128,
        verbose: bool = True,
    ):
        super().__init__(estimator=estimator)
        self.eps, self.eps_step = eps, eps_step
        self._set_common(
            max_iter, targeted, random_init, early_stop_tau, seed, padding_mode, batch_size, verbose
        )
        self._check_params()


#: FAT's early-stopped PGD is :class:`PixelAttack` with ``early_stop_tau`` set.
EarlyStoppedPGD = PixelAttack
