"""Shared pieces of the reproduction benchmarks (reproduce_pareto_mnist, relationships, joint_ablation, cusp).

* :func:`base_parser` — ``--quick``, ``--seed``, ``--out``, ``--cache``, ``--threads`` for every script.
* :func:`cached_train` — train a SmallCNN once per recipe: the ``state_dict`` is cached under
  ``benchmarks/results/cache/<name>-<hash of the recipe>.pt`` (git-ignored) so a rerun (or an interrupted
  run) skips finished models; trainers also checkpoint every epoch there and resume.
* :func:`mnist5k` — the MNIST-5k split cut to the run's sizes.
* :func:`natural_model` — the natural SmallCNN every script fine-tunes from (cached like the rest).

Outputs go through :func:`benchmarks._meta.write_json` with :func:`benchmarks._meta.machine_metadata`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks._meta import machine_metadata, write_json  # noqa: E402

__all__ = [
    "base_parser",
    "cached_train",
    "mnist5k",
    "natural_model",
    "machine_metadata",
    "write_json",
    "RESULTS",
    "CACHE",
]

RESULTS = HERE / "results"
CACHE = RESULTS / "cache"
logger = logging.getLogger("benchmarks")


def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments shared by the reproduction scripts."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--quick", action="store_true", help="small sizes (minutes): fewer digits/epochs/models"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the split, initialisation, batches, attacks"
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON / PNG outputs")
    p.add_argument("--cache", type=Path, default=CACHE, help="folder of cached trained models")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes to check the script runs (numbers meaningless; combine with --out)",
    )
    return p


#: sizes of ``--smoke`` (applied on top of the --quick recipe)
SMOKE = dict(
    n_train=128,
    n_test=16,
    natural_epochs=1,
    epochs=1,
    train_iter=1,
    eval_iter=2,
    pgd_eval_iter=2,
    robustness_iter=2,
    ks=[0, 1],
    robustness_values=[0.0, 0.3],
    rotation_values=[0.0, 180.0],
)


def setup(args) -> None:
    """Threads and logging from the parsed arguments."""
    torch.set_num_threads(max(1, int(args.threads)))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def mnist5k(n_train: int, n_test: int, seed: int = 0):
    """``(x_train, y_train, x_test, y_test)``: the first ``n_train`` / ``n_test`` digits of the split."""
    from art_spatial.data import load_mnist5k

    xtr, ytr = load_mnist5k("train", seed=seed)
    xte, yte = load_mnist5k("test", seed=seed)
    return xtr[:n_train], ytr[:n_train], xte[:n_test], yte[:n_test]


def _key(recipe: dict) -> str:
    return hashlib.sha1(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cached_train(
    name: str,
    recipe: dict,
    train_fn: Callable[[torch.nn.Module, Path], dict | None],
    cache: Path = CACHE,
    init_state: dict | None = None,
    seed: int = 0,
):
    """Train a SmallCNN with ``train_fn(model, checkpoint_dir)`` once per ``recipe``; ``(model, info)``.

    ``recipe`` must contain everything that determines the weights (it is hashed into the file name);
    ``train_fn`` may return a dict (e.g. the trainer's history) stored in the sidecar JSON. The model starts
    from ``init_state`` (fine-tuning) or from the seeded random initialisation.
    """
    from art_spatial.models import SmallCNN

    cache = Path(cache)
    key = _key({"name": name, **recipe, "init": None if init_state is None else "given"})
    weights, sidecar = cache / f"{name}-{key}.pt", cache / f"{name}-{key}.json"
    torch.manual_seed(seed)
    model = SmallCNN()
    if weights.exists() and sidecar.exists():
        model.load_state_dict(torch.load(weights, weights_only=True))
        info = json.loads(sidecar.read_text())
        info["reused"] = True
        return model.eval(), info
    if init_state is not None:
        model.load_state_dict(init_state)
    ckpt = cache / f"{name}-{key}.ckpt"
    t0, c0 = time.perf_counter(), time.process_time()
    extra = train_fn(model, ckpt) or {}
    info = {
        "name": name,
        "recipe": recipe,
        "train_seconds": time.perf_counter() - t0,
        "train_cpu_seconds": time.process_time() - c0,
        **extra,
    }
    cache.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_name(
        f".{weights.name}.{os.getpid()}.tmp"
    )  # concurrent scripts may share a model
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, weights)
    write_json(sidecar, _plain(info))
    shutil.rmtree(ckpt, ignore_errors=True)
    info["reused"] = False
    return model.eval(), info


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def natural_model(
    x,
    y,
    epochs: int,
    seed: int = 0,
    cache: Path = CACHE,
    batch_size: int = 64,
    lr: float = 1e-3,
    verbose: bool = False,
):
    """The natural SmallCNN (Adam, ``epochs`` on ``x, y``), cached."""
    from art_spatial.models import train_natural

    recipe = {
        "kind": "natural",
        "n_train": int(len(x)),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
    }

    def fit(model, _ckpt):
        train_natural(
            model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, verbose=verbose
        )
        return None

    return cached_train("natural", recipe, fit, cache=cache, seed=seed)


def fit_trainer(
    trainer_factory: Callable, x, y, epochs: int, batch_size: int = 64, lr: float = 1e-3
):
    """A ``train_fn`` for :func:`cached_train` running an ART trainer built by
    ``trainer_factory(classifier, checkpoint_dir)``; returns ``{"history": ...}``."""
    from art_spatial.models import make_classifier

    def fit(model, ckpt):
        clf = make_classifier(model, lr=lr)
        trainer = trainer_factory(clf, ckpt)
        trainer.fit(x, y, nb_epochs=epochs, batch_size=batch_size)
        return {"history": trainer.history}

    return fit


def scores_of(report) -> dict:
    """Clean accuracy, category scores (all points and correct-only) and universal score of a report."""
    return {
        "clean_accuracy": report.clean_accuracy,
        "category_scores": dict(report.category_scores),
        "category_scores_on_correct": dict(report.category_scores_on_correct),
        "universal": report.universal,
        "attacks": {
            a["name"]: {
                s["label"]: {
                    "accuracy": s["accuracy"],
                    "accuracy_on_correct": s["accuracy_on_correct"],
                }
                for s in a["strengths"]
            }
            for a in report.attacks
        },
        "eval_wall_s": report.wall_time_s,
    }
