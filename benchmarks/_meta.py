"""Machine metadata and atomic JSON output shared by every benchmark script.

API (stable, imported by other benchmarks):

* :func:`machine_metadata` -> dict: git commit (and whether the tree is dirty), date (UTC, ISO 8601),
  python / torch / kornia / ART / advertorch / numpy versions, torch intra-op threads,
  ``OMP_NUM_THREADS``, CPU model and logical core count, platform.
* :func:`write_json(path, payload)`: writes ``payload`` as indented JSON through a temporary file in
  the same directory and ``os.replace`` (atomic: readers never see a half-written file). Parent
  directories are created. NumPy scalars / arrays and tuples are converted.

Example:
    >>> meta = machine_metadata()
    >>> sorted(k for k in ("commit", "torch", "threads") if k in meta)
    ['commit', 'threads', 'torch']
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata as _md
from pathlib import Path
from typing import Any

__all__ = ["machine_metadata", "write_json", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(dist: str) -> str | None:
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_metadata() -> dict:
    """Commit, versions, threads, CPU and date of this run (see the module docstring)."""
    try:
        import torch

        threads = int(torch.get_num_threads())
    except ImportError:  # pragma: no cover - torch is a hard dependency
        threads = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "kornia": _version("kornia"),
        "art": _version("adversarial-robustness-toolbox"),
        "advertorch": _version("advertorch"),
        "numpy": _version("numpy"),
        "threads": threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
    }


def _default(obj: Any):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def write_json(path, payload: dict) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file + ``os.replace``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, sort_keys=False, default=_default, allow_nan=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
