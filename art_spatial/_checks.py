"""Validation of user data — images ``x`` and labels ``y`` — at the package's public entry points.

One place for the rules, so that every entry point (ART ``generate``, the AdverTorch façades'
``perturb``, ``attack_tensor``, the trainers' ``fit`` / ``fit_generator`` / ``validation_data``, the
harness) refuses the same bad input with the same message, naming the argument and saying what was
expected. The checks run once per call on the whole input, never inside an attack loop.

:func:`check_images` refuses anything but 4 dimensions and non-finite values (NaN / Inf).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["check_images"]


def _first_index(mask: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def check_images(x: Any, *, name: str = "x") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x`` is a batch ``N x C x H x W`` of finite values.

    ``x`` is a numpy array or a torch tensor (checked on its device); an empty batch (``N = 0``) passes.
    """
    is_tensor = isinstance(x, torch.Tensor)
    if not is_tensor:
        x = np.asarray(x)
    shape = tuple(x.shape)
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
