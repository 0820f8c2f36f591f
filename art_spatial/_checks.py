"""Validation of user data — images ``x`` and labels ``y`` — at the package's public entry points.

One place for the rules, so that every entry point (ART ``generate``, the AdverTorch façades'
``perturb``, ``attack_tensor``, the trainers' ``fit`` / ``fit_generator`` / ``validation_data``, the
harness) refuses the same bad input with the same message, naming the argument and saying what was
expected. The checks run once per call on the whole input, never inside an attack loop.

:func:`check_images` refuses: a non-float dtype (``uint8`` images are not rescaled behind the user's
back), anything but 4 dimensions, non-finite values (NaN / Inf) and values outside ``clip_values``
(naming the observed range; nothing is clipped silently). :func:`check_labels` turns labels (indices
or one-hot rows) into class indices and refuses the wrong length, non-integer values (never
truncated) and labels outside ``[0, nb_classes)``; :func:`guard_logits` checks the upper bound
against a model's logits when the number of classes is not known beforehand.

The scalar checks — :func:`check_number`, :func:`check_int`, :func:`check_choice`, :func:`check_bool` —
are the one family every hyper-parameter goes through (attacks, threat models, models, the theory
module), so that a bad value is refused with the same words everywhere::

    >>> check_int("max_iter", 10, minimum=1)
    10
    >>> check_number("eps_step", 0.0, positive=True)
    Traceback (most recent call last):
    ...
    ValueError: eps_step must be positive, got 0.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = [
    "check_bool",
    "check_choice",
    "check_images",
    "check_int",
    "check_labels",
    "check_number",
    "clip_bounds",
    "guard_logits",
]


# ------------------------------------------------------------------------------------- scalars
def check_number(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    nonneg: bool = False,
    allow_none: bool = False,
    per_channel: bool = False,
) -> Any:
    """Return ``value`` if it is a finite real number obeying the sign rule, else raise ``ValueError``.

    With ``per_channel=True`` a non-empty list or tuple of numbers (one per channel) is accepted too and
    checked element by element; the message names ``name`` and shows the whole value. ``bool`` is not a
    number here.
    """
    if value is None and allow_none:
        return value
    many = per_channel and isinstance(value, (list, tuple)) and len(value) > 0
    for v in value if many else [value]:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(float(v)):
            raise ValueError(f"{name} must be finite, got {value!r}")
        if positive and v <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
        if nonneg and v < 0:
            raise ValueError(f"{name} must be non-negative, got {value!r}")
    return value


def check_int(name: str, value: Any, *, minimum: int = 0, allow_none: bool = False) -> int | None:
    """Return ``value`` as ``int`` if it is an integer ``>= minimum``, else raise ``ValueError``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        rule = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` naming ``name``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (Python or numpy), else raise ``ValueError`` naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


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
        return (
            " (negative values: is x already normalized? mean/std normalization belongs in the "
            "model or the estimator's preprocessing=(mean, std), not in x)"
        )
    if hi <= 1.0 and hi + 0.5 * (hi - lo) < mx <= 255.0:
        return " (this looks like 0-255 data: divide by 255)"
    return ""


def _dims(shape) -> str:
    return " x ".join(str(int(s)) for s in shape)


def _check_layout(name: str, shape: tuple, input_shape, channels_first: bool) -> None:
    """``x.shape[1:]`` against the estimator's ``input_shape`` (or, without one, a channels-last guess)."""
    if input_shape is None:
        # no estimator (AdverTorch façade, attack_tensor): refuse what is almost surely channels-last
        if channels_first and shape[3] in (1, 3) and shape[1] > 4:
            raise ValueError(
                f"{name} has shape {shape}: it looks channels-last (N x H x W x C); the attacks "
                "take N x C x H x W images: transpose it, e.g. x.permute(0, 3, 1, 2)"
            )
        return
    expected = tuple(int(s) for s in input_shape)
    if tuple(shape[1:]) == expected:
        return
    where = "channels first" if channels_first else "channels last"
    msg = f"{name} has shape {shape} but the estimator expects N x {_dims(expected)} ({where})"
    if len(expected) == 3:
        if channels_first and tuple(shape[1:]) == (expected[1], expected[2], expected[0]):
            msg += (
                "; x looks channels-last: transpose it with x.transpose(0, 3, 1, 2) (or wrap the "
                "model in an estimator with channels_first=False)"
            )
        elif not channels_first and tuple(shape[1:]) == (expected[2], expected[0], expected[1]):
            msg += "; x looks channels-first: transpose it with x.transpose(0, 2, 3, 1)"
    raise ValueError(msg)


def check_images(
    x: Any,
    *,
    name: str = "x",
    input_shape=None,
    channels_first: bool = True,
    clip_values=None,
    tol: float = 1e-5,
) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x`` is a float batch of images, of the estimator's
    shape, finite and inside ``clip_values``.

    Args:
        x: numpy array or torch tensor (checked on its device); an empty batch (``N = 0``) passes
            all but the shape checks.
        name: how the messages call ``x`` (e.g. ``"x_val"``).
        input_shape: the estimator's ``input_shape`` (``C, H, W``, or ``H, W, C`` when
            ``channels_first`` is False); ``x.shape[1:]`` must equal it (the message says when ``x``
            looks transposed). None: no estimator; ``x`` must then not look channels-last (last axis
            of 1 or 3 with more than 4 "channels").
        channels_first: the estimator's layout (ART's ``channels_first``).
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
        raise ValueError(
            f"{name} has dtype {x.dtype}; images must be floats scaled to clip_values {scale}, "
            "e.g. x.astype('float32') / 255 for 8-bit images"
        )
    layout = "N x C x H x W" if channels_first else "N x H x W x C"
    if len(shape) != 4:
        raise ValueError(f"{name} must be a batch of images {layout}, got shape {shape}")
    _check_layout(name, shape, input_shape, channels_first)
    if shape[0] == 0:
        return
    finite = bool(torch.isfinite(x).all()) if is_tensor else bool(np.isfinite(x).all())
    if not finite:
        bad = (~torch.isfinite(x)).cpu().numpy() if is_tensor else ~np.isfinite(x)
        first = _first_index(bad)
        value = float(x[first])
        raise ValueError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or Inf), the first "
            f"{value} at index {first}; images must be finite"
        )
    if bounds is None:
        return
    lo, hi = bounds
    mn, mx = (float(x.min()), float(x.max()))
    slack = tol * (hi - lo) if math.isfinite(hi - lo) else 0.0
    if mn < lo - slack or mx > hi + slack:
        raise ValueError(
            f"{name} has values in [{mn:.6g}, {mx:.6g}], outside clip_values [{lo:g}, {hi:g}]"
            f"{_range_hint(lo, hi, mn, mx)}; scale the images to clip_values (nothing is "
            "clipped silently)"
        )


def check_labels(y: Any, n: int, nb_classes: int | None = None, *, name: str = "y") -> np.ndarray:
    """Class-index labels ``N`` (int64 numpy) from ``y``, or ``ValueError`` naming ``name``.

    Accepted: integer (or integer-valued float) class indices of shape ``N`` or ``N x 1``, and one-hot
    (or score) rows ``N x nb_classes``, reduced to their argmax (each row needs a single largest
    entry). Refused, with a message saying what was expected: another length than ``n`` (with a hint
    when it looks like flattened one-hot labels), bool or non-numeric dtypes, non-integer or
    non-finite values, and labels outside ``[0, nb_classes)`` (only negative ones when ``nb_classes``
    is None — the caller then checks the upper bound, e.g. :func:`guard_logits`).

    Args:
        y: numpy array, torch tensor or sequence.
        n: number of images the labels belong to.
        nb_classes: number of classes, or None when unknown.
        name: how the messages call ``y`` (e.g. ``"y_true"``, ``"y_val"``).
    """
    y = _label_array(y, name)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim == 2:
        return _one_hot_indices(y, n, nb_classes, name)
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be class indices of shape ({n},) or one-hot labels ({n}, classes), "
            f"got shape {y.shape}"
        )
    return _class_indices(y, n, nb_classes, name)


def _label_array(y: Any, name: str) -> np.ndarray:
    """``y`` as a numpy array of an integer or float dtype (bool and non-numeric refused)."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.dtype == np.bool_:
        raise ValueError(
            f"{name} has dtype bool; expected integer class indices (N) or one-hot labels "
            "(N x classes)"
        )
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(
            f"{name} has dtype {y.dtype}; expected integer class indices (N) or one-hot "
            "labels (N x classes)"
        )
    return y


def _one_hot_indices(y: np.ndarray, n: int, nb_classes: int | None, name: str) -> np.ndarray:
    """Class indices (argmax) of one-hot rows ``y`` (``n x nb_classes``, one largest entry a row)."""
    if y.shape[0] != n:
        raise ValueError(
            f"{name} must have one label per example: {y.shape[0]} label rows for {n} images"
        )
    if nb_classes is not None and y.shape[1] != nb_classes:
        raise ValueError(
            f"{name} has shape {y.shape}: one-hot labels need nb_classes = {nb_classes} "
            f"columns (or pass class indices of shape ({n},))"
        )
    if not np.isfinite(y).all():
        raise ValueError(f"{name} (one-hot) contains non-finite values")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    top = y.max(axis=1, keepdims=True)
    ties = (y == top).sum(axis=1) != 1
    if ties.any():
        i = int(np.argmax(ties))
        raise ValueError(
            f"{name} (one-hot) row {i} has no single largest entry ({y[i].tolist()}); "
            "each row must mark one class"
        )
    return y.argmax(axis=1).astype(np.int64)


def _class_indices(y: np.ndarray, n: int, nb_classes: int | None, name: str) -> np.ndarray:
    """``y`` (shape ``N``) as int64 class indices: ``n`` of them, integer-valued, in range."""
    if y.shape[0] != n:
        k = y.shape[0] // n if n else 0
        hint = (
            f" (flattened one-hot labels? pass them as an N x {k} array)"
            if n and k > 1 and y.shape[0] == k * n and (nb_classes is None or k == nb_classes)
            else ""
        )
        raise ValueError(
            f"{name} must have one label per example: {y.shape[0]} labels for {n} images{hint}"
        )
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"{name} must hold integer class indices, got {float(y[i]):g} at index {i} "
                f"(float labels are never truncated)"
            )
    y = y.astype(np.int64)
    upper = math.inf if nb_classes is None else int(nb_classes)
    bad = (y < 0) | (y >= upper)
    if bad.any():
        i = int(np.argmax(bad))
        if nb_classes is None:
            raise ValueError(
                f"{name} has negative labels: {y[i]} at index {i}; labels are class indices "
                "0 .. classes - 1"
            )
        raise ValueError(
            f"{name} has labels outside [0, {nb_classes}): {y[i]} at index {i} "
            f"(nb_classes = {nb_classes}); labels are class indices 0 .. {nb_classes - 1}"
        )
    return y


def guard_logits(model, labels: torch.Tensor, *, name: str = "y"):
    """``model`` wrapped so that its first call checks ``labels < number of logits`` (``ValueError``
    naming ``name`` otherwise) — the upper bound :func:`check_labels` cannot check without
    ``nb_classes``. Costs no extra forward pass; later calls go straight to ``model``.
    """
    top = int(labels.max()) if labels.numel() else -1
    state = {"checked": False}

    def guarded(z):
        out = model(z)
        if not state["checked"]:
            state["checked"] = True
            k = int(out.shape[-1])
            if top >= k:
                raise ValueError(
                    f"{name} has labels outside [0, {k}): {top} (the model outputs {k} "
                    f"logits); labels are class indices 0 .. {k - 1}"
                )
        return out

    return guarded
