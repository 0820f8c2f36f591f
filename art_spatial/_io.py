"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A reader (a resumed evaluation, a second process, a crash handler) sees either the old file or the new
one, never a truncated one. Every JSON file of the package (reports, evaluation states, leaderboard
entries, training summaries) is written by :func:`write_json_atomic`, every weight or checkpoint file by
:func:`torch_save_atomic`.

Example:
    >>> import json, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> write_json_atomic(os.path.join(folder, "a.json"), {"acc": float("nan"), "n": 3})
    >>> open(os.path.join(folder, "a.json")).read()
    '{\\n  "acc": null,\\n  "n": 3\\n}\\n'
    >>> sorted(os.listdir(folder))  # no temporary left behind
    ['a.json']
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["to_jsonable", "write_json_atomic", "write_bytes_atomic", "torch_save_atomic"]


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays and torch tensors as Python numbers and lists, non-string
    keys as strings and every non-finite float (NaN, ±Inf) as None, recursively.

    JSON has no NaN: other readers (JavaScript, jq) refuse the ``NaN`` token, so it is written ``null``.

    >>> to_jsonable({1: (0.5, float("inf"))})
    {'1': [0.5, None]}
    """
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else str(k)): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # a torch tensor
        return to_jsonable(obj.detach().cpu().tolist())
    if hasattr(obj, "tolist") and type(obj).__module__ == "numpy":  # numpy scalar or array
        return to_jsonable(obj.tolist())
    return obj


def _replace_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then move it onto ``path``; the
    temporary is removed when ``write`` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(os.fspath(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename); creates the folder."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    _replace_atomically(path, write)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as strict JSON (indent 2, a final newline; :func:`to_jsonable` first, so NaN is
    ``null``) to ``path`` atomically; creates the folder."""
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` atomically (a state dict, a checkpoint); creates the folder."""
    import torch

    _replace_atomically(path, lambda tmp: torch.save(obj, tmp))
