"""art_spatial — spatial adversarial robustness on top of ART, AdverTorch and RobustBench.

A plugin for existing robustness libraries: users keep their ART
(adversarial-robustness-toolbox) pipelines, AdverTorch code and RobustBench checkpoints and gain

1. spatial attacks — flow (local), affine / rotation-translation (global), integrated (both) and
   joint spatial + pixel (:mod:`art_spatial.attacks`);
2. adversarial trainers that are ART ``Trainer`` subclasses — PGD, Spatial, Joint, Ave, Max,
   Pareto AT, CuSP, FAT, GAIRAT (:mod:`art_spatial.trainers`);
3. a RobustBench-style harness scoring sensitivity, local spatial, global spatial and universal
   robustness (:mod:`art_spatial.bench`).

Importing this package is cheap and never imports an optional library: subpackages are loaded on
first attribute access (``art_spatial.attacks``), and AdverTorch / RobustBench are only imported by
the features that use them, through :mod:`art_spatial._compat`.

Example:
    >>> import art_spatial
    >>> isinstance(art_spatial.__version__, str)
    True
"""

from __future__ import annotations

import importlib
import logging
from importlib import metadata as _metadata

try:
    __version__: str = _metadata.version("art-spatial")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY_SUBMODULES = frozenset(
    {
        "analysis",
        "attacks",
        "bench",
        "data",
        "models",
        "theory",
        "threats",
        "trainers",
        "warp",
    }
)

__all__ = ["__version__", *sorted(_LAZY_SUBMODULES)]


def __getattr__(name: str):
    """Import the subpackage ``name`` on first access (PEP 562), keeping ``import art_spatial`` light."""
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """List the eager attributes and the lazily importable subpackages."""
    return sorted(set(globals()) | _LAZY_SUBMODULES)
