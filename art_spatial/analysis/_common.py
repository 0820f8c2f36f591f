"""Input handling shared by the analysis tools: images and labels, models."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..attacks.base import estimator_logits_fn, model_eval


def model_logits_fn(model) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.nn.Module | None]:
    """(x -> logits, module to freeze) for an nn.Module, an ART PyTorchClassifier or a callable."""
    if hasattr(model, "_model") and hasattr(model, "_apply_preprocessing"):
        return estimator_logits_fn(model), model.model
    if isinstance(model, torch.nn.Module):
        return model, model
    if callable(model):
        return model, None
    raise ValueError(
        f"model must be an nn.Module, an ART PyTorchClassifier or a callable, got "
        f"{type(model).__name__}"
    )


def check_xy(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``N x C x H x W`` as a tensor and labels (indices or one-hot) as int64 indices ``N``."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if x.ndim != 4:
        raise ValueError(f"x must be N x C x H x W, got shape {tuple(x.shape)}")
    if not isinstance(y, torch.Tensor):
        y = torch.as_tensor(np.asarray(y))
    if y.ndim == 2:  # one-hot
        y = y.argmax(1)
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    return x, y.long().to(x.device)


def classifier_for(model: torch.nn.Module, x: torch.Tensor, clip_values):
    """An ART classifier around ``model`` for images shaped like ``x`` (classes from one forward)."""
    from ..models import make_classifier

    with torch.no_grad(), model_eval(model):
        nb = int(model(x[:1]).shape[1])
    return make_classifier(
        model, input_shape=tuple(x.shape[1:]), nb_classes=nb, clip_values=clip_values
    )
