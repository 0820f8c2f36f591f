"""Mixed precision (``torch.autocast``) for attacks, training and evaluation.

The model's forward runs under ``torch.autocast`` in bfloat16 or float16; everything the package owns
stays in float32: the images, the attack parameters (flow, affine, pixel δ), their steps and
projections onto the budget, and the logits handed to the losses (cast back to float32). Only the
model's matmuls and convolutions see the low precision, so a budget is respected exactly as in float32.

* :class:`AutocastModule` wraps any ``nn.Module`` (evaluation, attacks: ``art-spatial evaluate --amp``);
* the trainers take ``amp_dtype`` (:class:`~art_spatial.trainers.AdversarialTrainerBase`), with a
  ``torch.amp.GradScaler`` for float16.

Example:
    >>> import torch
    >>> net = AutocastModule(torch.nn.Linear(4, 3), "bfloat16")
    >>> net(torch.rand(2, 4)).dtype
    torch.float32
"""

from __future__ import annotations

import contextlib
import logging

import torch

logger = logging.getLogger(__name__)

__all__ = ["AMP_DTYPES", "resolve_amp_dtype", "autocast", "AutocastModule", "add_amp_option"]

#: accepted names -> dtype
AMP_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_amp_dtype(value, name: str = "amp_dtype") -> torch.dtype | None:
    """``None`` / ``"bfloat16"`` (``"bf16"``) / ``"float16"`` (``"fp16"``) or a torch dtype -> dtype.

    >>> resolve_amp_dtype("bf16")
    torch.bfloat16
    """
    if value is None:
        return None
    if value in (torch.bfloat16, torch.float16):
        return value
    if isinstance(value, str) and value.lower() in AMP_DTYPES:
        return AMP_DTYPES[value.lower()]
    raise ValueError(f"{name} must be None, 'bfloat16' or 'float16', got {value!r}")


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """``torch.autocast`` on ``device``'s type in ``dtype``; a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    dev = torch.device(device).type
    return torch.autocast(device_type=dev, dtype=dtype)


class AutocastModule(torch.nn.Module):
    """``model`` with its forward under ``torch.autocast(dtype)``; returns float32 outputs.

    Args:
        model: any module ``N x C x H x W -> logits``.
        dtype: ``"bfloat16"`` or ``"float16"`` (see :func:`resolve_amp_dtype`).

    The wrapped model is ``self.model`` (its ``state_dict`` keys gain the prefix ``model.``); inputs
    keep their dtype (float32) and the output is cast to float32, so attacks built on top keep their
    parameters, steps and projections in float32.
    """

    def __init__(self, model: torch.nn.Module, dtype="bfloat16"):
        super().__init__()
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.amp_dtype = resolve_amp_dtype(dtype, "dtype")
        if self.amp_dtype is None:
            raise ValueError("dtype must be 'bfloat16' or 'float16', got None")
        for attr in ("input_shape",):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device, self.amp_dtype):
            out = self.model(x)
        return out.float()


def add_amp_option(parser, help: str) -> None:
    """Add ``--amp {bfloat16,float16}`` (default None: float32) to an ``argparse`` parser: the mixed
    precision of the model's forward passes; shared by the subcommands that run a model (``train``,
    ``evaluate``).

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser()
        >>> add_amp_option(parser, "precision of the forward passes")
        >>> parser.parse_args(["--amp", "bfloat16"]).amp
        'bfloat16'
    """
    parser.add_argument("--amp", choices=("bfloat16", "float16"), default=None, help=help)
