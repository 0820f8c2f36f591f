"""CuSP invariance and robustness profiles ("Evaluation Metrics" of the CuSP paper).

* Rate of invariance to a class of random transformations T (CuSP): ``Pr(f(T(X)) = f(X))``, the
  fraction of test images whose *predicted* label is unchanged under a random transformation.
  ``rotation``: angle ~ U[−θ, θ] degrees, θ = 0 … 180 (the rotation invariance profile);
  ``translation``: shifts ~ U[−i·W, i·W] px on each axis (i a fraction of the image size, CuSP's Aug-T);
  ``rotation-translation``: angle ~ U[−i·180, i·180] and shifts ~ U[−i·W, i·W] (CuSP's Aug-RT).
  Nearest-neighbour interpolation and black fill, as in CuSP (``interpolation="bilinear"`` available).
* Robustness profile: ``1 − fooling rate = Pr(f(x + A(x)) = f(x))`` for an L∞ PGD attack A (random
  start) of budget ε, plotted against ε. The attack ascends the cross-entropy of the clean prediction.

Randomness: each example draws its transformation from a generator seeded by ``(seed, value index,
the example's bytes)``, so results do not depend on batching or on sharding across processes.

Convention: angles in degrees counter-clockwise on screen, shifts in pixels (x right, y down); see
:mod:`art_spatial.warp`.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(5, 1, 4, 4)
    >>> counts = invariance_counts(model, x, "rotation", [0.0, 180.0], seed=0)
    >>> counts[0] == 5  # theta = 0 changes nothing
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .. import warp as W
from ..attacks.engine import _generators, example_seeds

logger = logging.getLogger(__name__)

__all__ = ["random_transform", "invariance_counts", "robustness_counts", "INTERPOLATIONS"]

INTERPOLATIONS = ("nearest", "bilinear")


def _ranges(kind: str, value: float, width: int):
    if kind == "rotation":
        return float(value), 0.0
    if kind == "translation":
        return 0.0, float(value) * width
    if kind == "rotation-translation":
        return float(value) * 180.0, float(value) * width
    raise ValueError(
        f"kind must be one of ('rotation', 'translation', 'rotation-translation'), got {kind!r}"
    )


def random_transform(
    x: torch.Tensor, kind: str, value: float, seed: int = 0, interpolation: str = "nearest"
) -> torch.Tensor:
    """Apply one random transformation of the class (``kind``, ``value``) to every image of ``x``.

    Args:
        x: ``N x C x H x W`` images.
        kind: ``"rotation"`` (value = θ degrees), ``"translation"`` or ``"rotation-translation"``
            (value = fraction i of the image width).
        value: the range parameter (θ or i), ≥ 0.
        seed: base seed (per-example generators, see the module docstring).
        interpolation: ``"nearest"`` (CuSP) or ``"bilinear"``.

    Returns:
        Transformed images of ``x``'s shape (black fill outside the image); ``x`` is not modified.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if value < 0:
        raise ValueError(f"value must be non-negative, got {value!r}")
    n, _, h, w = x.shape
    max_angle, max_shift = _ranges(kind, value, w)
    if n == 0 or (max_angle == 0 and max_shift == 0):
        return x.clone()
    gens = _generators(example_seeds(x, seed))
    u = (
        torch.stack([torch.rand(3, generator=g, dtype=torch.float64) for g in gens]) * 2 - 1
    )  # U[-1, 1]
    rt = torch.stack([u[:, 0] * max_angle, u[:, 1] * max_shift, u[:, 2] * max_shift], 1).to(
        x.device, x.dtype
    )
    A = W.rt_to_affine(rt, h, w)
    grid = W.make_grid(tuple(x.shape), affine=A, device=x.device, dtype=x.dtype)
    return F.grid_sample(
        x, grid, mode=interpolation, padding_mode="zeros", align_corners=W.ALIGN_CORNERS
    )


def _value_seed(seed: int, j: int) -> int:
    return int(seed) * 1_000_003 + 7919 * (j + 1)


@torch.no_grad()
def invariance_counts(
    model: Callable,
    x: torch.Tensor,
    kind: str,
    values: Sequence[float],
    seed: int = 0,
    clean_pred: torch.Tensor = None,
    interpolation: str = "nearest",
) -> list[int]:
    """Number of images whose prediction is unchanged, for each range value (one batch ``x``)."""
    if clean_pred is None:
        clean_pred = model(x).argmax(1)
    out = []
    for j, v in enumerate(values):
        xt = random_transform(x, kind, v, seed=_value_seed(seed, j), interpolation=interpolation)
        out.append(int((model(xt).argmax(1) == clean_pred).sum()))
    return out


def robustness_counts(
    model: Callable,
    x: torch.Tensor,
    values: Sequence[float],
    *,
    clip_values=(0.0, 1.0),
    eps_step: float = 0.01,
    max_iter: int = 40,
    random_init: bool = True,
    seed: int = 0,
    clean_pred: torch.Tensor = None,
) -> tuple:
    """Number of images whose prediction PGD-L∞(ε) does not change, for each ε; and the passes spent.

    ε = 0 is counted without attacking (the perturbation is zero, nothing can change).

    Returns:
        ``(counts, n_forward, n_backward)``.
    """
    from ..attacks.pixel import _PixelCore

    if clean_pred is None:
        with torch.no_grad():
            clean_pred = model(x).argmax(1)
    counts, nf, nb = [], 0, 0
    for v in values:
        if v == 0:
            counts.append(int(x.shape[0]))
            continue
        core = _PixelCore()
        core.eps, core.eps_step, core.max_iter = float(v), float(eps_step), int(max_iter)
        core.targeted, core.random_init, core.early_stop_tau = False, bool(random_init), None
        core.seed, core.padding_mode = int(seed), "zeros"
        res = core.attack_tensor(model, x, clean_pred, clip_values=clip_values)
        counts.append(int((~res.success).sum()))
        nf += res.n_forward
        nb += res.n_backward
    return counts, nf, nb
