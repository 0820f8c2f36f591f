"""Threat models: one object per parameter block (pixel δ, flow w_F, affine w_RT, rotation-translation).

Each threat model owns its random start, its step direction and its projection; the iterative loop in
:mod:`art_spatial.attacks.engine` exists once and serves every attack.

* :class:`LinfBox` — ``‖w‖∞ ≤ ε`` with sign steps ``w ← Π(w ± α·sign(∇))`` (PGD, Madry et al.; flow
  Pareto AT Eq. 2, affine Eq. 5-6, pixel δ). ``ε`` and ``α`` may be per-coordinate (broadcastable),
  which gives the rotation-translation box ``|angle| ≤ θ°, |t| ≤ s px``.
* :class:`L2InfFlowBall` — the Joint AT paper's flow ball (Alg. 1): every pixel's 2-D displacement
  vector has length ``≤ ε``; the "generalized sign" step moves each vector by ``α`` along its own
  gradient direction; projection rescales vectors longer than ``ε``.

Convention: parameters are tensors with a leading batch axis; a block's per-example shape is given by
``param_shape(c, h, w)``. Random starts are drawn from per-example uniform noise supplied by the
engine so that an example's start does not depend on the rest of its batch.

A block built with ``shared=True`` is *batch-shared*: one parameter for the whole attacked batch (kept
as ``N`` identical rows). The engine then sums the per-example gradients over the batch before the
step and draws one random start per batch (see :mod:`art_spatial.attacks.engine`); the result of such
a block depends on the batch it is attacked in.

Example:
    >>> import torch
    >>> box = LinfBox("flow", eps=0.3, eps_step=0.01, shape="flow")
    >>> w = box.step(torch.zeros(1, 4, 4, 2), torch.ones(1, 4, 4, 2), ascend=True)
    >>> round(float(w.max()), 6)  # float32
    0.01
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import torch

from ._checks import check_number

__all__ = ["ThreatModel", "LinfBox", "L2InfFlowBall", "PARAM_SHAPES"]

Number = Union[float, int, Sequence[float]]  # noqa: UP007

#: per-example parameter shapes of the blocks, from the image's (C, H, W)
PARAM_SHAPES = {
    "pixel": lambda c, h, w: (c, h, w),
    "flow": lambda c, h, w: (h, w, 2),
    "affine": lambda c, h, w: (2, 3),
    "rt": lambda c, h, w: (3,),
}


def _as_tensor(value: Number, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, device=like.device, dtype=like.dtype)


class ThreatModel:
    """Base class of a parameter block: random start, step, projection and realised size."""

    def __init__(self, name: str, shape: str, shared: bool = False):
        if shape not in PARAM_SHAPES:
            raise ValueError(f"shape must be one of {sorted(PARAM_SHAPES)}, got {shape!r}")
        if not isinstance(shared, bool):
            raise ValueError(f"{name} shared must be a bool, got {shared!r}")
        self.name = name
        self.shape = shape
        #: one parameter for the whole batch (gradient summed over the batch) instead of one per example
        self.shared = shared

    def param_shape(self, c: int, h: int, w: int) -> tuple:
        """Per-example parameter shape for an image of shape (C, H, W)."""
        return PARAM_SHAPES[self.shape](c, h, w)

    def zeros(
        self, n: int, c: int, h: int, w: int, device=None, dtype=torch.float32
    ) -> torch.Tensor:
        """The identity parameters for a batch of ``n`` images."""
        return torch.zeros((n,) + self.param_shape(c, h, w), device=device, dtype=dtype)

    def from_uniform(self, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Map uniform noise in [0, 1) of the parameter shape to a random start inside the budget."""
        raise NotImplementedError

    def step(
        self, p: torch.Tensor, grad: torch.Tensor, ascend: bool = True
    ) -> torch.Tensor:  # pragma: no cover
        """One steepest-ascent (or descent) step of the block's geometry; not yet projected."""
        raise NotImplementedError

    def project(self, p: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Projection onto the budget."""
        raise NotImplementedError

    def direction(self, grad: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """The unit steepest-ascent direction of the block's geometry (``step`` with α = 1 moves by it).

        Used by the adaptive step policy (:class:`art_spatial.attacks.engine.APGDStep`), which scales it
        by ``η · radius`` per example instead of the fixed ``eps_step``.
        """
        raise NotImplementedError

    def radius(self, p: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """The budget ε as a tensor broadcastable to ``p`` (per coordinate for a box)."""
        raise NotImplementedError

    def size(self, p: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Realised size of each example's parameter, in the budget's norm (shape ``N``)."""
        raise NotImplementedError

    def within(self, p: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
        """Boolean per example: is the parameter inside its budget (up to ``tol``)?"""
        raise NotImplementedError  # pragma: no cover


class LinfBox(ThreatModel):
    """``‖w‖∞ ≤ ε`` box with sign steps of size ``α`` (per-coordinate ε/α broadcast over the block).

    Args:
        name: block name (``"pixel"``, ``"flow"``, ``"affine"``, ``"rt"`` ...).
        eps: radius, a number or a sequence broadcastable to the per-example shape (e.g. ``(30, 3, 3)``
            for the rotation-translation block: degrees, pixels, pixels).
        eps_step: step size α, same broadcasting.
        shape: which parameter shape (a key of :data:`PARAM_SHAPES`).
        shared: one parameter for the whole batch (see the module docstring); default per example.
    """

    def __init__(self, name: str, eps: Number, eps_step: Number, shape: str, shared: bool = False):
        super().__init__(name, shape, shared)
        check_number(f"{name} eps", eps, nonneg=True, per_channel=True)
        check_number(f"{name} eps_step", eps_step, nonneg=True, per_channel=True)
        self.eps = eps
        self.eps_step = eps_step

    def from_uniform(self, u):
        return (2.0 * u - 1.0) * _as_tensor(self.eps, u)

    def step(self, p, grad, ascend=True):
        d = grad.sign() * _as_tensor(self.eps_step, p)
        return p + d if ascend else p - d

    def project(self, p):
        e = _as_tensor(self.eps, p)
        return torch.maximum(torch.minimum(p, e), -e)

    def direction(self, grad):
        return grad.sign()

    def radius(self, p):
        return _as_tensor(self.eps, p)

    def size(self, p):
        return p.abs().flatten(1).amax(dim=1)

    def within(self, p, tol=1e-6):
        e = _as_tensor(self.eps, p)
        return (p.abs() <= e + tol).flatten(1).all(dim=1)


class L2InfFlowBall(ThreatModel):
    """Per-pixel ℓ2 ball of radius ε on a flow ``N x H x W x 2`` (Joint AT paper, Alg. 1).

    Step: ``w ← w ± α · g / ‖g‖₂`` per pixel (the "generalized sign"; pixels with zero gradient do not
    move). Projection: vectors longer than ε are rescaled to length ε. Random start: uniform in the disc.
    """

    def __init__(self, name: str, eps: float, eps_step: float):
        super().__init__(name, "flow")
        check_number(f"{name} eps", eps, nonneg=True, per_channel=True)
        check_number(f"{name} eps_step", eps_step, nonneg=True, per_channel=True)
        self.eps = float(eps)
        self.eps_step = float(eps_step)

    def from_uniform(self, u):
        r = self.eps * u[..., 0].sqrt()
        phi = 2.0 * math.pi * u[..., 1]
        return torch.stack([r * torch.cos(phi), r * torch.sin(phi)], dim=-1)

    def step(self, p, grad, ascend=True):
        n = grad.norm(dim=-1, keepdim=True)
        # divide by the exact length (not a clamped one): tiny gradients of a confident model must
        # still give unit steps; pixels with an exactly zero gradient do not move
        d = torch.where(
            n > 0, grad / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(grad)
        )
        d = d * self.eps_step
        return p + d if ascend else p - d

    def direction(self, grad):
        n = grad.norm(dim=-1, keepdim=True)
        return torch.where(
            n > 0, grad / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(grad)
        )

    def radius(self, p):
        return _as_tensor(self.eps, p)

    def project(self, p):
        n = p.norm(dim=-1, keepdim=True)
        factor = torch.where(n > self.eps, self.eps / n.clamp_min(1e-12), torch.ones_like(n))
        return p * factor

    def size(self, p):
        return p.norm(dim=-1).flatten(1).amax(dim=1)

    def within(self, p, tol=1e-6):
        return (p.norm(dim=-1) <= self.eps + tol).flatten(1).all(dim=1)
