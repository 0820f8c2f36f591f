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

from .base import ART_DEFAULTS, LOOP_DEFAULTS, ARTAttack, IterativeCore, clamp_images
from .budgets import PixelBudget
from .engine import AttackSpec

__all__ = ["PixelAttack", "EarlyStoppedPGD"]


#: the pixel attack's parameter names of the :class:`PixelBudget` fields
PIXEL_NAMES = ("eps", "eps_step")


class _PixelCore(IterativeCore):
    def _check_core(self):
        super()._check_core()
        PixelBudget.of(self, PIXEL_NAMES)

    def _spec(self, shape, clip):
        def render(x, p):
            return clamp_images(x + p["pixel"], clip)

        def feasible(x, p):
            out = dict(p)
            out["pixel"] = clamp_images(x + p["pixel"], clip) - x
            return out

        return AttackSpec(
            blocks={"pixel": PixelBudget.of(self, PIXEL_NAMES).threat()},
            render=render,
            feasible=feasible,
        )


class PixelAttack(_PixelCore, ARTAttack):
    """L∞ PGD on pixels (Madry et al.), optionally early-stopped (FAT PGD-K-τ), reporting κ.

    Args:
        estimator: ART ``PyTorchClassifier``.
        eps, eps_step: L∞ budget and sign-step size, in the image's units (e.g. 8/255).
        max_iter: K, the number of steps.
        random_init: uniform start in the ε-box (Madry); default True.
        early_stop_tau: τ of PGD-K-τ; None = plain PGD.
        targeted, seed, batch_size, verbose: as for the spatial attacks.
    """

    _defaults = {
        **PixelBudget.defaults(PIXEL_NAMES),
        **LOOP_DEFAULTS,
        "max_iter": 40,
        "random_init": True,
        **ART_DEFAULTS,
    }


#: FAT's early-stopped PGD is :class:`PixelAttack` with ``early_stop_tau`` set.
EarlyStoppedPGD = PixelAttack
