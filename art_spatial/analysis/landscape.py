"""Loss landscape of the integrated spatial attack in ``(w_F, w_RT)`` space (Pareto AT §2.3, Fig. 2).

Paper: Pareto Adversarial Robustness (journal), §2.3, Eq. 7-9 and Figure 2; "filter normalization" of
Li et al. 2018 (Visualizing the loss landscape of neural nets).

For an image ``x`` with label ``y`` and a point ``w0 = [w_F, w_RT]`` (flow ``H x W x 2`` and affine
increment ``2 x 3``), the landscape is

    L(α, β) = CE(f(x_{w0 + α d1 + β d2}), y),      x_w = x(A_{w_RT}[u, v, 1]^T + w_F)  (Eq. 7)

on a ``steps x steps`` grid of ``(α, β) ∈ [−span, span]²``, with two random Gaussian directions
``d1, d2`` drawn per example. Filter normalization: the paper treats ``w_F`` and ``w_RT`` as two
"filters"; each block of each direction is rescaled to the ℓ2 norm of the same block of the reference
point (Li et al.). **Our choice at the origin** (where that norm is 0, e.g. before the attack): the
block is rescaled to the ℓ2 norm of the budget corner, i.e. of a block filled with its budget
(``ε_F √(2HW)`` for the flow, ``ε_RT √6`` for the affine part), so ``α = 1`` moves as far as the
farthest corner of the ℓ∞ budget box. The choice (``"point"`` or ``"budget"``) is recorded per block
and example in :attr:`LandscapeResult.reference`. The image is rendered as in the attack (one
bilinear sampling, clipped to ``clip_values``); no projection to the budget is applied.

:func:`landscape_before_after` runs :class:`~art_spatial.attacks.IntegratedSpatialAttack` through
``attack_tensor`` to get ``w*`` and returns the landscapes at the origin and at ``w*``;
:func:`plot_landscapes` draws surfaces and contours (Fig. 2) to a PNG.

Convention: coordinates as :mod:`art_spatial.warp` (flow in the attack's ``units``, affine increments
in normalized units).

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    >>> x, y = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    >>> res = loss_landscape(model, x, y, steps=5, span=0.5)
    >>> res.losses.shape, res.mean_loss.shape
    ((2, 5, 5), (5, 5))
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import warp as W
from .._checks import check_int, check_number
from ..attacks.base import model_eval
from ._common import check_xy, classifier_for, model_logits_fn
from ._figures import pyplot, save_figure

logger = logging.getLogger(__name__)

__all__ = ["LandscapeResult", "loss_landscape", "landscape_before_after", "plot_landscapes"]

BLOCKS = ("flow", "affine")


@dataclass
class LandscapeResult:
    """Losses of the integrated spatial transformation around a point.

    Attributes:
        alphas, betas: ``steps`` coordinates along ``d1`` and ``d2`` (units of the normalized
            directions: 1 = the reference norm of each block).
        losses: ``N x steps x steps`` per-example cross-entropy, ``losses[k, i, j]`` at
            ``(alphas[i], betas[j])``.
        mean_loss: ``steps x steps`` mean over the examples.
        accuracy: ``steps x steps`` fraction of examples still classified correctly.
        center: the point ``{"flow": N x H x W x 2, "affine": N x 2 x 3}``.
        directions: ``(d1, d2)``, each a dict like ``center`` (already normalized).
        reference: per block, ``N`` strings ``"point"`` or ``"budget"`` (what the block was scaled to).
        scale: per block, ``N`` ℓ2 norms the direction blocks were scaled to.
        units: flow units of ``center["flow"]``.
    """

    alphas: np.ndarray
    betas: np.ndarray
    losses: np.ndarray
    mean_loss: np.ndarray
    accuracy: np.ndarray
    center: dict
    directions: tuple
    reference: dict
    scale: dict
    units: str = "normalized"
    extras: dict = field(default_factory=dict)

    @property
    def center_loss(self) -> np.ndarray:
        """``N`` losses at ``(0, 0)`` (requires an odd number of steps; else the nearest point)."""
        i = int(np.argmin(np.abs(self.alphas)))
        j = int(np.argmin(np.abs(self.betas)))
        return self.losses[:, i, j]


def _as_params(center, n: int, h: int, w: int, device, dtype) -> dict[str, torch.Tensor]:
    out = {
        "flow": torch.zeros(n, h, w, 2, device=device, dtype=dtype),
        "affine": torch.zeros(n, 2, 3, device=device, dtype=dtype),
    }
    if center is None:
        return out
    for key, value in center.items():
        if key not in BLOCKS:
            raise ValueError(f"center keys must be in {BLOCKS}, got {key!r}")
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
        t = t.to(device=device, dtype=dtype)
        if t.shape != out[key].shape:
            raise ValueError(
                f"center[{key!r}] must have shape {tuple(out[key].shape)}, got {tuple(t.shape)}"
            )
        out[key] = t.clone()
    return out


def _normalized_direction(gen: torch.Generator, center: dict, budget: dict, device, dtype):
    d, ref, scale = {}, {}, {}
    for key in BLOCKS:
        c = center[key]
        raw = torch.randn(c.shape, generator=gen, dtype=torch.float32).to(
            device=device, dtype=dtype
        )
        c_norm = c.flatten(1).norm(dim=1)
        use_point = c_norm > 0
        target = torch.where(use_point, c_norm, torch.full_like(c_norm, budget[key]))
        r_norm = raw.flatten(1).norm(dim=1).clamp_min(torch.finfo(dtype).tiny)
        d[key] = raw * (target / r_norm).view(-1, *([1] * (raw.ndim - 1)))
        ref[key] = np.where(use_point.cpu().numpy(), "point", "budget")
        scale[key] = target.cpu().numpy()
    return d, ref, scale


def loss_landscape(
    model,
    x,
    y,
    center: dict | None = None,
    *,
    eps_flow: float = 0.3,
    eps_affine: float = 0.3,
    span: float = 1.0,
    steps: int = 21,
    seed: int = 0,
    units: str = "normalized",
    padding_mode: str = "zeros",
    clip_values=(0.0, 1.0),
    batch_size: int = 512,
) -> LandscapeResult:
    """Cross-entropy of the integrated spatial transformation along two filter-normalized directions.

    ``L(α, β) = CE(f(x_{w0 + α d1 + β d2}), y)`` (see the module docstring; Pareto AT Fig. 2).

    Args:
        model: ``nn.Module`` / callable ``x -> logits`` or ART ``PyTorchClassifier``.
        x, y: images ``N x C x H x W`` in ``clip_values`` and labels ``N``.
        center: ``{"flow": N x H x W x 2, "affine": N x 2 x 3}`` (missing blocks are zero) or ``None``
            for the origin (the clean image).
        eps_flow, eps_affine: budgets defining the direction scale of zero blocks.
        span: half-width of the ``(α, β)`` square.
        steps: points per axis (odd keeps ``(0, 0)`` on the grid).
        seed: seed of the random directions.
        units: flow units (``"normalized"`` or ``"pixels"``).
        padding_mode: ``"zeros"`` or ``"border"``.
        clip_values: image range the rendered images are clipped to (``None``: no clipping).
        batch_size: images per forward pass.

    Returns:
        A :class:`LandscapeResult`.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> x, y = torch.rand(1, 1, 4, 4), torch.tensor([1])
        >>> res = loss_landscape(model, x, y, steps=3)
        >>> clean = torch.nn.functional.cross_entropy(model(x), y).item()
        >>> abs(float(res.center_loss[0]) - clean) < 1e-5
        True
    """
    x, y = check_xy(x, y)
    _check_landscape_args(eps_flow, eps_affine, span, steps, batch_size, units, padding_mode)
    n, _, h, w = x.shape
    dtype = x.dtype if x.dtype.is_floating_point else torch.float32
    x = x.detach().to(dtype)
    c = _as_params(center, n, h, w, x.device, dtype)
    (d1, ref1, scale1), (d2, _, _) = _random_directions(c, eps_flow, eps_affine, seed)
    alphas = np.linspace(-span, span, int(steps))
    alphas[np.abs(alphas) < 1e-12 * span] = 0.0  # the centre exactly on the grid (odd steps)
    betas = alphas.copy()
    aa, bb = np.meshgrid(alphas, betas, indexing="ij")
    coords = torch.as_tensor(np.stack([aa.ravel(), bb.ravel()], 1), dtype=dtype, device=x.device)
    losses, correct = _grid_losses(
        model,
        x,
        y,
        _Render(c, (d1, d2), units, padding_mode, clip_values),
        coords,
        batch_size,
    )
    losses_np = losses.numpy().T.reshape(n, int(steps), int(steps))
    return LandscapeResult(
        alphas=alphas,
        betas=betas,
        losses=losses_np,
        mean_loss=losses_np.mean(0),
        accuracy=correct.numpy().mean(1).reshape(int(steps), int(steps)),
        center=_to_numpy(c),
        directions=(_to_numpy(d1), _to_numpy(d2)),
        reference=ref1,
        scale=scale1,
        units=units,
    )


def _check_landscape_args(eps_flow, eps_affine, span, steps, batch_size, units, padding_mode):
    """Raise a ValueError naming the first invalid argument of :func:`loss_landscape`."""
    for name, v in (("eps_flow", eps_flow), ("eps_affine", eps_affine), ("span", span)):
        check_number(name, v, positive=True)
    check_int("steps", steps, minimum=2)
    check_int("batch_size", batch_size, minimum=1)
    if units not in ("normalized", "pixels"):
        raise ValueError(f"units must be 'normalized' or 'pixels', got {units!r}")
    if padding_mode not in W.PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {W.PADDING_MODES}, got {padding_mode!r}")


def _random_directions(c: dict, eps_flow: float, eps_affine: float, seed: int):
    """Two filter-normalized random directions around ``c``, each ``(direction, reference, scale)``.

    Zero blocks of ``c`` are scaled to the ℓ2 norm of the budget corner (module docstring).
    """
    n, h, w, _ = c["flow"].shape
    dtype, device = c["flow"].dtype, c["flow"].device
    budget = {
        "flow": float(eps_flow) * math.sqrt(2 * h * w),
        "affine": float(eps_affine) * math.sqrt(6),
    }
    gen = torch.Generator().manual_seed(int(seed))
    first = _normalized_direction(gen, c, budget, device, dtype)
    second = _normalized_direction(gen, c, budget, device, dtype)
    return first, second


@dataclass
class _Render:
    """How a grid point ``(α, β)`` becomes an image: ``x`` warped by ``center + α d1 + β d2``."""

    center: dict
    directions: tuple
    units: str
    padding_mode: str
    clip_values: tuple | None

    def __call__(self, x: torch.Tensor, cc: torch.Tensor) -> torch.Tensor:
        """Images ``(k · N) x C x H x W`` of ``x`` (``N``) at the ``k`` points ``cc`` (``k x 2``)."""
        k, n = cc.shape[0], x.shape[0]
        d1, d2 = self.directions

        def combo(key):
            shape = self.center[key].shape[1:]
            a = cc[:, 0].view(k, 1, *([1] * len(shape)))
            b = cc[:, 1].view(k, 1, *([1] * len(shape)))
            point = self.center[key][None] + a * d1[key][None] + b * d2[key][None]
            return point.reshape(k * n, *shape)

        flow, inc = combo("flow"), combo("affine")
        xs = x[None].expand(k, *x.shape).reshape(k * n, *x.shape[1:])
        grid = W.make_grid(
            tuple(xs.shape), affine=W.affine_matrix(inc), flow=flow, flow_units=self.units
        )
        lo, hi = (
            (-math.inf, math.inf)
            if self.clip_values is None
            else (float(self.clip_values[0]), float(self.clip_values[1]))
        )
        return W.sample(xs, grid, self.padding_mode).clamp(lo, hi)


def _grid_losses(model, x, y, render: _Render, coords: torch.Tensor, batch_size: int):
    """Cross-entropy (float64) and correctness, ``points x N``, of ``x`` rendered at ``coords``."""
    n, n_points = x.shape[0], coords.shape[0]
    logits_of, module = model_logits_fn(model)
    losses = torch.empty(n_points, n, dtype=torch.float64)
    correct = torch.empty(n_points, n, dtype=torch.bool)
    points_per_batch = max(1, int(batch_size) // n)
    with model_eval(module), torch.no_grad():
        for p0 in range(0, n_points, points_per_batch):
            cc = coords[p0 : p0 + points_per_batch]  # P x 2
            k = cc.shape[0]
            logits = logits_of(render(x, cc))
            yy = y.repeat(k)
            losses[p0 : p0 + k] = (
                F.cross_entropy(logits, yy, reduction="none").double().view(k, n).cpu()
            )
            correct[p0 : p0 + k] = (logits.argmax(1) == yy).view(k, n).cpu()
    return losses, correct


def _to_numpy(blocks: dict) -> dict:
    """``{name: tensor}`` as ``{name: numpy array}`` on the CPU."""
    return {k: v.detach().cpu().numpy() for k, v in blocks.items()}


def landscape_before_after(
    model,
    x,
    y,
    attack=None,
    *,
    span_before: float = 1.0,
    span_after: float = 1.0,
    steps: int = 21,
    seed: int = 0,
    clip_values=(0.0, 1.0),
    batch_size: int = 512,
    **attack_kwargs,
):
    """Landscapes at the origin and at the integrated attack's maximizer ``w*`` (Pareto AT Fig. 2).

    Args:
        model: ``nn.Module`` mapping images to logits (or a callable when ``attack`` is given).
        x, y: images ``N x C x H x W`` and labels ``N``.
        attack: an :class:`~art_spatial.attacks.IntegratedSpatialAttack` with
            ``parametrization="affine"``; default: one built around ``model`` from ``attack_kwargs``
            (Pareto MNIST defaults: ε_F = ε_RT = 0.3, steps 0.01 / 0.1, 20 iterations).
        span_before, span_after: half-widths of the two grids (a large ``span_before`` gives the
            paper's "distant view").
        steps, seed, clip_values, batch_size: see :func:`loss_landscape`.

    Returns:
        ``(before, after, result)``: two :class:`LandscapeResult` and the attack's
        :class:`~art_spatial.attacks.AttackResult` (tensors).

    Example:
        >>> from art_spatial.models import SmallCNN
        >>> import torch
        >>> b, a, r = landscape_before_after(SmallCNN(), torch.rand(1, 1, 28, 28), torch.tensor([3]),
        ...                                  steps=3, max_iter=1)
        >>> b.losses.shape == a.losses.shape == (1, 3, 3)
        True
    """
    from ..attacks import IntegratedSpatialAttack

    x, y = check_xy(x, y)
    if attack is None:
        if not isinstance(model, torch.nn.Module):
            raise ValueError("model must be an nn.Module when no attack is given")
        kwargs = dict(verbose=False)
        kwargs.update(attack_kwargs)
        attack = IntegratedSpatialAttack(classifier_for(model, x, clip_values), **kwargs)
    elif attack_kwargs:
        raise ValueError(
            f"attack_kwargs are only used without an attack, got {sorted(attack_kwargs)}"
        )
    if getattr(attack, "parametrization", None) != "affine":
        raise ValueError("attack must be an IntegratedSpatialAttack with parametrization='affine'")
    result = attack.attack_tensor(model, x, y, clip_values=clip_values)
    common = dict(
        eps_flow=float(attack.eps_flow),
        eps_affine=float(attack.eps_affine),
        steps=steps,
        seed=seed,
        units=attack.units,
        padding_mode=attack.padding_mode,
        clip_values=clip_values,
        batch_size=batch_size,
    )
    before = loss_landscape(model, x, y, None, span=span_before, **common)
    center = {"flow": result.params["flow"], "affine": result.params["affine"]}
    after = loss_landscape(model, x, y, center, span=span_after, **common)
    logger.info(
        "landscape: clean loss %.3f, loss at w* %.3f",
        float(before.center_loss.mean()),
        float(after.center_loss.mean()),
    )
    return before, after, result


def plot_landscapes(
    panels: Sequence[tuple[str, LandscapeResult]],
    path,
    *,
    per_example: int | None = None,
    dpi: int = 120,
) -> Path:
    """Surface (top row) and contour (bottom row) plots of landscapes, one column per panel (Fig. 2).

    Args:
        panels: ``(title, LandscapeResult)`` pairs.
        path: output PNG path.
        per_example: plot this example's landscape instead of the mean over the examples.
        dpi: resolution.

    Returns:
        The written path.
    """
    if not panels:
        raise ValueError("panels must not be empty")
    cols = len(panels)
    fig = pyplot().figure(figsize=(4.6 * cols, 7.6))
    for k, (title, res) in enumerate(panels):
        z = res.mean_loss if per_example is None else res.losses[per_example]
        aa, bb = np.meshgrid(res.alphas, res.betas, indexing="ij")
        ax = fig.add_subplot(2, cols, k + 1, projection="3d")
        ax.plot_surface(aa, bb, z, cmap="viridis", linewidth=0, antialiased=True)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("α (d1)", fontsize=8)
        ax.set_ylabel("β (d2)", fontsize=8)
        ax.set_zlabel("CE loss", fontsize=8, labelpad=2)
        ax.tick_params(labelsize=7)
        ax2 = fig.add_subplot(2, cols, cols + k + 1)
        cs = ax2.contourf(aa, bb, z, levels=20, cmap="viridis")
        ax2.contour(aa, bb, z, levels=10, colors="k", linewidths=0.4)
        ax2.plot([0], [0], marker="*", color="red", markersize=10)
        fig.colorbar(cs, ax=ax2, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
        ax2.set_xlabel("α (d1)", fontsize=8)
        ax2.set_ylabel("β (d2)", fontsize=8)
        ax2.tick_params(labelsize=7)
        ax2.set_aspect("equal")
        refs = {b: sorted(set(res.reference[b].tolist())) for b in res.reference}
        ax2.set_title(
            f"centre loss {float(np.mean(res.center_loss)):.2f}; scale: "
            f"flow={'/'.join(refs['flow'])}, affine={'/'.join(refs['affine'])}",
            fontsize=7,
        )
    path = save_figure(fig, path, dpi)
    logger.info("landscape figure written to %s", path)
    return path
