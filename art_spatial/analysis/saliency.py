"""SmoothGrad saliency maps and the skewness of saliency-map differences (Pareto AT §3.2).

Paper: Pareto Adversarial Robustness (journal), §3.2, Eq. 10, Figures 4-5; SmoothGrad
(Smilkov et al. 2017).

* :func:`smoothgrad` — ``S(x) = (1/n) Σ_i ∂f_θ^y(x_i)/∂x_i`` with ``x_i = x + q_i``,
  ``q_i ~ N(0, σ²)`` i.i.d. (Eq. 10), ``f^y`` the *logit* of class ``y``; ``σ`` defaults to
  ``0.1 · (x_max − x_min)`` computed per image (the paper's ``σ/(x_max − x_min) = 0.1``), ``n = 100``.
* :func:`saliency_skewness` — per image, the skewness of the pixel-wise difference of two models'
  saliency maps, and its median over the set (Fig. 5).
* :func:`pixel_skewness` — biased Fisher skewness per row, ``scipy.stats.skew(..., bias=True)``.
* :func:`saliency_figure` — saliency maps of several models side by side (Fig. 4) as a PNG.

Convention: images ``N x C x H x W`` (any range); labels ``N`` int64 class indices; models are
``nn.Module`` / callables mapping images to logits, or an ART ``PyTorchClassifier`` (differentiated
through its preprocessing). Returned maps are detached tensors shaped like ``x`` on ``x``'s device.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 2])
    >>> smoothgrad(model, x, y, n=8).shape
    torch.Size([2, 1, 4, 4])
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .._checks import check_int, check_number
from ..attacks.base import model_eval
from ._common import check_xy, model_logits_fn
from ._figures import class_label, hide_ticks, pyplot, save_figure, show_image

logger = logging.getLogger(__name__)

__all__ = [
    "smoothgrad",
    "pixel_skewness",
    "saliency_skewness",
    "saliency_figure",
    "normalize_saliency",
]

NORMALIZATIONS = ("max", "none")


def smoothgrad(
    model,
    x,
    y,
    n: int = 100,
    sigma: float | None = None,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """SmoothGrad saliency map (Pareto AT Eq. 10): mean input-gradient of the class-``y`` logit.

    ``S(x) = (1/n) Σ_{i=1..n} ∂f^y(x + q_i)/∂x``, ``q_i ~ N(0, σ² I)``. All ``N · n`` noisy copies go
    through the model in chunks of ``batch_size`` (the model runs in eval mode with frozen parameters).
    The noise of image ``k`` is drawn as one ``n x C x H x W`` block from the generator, images in
    order, so the result does not depend on ``batch_size``.

    Args:
        model: ``nn.Module`` / callable ``x -> logits`` or ART ``PyTorchClassifier``.
        x: images ``N x C x H x W`` (tensor or array; not modified).
        y: class indices ``N`` (or one-hot ``N x K``).
        n: number of noisy copies per image (``≥ 1``).
        sigma: noise standard deviation in input units, or ``None`` for ``0.1 · (max − min)`` of each
            image. ``sigma = 0`` with ``n = 1`` gives the plain gradient.
        batch_size: model inputs per forward/backward.
        generator: torch CPU generator for the noise (default: a fresh one seeded with ``seed``).
        seed: seed of the default generator.

    Returns:
        Tensor shaped like ``x`` (same dtype and device), detached.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(1, 1, 2, 2)
        >>> s = smoothgrad(model, x, torch.tensor([1]), n=1, sigma=0.0)
        >>> bool(torch.allclose(s.flatten(), model[1].weight[1]))
        True
    """
    x, y = check_xy(x, y)
    check_int("n", n, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    sig = _noise_scale(x, sigma)
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed))
    logits, module = model_logits_fn(model)
    num, per_image = x.shape[0], x.shape[1:]
    out = torch.zeros_like(x)
    images_per_group = max(1, batch_size // n)
    with model_eval(module), torch.enable_grad():
        for start in range(0, num, images_per_group):
            stop = min(num, start + images_per_group)
            copies, idx = _noisy_copies(x, sig, start, stop, n, generator)
            grads = _logit_gradients(logits, copies, y[idx], batch_size)
            out[start:stop] = grads.view(stop - start, n, *per_image).mean(1)
    return out.detach()


def _noise_scale(x: torch.Tensor, sigma: float | None) -> torch.Tensor:
    """Per-image noise standard deviation ``N``: ``sigma``, or ``0.1 · (max − min)`` when ``None``."""
    if sigma is None:
        flat = x.detach().flatten(1)
        return 0.1 * (flat.amax(1) - flat.amin(1))
    check_number("sigma", sigma, nonneg=True)
    return torch.full((x.shape[0],), float(sigma), device=x.device, dtype=x.dtype)


def _noisy_copies(
    x: torch.Tensor, sig: torch.Tensor, start: int, stop: int, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy copies of each image ``start .. stop - 1`` (in order) and their image indices.

    The noise of each image is one ``n x C x H x W`` block drawn from ``generator`` on the CPU.
    """
    per_image = x.shape[1:]
    noise = torch.cat(
        [
            torch.randn((n, *per_image), generator=generator, dtype=torch.float32)
            for _ in range(start, stop)
        ]
    ).to(device=x.device, dtype=x.dtype)
    idx = torch.arange(start, stop, device=x.device).repeat_interleave(n)
    return x.detach()[idx] + sig[idx].view(-1, *([1] * len(per_image))) * noise, idx


def _logit_gradients(logits, copies: torch.Tensor, labels: torch.Tensor, batch_size: int):
    """Input gradients of the ``labels`` logits at ``copies``, ``batch_size`` inputs at a time."""
    grads = torch.empty_like(copies)
    for c0 in range(0, copies.shape[0], batch_size):
        chunk = copies[c0 : c0 + batch_size].clone().requires_grad_(True)
        logit = logits(chunk).gather(1, labels[c0 : c0 + batch_size, None]).sum()
        grads[c0 : c0 + batch_size] = torch.autograd.grad(logit, chunk)[0]
    return grads


_SMOOTHGRAD_KEYS = ("n", "sigma", "batch_size", "seed")


def _smoothgrad_settings(kwargs: dict) -> dict:
    """``kwargs`` (a subset of ``n``, ``sigma``, ``batch_size``, ``seed``) completed with
    :func:`smoothgrad`'s defaults."""
    unknown = sorted(set(kwargs) - set(_SMOOTHGRAD_KEYS))
    if unknown:
        raise ValueError(
            f"the SmoothGrad settings are {list(_SMOOTHGRAD_KEYS)}, got unknown {unknown}"
        )
    params = inspect.signature(smoothgrad).parameters
    return {key: kwargs.get(key, params[key].default) for key in _SMOOTHGRAD_KEYS}


def pixel_skewness(values) -> np.ndarray:
    """Biased Fisher skewness ``m3 / m2^{3/2}`` of each row (``scipy.stats.skew(v, axis=1)``).

    Args:
        values: ``N x ...`` array or tensor; each example's values are flattened.

    Returns:
        ``N`` float64 array; ``nan`` for rows with zero variance (as scipy).

    Example:
        >>> round(float(pixel_skewness(np.array([[0.0, 0.0, 0.0, 1.0]]))[0]), 4)
        1.1547
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 1 or v.shape[0] == 0:
        raise ValueError("values must have at least one row")
    v = v.reshape(v.shape[0], -1)
    mean = v.mean(axis=1, keepdims=True)
    d = v - mean
    m2 = np.mean(d**2, axis=1)
    m3 = np.mean(d**3, axis=1)
    # scipy treats a row as constant when its variance is at float round-off level of its mean
    const = m2 <= (np.finfo(np.float64).eps * mean[:, 0]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = m3 / m2**1.5
    skew[const] = np.nan
    return skew


def normalize_saliency(
    s: torch.Tensor, absolute: bool = True, normalize: str = "max"
) -> torch.Tensor:
    """Prepare maps for comparison: ``|S|`` if ``absolute``; ``"max"`` divides each map by its max ``|S|``."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    s = s.abs() if absolute else s
    if normalize == "max":
        scale = s.flatten(1).abs().amax(1).clamp_min(torch.finfo(s.dtype).tiny)
        s = s / scale.view(-1, *([1] * (s.ndim - 1)))
    return s


def saliency_skewness(
    model_a,
    model_b,
    x,
    y,
    *,
    absolute: bool = True,
    normalize: str = "max",
    return_maps: bool = False,
    **smoothgrad_kwargs,
):
    """Median skewness of the saliency-map difference of two models (Pareto AT §3.2, Fig. 5).

    Per image: ``D = S_b − S_a`` (pixel-wise, after :func:`normalize_saliency`), skewness of ``D``'s
    pixel values (:func:`pixel_skewness`, scipy semantics); the result is the median over the images.
    With ``model_a`` the model under study and ``model_b`` the reference it is compared with, a
    *negative* value means ``model_a``'s map has the heavier upper tail, i.e. is sparser (the paper's
    reading: "negative skewness indicates that the original saliency map is sparse as compared to the
    model under consideration"). Identical maps give skewness ``nan`` (zero variance); such images are
    ignored by the median.

    The paper does not state how maps of different models are made comparable; we take absolute values
    (SmoothGrad's visualization convention — a signed map's sparsity shows in both tails, which
    skewness cannot see) and divide each map by its maximum (``absolute`` / ``normalize`` switch this
    off). Both models see the same noise (same ``seed``).

    Args:
        model_a, model_b: models (see :func:`smoothgrad`).
        x, y: images ``N x C x H x W`` and labels ``N``.
        absolute: compare ``|S|``.
        normalize: ``"max"`` or ``"none"``.
        return_maps: also return ``(S_a, S_b)``.
        **smoothgrad_kwargs: ``n``, ``sigma``, ``batch_size``, ``seed`` of :func:`smoothgrad`
            (its defaults otherwise).

    Returns:
        ``(median, per_image)`` — a float and an ``N`` float64 array; plus ``(S_a, S_b)`` if
        ``return_maps``.

    Example:
        >>> import torch
        >>> a = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
        >>> b = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
        >>> med, per = saliency_skewness(a, b, torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2]), n=4)
        >>> per.shape
        (3,)
    """
    x, y = check_xy(x, y)
    params = _smoothgrad_settings(smoothgrad_kwargs)
    s_a = smoothgrad(model_a, x, y, **params)
    s_b = smoothgrad(model_b, x, y, **params)
    diff = normalize_saliency(s_b, absolute, normalize) - normalize_saliency(
        s_a, absolute, normalize
    )
    per = pixel_skewness(diff)
    med = float(np.nanmedian(per)) if np.any(np.isfinite(per)) else float("nan")
    if return_maps:
        return med, per, (s_a, s_b)
    return med, per


def saliency_figure(
    models: Mapping[str, object],
    x,
    y,
    path,
    *,
    absolute: bool = True,
    class_names: Sequence[str] | None = None,
    dpi: int = 120,
    **smoothgrad_kwargs,
) -> Path:
    """Saliency maps of several models side by side (Pareto AT Fig. 4), written as a PNG.

    One row per image: the input, then each model's SmoothGrad map (``|S|`` summed over channels when
    ``absolute``, each map scaled to its own maximum; signed maps use a diverging colormap).

    Args:
        models: ordered mapping column title -> model.
        x, y: images ``N x C x H x W`` (displayed in ``[0, 1]``) and labels ``N``.
        path: output PNG path (parent folders created).
        absolute: show ``|S|`` (default) or the signed map.
        class_names: optional names of the classes for the row labels.
        dpi: resolution.
        **smoothgrad_kwargs: ``n``, ``sigma``, ``batch_size``, ``seed`` of :func:`smoothgrad`
            (its defaults otherwise).

    Returns:
        The written path.
    """
    if not models:
        raise ValueError("models must not be empty")
    x, y = check_xy(x, y)
    params = _smoothgrad_settings(smoothgrad_kwargs)
    maps = [smoothgrad(m, x, y, **params).cpu() for m in models.values()]
    num, cols = x.shape[0], 1 + len(models)
    fig, axes = pyplot().subplots(num, cols, figsize=(1.8 * cols, 1.8 * num + 0.3), squeeze=False)
    xs = x.detach().cpu()
    for i in range(num):
        show_image(axes[i, 0], xs[i].permute(1, 2, 0).numpy())
        axes[i, 0].set_ylabel(f"y = {class_label(class_names, int(y[i]))}", fontsize=9)
        for k, s in enumerate(maps, start=1):
            _show_saliency(axes[i, k], s[i], absolute)
        for ax in axes[i]:
            hide_ticks(ax)
    for k, name in enumerate(["input", *models]):
        axes[0, k].set_title(name, fontsize=10)
    sigma = params["sigma"]
    sig_txt = "0.1·(max−min)" if sigma is None else f"{sigma:g}"
    fig.suptitle(f"SmoothGrad saliency (n={params['n']}, σ={sig_txt})", fontsize=10)
    path = save_figure(fig, path, dpi)
    logger.info("saliency figure written to %s", path)
    return path


def _show_saliency(ax, s: torch.Tensor, absolute: bool) -> None:
    """Draw one map ``C x H x W`` summed over channels: ``|S|`` scaled to 1 (hot), or signed (bwr)."""
    if absolute:
        m = s.abs().sum(0).numpy()
        ax.imshow(m / max(m.max(), 1e-12), cmap="hot", vmin=0, vmax=1)
    else:
        m = s.sum(0).numpy()
        lim = max(np.abs(m).max(), 1e-12)
        ax.imshow(m, cmap="bwr", vmin=-lim, vmax=lim)
