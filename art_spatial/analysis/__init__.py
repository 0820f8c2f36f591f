"""Analysis tools from the papers: saliency maps and their skewness, loss landscapes, example gallery.

* :mod:`art_spatial.analysis.saliency` — SmoothGrad (Pareto AT Eq. 10), skewness of saliency-map
  differences (Fig. 5), side-by-side saliency figure (Fig. 4).
* :mod:`art_spatial.analysis.landscape` — loss of the integrated spatial attack around a point in
  ``(w_F, w_RT)`` space along two filter-normalized random directions (Fig. 2).
* :mod:`art_spatial.analysis.gallery` — clean / flow / affine / integrated / joint adversarial examples
  with predictions and realised displacements (Fig. 1), used by ``art-spatial show``.

The trade-off theory of the CuSP paper lives in :mod:`art_spatial.theory`. Submodules are imported on
first attribute access (matplotlib is only needed by the figure functions).

>>> from art_spatial.analysis import smoothgrad, loss_landscape, adversarial_gallery
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "smoothgrad": "saliency",
    "pixel_skewness": "saliency",
    "saliency_skewness": "saliency",
    "saliency_figure": "saliency",
    "normalize_saliency": "saliency",
    "loss_landscape": "landscape",
    "landscape_before_after": "landscape",
    "plot_landscapes": "landscape",
    "LandscapeResult": "landscape",
    "adversarial_gallery": "gallery",
    "default_gallery_attacks": "gallery",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import the submodule defining ``name`` on first access (PEP 562)."""
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in ("saliency", "landscape", "gallery"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | {"saliency", "landscape", "gallery"})
