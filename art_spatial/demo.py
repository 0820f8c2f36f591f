"""The main job: train the Pareto AT paper's six MNIST models and score them (``art-spatial demo``).

On the embedded MNIST-5k split (4000 training / 1000 test digits, :func:`art_spatial.data.load_mnist5k`)
this module trains the TRADES SmallCNN as

    Natural, PGD AT, Spatial AT, Ave AT, Max AT and Pareto AT

(Pareto Adversarial Robustness, Table 1), evaluates every model with the ``pareto-mnist`` suite of
:mod:`art_spatial.bench` (sensitivity = PGD L∞ ε 0.3 at 10/20/30/40 iterations, local = flow ε_F 0.3 and
global = affine ε_RT 0.3 at 5/10/15/20 iterations) with the Natural model as the reference of the
universal score, and writes to an output folder:

* ``models/<slug>.pt`` + ``models/<slug>.json`` (weights, recipe, training history),
* ``reports/<slug>.json`` (:class:`~art_spatial.bench.RobustnessReport`),
* ``leaderboard/<slug>.json`` (RobustBench model_info-style entries) and ``leaderboard.md``,
* ``table1.md`` (the Table-1-style table), ``pareto_front.png`` (universal score vs sacrificed clean
  accuracy, the paper's Fig. 7) and ``summary.json``.

Everything is resumable: a model whose weights exist for the same recipe is not retrained, a report
computed for the same model and evaluation is not recomputed, and an interrupted training or evaluation
continues from its last checkpoint (trainer ``checkpoint_dir`` / evaluation ``state_path``).

Recipe (a compute-bounded version of the paper's, stated in :class:`DemoConfig`): the paper trains 100
epochs from scratch with 30 PGD / 20 spatial iterations. To fit in minutes on a CPU, the adversarial models
are *fine-tuned from the Natural model* for ``adv_epochs`` epochs with fewer attack iterations and step
sizes scaled so that ``iterations × step`` covers the same budget. The training attacks of Ave / Max /
Pareto AT are the three evaluation threats (PGD, flow, affine), as in the paper.

Example:
    >>> cfg = DemoConfig.preset("quick")
    >>> cfg.methods[0], cfg.n_test <= 1000
    ('Natural', True)
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import check_choice, check_int, check_number
from ._io import torch_save_atomic, write_json_atomic

logger = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "PAPER_MNIST_TABLE1",
    "DemoConfig",
    "DemoResult",
    "train_model",
    "evaluate_model",
    "run_demo",
    "table1_rows",
    "format_table1",
]

#: The six training methods of the Pareto AT paper's Table 1, in its column order.
METHODS = ("Natural", "PGD AT", "Spatial AT", "Max AT", "Ave AT", "Pareto AT")

#: Pareto AT paper, Table 1, MNIST (SmallCNN, 100 epochs on the full MNIST, Pareto AT with r = 2.2):
#: robustness scores (%) per category and the universal score.
PAPER_MNIST_TABLE1: dict[str, dict[str, float]] = {
    "Natural": {"sensitivity": 29.40, "local": 14.36, "global": 16.70, "universal": 0.0},
    "PGD AT": {"sensitivity": 98.42, "local": 38.23, "global": 12.77, "universal": 88.97},
    "Spatial AT": {"sensitivity": 0.24, "local": 27.59, "global": 78.76, "universal": 46.14},
    "Max AT": {"sensitivity": 65.16, "local": 53.02, "global": 51.47, "universal": 109.19},
    "Ave AT": {"sensitivity": 92.70, "local": 48.51, "global": 88.76, "universal": 169.52},
    "Pareto AT": {"sensitivity": 88.06, "local": 58.70, "global": 90.40, "universal": 176.71},
}

_CATEGORIES = ("sensitivity", "local", "global")


def slug(method: str) -> str:
    """File-name form of a method name: ``"PGD AT"`` -> ``"pgd_at"``."""
    return method.lower().replace(" ", "_").replace("=", "").replace(".", "p")


#: integer fields of :class:`DemoConfig` and their minimum
_INT_FIELDS = {
    **dict.fromkeys(
        (
            "n_train",
            "n_test",
            "natural_epochs",
            "adv_epochs",
            "batch_size",
            "pgd_iter",
            "spatial_iter",
            "multi_iter",
            "pareto_window",
            "eval_batch_size",
        ),
        1,
    ),
    **dict.fromkeys(("eps_warmup", "monitor_n", "seed"), 0),
}
#: sizes bounded by the MNIST-5k splits: field -> (limit, split)
_SPLIT_LIMITS = {"n_train": (4000, "train"), "n_test": (1000, "test"), "monitor_n": (1000, "test")}


@dataclass
class DemoConfig:
    """Recipe of the demo (defaults = ``art-spatial demo``; presets ``quick`` and ``full``).

    Every model is trained from scratch (the paper's setting, Pareto AT Appendix E: 100 epochs from
    scratch) with Adam and a step learning-rate schedule, the adversarial ones with a linear ε warm-up.
    The three presets are one recipe at three lengths: ``full`` is the benchmark
    (``benchmarks/reproduce_pareto_mnist.py``), ``default`` the demo (≤ 15 min on 2 cores), ``quick`` a
    smoke-sized run. The CPU-bound deviations from the paper (epochs, attack iterations) are listed in
    docs/results.md with their measured cost.

    Attributes:
        methods: subset of :data:`METHODS` to run (Natural is always trained: it is the reference).
        n_train: training digits used (≤ 4000, the first ones of the stratified split).
        n_test: test digits evaluated (≤ 1000).
        natural_epochs: epochs of natural training.
        adv_epochs: epochs of every adversarial trainer.
        finetune: start the adversarial models from the Natural model's weights (True) instead of the same
            random initialisation as the Natural model (False, the paper's setting and the default).
        batch_size, lr, seed: training batch size, Adam learning rate of natural training, seed of
            everything.
        adv_lr: Adam learning rate of the adversarial trainers.
        lr_drops: fractions of the epochs at which the learning rate is multiplied by ``lr_gamma``
            (``MultiStepLR`` milestones ``round(f · epochs)``); empty = constant learning rate.
        lr_gamma: factor of each drop.
        eps_warmup: epochs of the adversarial trainers' linear ε warm-up (0 = cold start at the full
            budget), see :class:`~art_spatial.trainers.AdversarialTrainerBase`.
        pgd_iter: PGD iterations of PGD AT (ε 0.3, step ``2.5·ε / pgd_iter``, random start).
        spatial_iter: iterations of Spatial AT's integrated attack (ε_F = ε_RT = 0.3; flow step
            ``0.2 / spatial_iter`` so the reach equals the paper's 20 × 0.01; affine step 0.1).
        multi_iter: iterations of each of the three attacks (PGD, flow, affine) used by Ave / Max / Pareto
            AT, with the step rules above.
        pareto_r: Pareto AT's target ``r`` of the Table-1 column.
        pareto_r_mode: ``"relative"`` (``r`` a fraction of the window's attack-loss interval, feasible by
            construction; the default, see docs/conventions.md) or ``"absolute"`` (the paper's, MNIST
            r = 2.2).
        pareto_rs: further values of ``r`` trained for the Pareto front (the paper's Fig. 7 sweep), in the
            same mode; the Table-1 model is one of the front's points.
        pareto_window: Pareto AT's sliding window of batch loss vectors.
        monitor_n: test digits on which clean and robust accuracy are measured after every epoch
            (convergence curves in the models' ``history``; 0 = off). They are only watched, never used
            to select anything.
        eval_batch_size: attack batch size of the evaluation.
        suite: harness suite name.
    """

    methods: tuple = METHODS
    n_train: int = 4000
    n_test: int = 500
    natural_epochs: int = 4
    adv_epochs: int = 4
    finetune: bool = False
    batch_size: int = 64
    lr: float = 1e-3
    adv_lr: float = 1e-3
    lr_drops: tuple = (0.5, 0.75)
    lr_gamma: float = 0.1
    eps_warmup: int = 1
    seed: int = 0
    pgd_iter: int = 3
    spatial_iter: int = 3
    multi_iter: int = 2
    pareto_r: float = 0.5
    pareto_r_mode: str = "relative"
    pareto_rs: tuple = (0.2, 0.8)
    pareto_window: int = 20
    monitor_n: int = 0
    eval_batch_size: int = 250
    suite: str = "pareto-mnist"

    #: named presets: ``default`` (the demo, ≤ 15 min on 2 CPU cores), ``quick`` (a few minutes, same code
    #: path) and ``full`` (the benchmark's recipe, hours on one core per seed)
    PRESETS = {
        "default": {},
        "quick": dict(
            n_train=2000,
            n_test=150,
            natural_epochs=3,
            adv_epochs=3,
            pgd_iter=2,
            spatial_iter=2,
            multi_iter=1,
            eps_warmup=1,
            lr_drops=(0.67,),
        ),
        "full": dict(
            n_test=1000,
            natural_epochs=10,
            adv_epochs=10,
            eps_warmup=3,
            lr_drops=(0.6, 0.85),
            pgd_iter=5,
            spatial_iter=5,
            multi_iter=5,
            monitor_n=200,
        ),
    }

    def __post_init__(self):
        self.methods = tuple(self.methods)
        self.lr_drops = tuple(float(f) for f in self.lr_drops)
        self.pareto_rs = tuple(float(r) for r in self.pareto_rs)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"`methods` must be a subset of {METHODS}, got unknown {unknown}")
        if "Natural" not in self.methods:
            self.methods = ("Natural",) + self.methods
        for name, minimum in _INT_FIELDS.items():
            setattr(self, name, check_int(name, getattr(self, name), minimum=minimum))
        for name, (limit, split) in _SPLIT_LIMITS.items():
            if getattr(self, name) > limit:
                raise ValueError(
                    f"{name} must be at most {limit} (MNIST-5k {split} split), "
                    f"got {getattr(self, name)}"
                )
        check_number("lr", self.lr, positive=True)
        check_number("adv_lr", self.adv_lr, positive=True)
        if not 0 < check_number("lr_gamma", self.lr_gamma) <= 1:
            raise ValueError(f"lr_gamma must be in (0, 1], got {self.lr_gamma!r}")
        if any(not 0 < f < 1 for f in self.lr_drops) or list(self.lr_drops) != sorted(
            self.lr_drops
        ):
            raise ValueError(
                f"lr_drops must be increasing fractions in (0, 1), got {self.lr_drops!r}"
            )
        check_choice("pareto_r_mode", self.pareto_r_mode, ("absolute", "relative"))
        for r in (self.pareto_r,) + self.pareto_rs:
            if self.pareto_r_mode == "absolute" and not float(r) > 0:
                raise ValueError(
                    f"pareto_r values must be positive with pareto_r_mode='absolute', got {r!r}"
                )
            if self.pareto_r_mode == "relative" and not 0 <= float(r) <= 1:
                raise ValueError(
                    f"pareto_r values must be in [0, 1] with pareto_r_mode='relative', got {r!r}"
                )

    @classmethod
    def preset(cls, name: str, **overrides) -> DemoConfig:
        """A named preset (``"default"``, ``"quick"`` or ``"full"``) with ``overrides`` applied."""
        if name not in cls.PRESETS:
            raise ValueError(f"`preset` must be one of {sorted(cls.PRESETS)}, got {name!r}")
        return cls(**{**cls.PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict of the recipe."""
        d = dataclasses.asdict(self)
        for k in ("methods", "lr_drops", "pareto_rs"):
            d[k] = list(getattr(self, k))
        return d

    def milestones(self, epochs: int) -> list[int]:
        """``MultiStepLR`` milestones of a run of ``epochs`` epochs (distinct, inside the run)."""
        return sorted(
            {m for m in (int(round(f * epochs)) for f in self.lr_drops) if 0 < m < epochs}
        )

    def pareto_label(self, r: float) -> str:
        """Name of the Pareto AT model trained with target ``r``: ``"Pareto AT"`` for the Table-1 model,
        ``"Pareto AT (r=0.2)"`` (relative) or ``"Pareto AT (r=2.2 abs)"`` for the others."""
        if float(r) == float(self.pareto_r):
            return "Pareto AT"
        return f"Pareto AT (r={float(r):g}{' abs' if self.pareto_r_mode == 'absolute' else ''})"

    def jobs(self) -> list[tuple[str, str, DemoConfig]]:
        """``(label, method, config)`` of every model to train: the methods, then the further Pareto
        front points of ``pareto_rs`` (each with its own ``pareto_r``)."""
        out = [(m, m, self) for m in self.methods]
        if "Pareto AT" in self.methods:
            for r in self.pareto_rs:
                if float(r) != float(self.pareto_r):
                    out.append(
                        (self.pareto_label(r), "Pareto AT", dataclasses.replace(self, pareto_r=r))
                    )
        return out

    def training_key(self, method: str) -> str:
        """Hash of everything that determines ``method``'s trained weights (for resuming)."""
        keys = [
            "n_train",
            "natural_epochs",
            "batch_size",
            "lr",
            "seed",
            "lr_drops",
            "lr_gamma",
            "monitor_n",
        ]
        if method != "Natural":
            keys += ["adv_epochs", "finetune", "adv_lr", "eps_warmup"]
            keys += {"PGD AT": ["pgd_iter"], "Spatial AT": ["spatial_iter"]}.get(
                method, ["multi_iter"]
            )
            if method == "Pareto AT":
                keys += ["pareto_r", "pareto_r_mode", "pareto_window"]
        payload = json.dumps([method] + [(k, getattr(self, k)) for k in keys], sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:12]


@dataclass
class DemoResult:
    """What :func:`run_demo` returns: reports per method, the table, paths written, timings."""

    config: DemoConfig
    reports: dict[str, Any]
    table: str
    out: Path
    files: dict[str, str] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- training
def _pgd(classifier, iters: int):
    from .attacks import PixelAttack

    return PixelAttack(
        classifier,
        eps=0.3,
        eps_step=round(2.5 * 0.3 / iters, 6),
        max_iter=iters,
        random_init=True,
        verbose=False,
    )


def _flow(classifier, iters: int):
    from .attacks import FlowAttack

    return FlowAttack(
        classifier,
        eps=0.3,
        eps_step=round(0.2 / iters, 6),
        max_iter=iters,
        norm="inf",
        units="normalized",
        verbose=False,
    )


def _affine(classifier, iters: int):
    from .attacks import AffineAttack

    return AffineAttack(
        classifier, eps=0.3, eps_step=0.1, max_iter=iters, parametrization="affine", verbose=False
    )


def training_attacks(classifier, method: str, config: DemoConfig) -> list:
    """The training attack(s) of ``method`` (see :class:`DemoConfig` for the budgets and steps).

    Returns an empty list for ``"Natural"``, one attack for PGD / Spatial AT, and ``[PGD, flow, affine]``
    for Ave / Max / Pareto AT.
    """
    from .attacks import IntegratedSpatialAttack

    if method == "Natural":
        return []
    if method == "PGD AT":
        return [_pgd(classifier, config.pgd_iter)]
    if method == "Spatial AT":
        k = config.spatial_iter
        return [
            IntegratedSpatialAttack(
                classifier,
                eps_flow=0.3,
                eps_affine=0.3,
                eps_step_flow=round(0.2 / k, 6),
                eps_step_affine=0.1,
                max_iter=k,
                verbose=False,
            )
        ]
    if method in ("Ave AT", "Max AT", "Pareto AT"):
        k = config.multi_iter
        return [_pgd(classifier, k), _flow(classifier, k), _affine(classifier, k)]
    raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")


def build_trainer(
    classifier,
    method: str,
    config: DemoConfig,
    *,
    verbose: bool = False,
    checkpoint_dir=None,
    epoch_callback=None,
):
    """The ART trainer of ``method`` around ``classifier`` (``"Natural"``: the natural trainer)."""
    from . import trainers as T

    common = dict(
        seed=config.seed,
        verbose=verbose,
        checkpoint_dir=checkpoint_dir,
        resume=checkpoint_dir is not None,
        epoch_callback=epoch_callback,
    )
    if method == "Natural":
        return T.NaturalTrainer(classifier, **common)
    attacks = training_attacks(classifier, method, config)
    common["eps_warmup"] = config.eps_warmup
    names = ["pgd", "flow", "affine"]
    if method == "PGD AT":
        return T.PGDAdversarialTrainer(classifier, attacks[0], **common)
    if method == "Spatial AT":
        return T.SpatialAdversarialTrainer(classifier, attacks[0], **common)
    if method == "Ave AT":
        return T.AverageAdversarialTrainer(classifier, attacks, names=names, **common)
    if method == "Max AT":
        return T.MaxAdversarialTrainer(classifier, attacks, names=names, **common)
    if method == "Pareto AT":
        return T.ParetoAdversarialTrainer(
            classifier,
            attacks,
            r=config.pareto_r,
            r_mode=config.pareto_r_mode,
            window=config.pareto_window,
            names=names,
            **common,
        )
    raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")


def monitor_callback(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """An ``epoch_callback`` measuring, on ``x, y``, the clean accuracy and the accuracy under a short
    PGD (10 steps), flow (5 steps) and affine (5 steps) attack at the suite's budgets (ε = ε_F = ε_RT =
    0.3): the convergence curves of the benchmark (fractions in ``history`` as ``mon_clean``,
    ``mon_pgd``, ``mon_flow``, ``mon_affine``)."""
    import torch

    def callback(trainer, epoch):
        clf = trainer._classifier
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=trainer.device)
        yt = torch.as_tensor(np.asarray(y), device=trainer.device).long()

        def logits(z):
            return trainer.logits(z)

        out = {}
        with torch.no_grad():
            out["mon_clean"] = float((logits(xt).argmax(1) == yt).float().mean())
        for name, attack in (
            ("mon_pgd", _pgd(clf, 10)),
            ("mon_flow", _flow(clf, 5)),
            ("mon_affine", _affine(clf, 5)),
        ):
            attack.seed = seed
            res = attack.attack_tensor(logits, xt, yt, clip_values=trainer.clip_values)
            out[name] = float(1.0 - torch.as_tensor(res.success).float().mean())
        return out

    return callback


def _fresh_model(config: DemoConfig):
    import torch

    from .models import SmallCNN

    torch.manual_seed(config.seed)
    return SmallCNN()


def train_model(
    method: str,
    config: DemoConfig,
    x: np.ndarray,
    y: np.ndarray,
    out: Path,
    *,
    natural_state: dict | None = None,
    verbose: bool = False,
    name: str | None = None,
    monitor: tuple | None = None,
) -> tuple[Any, dict]:
    """Train (or reuse) the SmallCNN of ``method``; returns ``(model in eval mode, info dict)``.

    The weights go to ``out/models/<slug>.pt`` with a sidecar ``<slug>.json`` (training key, recipe,
    history, seconds). When both exist with the same :meth:`DemoConfig.training_key`, the model is loaded
    instead of trained. Every trainer (the natural one included) checkpoints every epoch under
    ``out/checkpoints/<slug>-<key>`` and resumes from there.

    Args:
        method: one of :data:`METHODS`.
        config: the recipe.
        x, y: training digits ``N x 1 x 28 x 28`` in [0, 1] and integer labels.
        out: output folder.
        natural_state: the Natural model's ``state_dict`` (initialisation when ``config.finetune``).
        verbose: tqdm progress bars.
        name: file name stem (default ``slug(method)``), e.g. one per ``r`` of a Pareto AT sweep.
        monitor: ``(x, y)`` watched after every epoch (:func:`monitor_callback`), or None.
    """
    import torch

    out = Path(out)
    name = name or slug(method)
    weights, sidecar = out / "models" / f"{name}.pt", out / "models" / f"{name}.json"
    key = config.training_key(method)
    reused = _reuse_model(method, config, weights, sidecar, key)
    if reused is not None:
        return reused
    epochs = config.natural_epochs if method == "Natural" else config.adv_epochs
    classifier, scheduler = _demo_classifier(method, config, epochs, natural_state)
    callback = (
        None if monitor is None else monitor_callback(monitor[0], monitor[1], seed=config.seed)
    )
    t0, c0 = time.perf_counter(), time.process_time()
    ckpt = out / "checkpoints" / f"{name}-{key}"
    trainer = build_trainer(
        classifier, method, config, verbose=verbose, checkpoint_dir=ckpt, epoch_callback=callback
    )
    trainer.fit(x, y, nb_epochs=epochs, batch_size=config.batch_size, scheduler=scheduler)
    history = trainer.history
    shutil.rmtree(ckpt, ignore_errors=True)  # the final weights below supersede the checkpoint
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    model = classifier.model.eval()
    torch_save_atomic(model.state_dict(), weights)
    info = {
        "method": method,
        "training_key": key,
        "config": config.to_dict(),
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,
        "torch_threads": torch.get_num_threads(),
        "history": history,
        "reused": False,
    }
    write_json_atomic(sidecar, info)
    return model, info


def _reuse_model(method: str, config: DemoConfig, weights: Path, sidecar: Path, key: str):
    """``(model, info)`` of an earlier run trained with the same ``key``, or None."""
    import torch

    if not (weights.exists() and sidecar.exists()):
        return None
    info = json.loads(sidecar.read_text())
    if info.get("training_key") != key:
        return None
    model = _fresh_model(config)
    model.load_state_dict(torch.load(weights, weights_only=True))
    logger.info("%s: reusing %s", method, weights)
    info["reused"] = True
    return model.eval(), info


def _demo_classifier(method: str, config: DemoConfig, epochs: int, natural_state: dict | None):
    """The freshly initialised (or, with ``config.finetune``, Natural-initialised) SmallCNN of
    ``method`` in an ART classifier, and its learning-rate scheduler (None without drops)."""
    import torch

    from .models import make_classifier

    model = _fresh_model(config)
    if method != "Natural" and config.finetune:
        if natural_state is None:
            raise ValueError("`natural_state` is required to fine-tune an adversarial model")
        model.load_state_dict(natural_state)
    natural = method == "Natural"
    classifier = make_classifier(model, lr=config.lr if natural else config.adv_lr)
    scheduler = None
    if config.milestones(epochs):
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            classifier.optimizer, milestones=config.milestones(epochs), gamma=config.lr_gamma
        )
    return classifier, scheduler


# ----------------------------------------------------------------------------------------- evaluation
def evaluate_model(
    method: str,
    model,
    config: DemoConfig,
    x: np.ndarray,
    y: np.ndarray,
    out: Path,
    *,
    reference=None,
    verbose: bool = False,
    name: str | None = None,
):
    """Evaluate (or reuse) ``method``'s model with ``config.suite`` on ``x, y``.

    Returns ``(report, reused)``: the :class:`~art_spatial.bench.RobustnessReport` and whether it was
    loaded from a previous run.

    The report is saved to ``out/reports/<slug>.json``; ``meta["demo_key"]`` identifies the model and the
    evaluation so that a later run reuses it. An interrupted evaluation resumes from
    ``out/reports/<slug>.state.json``. ``reference`` (the Natural model's report) scores the universal
    robustness; the reused report is rescored against it.
    """
    from .bench import RobustnessReport, evaluate
    from .bench.suites import get_suite

    out = Path(out)
    name = name or slug(method)
    path = out / "reports" / f"{name}.json"
    key = hashlib.sha1(
        json.dumps([config.training_key(method), config.suite, config.n_test, config.seed]).encode()
    ).hexdigest()[:12]
    if path.exists():
        report = RobustnessReport.load(path)
        if report.meta.get("demo_key") == key:
            logger.info("%s: reusing %s", method, path)
            # a report written before the suite's score convention existed loads as all-points
            report = report.with_score_convention(get_suite(config.suite).score_convention)
            report = report.with_reference(reference) if reference is not None else report
            return report, True
    path.parent.mkdir(parents=True, exist_ok=True)
    state = out / "reports" / f"{name}.{key}.state.json"
    report = evaluate(
        model,
        x,
        y,
        config.suite,
        reference=reference,
        batch_size=config.eval_batch_size,
        seed=config.seed,
        state_path=str(state),
        verbose=verbose,
        model_name=method,
    )
    report.meta["demo_key"] = key
    report.save(path)
    if state.exists():
        state.unlink()
    return report, False


# ---------------------------------------------------------------------------------------------- table
def _conventions(reports: dict) -> str:
    return "/".join(
        sorted({getattr(r, "score_convention", "all-points") for r in reports.values()})
    )


def table1_rows(reports: dict) -> list[list[str]]:
    """Rows of the Table-1-style table: header then sensitivity / local / global / universal / clean."""
    methods = list(reports)
    rows = [["Robustness score (%)"] + methods]
    labels = {
        "sensitivity": "Sensitivity (PGD)",
        "local": "Local spatial (flow)",
        "global": "Global spatial (affine)",
    }
    for cat in _CATEGORIES:
        rows.append(
            [labels[cat]]
            + [f"{reports[m].category_scores.get(cat, float('nan')):.2f}" for m in methods]
        )
    conv = _conventions(reports)
    universal = [reports[m].universal for m in methods]
    rows.append([f"Universal ({conv})"] + ["-" if u is None else f"{u:.2f}" for u in universal])
    if conv == "correct-only":
        alt = [getattr(reports[m], "universal_all_points", None) for m in methods]
        rows.append(["Universal (all points)"] + ["-" if u is None else f"{u:.2f}" for u in alt])
    rows.append(["Clean accuracy"] + [f"{reports[m].clean_accuracy:.2f}" for m in methods])
    return rows


def format_table1(reports: dict, markdown: bool = False) -> str:
    """The Table-1-style table as plain text (aligned columns) or Markdown."""
    rows = table1_rows(reports)
    if markdown:
        rule = "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"
        lines = ["| " + " | ".join(rows[0]) + " |", rule]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        )
        if j == 0:
            lines.append("-" * len(lines[-1]))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ main job
def run_demo(
    config: DemoConfig | None = None,
    out: str | os.PathLike = "runs/demo",
    *,
    verbose: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> DemoResult:
    """Train, evaluate and tabulate every method of ``config`` (see the module docstring).

    Args:
        config: the recipe (default: :class:`DemoConfig` defaults).
        out: output folder (created; existing models and reports in it are reused).
        verbose: tqdm progress bars for training and evaluation.
        on_stage: called with a one-line message when a stage starts or ends (the CLI prints them).

    Returns:
        A :class:`DemoResult`.
    """
    from .bench.plots import plot_pareto_front

    config = config or DemoConfig()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = on_stage or (lambda msg: logger.info("%s", msg))
    train, test, monitor = _demo_data(config)
    runs = _train_and_evaluate(config, out, train, test, monitor=monitor, verbose=verbose, say=say)
    reports = {m: runs.reports[m] for m in config.methods if m in runs.reports}  # Table-1 columns
    files = {
        "table1": _write_table1(out, reports, config, len(test[0])),
        "leaderboard": _write_leaderboard(out, reports, config),
    }
    if len(runs.reports) > 1:
        files["pareto_front"] = plot_pareto_front(
            runs.reports,
            runs.reference,
            out / "pareto_front.png",
            title=f"MNIST-5k demo: universal score vs sacrificed clean accuracy ({len(test[0])} digits)",
        )
    summary = _demo_summary(config, reports, runs, wall0, cpu0)
    write_json_atomic(out / "summary.json", summary)
    files["summary"] = str(out / "summary.json")
    return DemoResult(
        config=config,
        reports=reports,
        table=format_table1(reports),
        out=out,
        files=files,
        timings=runs.timings,
    )


def _demo_data(config: DemoConfig):
    """``(x, y)`` of the training digits, of the test digits, and of the monitored test digits (None
    when ``config.monitor_n`` is 0)."""
    from .data import load_mnist5k

    x_train, y_train = load_mnist5k("train", seed=config.seed)
    x_test, y_test = load_mnist5k("test", seed=config.seed)
    train = (x_train[: config.n_train], y_train[: config.n_train])
    test = (x_test[: config.n_test], y_test[: config.n_test])
    monitor = None
    if config.monitor_n:
        x_mon, y_mon = load_mnist5k("test", seed=config.seed)
        monitor = (x_mon[: config.monitor_n], y_mon[: config.monitor_n])
    return train, test, monitor


@dataclass
class _DemoRuns:
    """Per model label, in training order: reports, timings and training histories; and the
    Natural model's report (the reference of the universal score)."""

    reports: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    histories: dict = field(default_factory=dict)
    reference: Any = None


def _train_and_evaluate(config: DemoConfig, out: Path, train, test, *, monitor, verbose, say):
    """Train and evaluate every job of ``config`` in order (Natural first: it is the reference)."""
    runs = _DemoRuns()
    natural_state = None
    for label, method, cfg in config.jobs():
        say(f"[{label}] training on {len(train[0])} digits")
        model, info = train_model(
            method,
            cfg,
            train[0],
            train[1],
            out,
            natural_state=natural_state,
            verbose=verbose,
            name=slug(label),
            monitor=monitor,
        )
        runs.histories[label] = info.get("history") or []
        if method == "Natural":
            natural_state = copy.deepcopy(model.state_dict())
        say(f"[{label}] evaluating ({config.suite}, {len(test[0])} test digits)")
        t0, c0 = time.perf_counter(), time.process_time()
        report, reused = evaluate_model(
            method,
            model,
            cfg,
            test[0],
            test[1],
            out,
            reference=runs.reference,
            verbose=verbose,
            name=slug(label),
        )
        if method == "Natural":
            runs.reference = report
            report = report.with_reference(report)
            report.save(out / "reports" / f"{slug(method)}.json")
        runs.reports[label] = report
        runs.timings[label] = _job_timings(info, reused, t0, c0)
        say(_scores_line(label, report))
    return runs


def _job_timings(info: dict, reused: bool, t0: float, c0: float) -> dict:
    """Training and evaluation seconds (wall, CPU) of one job, 0 for what was reused."""
    return {
        "train_s": 0.0 if info.get("reused") else float(info["train_seconds"]),
        "train_cpu_s": 0.0 if info.get("reused") else float(info.get("train_cpu_seconds", 0.0)),
        "eval_s": 0.0 if reused else time.perf_counter() - t0,
        "eval_cpu_s": 0.0 if reused else time.process_time() - c0,
        "reused_model": bool(info.get("reused")),
        "reused_report": reused,
    }


def _scores_line(label: str, report) -> str:
    """One line: clean accuracy, category scores and universal score of ``report``."""
    universal = "-" if report.universal is None else f"{report.universal:.2f}"
    return (
        f"[{label}] clean {report.clean_accuracy:.2f}%, scores "
        + ", ".join(f"{c} {report.category_scores.get(c, float('nan')):.2f}" for c in _CATEGORIES)
        + f", universal {universal}"
    )


def _write_table1(out: Path, reports: dict, config: DemoConfig, n_test: int) -> str:
    """Write ``table1.md`` (the Table-1 analog in Markdown with its conventions); return its path."""
    table_md = format_table1(reports, markdown=True)
    (out / "table1.md").write_text(
        f"# Table-1 analog on MNIST-5k ({n_test} test digits, suite {config.suite})\n\n"
        f"Category scores are mean accuracies (%) under the score convention {_conventions(reports)} "
        "(correct-only = on the test points each model classifies correctly without attack, the paper's; "
        "all-points = RobustBench's). Reference: the Natural model of this run.\n\n" + table_md
    )
    return str(out / "table1.md")


def _write_leaderboard(out: Path, reports: dict, config: DemoConfig) -> str:
    """Write a model_info entry per model under ``leaderboard/`` and ``leaderboard.md``; return the
    latter's path."""
    from .bench.leaderboard import render_leaderboard, to_model_info

    board = out / "leaderboard"
    for method, report in reports.items():
        to_model_info(
            report,
            name=f"SmallCNN {method} (demo)",
            architecture="SmallCNN",
            authors="art-spatial demo",
            venue="art-spatial",
            footnote=f"art-spatial demo recipe: {json.dumps(config.to_dict(), sort_keys=True)}",
            path=board / f"{slug(method)}.json",
        )
    (out / "leaderboard.md").write_text(render_leaderboard(board, fmt="md"))
    return str(out / "leaderboard.md")


def _demo_summary(
    config: DemoConfig, reports: dict, runs: _DemoRuns, wall0: float, cpu0: float
) -> dict:
    """The content of ``summary.json``: recipe, table, scores of every model (the Pareto front's
    too), Pareto AT diagnostics, timings."""
    import torch

    return {
        "config": config.to_dict(),
        "table1": table1_rows(reports),
        "reports": {m: f"reports/{slug(m)}.json" for m in reports},
        "scores": {
            m: {"clean_accuracy": r.clean_accuracy, **r.category_scores, "universal": r.universal}
            for m, r in runs.reports.items()
        },
        "pareto": {
            m: {
                k: [h.get(k) for h in runs.histories.get(m, [])]
                for k in ("alpha_last", "r_effective", "r_infeasible", "qp_fallbacks")
            }
            for m in runs.reports
            if m.startswith("Pareto AT")
        },
        "timings": runs.timings,
        "total_wall_s": time.perf_counter() - wall0,
        "total_cpu_s": time.process_time() - cpu0,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


def _methods_arg(text: str | Sequence[str]) -> tuple:
    """Parse a comma-separated method list (CLI helper)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(i.strip() for i in items if i.strip())
