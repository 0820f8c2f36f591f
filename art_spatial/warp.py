"""Sampling grids and differentiable warping (the package's single coordinate convention).

Convention:
    * Images are float tensors ``N x C x H x W``.
    * A sampling grid has the ``torch.nn.functional.grid_sample`` layout ``N x H x W x 2``; the last
      axis is ``(x, y)`` = (column, row) in normalized coordinates ``[-1, 1]``.
    * ``ALIGN_CORNERS = True`` everywhere in the package (kornia's ``create_meshgrid``, ``rotate`` and
      ``translate`` default): ``-1`` and ``+1`` are the *centres* of the first and last pixel. Hence one
      pixel is ``2 / (W - 1)`` normalized units along x and ``2 / (H - 1)`` along y.
    * The grid says, for every *output* pixel, where to read in the *input* image (backward mapping).
      Output ``(u, v)`` reads input ``A @ [u, v, 1] + w_F(u, v)`` (Pareto AT, Eq. 7-9), sampled once,
      bilinearly, with ``padding_mode`` ``"zeros"`` (black fill, default) or ``"border"``.
    * A zero flow and a zero affine increment reproduce the input exactly.
    * Rotation-translation parameters ``(angle, tx, ty)`` describe how the *content* moves, with
      kornia's sign conventions: ``angle`` in degrees, positive = counter-clockwise as displayed
      (rows grow downwards); ``tx`` in pixels, positive = content moves right; ``ty`` in pixels,
      positive = content moves down. ``warp_rt(x, angle, tx, ty)`` equals
      ``kornia.geometry.transform.translate(kornia.geometry.transform.rotate(x, angle), t)`` with
      ``align_corners=True``.
    * Flow fields are stored either in normalized units (``units="normalized"``, the Pareto paper's
      budgets) or in pixels (``units="pixels"``, the Joint AT paper's budgets), last axis ``(dx, dy)``.

Example:
    >>> import torch
    >>> x = torch.rand(2, 1, 8, 8)
    >>> flow = torch.zeros(2, 8, 8, 2)
    >>> affine = torch.zeros(2, 2, 3)
    >>> bool(torch.allclose(warp(x, affine=affine, flow=flow), x, atol=1e-6))
    True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

try:  # kornia >= 0.8.3 moved it; the old alias warns
    from kornia.geometry import create_meshgrid
except ImportError:  # pragma: no cover - older kornia
    from kornia.utils import create_meshgrid

__all__ = [
    "ALIGN_CORNERS",
    "PADDING_MODES",
    "identity_grid",
    "pixel_scale",
    "pixels_to_normalized",
    "normalized_to_pixels",
    "affine_matrix",
    "rt_to_affine",
    "affine_to_rt",
    "make_grid",
    "sample",
    "warp",
    "warp_rt",
    "displacement_pixels",
]

ALIGN_CORNERS = True
PADDING_MODES = ("zeros", "border", "reflection")


def _check_padding(padding_mode: str) -> None:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")


def identity_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Identity sampling grid ``1 x H x W x 2`` (x, y) in ``[-1, 1]`` (align_corners=True).

    Built with kornia's ``create_meshgrid``. Sampling with it reproduces the image exactly.

    >>> identity_grid(3, 5)[0, 0, :, 0].tolist()
    [-1.0, -0.5, 0.0, 0.5, 1.0]
    """
    return create_meshgrid(height, width, normalized_coordinates=True, device=device, dtype=dtype)


def pixel_scale(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalized units per pixel along ``(x, y)``: ``(2/(W-1), 2/(H-1))`` as a tensor of shape (2,)."""
    if height < 2 or width < 2:
        raise ValueError(f"images must be at least 2x2 pixels to warp, got {height}x{width}")
    return torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)], device=device, dtype=dtype)


def pixels_to_normalized(flow_px: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Convert a displacement ``(..., 2)`` in pixels (dx, dy) to normalized grid units."""
    return flow_px * pixel_scale(height, width, flow_px.device, flow_px.dtype)


def normalized_to_pixels(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Convert a displacement ``(..., 2)`` in normalized grid units to pixels (dx, dy)."""
    return flow / pixel_scale(height, width, flow.device, flow.dtype)


def affine_matrix(increment: torch.Tensor) -> torch.Tensor:
    """``A = [[1, 0, 0], [0, 1, 0]] + w_RT`` (Pareto AT, Eq. 5); ``increment`` is ``N x 2 x 3``."""
    if increment.dim() != 3 or increment.shape[1:] != (2, 3):
        raise ValueError(
            f"affine increment must have shape (N, 2, 3), got {tuple(increment.shape)}"
        )
    eye = torch.eye(2, 3, device=increment.device, dtype=increment.dtype)
    return eye.unsqueeze(0) + increment


def rt_to_affine(rt: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Rotation-translation parameters ``N x 3`` (degrees, px, px) to the normalized ``N x 2 x 3`` A.

    Content moves as ``p' = R(angle) (p - c) + c + t`` in pixel coordinates (kornia's convention, see
    the module's Convention). The returned matrix is the backward map used by :func:`make_grid`:
    ``p = S R^T S^-1 (u' - S t)`` with ``S = diag(2/(W-1), 2/(H-1))``. Differentiable in ``rt``.

    >>> A = rt_to_affine(torch.zeros(1, 3), 28, 28)
    >>> (A + 0.0).tolist()  # + 0.0 turns the -0.0 entries into 0.0
    [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]
    """
    if rt.dim() != 2 or rt.shape[1] != 3:
        raise ValueError(
            f"rotation-translation parameters must have shape (N, 3), got {tuple(rt.shape)}"
        )
    theta = rt[:, 0] * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    s = pixel_scale(height, width, rt.device, rt.dtype)
    sx, sy = s[0], s[1]
    # R = [[cos, sin], [-sin, cos]] moves content counter-clockwise on screen (y down); R^T is the
    # backward map. Conjugate with S to express it in normalized coordinates.
    a00 = cos
    a01 = -sin * sx / sy
    a10 = sin * sy / sx
    a11 = cos
    tx = rt[:, 1] * sx
    ty = rt[:, 2] * sy
    b0 = -(a00 * tx + a01 * ty)
    b1 = -(a10 * tx + a11 * ty)
    row0 = torch.stack([a00, a01, b0], dim=-1)
    row1 = torch.stack([a10, a11, b1], dim=-1)
    return torch.stack([row0, row1], dim=1)


def affine_to_rt(A: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Implied content rotation (degrees) and translation (pixels) of a backward affine map ``N x 2 x 3``.

    Exact inverse of :func:`rt_to_affine` for pure rotation-translations; for a general affine map the
    angle is that of the rotation closest to its linear part (polar decomposition, 2-D closed form),
    and the translation is where the image centre moves.
    """
    s = pixel_scale(height, width, A.device, A.dtype)
    # linear part in pixel coordinates: S^-1 L S
    L = A[:, :, :2]
    Lp = L * (s.view(1, 1, 2) / s.view(1, 2, 1))
    # Lp approximates R^T = [[cos, -sin], [sin, cos]]
    angle = torch.atan2(Lp[:, 1, 0] - Lp[:, 0, 1], Lp[:, 0, 0] + Lp[:, 1, 1]) * (180.0 / math.pi)
    # the centre (0, 0) of the output reads input b; the content at input p moves to A^-1 (p - b), so
    # the input centre moves to -L^-1 b.
    b = A[:, :, 2:]
    shift = -torch.linalg.solve(L, b).squeeze(-1) / s
    return torch.cat([angle.unsqueeze(-1), shift], dim=-1)


def make_grid(
    shape: tuple,
    affine: torch.Tensor | None = None,
    flow: torch.Tensor | None = None,
    flow_units: str = "normalized",
    device=None,
    dtype=None,
) -> torch.Tensor:
    """Integrated sampling grid ``A @ [u, v, 1] + w_F`` (Pareto AT, Eq. 7-9), shape ``N x H x W x 2``.

    Args:
        shape: image shape ``(N, C, H, W)``.
        affine: full backward affine matrices ``N x 2 x 3`` (use :func:`affine_matrix` to turn an
            increment ``w_RT`` into A), or None for the identity.
        flow: per-pixel displacement ``N x H x W x 2`` (dx, dy) or None.
        flow_units: ``"normalized"`` or ``"pixels"``.
    """
    n, _, h, w = shape
    ref = affine if affine is not None else flow
    device = device if device is not None else (ref.device if ref is not None else None)
    dtype = dtype if dtype is not None else (ref.dtype if ref is not None else torch.float32)
    base = identity_grid(h, w, device=device, dtype=dtype)  # 1 x H x W x 2
    if affine is None:
        grid = base.expand(n, h, w, 2)
    else:
        if affine.shape != (n, 2, 3):
            raise ValueError(f"affine must have shape {(n, 2, 3)}, got {tuple(affine.shape)}")
        # Elementwise, not a batched matmul: x' = (a00 u + a01 v) + a02, y' = (a10 u + a11 v) + a12,
        # one exactly rounded multiply or add per term, so every grid value (and its gradient) is the
        # same float whatever the batch size. A batched einsum picks its kernel by batch size and
        # differed by ~2e-7 between batch sizes, which sign steps amplified into different attacks.
        u, v = base[..., 0], base[..., 1]  # 1 x H x W
        a = affine[:, :, :, None, None]  # N x 2 x 3 x 1 x 1
        gx = a[:, 0, 0] * u + a[:, 0, 1] * v + a[:, 0, 2]
        gy = a[:, 1, 0] * u + a[:, 1, 1] * v + a[:, 1, 2]
        grid = torch.stack([gx, gy], dim=-1)
    if flow is not None:
        if flow.shape != (n, h, w, 2):
            raise ValueError(f"flow must have shape {(n, h, w, 2)}, got {tuple(flow.shape)}")
        if flow_units == "pixels":
            flow = pixels_to_normalized(flow, h, w)
        elif flow_units != "normalized":
            raise ValueError(f"flow_units must be 'normalized' or 'pixels', got {flow_units!r}")
        grid = grid + flow
    return grid


def sample(x: torch.Tensor, grid: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Bilinear resampling of ``x`` (N x C x H x W) at ``grid`` (N x H x W x 2), align_corners=True."""
    _check_padding(padding_mode)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=ALIGN_CORNERS
    )


def warp(
    x: torch.Tensor,
    affine: torch.Tensor | None = None,
    flow: torch.Tensor | None = None,
    flow_units: str = "normalized",
    padding_mode: str = "zeros",
    affine_is_increment: bool = True,
) -> torch.Tensor:
    """Warp images with an affine increment ``w_RT`` and/or a flow ``w_F`` in one bilinear resampling.

    ``x_w = x(A_{w_RT} [u, v, 1]^T + w_F)`` (Pareto AT, Eq. 9). Shapes: x ``N x C x H x W``; affine
    ``N x 2 x 3`` (an increment added to the identity unless ``affine_is_increment=False``); flow
    ``N x H x W x 2``. Differentiable in all three.
    """
    if affine is not None and affine_is_increment:
        affine = affine_matrix(affine)
    grid = make_grid(
        tuple(x.shape),
        affine=affine,
        flow=flow,
        flow_units=flow_units,
        device=x.device,
        dtype=x.dtype,
    )
    return sample(x, grid, padding_mode)


def warp_rt(
    x: torch.Tensor,
    angle: torch.Tensor,
    tx: torch.Tensor,
    ty: torch.Tensor,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Rotate (degrees, counter-clockwise) about the centre, then translate (pixels) the content of x.

    >>> import torch
    >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 2, 2] = 1.0
    >>> y = warp_rt(x, torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([0.0]))
    >>> y[0, 0, 2].tolist()
    [0.0, 0.0, 0.0, 1.0, 0.0]
    """
    h, w = x.shape[-2:]
    rt = torch.stack([angle, tx, ty], dim=-1).to(x)
    return warp(
        x, affine=rt_to_affine(rt, h, w), padding_mode=padding_mode, affine_is_increment=False
    )


def displacement_pixels(grid: torch.Tensor) -> torch.Tensor:
    """Per-pixel displacement length in pixels of a grid against the identity, shape ``N x H x W``."""
    n, h, w, _ = grid.shape
    d = normalized_to_pixels(grid - identity_grid(h, w, grid.device, grid.dtype), h, w)
    return d.norm(dim=-1)
