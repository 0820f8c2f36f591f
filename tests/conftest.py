"""Shared fixtures: MNIST-5k splits and a SmallCNN trained once per session (cached on disk).

The trained model is cached under ``.pytest_cache_models/`` keyed by the training recipe, so repeated
local runs skip training; CI starts from a clean clone and trains it once (about 30 s on 2 cores).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

# thread count: torch default (all cores) unless OMP_NUM_THREADS says otherwise

CACHE = Path(__file__).resolve().parent.parent / ".pytest_cache_models"
RECIPE = dict(epochs=4, batch_size=64, lr=1e-3, seed=0)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long tests, excluded from the fast tier")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    On the shared 2-core machine two OpenMP threads made the attack tests 10-20x slower, and CPU
    kernels take different small-batch paths with another thread count, so exact comparisons (batch
    invariance, determinism, fingerprints) are made on one thread.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def mnist_train():
    from art_spatial.data import load_mnist5k

    return load_mnist5k("train", seed=0)


@pytest.fixture(scope="session")
def mnist_test():
    from art_spatial.data import load_mnist5k

    return load_mnist5k("test", seed=0)


def _train_cached(name: str, build, train_fn):
    CACHE.mkdir(exist_ok=True)
    key = hashlib.sha1(repr((name, RECIPE)).encode()).hexdigest()[:10]
    path = CACHE / f"{name}-{key}.pt"
    model = build()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        train_fn(model)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)
    model.eval()
    return model


@pytest.fixture(scope="session")
def trained_smallcnn(mnist_train):
    """A naturally trained SmallCNN (~97 % on the 1000 MNIST-5k test digits), in eval mode."""
    from art_spatial.models import SmallCNN, train_natural

    x, y = mnist_train

    def build():
        torch.manual_seed(0)
        return SmallCNN()

    return _train_cached(
        "smallcnn-natural", build, lambda m: train_natural(m, x, y, verbose=False, **RECIPE)
    )


@pytest.fixture()
def smallcnn_classifier(trained_smallcnn):
    """A fresh ART PyTorchClassifier around a copy of the trained SmallCNN (safe to mutate)."""
    import copy

    from art_spatial.models import make_classifier

    return make_classifier(copy.deepcopy(trained_smallcnn))


@pytest.fixture(scope="session")
def test_batch(mnist_test):
    """200 test digits (20 per class), a fixed subset for attack tests."""
    x, y = mnist_test
    idx = np.concatenate([np.flatnonzero(y == c)[:20] for c in range(10)])
    return x[idx], y[idx]


def _evaluate_argv(folder: Path, model: torch.nn.Module, suite: dict, *options: str) -> list[str]:
    weights, suite_file = folder / "m.pt", folder / "suite.json"
    torch.save(model.state_dict(), weights)
    suite_file.write_text(json.dumps(suite))
    return [
        "evaluate",
        "--state-dict",
        str(weights),
        "--arch",
        "smallcnn",
        "--suite",
        str(suite_file),
        *options,
    ]


@pytest.fixture()
def evaluate_argv():
    """``evaluate_argv(folder, model, suite, *options)``: the ``art-spatial evaluate`` arguments for
    ``model`` (a SmallCNN) on the suite dict ``suite``. It writes the state dict and the suite JSON into
    ``folder`` and returns ``["evaluate", "--state-dict", ..., "--arch", "smallcnn", "--suite", ...,
    *options]``."""
    return _evaluate_argv
