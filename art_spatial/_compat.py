"""Compatibility layer for the optional integrations (AdverTorch, RobustBench).

Nothing here runs at import time of :mod:`art_spatial`: every optional library is imported inside a
function, the first time a feature needs it, and a missing or broken installation raises an
:class:`ImportError` that names the extra to install.

Upstream breakage absorbed here (seen with torch 2.x):

* advertorch 0.2.3 (its latest release) does ``from torch.autograd.gradcheck import zero_gradients``
  in ``advertorch/attacks/fast_adaptive_boundary.py``; torch removed that helper. We add an
  equivalent function to the *module* ``torch.autograd.gradcheck`` (``sys.modules`` entry — the
  attribute ``torch.autograd.gradcheck`` is the function of the same name) before importing.
* robustbench 1.1.1 does ``from autoattack import AutoAttack`` and
  ``from autoattack.state import EvaluationState`` (``robustbench/eval.py``, imported by
  ``robustbench/__init__.py``), while its PyPI dependency ``pyautoattack`` installs the module
  ``pyautoattack``. We register ``autoattack`` and its submodules as aliases of ``pyautoattack``'s
  in ``sys.modules`` when no real ``autoattack`` is importable. robustbench also imports
  ``pkg_resources``, hence the ``setuptools<81`` pin of the ``robustbench`` extra.
"""

from __future__ import annotations

import collections.abc
import importlib
import importlib.util
import logging
import os
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = [
    "import_advertorch",
    "import_robustbench",
    "install_autoattack_alias",
    "install_zero_gradients_shim",
    "torch_load_untrusted",
    "zero_gradients",
]

logger = logging.getLogger(__name__)

_ADVERTORCH_HINT = "pip install 'art-spatial[advertorch]'"
_ROBUSTBENCH_HINT = "pip install 'art-spatial[robustbench]'"

#: Submodules of ``pyautoattack`` exposed under the name ``autoattack``. robustbench 1.1.1 itself
#: imports only ``autoattack`` and ``autoattack.state``; the others are aliased so that code written
#: against the original ``autoattack`` package (``autoattack.autopgd_base`` ...) works too.
#: The TensorFlow helpers (``utils_tf``, ``utils_tf2``) are deliberately left out.
AUTOATTACK_SUBMODULES = (
    "autoattack",
    "autopgd_base",
    "checks",
    "fab_base",
    "fab_projections",
    "fab_pt",
    "other_utils",
    "square",
    "state",
)


def zero_gradients(x: Any) -> None:
    """Zero the ``.grad`` of a tensor, or of every tensor in a (nested) iterable, in place.

    Re-implementation of the helper torch removed from ``torch.autograd.gradcheck`` (torch < 1.9
    had it); AdverTorch 0.2.3 still imports it. Tensors without a gradient are left alone.

    Args:
        x: a :class:`torch.Tensor` or an iterable (list, tuple, generator) of tensors / iterables.

    Example:
        >>> import torch
        >>> t = torch.ones(2, requires_grad=True)
        >>> t.sum().backward()
        >>> zero_gradients(t)
        >>> t.grad.tolist()
        [0.0, 0.0]
    """
    import torch

    if isinstance(x, torch.Tensor):
        if x.grad is not None:
            x.grad.detach_()
            x.grad.zero_()
    elif isinstance(x, collections.abc.Iterable) and not isinstance(x, (str, bytes)):
        for element in x:
            zero_gradients(element)


def install_zero_gradients_shim() -> None:
    """Make ``from torch.autograd.gradcheck import zero_gradients`` work on torch 2.x.

    Adds :func:`zero_gradients` to the module object ``sys.modules["torch.autograd.gradcheck"]``
    unless that module already provides one. Idempotent.
    """
    import torch.autograd  # noqa: F401  (makes sure the gradcheck module is loaded)

    gradcheck_module = sys.modules.get("torch.autograd.gradcheck")
    if gradcheck_module is None:
        gradcheck_module = importlib.import_module("torch.autograd.gradcheck")
    if not hasattr(gradcheck_module, "zero_gradients"):
        gradcheck_module.zero_gradients = zero_gradients
        logger.debug("added zero_gradients to torch.autograd.gradcheck for advertorch")


def import_advertorch() -> ModuleType:
    """Import and return ``advertorch.attacks``, patched to work on torch 2.x.

    Returns:
        The module ``advertorch.attacks`` (e.g. ``import_advertorch().LinfPGDAttack``).

    Raises:
        ImportError: advertorch is not installed or fails to import; the message names the
            ``advertorch`` extra of ``art-spatial``.

    Example:
        >>> attacks = import_advertorch()  # doctest: +SKIP
        >>> attacks.SpatialTransformAttack  # doctest: +SKIP
    """
    install_zero_gradients_shim()
    try:
        module = importlib.import_module("advertorch.attacks")
    except Exception as exc:  # ImportError, or a broken installation raising anything else
        raise ImportError(
            f"This feature needs AdverTorch 0.2.3, which could not be imported ({exc!r}). "
            f"Install it with: {_ADVERTORCH_HINT}"
        ) from exc
    logger.debug("imported advertorch.attacks from %s", getattr(module, "__file__", "?"))
    return module


def _module_available(name: str) -> bool:
    """Return whether ``name`` can be imported, without importing it (``None`` entries count as no)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def install_autoattack_alias() -> bool:
    """Register ``autoattack`` (and submodules) in ``sys.modules`` as aliases of ``pyautoattack``.

    Does nothing when a real ``autoattack`` package is importable. Idempotent.

    Returns:
        ``True`` if the alias is (now) in place, ``False`` if a real ``autoattack`` is used instead.

    Raises:
        ImportError: neither ``autoattack`` nor ``pyautoattack`` can be imported.
    """
    existing = sys.modules.get("autoattack")
    if existing is not None:
        return getattr(existing, "__name__", "") == "pyautoattack"
    if "autoattack" not in sys.modules and _module_available("autoattack"):
        return False
    package = importlib.import_module("pyautoattack")
    sys.modules["autoattack"] = package
    for sub in AUTOATTACK_SUBMODULES:
        try:
            submodule = importlib.import_module(f"pyautoattack.{sub}")
        except ImportError:  # absent in some pyautoattack release: alias what exists
            logger.debug("pyautoattack.%s not found; not aliased", sub)
            continue
        sys.modules[f"autoattack.{sub}"] = submodule
    logger.info("aliased module 'autoattack' to 'pyautoattack' for robustbench")
    return True


def import_robustbench(submodule: str = "utils") -> ModuleType:
    """Import and return a RobustBench submodule (default ``robustbench.utils``).

    Installs the ``autoattack`` → ``pyautoattack`` alias first (see :func:`install_autoattack_alias`).

    Args:
        submodule: name under ``robustbench`` — ``"utils"`` (``load_model``), ``"data"``
            (``load_cifar10``), ``"model_zoo.enums"`` (``ThreatModel``) ...

    Returns:
        The module ``robustbench.<submodule>``.

    Raises:
        ValueError: ``submodule`` is empty or not a dotted module name.
        ImportError: robustbench or one of its dependencies is missing or broken; the message names
            the ``robustbench`` extra of ``art-spatial``.

    Example:
        >>> rb_utils = import_robustbench()  # doctest: +SKIP
        >>> model = rb_utils.load_model("Standard", model_dir="models", dataset="cifar10",
        ...                             threat_model="Linf")  # doctest: +SKIP
    """
    if (
        not isinstance(submodule, str)
        or not submodule
        or not all(part.isidentifier() for part in submodule.split("."))
    ):
        raise ValueError(f"`submodule` must be a dotted module name, got {submodule!r}")
    try:
        install_autoattack_alias()
        with warnings.catch_warnings():
            # Known, harmless upstream deprecations raised while robustbench imports its
            # dependencies (pkg_resources in robustbench.loaders; torch.jit.interface in timm).
            warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated")
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.interface.* is deprecated")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"timm(\.|$)")
            module = importlib.import_module(f"robustbench.{submodule}")
    except Exception as exc:  # ImportError, or a broken installation raising anything else
        raise ImportError(
            f"This feature needs RobustBench, which could not be imported ({exc!r}). "
            f"Install it with: {_ROBUSTBENCH_HINT}"
        ) from exc
    return module


def torch_load_untrusted(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Load a checkpoint with ``torch.load(..., weights_only=True)``.

    Use it for any file not written by this process (downloaded checkpoints, RobustBench model
    files): ``weights_only=True`` restricts unpickling to tensors and plain containers, so a
    malicious file cannot execute code.

    Args:
        path: checkpoint file.
        map_location: passed to :func:`torch.load` (default ``"cpu"``).

    Returns:
        Whatever the checkpoint holds (usually a state dict).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    import torch

    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {os.fspath(path)!r}")
    return torch.load(path, map_location=map_location, weights_only=True)
