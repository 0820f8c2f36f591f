"""Trainer checkpoints: one file per run, ``checkpoint_dir/last.pt``, replaced atomically after every epoch.

A checkpoint is a ``torch.save`` dict (format 1):

========================  =====================================================================
``format``                1
``trainer``               class name of the trainer that wrote it (a resume must use the same)
``epoch``                 number of completed epochs
``model``                 ``model.state_dict()``
``optimizer``             ``optimizer.state_dict()``
``scheduler``             the LR scheduler's ``state_dict()`` or None
``history``               the trainer's ``history`` (list of per-epoch dicts)
``trainer_state``         the trainer's own state (its ``_state()`` hook: Pareto α and window, ...)
``scaler``                the float16 ``GradScaler`` state or None (may be absent)
``rng``                   global RNG states: ``torch``, ``numpy``, ``python``, ``cuda`` (or None)
========================  =====================================================================

:func:`save_checkpoint` writes it (a temporary file, then ``os.replace``, so a crash never leaves a
half-written ``last.pt``); :func:`read_checkpoint` reads and validates it with messages that say what
to do; :func:`capture_rng` / :func:`restore_rng` handle the RNG entry. The trainer
(:class:`~art_spatial.trainers.base.AdversarialTrainerBase`) decides what goes in and where it goes back.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / CHECKPOINT_NAME
    >>> net = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> save_checkpoint(path, trainer="MyTrainer", epoch=3, model=net.state_dict(),
    ...                 optimizer=opt.state_dict(), history=[{"epoch": 1}])
    >>> state = read_checkpoint(path, "MyTrainer")
    >>> state["epoch"], state["history"], sorted(state["rng"])
    (3, [{'epoch': 1}], ['cuda', 'numpy', 'python', 'torch'])
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import torch_save_atomic

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "read_checkpoint",
    "check_checkpoint_path",
    "checkpoint_note",
    "capture_rng",
    "restore_rng",
]

#: file name of the checkpoint written to ``checkpoint_dir`` after every epoch
CHECKPOINT_NAME = "last.pt"

#: version of the layout written by :func:`save_checkpoint`
CHECKPOINT_FORMAT = 1

#: entries every checkpoint has (``format`` and ``scaler`` are optional when reading)
CHECKPOINT_KEYS = frozenset(
    {"trainer", "epoch", "model", "optimizer", "scheduler", "history", "trainer_state", "rng"}
)

_REMEDY = (
    "delete it (or move it away) and resume again to start from epoch 0, or train with "
    "resume=False (the next checkpoint replaces it)"
)


def capture_rng() -> dict[str, Any]:
    """The global RNG states a resume restores: ``torch``, ``numpy``, ``python`` and ``cuda`` (None
    without CUDA)."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(rng: dict[str, Any]) -> None:
    """Restore the states of :func:`capture_rng` (the CUDA states only where CUDA is available)."""
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_checkpoint(
    path: Path,
    *,
    trainer: str,
    epoch: int,
    model: dict,
    optimizer: dict,
    history: list,
    scheduler: dict | None = None,
    trainer_state: dict | None = None,
    scaler: dict | None = None,
) -> None:
    """Write a format-1 checkpoint (the module docstring) to ``path`` atomically, with the current RNG
    states; the arguments are state dicts, ``trainer`` the writing class's name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "trainer": trainer,
        "epoch": int(epoch),
        "model": model,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "history": history,
        "trainer_state": {} if trainer_state is None else trainer_state,
        "scaler": scaler,
        "rng": capture_rng(),
    }
    torch_save_atomic(state, path)


def read_checkpoint(path: Path, trainer: str, map_location=None) -> dict[str, Any]:
    """Read and validate the checkpoint at ``path`` written by the trainer class named ``trainer``.

    Raises:
        ValueError: the file cannot be read (truncated, empty, not a ``torch.save`` file), it is not a
            trainer checkpoint (e.g. a bare ``state_dict``), or another trainer class wrote it; the
            message says how to recover.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)  # our own file
    except Exception as err:  # truncated / empty / garbage: torch and pickle raise many types
        raise ValueError(
            f"cannot read the trainer checkpoint {path} ({type(err).__name__}: {err}); it is "
            f"truncated, empty or not a checkpoint (e.g. an interrupted copy): {_REMEDY}"
        ) from err
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= set(state):
        missing = CHECKPOINT_KEYS - set(state) if isinstance(state, dict) else CHECKPOINT_KEYS
        raise ValueError(
            f"{path} is not a trainer checkpoint (it lacks the entries {sorted(missing)}; "
            f"e.g. a bare model state_dict): {_REMEDY}"
        )
    fmt = state.get("format", CHECKPOINT_FORMAT)
    if fmt != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} has checkpoint format {fmt!r}; this version reads format {CHECKPOINT_FORMAT}: "
            f"{_REMEDY}"
        )
    if state.get("trainer") != trainer:
        raise ValueError(f"checkpoint {path} was written by {state.get('trainer')}, not {trainer}")
    return state


def check_checkpoint_path(path: Path) -> None:
    """Refuse, before any training, a checkpoint path that could be neither read nor written."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"the trainer checkpoint {path} is a directory, not a checkpoint file: remove or rename it "
            "(training then starts from epoch 0), or choose another checkpoint_dir"
        )
    if path.parent.exists() and not path.parent.is_dir():
        raise ValueError(
            f"checkpoint_dir {path.parent} is a file, not a directory: remove or rename it, or choose "
            "another checkpoint_dir"
        )


def checkpoint_note(ckpt_dir: Path | None, epoch: int) -> str:
    """What a stop during epoch ``epoch`` (0-based, = epochs completed and checkpointed) left on disk.

    >>> checkpoint_note(None, 3)
    'no checkpoint is kept (checkpoint_dir=None)'
    """
    if ckpt_dir is None:
        return "no checkpoint is kept (checkpoint_dir=None)"
    path = Path(ckpt_dir) / CHECKPOINT_NAME
    if epoch == 0:
        return f"nothing was written to {path}"
    return f"{path} was not overwritten (it holds epoch {epoch})"
