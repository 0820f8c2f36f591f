"""Training recipes of the papers and the runner behind ``art-spatial train``.

A :class:`Recipe` is everything a training run needs, as JSON: method (any trainer of
:mod:`art_spatial.trainers`), dataset, architecture, epochs, batch size, optimizer and learning-rate
schedule, the training attacks' budgets, the trainer's own parameters and the seed. :func:`run_training`
trains it into a folder (checkpoints every epoch, resumable; ``recipe.json``, ``history.json``,
``model.pt``, ``curves.png``), in one process or under ``torchrun`` (data-parallel, see
``docs/distributed.md``) unchanged.

Presets (:data:`RECIPES`, :func:`get_recipe`):

* ``pareto-mnist`` — Pareto AT, "Pareto Adversarial Robustness: Balancing Spatial Robustness and
  Sensitivity-based Robustness" (arXiv:2111.01996), Appendix E: SmallCNN, 100 epochs; PGD ε 0.3, step
  0.01, 30 iterations; flow ε_F 0.3, step 0.01 and RT ε_RT 0.3, step 0.1, 20 iterations; r = 2.2 (the
  front's largest MNIST r). The optimizer follows the implementation the paper defers to (TRADES,
  arXiv:1901.08573, MNIST: SGD lr 0.01, momentum 0.9, batch 128, ×0.1 at epochs 55, 75, 90).
* ``pareto-cifar10`` — Appendix E on CIFAR-10: PreActResNet-18 with GroupNorm, 76 epochs; PGD ε 0.031,
  step 0.007, 3 iterations; flow ε_F 0.3, step 1e-3; RT ε_RT 1.0, step 0.05, 5 iterations; r = 4.0 (the
  best universal score of Table 1); TRADES' CIFAR-10 optimizer (SGD lr 0.1, momentum 0.9, weight decay
  2e-4, batch 128, ×0.1 at epoch 75).
* ``joint-cifar10`` — one-step Joint AT ("Joint Adversarial Training: Incorporating both Spatial and
  Pixel Attacks", arXiv:1907.10737, §4.2, Alg. 3): the joint attack's CIFAR budgets (ε_x 8/255, flow 0.3
  px), training mode (random targets) and label smoothing 0.5. The schedule numbers of that paper are
  not used here: the recipe takes the CIFAR-10 SGD schedule of ``pareto-cifar10``.
* ``cusp-cifar10`` — CuSP ("Can we have it all? On the trade-off between spatial and adversarial
  robustness of neural networks", arXiv:2002.11318, §5, Appendix): 120 epochs, SGD lr 0.1 (momentum 0.9,
  weight decay 2e-4), ×0.1 at 75, 90, 100; stages (120°, 2/255) → (150°, 4/255) → (180°, 8/255) raised
  at the drops; PGD step 2/255, 10 iterations.
* ``fat-cifar10`` / ``gairat-cifar10`` — FAT ("Attacks Which Do Not Kill Training Make Adversarial
  Learning Stronger", arXiv:2002.11242) and GAIRAT ("Geometry-aware Instance-reweighted Adversarial
  Training", arXiv:2010.01736): 120 epochs, SGD lr 0.1, momentum 0.9, weight decay 2e-4, ×0.1 at 60
  and 90; PGD-10, ε 8/255, step 2/255; FAT τ 0 → 1 → 2 at epochs 0 / 50 / 90; GAIRAT λ = −1 with the
  weights on from half of training.

The CIFAR-10 presets augment every training batch with the papers' random crop (4-pixel zero padding)
and horizontal flip (``augment="crop-flip"``, :class:`art_spatial.augment.CropFlip`), drawn from the
trainer's seeded generator; ``--augment none`` trains on the arrays as they are.

Example:
    >>> r = get_recipe("pareto-mnist", epochs=2, batch_size=64)
    >>> r.method, r.epochs, r.milestones
    ('pareto', 2, [1])
    >>> Recipe.from_dict(r.to_dict()) == r
    True
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ._io import torch_save_atomic, write_json_atomic

logger = logging.getLogger(__name__)

__all__ = [
    "Recipe",
    "RECIPES",
    "METHODS",
    "get_recipe",
    "build_model_for",
    "build_trainer",
    "run_training",
]

#: method names of ``art-spatial train`` -> trainer class name in :mod:`art_spatial.trainers`
METHODS = {
    "natural": "NaturalTrainer",
    "pgd": "PGDAdversarialTrainer",
    "spatial": "SpatialAdversarialTrainer",
    "joint": "JointAdversarialTrainer",
    "ave": "AverageAdversarialTrainer",
    "max": "MaxAdversarialTrainer",
    "pareto": "ParetoAdversarialTrainer",
    "cusp": "CurriculumAdversarialTrainer",
    "fat": "FriendlyAdversarialTrainer",
    "gairat": "GeometryAwareAdversarialTrainer",
}

DATASETS = ("mnist5k", "cifar10")
OPTIMIZERS = ("sgd", "adam")

_MNIST_ATTACKS = {
    "pgd": {"eps": 0.3, "eps_step": 0.01, "max_iter": 30},
    "flow": {"eps": 0.3, "eps_step": 0.01, "max_iter": 20},
    "affine": {"eps": 0.3, "eps_step": 0.1, "max_iter": 20},
}
_CIFAR_ATTACKS = {
    "pgd": {"eps": 0.031, "eps_step": 0.007, "max_iter": 3},
    "flow": {"eps": 0.3, "eps_step": 1e-3, "max_iter": 5},
    "affine": {"eps": 1.0, "eps_step": 0.05, "max_iter": 5},
}
_PGD10_CIFAR = {"pgd": {"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": 10}}
_CIFAR_SGD = dict(
    optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=2e-4, batch_size=128, augment="crop-flip"
)


@dataclass
class Recipe:
    """One training run as data (JSON round trip with :meth:`to_dict` / :meth:`from_dict`).

    Attributes:
        name: preset name (or ``"custom"``).
        method: a key of :data:`METHODS`.
        dataset: ``"mnist5k"`` (embedded) or ``"cifar10"`` (local folder, never downloaded).
        model: ``"smallcnn"``, ``"preactresnet18"`` or a RobustBench model-zoo name (its architecture,
            trained from scratch).
        epochs, batch_size: training length and global batch (shared by the ranks under torchrun).
        optimizer, lr, momentum, weight_decay: ``"sgd"`` or ``"adam"`` and their parameters.
        milestones, gamma: ``MultiStepLR`` epochs and factor (empty = constant learning rate).
        eps_warmup: linear ε warm-up epochs of the training attacks (0 = off).
        attacks: budgets of the training attacks ``pgd``, ``flow``, ``affine`` (``eps``, ``eps_step``,
            ``max_iter``); the integrated attack of Spatial AT uses ``flow`` and ``affine`` together.
        trainer: the trainer's own parameters (e.g. Pareto ``r``, ``r_mode``, ``window``; CuSP ``thetas``
            and ``epsilons``; GAIRAT ``lam``, ``burn_in``).
        n_train: use the first ``n_train`` training examples (None = all).
        seed: seed of the initialisation, batch order and attacks.
        source: where the numbers come from.
        amp: mixed precision of the forward passes, None (float32), ``"bfloat16"`` or ``"float16"``
            (:mod:`art_spatial.amp`; attack parameters stay float32).
        channels_last: train in ``torch.channels_last`` memory format.
        augment: training-time augmentation, ``None`` or ``"crop-flip"`` (random crop after 4-pixel
            zero padding and horizontal flip, :class:`art_spatial.augment.CropFlip`; the CIFAR-10
            presets' default, as in the papers).
    """

    name: str
    method: str
    dataset: str
    model: str
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: list = field(default_factory=list)
    gamma: float = 0.1
    eps_warmup: int = 0
    attacks: dict = field(default_factory=dict)
    trainer: dict = field(default_factory=dict)
    n_train: int | None = None
    seed: int = 0
    source: str = ""
    amp: str | None = None
    channels_last: bool = False
    augment: str | None = None

    def __post_init__(self):
        self.milestones = [int(m) for m in self.milestones]
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        from .attacks.base import check_int, check_number

        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {self.method!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("eps_warmup", self.eps_warmup, minimum=0)
        check_int("seed", self.seed, minimum=0)
        check_int("n_train", self.n_train, minimum=1, allow_none=True)
        from .amp import resolve_amp_dtype
        from .attacks.base import check_bool

        resolve_amp_dtype(self.amp, "amp")
        check_bool("channels_last", self.channels_last)
        from .augment import get_augmentation

        get_augmentation(self.augment)
        for name in ("lr", "momentum", "weight_decay", "gamma"):
            check_number(name, getattr(self, name), nonneg=True)
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.milestones != sorted(set(self.milestones)) or any(
            not 0 < m < self.epochs for m in self.milestones
        ):
            raise ValueError(
                f"milestones must be increasing epochs in (0, epochs={self.epochs}), got {self.milestones}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (enough to rerun: ``art-spatial train --recipe-file``)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        """Inverse of :meth:`to_dict`; unknown keys are a ``ValueError``."""
        if not isinstance(d, dict):
            raise ValueError(f"a recipe must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown recipe fields {sorted(unknown)} (known: {sorted(known)})")
        required = [
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"the recipe lacks the fields {missing}")
        for k in ("attacks", "trainer"):
            if k in d and not isinstance(d[k], dict):
                raise ValueError(f"recipe field {k!r} must be an object, got {type(d[k]).__name__}")
        for k in ("name", "method", "dataset", "model", "optimizer"):
            if k in d and not isinstance(d[k], str):
                raise ValueError(f"recipe field {k!r} must be a string, got {d[k]!r}")
        return cls(**copy.deepcopy(d))

    def with_overrides(self, **overrides) -> Recipe:
        """A copy with fields replaced (None values ignored). A new ``epochs`` without new
        ``milestones`` rescales the milestones (``round(m · epochs / old_epochs)``, kept inside the run)."""
        d = self.to_dict()
        over = {k: v for k, v in overrides.items() if v is not None}
        trainer_over = over.pop("trainer", None)
        if "epochs" in over and "milestones" not in over and over["epochs"] != self.epochs:
            scale = over["epochs"] / self.epochs
            over["milestones"] = sorted(
                {int(round(m * scale)) for m in self.milestones} & set(range(1, over["epochs"]))
            )
        d.update(over)
        if trainer_over:
            d["trainer"] = {**d["trainer"], **trainer_over}
        return Recipe.from_dict(d)


def _pareto_mnist() -> dict:
    return dict(
        method="pareto",
        dataset="mnist5k",
        model="smallcnn",
        epochs=100,
        batch_size=128,
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        weight_decay=0.0,
        milestones=[55, 75, 90],
        attacks=_MNIST_ATTACKS,
        trainer={"r": 2.2, "r_mode": "absolute", "window": 20},
        source="Pareto AT (arXiv:2111.01996) Appendix E; optimizer of TRADES (arXiv:1901.08573) MNIST",
    )


#: learning-rate schedules of the CIFAR-10 presets: TRADES' (Pareto AT, Joint AT), FAT's and GAIRAT's
_TRADES_CIFAR_SCHEDULE = {"epochs": 76, "milestones": [75]}
_FAT_CIFAR_SCHEDULE = {"epochs": 120, "milestones": [60, 90]}


def _cifar10_preset(method: str, schedule: dict, attacks: dict, trainer: dict, source: str) -> dict:
    """Fields of a CIFAR-10 preset: PreActResNet-18 trained with SGD (:data:`_CIFAR_SGD`) and
    crop-flip, ``schedule`` giving ``epochs`` and ``milestones``."""
    return dict(
        method=method,
        dataset="cifar10",
        model="preactresnet18",
        epochs=schedule["epochs"],
        milestones=list(schedule["milestones"]),
        attacks=attacks,
        trainer=trainer,
        source=source,
        **_CIFAR_SGD,
    )


def _pareto_cifar10() -> dict:
    source = (
        "Pareto AT (arXiv:2111.01996) Appendix E; optimizer of TRADES (arXiv:1901.08573) CIFAR-10"
    )
    trainer = {"r": 4.0, "r_mode": "absolute", "window": 20}
    return _cifar10_preset("pareto", _TRADES_CIFAR_SCHEDULE, _CIFAR_ATTACKS, trainer, source)


def _joint_cifar10() -> dict:
    source = "one-step Joint AT (arXiv:1907.10737) §4.2, Alg. 3; schedule of pareto-cifar10"
    trainer = {"label_smoothing": 0.5, "eps_pixel": 8 / 255, "eps_flow": 0.3}
    return _cifar10_preset("joint", _TRADES_CIFAR_SCHEDULE, {}, trainer, source)


def _cusp_cifar10() -> dict:
    source = "CuSP (arXiv:2002.11318) §5 and appendix (TRADES schedule 75-90-100)"
    schedule = {"epochs": 120, "milestones": [75, 90, 100]}
    attacks = {"pgd": {"eps_step": 2 / 255, "max_iter": 10}}
    trainer = {"thetas": [120.0, 150.0, 180.0], "epsilons": [2 / 255, 4 / 255, 8 / 255]}
    return _cifar10_preset("cusp", schedule, attacks, trainer, source)


def _fat_cifar10() -> dict:
    source = "FAT (arXiv:2002.11242): PGD-10-tau, tau 0/1/2 at epochs 0/50/90 of 120"
    trainer = {"tau_schedule": {"0": 0, "50": 1, "90": 2}, "schedule_epochs": 120}
    return _cifar10_preset("fat", _FAT_CIFAR_SCHEDULE, _PGD10_CIFAR, trainer, source)


def _gairat_cifar10() -> dict:
    source = "GAIRAT (arXiv:2010.01736): PGD-10, lambda -1, weights from half of training"
    trainer = {"lam": -1.0, "burn_in": None}
    return _cifar10_preset("gairat", _FAT_CIFAR_SCHEDULE, _PGD10_CIFAR, trainer, source)


#: preset name -> factory of its fields
RECIPES = {
    "pareto-mnist": _pareto_mnist,
    "pareto-cifar10": _pareto_cifar10,
    "joint-cifar10": _joint_cifar10,
    "cusp-cifar10": _cusp_cifar10,
    "fat-cifar10": _fat_cifar10,
    "gairat-cifar10": _gairat_cifar10,
}

#: the recipe a method falls back to on a dataset when ``--method`` differs from the preset's
_BASE = {"mnist5k": "pareto-mnist", "cifar10": "pareto-cifar10"}


def get_recipe(name: str, **overrides) -> Recipe:
    """The preset ``name`` of :data:`RECIPES` with :meth:`Recipe.with_overrides` applied.

    Changing ``method`` keeps the preset's dataset, schedule and attack budgets (e.g. Max AT with the
    ``pareto-mnist`` recipe); trainer parameters of another method are dropped.
    """
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {name!r}")
    base = Recipe(name=name, **RECIPES[name]())
    method = overrides.get("method")
    if method is not None and method != base.method:
        if method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
        ref = RECIPES[_BASE[base.dataset]]()
        d = base.to_dict()
        d["method"] = method
        d["trainer"] = dict(ref["trainer"]) if method == "pareto" else {}
        # every attack budget of the dataset's base recipe, the preset's own entries on top
        d["attacks"] = {
            k: {**ref["attacks"].get(k, {}), **d["attacks"].get(k, {})}
            for k in sorted(set(ref["attacks"]) | set(d["attacks"]))
        }
        base = Recipe.from_dict(d)
        overrides = {k: v for k, v in overrides.items() if k != "method"}
    return base.with_overrides(**overrides)


# ------------------------------------------------------------------------------------------ builders
def build_model_for(recipe: Recipe):
    """A freshly initialised model of ``recipe.model`` (seeded by ``recipe.seed``)."""
    import torch

    from .models import MODEL_REGISTRY, build_model

    torch.manual_seed(recipe.seed)
    key = recipe.model.lower()
    if key in MODEL_REGISTRY:
        return build_model(key)
    from .bench.robustbench import robustbench_architecture

    try:
        return robustbench_architecture(recipe.model, dataset="cifar10")
    except ValueError as exc:
        raise ValueError(
            f"model {recipe.model!r} is neither one of {sorted(MODEL_REGISTRY)} nor a RobustBench "
            f"model-zoo name ({exc})"
        ) from None


#: training attack kind of a recipe's ``attacks`` -> (class in :mod:`art_spatial.attacks`, its options)
_TRAINING_ATTACKS = {
    "pgd": ("PixelAttack", {"random_init": True}),
    "flow": ("FlowAttack", {"norm": "inf", "units": "normalized"}),
    "affine": ("AffineAttack", {"parametrization": "affine"}),
}


def _attack(kind: str, clf, p: dict):
    """The training attack ``kind`` on ``clf`` with the budget ``p`` (``eps``, ``eps_step``,
    ``max_iter``)."""
    from . import attacks

    if kind not in _TRAINING_ATTACKS:
        raise ValueError(kind)
    class_name, options = _TRAINING_ATTACKS[kind]
    return getattr(attacks, class_name)(
        clf,
        eps=p["eps"],
        eps_step=p["eps_step"],
        max_iter=p["max_iter"],
        verbose=False,
        **options,
    )


def _need(recipe: Recipe, *kinds: str) -> dict:
    missing = [k for k in kinds if k not in recipe.attacks]
    if missing:
        raise ValueError(
            f"method {recipe.method!r} needs the attack budgets {missing} in the recipe's attacks"
        )
    return recipe.attacks


def build_trainer(recipe: Recipe, classifier, **common):
    """The trainer of ``recipe.method`` on ``classifier`` with the recipe's attacks and parameters.

    ``common`` goes to every trainer (``seed``, ``verbose``, ``checkpoint_dir``, ...).
    """
    from . import trainers as T
    from .augment import get_augmentation

    common = {
        "seed": recipe.seed,
        "eps_warmup": recipe.eps_warmup,
        "amp_dtype": recipe.amp,
        "channels_last": recipe.channels_last,
        "augment": get_augmentation(recipe.augment),
        **common,
    }
    m = recipe.method
    if m == "natural":
        common.pop("eps_warmup")
        return T.NaturalTrainer(classifier, **common)
    if m == "pgd":
        return T.PGDAdversarialTrainer(
            classifier, _attack("pgd", classifier, _need(recipe, "pgd")["pgd"]), **common
        )
    if m == "spatial":
        return _spatial_trainer(recipe, classifier, common)
    if m in ("ave", "max", "pareto"):
        return _multi_attack_trainer(recipe, classifier, common)
    if m == "joint":
        tp = dict(recipe.trainer)
        ls = tp.pop("label_smoothing", 0.5)
        return T.JointAdversarialTrainer.one_step(
            classifier, attack_kwargs=tp, label_smoothing=ls, **common
        )
    if m == "cusp":
        return _curriculum_trainer(recipe, classifier, common)
    return _reweighting_trainer(recipe, classifier, common)


def _spatial_trainer(recipe: Recipe, classifier, common: dict):
    """Spatial AT: the integrated flow + affine attack of the recipe's two budgets."""
    from . import trainers as T
    from .attacks import IntegratedSpatialAttack

    _need(recipe, "flow", "affine")
    f, r = recipe.attacks["flow"], recipe.attacks["affine"]
    atk = IntegratedSpatialAttack(
        classifier,
        eps_flow=f["eps"],
        eps_affine=r["eps"],
        eps_step_flow=f["eps_step"],
        eps_step_affine=r["eps_step"],
        max_iter=max(f["max_iter"], r["max_iter"]),
        verbose=False,
    )
    return T.SpatialAdversarialTrainer(classifier, atk, **common)


def _multi_attack_trainer(recipe: Recipe, classifier, common: dict):
    """Ave / Max / Pareto AT over the PGD, flow and affine attacks."""
    from . import trainers as T

    _need(recipe, "pgd", "flow", "affine")
    names = ["pgd", "flow", "affine"]
    atks = [_attack(k, classifier, recipe.attacks[k]) for k in names]
    if recipe.method == "ave":
        return T.AverageAdversarialTrainer(classifier, atks, names=names, **common)
    if recipe.method == "max":
        return T.MaxAdversarialTrainer(classifier, atks, names=names, **common)
    tp = recipe.trainer
    return T.ParetoAdversarialTrainer(
        classifier,
        atks,
        r=tp.get("r", 0.5),
        r_mode=tp.get("r_mode", "relative"),
        window=tp.get("window", 20),
        names=names,
        **common,
    )


def _curriculum_trainer(recipe: Recipe, classifier, common: dict):
    """CuSP: (rotation, ε) stages raised at the learning-rate milestones."""
    from . import trainers as T

    p, tp = recipe.attacks.get("pgd", {}), recipe.trainer
    thetas = tp.get("thetas", [120.0, 150.0, 180.0])
    eps = tp.get("epsilons", [2 / 255, 4 / 255, 8 / 255])
    n = min(len(thetas), len(recipe.milestones) + 1)
    stages = T.CurriculumAdversarialTrainer.stages_from_milestones(
        recipe.milestones, thetas[:n], eps[:n]
    )
    return T.CurriculumAdversarialTrainer(
        classifier,
        stages,
        eps_step=p.get("eps_step", 2 / 255),
        max_iter=p.get("max_iter", 10),
        **common,
    )


def _reweighting_trainer(recipe: Recipe, classifier, common: dict):
    """FAT (early-stopped PGD) or GAIRAT (geometry-aware weights) around the recipe's PGD."""
    from . import trainers as T

    pgd = _attack("pgd", classifier, _need(recipe, "pgd")["pgd"])
    tp = recipe.trainer
    if recipe.method == "fat":
        sched = {int(k): int(v) for k, v in tp.get("tau_schedule", {"0": 0}).items()}
        return T.FriendlyAdversarialTrainer(
            classifier,
            pgd,
            tau_schedule=sched,
            schedule_epochs=tp.get("schedule_epochs", 120),
            **common,
        )
    return T.GeometryAwareAdversarialTrainer(
        classifier, pgd, lam=tp.get("lam"), burn_in=tp.get("burn_in"), **common
    )


def load_training_data(recipe: Recipe, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """The recipe's training split (MNIST-5k's 4000 digits, CIFAR-10's 50000 images from ``data_dir``),
    cut to ``n_train``. Never downloads."""
    if recipe.dataset == "mnist5k":
        from .data import load_mnist5k

        x, y = load_mnist5k("train", seed=0)
    else:
        if data_dir is None:
            raise ValueError(
                "dataset cifar10 needs data_dir (the folder holding cifar-10-batches-py)"
            )
        from .data import load_cifar10

        x, y = load_cifar10(data_dir, split="train", n_examples=recipe.n_train)
    if recipe.n_train is not None:
        x, y = x[: recipe.n_train], y[: recipe.n_train]
    return x, y


# ------------------------------------------------------------------------------------------- runner
def plot_history(history: list, path: Path, title: str = "") -> Path:
    """Training curves (loss; clean / robust training accuracy; learning rate; Pareto α) as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    panels = 3 + int(any("alpha" in h for h in history))
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.2))
    axes[0].plot(ep, [h["loss"] for h in history], marker="o")
    axes[0].set(xlabel="epoch", ylabel="training loss")
    for key in ("clean_acc", "robust_acc", "val_clean_acc"):
        vals = [h.get(key) for h in history]
        if any(v is not None and v == v for v in vals):
            axes[1].plot(ep, [np.nan if v is None else v for v in vals], marker="o", label=key)
    axes[1].set(xlabel="epoch", ylabel="accuracy (training batches)")
    axes[1].legend(fontsize=7)
    axes[2].plot(ep, [h["lr"] for h in history], marker="o")
    axes[2].set(xlabel="epoch", ylabel="learning rate", yscale="log")
    if panels == 4:
        alpha = np.array([h["alpha"] for h in history])
        for i, n in enumerate(history[-1].get("loss_names", range(alpha.shape[1]))):
            axes[3].plot(ep, alpha[:, i], marker="o", label=str(n))
        axes[3].set(xlabel="epoch", ylabel="Pareto α (epoch mean)")
        axes[3].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_training(
    recipe: Recipe,
    out,
    *,
    data_dir=None,
    resume: bool = False,
    verbose: bool = True,
    device: str | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` into the folder ``out``; the same call under ``torchrun`` trains data-parallel.

    Writes ``recipe.json`` (before training), ``checkpoints/last.pt`` (every epoch), then
    ``model.pt`` (the state_dict), ``history.json`` and ``curves.png``; only rank 0 writes. With
    ``resume`` a run continues from its checkpoint (the folder's ``recipe.json`` must equal
    ``recipe``); without it an existing checkpoint is an error (never overwritten silently).

    Args:
        recipe: the run.
        out: output folder.
        data_dir: CIFAR-10 folder (``cifar-10-batches-py`` inside) for ``dataset="cifar10"``.
        resume: continue an interrupted run.
        verbose: progress bars (rank 0).
        device: ``"cpu"`` or ``"cuda"`` (default: cuda when available).

    Returns:
        ``{"out", "history", "seconds", "world_size", "device"}``.
    """
    from .bench import distributed as D

    out = Path(out)
    ckpt_dir = out / "checkpoints"
    recipe_path = out / "recipe.json"
    _check_run_folder(recipe, out, resume)
    D.init_from_env()
    rank, world = D.dist_info()
    device = _training_device(device)
    x, y = load_training_data(recipe, data_dir)
    clf, scheduler = _training_classifier(recipe, world, device)
    if rank == 0:
        write_json_atomic(recipe_path, recipe.to_dict())
    D.barrier()
    trainer = build_trainer(recipe, clf, verbose=verbose and rank == 0, checkpoint_dir=ckpt_dir)
    t0 = time.perf_counter()
    trainer.fit(
        x,
        y,
        batch_size=recipe.batch_size,
        nb_epochs=recipe.epochs,
        scheduler=scheduler,
        resume=resume,
    )
    seconds = time.perf_counter() - t0
    if rank == 0:
        torch_save_atomic(clf.model.state_dict(), out / "model.pt")
        write_json_atomic(
            out / "history.json",
            {
                "recipe": recipe.to_dict(),
                "world_size": world,
                "device": device,
                "history": trainer.history,
            },
        )
        plot_history(
            trainer.history,
            out / "curves.png",
            title=f"{recipe.name}: {recipe.method} on {recipe.dataset} ({recipe.model})",
        )
    D.barrier()
    return {
        "out": str(out),
        "history": trainer.history,
        "seconds": seconds,
        "world_size": world,
        "device": device,
    }


def _check_run_folder(recipe: Recipe, out: Path, resume: bool) -> None:
    """Refuse to resume another recipe in ``out``, and to overwrite an earlier run's checkpoint
    without ``resume``."""
    from .trainers.base import CHECKPOINT_NAME

    recipe_path = out / "recipe.json"
    checkpoint = out / "checkpoints" / CHECKPOINT_NAME
    if recipe_path.exists():
        try:
            old = json.loads(recipe_path.read_text())
        except ValueError as exc:
            raise ValueError(f"{recipe_path} is not a readable recipe ({exc})") from None
        if resume and old != recipe.to_dict():
            raise ValueError(
                f"resume: {recipe_path} holds another recipe than the one given; resume with the "
                f"same arguments (or --recipe-file {recipe_path}), or choose another --out"
            )
    if checkpoint.exists() and not resume:
        raise ValueError(
            f"{checkpoint} exists (an earlier run in --out): pass --resume to continue "
            "it, or choose another --out (it is never overwritten silently)"
        )


def _training_device(device: str | None) -> str:
    """``device`` checked, or ``"cuda"`` when available and ``"cpu"`` otherwise."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    return device


def _training_classifier(recipe: Recipe, world: int, device: str):
    """The recipe's freshly initialised model in an ART classifier with the recipe's optimizer, and
    its ``MultiStepLR`` scheduler (None without milestones)."""
    import torch

    from .models import make_classifier

    model = build_model_for(recipe)
    if world > 1 and device == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    clf = make_classifier(
        model,
        lr=recipe.lr,
        optimizer=recipe.optimizer,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        device_type="gpu" if device == "cuda" else "cpu",
    )
    scheduler = None
    if recipe.milestones:
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            clf.optimizer, milestones=recipe.milestones, gamma=recipe.gamma
        )
    return clf, scheduler
