"""Validation of user data — images ``x`` and labels ``y`` — at the package's public entry points.

One place for the rules, so that every entry point (ART ``generate``, the AdverTorch façades'
``perturb``, ``attack_tensor``, the trainers' ``fit`` / ``fit_generator`` / ``validation_data``, the
harness) refuses the same bad input with the same message, naming the argument and saying what was
expected. The checks run once per call on the whole input, never inside an attack loop.

:func:`check_images` refuses: a non-float dtype (``uint8`` images are not rescaled behind the user's
back), anything but 4 dimensions, non-finite values (NaN / Inf) and values outside ``clip_values``
(naming the observed range; nothing is clipped silently).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["check_images", "clip_bounds"]


def _first_index(mask: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def clip_bounds(clip_values) -> tuple[float, float] | None:
    """``(min, max)`` of ART ``clip_values`` (scalars or per-channel arrays), None when unbounded."""
    if clip_values is None:
        return None
    lo, hi = float(np.min(np.asarray(clip_values[0]))), float(np.max(np.asarray(clip_values[1])))
    if not (math.isfinite(lo) or math.isfinite(hi)):
        return None
    return lo, hi


def _range_hint(lo: float, hi: float, mn: float, mx: float) -> str:
    if lo == 0.0 and mn < 0.0:
        return (" (negative values: is x already normalized? mean/std normalization belongs in the "
                "model or the estimator's preprocessing=(mean, std), not in x)")
    if hi <= 1.0 and hi + 0.5 * (hi - lo) < mx <= 255.0:
        return " (this looks like 0-255 data: divide by 255)"
    return ""


def check_images(x: Any, *, name: str = "x", clip_values=None, tol: float = 1e-5) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x`` is a float batch ``N x C x H x W`` of finite
    values inside ``clip_values``.

    Args:
        x: numpy array or torch tensor (checked on its device); an empty batch (``N = 0``) passes.
        name: how the messages call ``x`` (e.g. ``"x_val"``).
        clip_values: ART ``clip_values`` ``(min, max)`` (scalars or per-channel arrays) or None (no
            range check). Values may exceed the range by ``tol`` times its width (float rounding of
            a clip); nothing is clipped silently.
        tol: relative tolerance of the range check.
    """
    is_tensor = isinstance(x, torch.Tensor)
    if not is_tensor:
        x = np.asarray(x)
    shape = tuple(x.shape)
    bounds = clip_bounds(clip_values)
    floating = x.is_floating_point() if is_tensor else np.issubdtype(x.dtype, np.floating)
    if not floating:
        scale = f"[{bounds[0]:g}, {bounds[1]:g}]" if bounds is not None else "the estimator's range"
        raise ValueError(f"{name} has dtype {x.dtype}; images must be floats scaled to clip_values {scale}, "
                         "e.g. x.astype('float32') / 255 for 8-bit images")
    if len(shape) != 4:
        raise ValueError(f"{name} must be a batch of images N x C x H x W, got shape {shape}")
    if shape[0] == 0:
        return
    finite = bool(torch.isfinite(x).all()) if is_tensor else bool(np.isfinite(x).all())
    if not finite:
        bad = (~torch.isfinite(x)).cpu().numpy() if is_tensor else ~np.isfinite(x)
        first = _first_index(bad)
        value = float(x[first])
        raise ValueError(f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or Inf), the first "
                         f"{value} at index {first}; images must be finite")
    if bounds is None:
        return
    lo, hi = bounds
    mn, mx = (float(x.min()), float(x.max()))
    slack = tol * (hi - lo) if math.isfinite(hi - lo) else 0.0
    if mn < lo - slack or mx > hi + slack:
        raise ValueError(f"{name} has values in [{mn:.6g}, {mx:.6g}], outside clip_values [{lo:g}, {hi:g}]"
                         f"{_range_hint(lo, hi, mn, mx)}; scale the images to clip_values (nothing is "
                         "clipped silently)")
