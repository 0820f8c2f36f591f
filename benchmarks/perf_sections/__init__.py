"""Sections of ``benchmarks/perf_attacks.py``.

Each section is a module ``perf_sections/<name>.py`` exposing ``run(quick: bool) -> dict`` (JSON-able;
numbers only, no printing needed — the driver prints a summary and writes the JSON with machine
metadata). Register a new section by adding its name to ``SECTIONS`` in ``perf_attacks.py``.

Shared helpers for sections live here: :func:`median_time` (warmup + median of repeats) and
:func:`trained_smallcnn` (the natural SmallCNN of the tests, cached on disk).
"""

from __future__ import annotations

import hashlib
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
#: the recipe and cache of tests/conftest.py, so the benchmark and the tests share one trained model
SMALLCNN_RECIPE = dict(epochs=4, batch_size=64, lr=1e-3, seed=0)
MODEL_CACHE = REPO_ROOT / ".pytest_cache_models"


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; median / min / all wall times (s)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def trained_smallcnn() -> torch.nn.Module:
    """The naturally trained SmallCNN on MNIST-5k (same recipe and cache file as the test suite)."""
    from art_spatial.data import load_mnist5k
    from art_spatial.models import SmallCNN, train_natural

    key = hashlib.sha1(repr(("smallcnn-natural", SMALLCNN_RECIPE)).encode()).hexdigest()[:10]
    path = MODEL_CACHE / f"smallcnn-natural-{key}.pt"
    torch.manual_seed(0)
    model = SmallCNN()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        logger.info("loaded cached SmallCNN %s", path)
    else:
        x, y = load_mnist5k("train", seed=0)
        train_natural(model, x, y, verbose=False, **SMALLCNN_RECIPE)
        MODEL_CACHE.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)
        logger.info("trained and cached SmallCNN %s", path)
    return model.eval()
