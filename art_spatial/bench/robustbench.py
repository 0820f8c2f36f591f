"""RobustBench checkpoints and data, offline.

:func:`load_robustbench_model` builds a registered RobustBench architecture (``robustbench.model_zoo``,
imported through :func:`art_spatial._compat.import_robustbench`) and loads its weights from
``<model_dir>/<dataset>/<threat_model>/<name>.pt`` with ``torch.load(weights_only=True)`` (checkpoint
files are untrusted; RobustBench's own ``load_model`` unpickles arbitrary objects and downloads missing
files). Nothing downloads: a missing file raises :class:`FileNotFoundError` with the expected path.

:func:`load_cifar10_robustbench` returns RobustBench's CIFAR-10 test points (its ``load_cifar10``, first
``n_examples`` in file order) from ``<data_dir>/cifar-10-batches-py``, refusing to download.

Example:
    >>> model = load_robustbench_model("Hendrycks2020AugMix_WRN", "models",
    ...                                threat_model="corruptions")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .._compat import import_robustbench, torch_load_untrusted

logger = logging.getLogger(__name__)

__all__ = ["load_robustbench_model", "load_cifar10_robustbench", "expected_checkpoint_path"]


def _strip_prefix(state_dict: dict, prefix: str) -> dict:
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def _zoo_entry(zoo, ds, tm, name: str) -> dict:
    """The model-zoo entry ``name`` of dataset ``ds`` and threat model ``tm`` (RobustBench enums);
    ``ValueError`` naming ``name`` and a few zoo names when it is not there."""
    models = zoo.model_dicts[ds].get(tm, {})
    if name not in models:
        raise ValueError(
            f"name {name!r} is not in RobustBench's {ds.value}/{tm.value} model zoo "
            f"({len(models)} models, e.g. {sorted(models)[:5]})"
        )
    return models[name]


def expected_checkpoint_path(
    name: str, model_dir, dataset: str = "cifar10", threat_model: str = "Linf"
) -> Path:
    """``<model_dir>/<dataset>/<threat_model>/<name>.pt`` (RobustBench's layout)."""
    return Path(model_dir) / dataset / threat_model / f"{name}.pt"


def load_robustbench_model(
    name: str, model_dir, dataset: str = "cifar10", threat_model: str = "Linf"
) -> torch.nn.Module:
    """A RobustBench model-zoo model with weights from a local checkpoint, in eval mode.

    Args:
        name: model-zoo name (e.g. ``"Standard"``, ``"Carmon2019Unlabeled"``).
        model_dir: base folder; the file must be ``<model_dir>/<dataset>/<threat_model>/<name>.pt``.
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        threat_model: ``"Linf"``, ``"L2"``, ``"corruptions"`` …

    Returns:
        The ``nn.Module`` (inputs in [0, 1]; normalization, if any, is inside the model).

    Raises:
        ValueError: unknown dataset / threat model / name, or an ensemble (several files) entry.
        FileNotFoundError: the checkpoint is missing (the message gives the expected path).
        ImportError: RobustBench is not installed.
    """
    import_robustbench("utils")
    zoo = import_robustbench("model_zoo")
    enums = import_robustbench("model_zoo.enums")
    try:
        ds = enums.BenchmarkDataset(dataset)
    except ValueError:
        raise ValueError(
            f"dataset must be one of {[d.value for d in enums.BenchmarkDataset]}, got {dataset!r}"
        ) from None
    try:
        tm = enums.ThreatModel(threat_model)
    except ValueError:
        raise ValueError(
            f"threat_model must be one of {[t.value for t in enums.ThreatModel]}, got "
            f"{threat_model!r}"
        ) from None
    entry = _zoo_entry(zoo, ds, tm, name)
    if isinstance(entry.get("gdrive_id"), list):
        raise ValueError(
            f"name {name!r} is an ensemble of several checkpoints; not supported offline"
        )
    path = expected_checkpoint_path(name, model_dir, ds.value, tm.value)
    if not path.is_file():
        raise FileNotFoundError(
            f"RobustBench checkpoint for {name!r} not found: expected {str(path)!r} "
            "(art_spatial never downloads; place the file there)"
        )
    model = entry["model"]()
    ckpt = torch_load_untrusted(path, map_location="cpu")
    if isinstance(ckpt, dict) and "last" in ckpt and isinstance(ckpt["last"], dict):
        ckpt = ckpt["last"]
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {str(path)!r} does not hold a state dict")
    state = _strip_prefix(_strip_prefix(state, "module."), "model.")
    try:
        model.load_state_dict(state)
    except RuntimeError:
        # some zoo models wrap the network in a ``model`` attribute (normalization outside)
        model.load_state_dict({f"model.{k}": v for k, v in state.items()})
    logger.info("loaded RobustBench model %s from %s", name, path)
    return model.eval()


def robustbench_architecture(
    name: str, dataset: str = "cifar10", threat_model: str = "Linf"
) -> torch.nn.Module:
    """The architecture of a RobustBench model-zoo entry, freshly initialised (no weights read).

    For training a zoo architecture from scratch (``art-spatial train --model NAME``).

    Raises:
        ValueError: unknown dataset / threat model / name.
        ImportError: RobustBench is not installed.
    """
    zoo = import_robustbench("model_zoo")
    enums = import_robustbench("model_zoo.enums")
    try:
        ds, tm = enums.BenchmarkDataset(dataset), enums.ThreatModel(threat_model)
    except ValueError:
        raise ValueError(
            f"dataset {dataset!r} or threat_model {threat_model!r} is not a RobustBench one"
        ) from None
    return _zoo_entry(zoo, ds, tm, name)["model"]()


def load_cifar10_robustbench(data_dir, n_examples: int | None = None):
    """CIFAR-10 test points through RobustBench's ``load_cifar10`` (``N x 3 x 32 x 32`` in [0, 1], labels).

    Raises:
        FileNotFoundError: ``<data_dir>/cifar-10-batches-py`` is missing or corrupted (no download).
    """
    if n_examples is not None and (
        isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1
    ):
        raise ValueError(f"n_examples must be a positive integer or None, got {n_examples!r}")
    folder = Path(data_dir) / "cifar-10-batches-py"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"CIFAR-10 not found: expected the folder {str(folder)!r} (no download at run time)"
        )
    from torchvision.datasets import CIFAR10

    try:  # integrity check first: RobustBench's loader would try to download a corrupted copy
        CIFAR10(root=os.fspath(data_dir), train=False, download=False)
    except RuntimeError as exc:
        raise FileNotFoundError(
            f"CIFAR-10 in {str(folder)!r} is incomplete or corrupted: {exc}"
        ) from exc
    rb_data = import_robustbench("data")
    x, y = rb_data.load_cifar10(n_examples=n_examples, data_dir=os.fspath(data_dir))
    return x.float(), y.long()
