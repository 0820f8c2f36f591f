"""Evaluation suites as data: a registry of named suites plus user suites from a dict or a JSON file.

A suite lists the attacks of a robustness evaluation and the profiles to draw. Each attack entry::

    {"name": "pgd", "attack": "pgd", "category": "sensitivity",
     "params": {"eps": 0.3, "eps_step": 0.01}, "iterations": [10, 20, 30, 40]}

* ``attack``: a registered kind (:data:`ATTACK_KINDS`: ``pgd``, ``fgsm``, ``flow``, ``affine``,
  ``integrated``, ``joint``, ``grid``, ``worst-of-k``) or a ``"module:Class"`` path of an ART attack
  class of this package's design (constructor ``Class(estimator, **params)`` and the tensor API
  ``attack_tensor``).
* ``category``: the robustness category the entry is scored in (Pareto AT §4.4): ``"sensitivity"``
  (pixel PGD L∞), ``"local"`` (flow), ``"global"`` (affine / rotation-translation), or ``null``
  (reported, not scored).
* ``iterations``: the attack strengths as iteration counts. One run to ``max(iterations)`` with every
  iterate's correctness recorded answers all counts (see :mod:`art_spatial.bench.evaluate`); omit it
  for one-shot attacks (FGSM, grid search).
* ``mode``: ``"final"`` (accuracy of the final iterate, the papers' number) or ``"worst"`` (a point
  counts as robust at k only if every iterate 0..k was classified correctly; stronger).

Profile entries (CuSP "Evaluation Metrics")::

    {"name": "rotation", "kind": "rotation", "values": [0, 15, ..., 180]}
    {"name": "robustness", "kind": "robustness", "values": [0, 0.1, 0.2, 0.3],
     "params": {"eps_step": 0.01, "max_iter": 40}}

``rotation`` values are θ in degrees (random angle in [−θ, θ]); ``translation`` values are fractions
i of the image size (random shift in [−i·W, i·W] px per axis); ``rotation-translation`` uses angle
±i·180° and shift ±i·W px (CuSP's Aug-RT); ``robustness`` values are L∞ budgets ε (1 − fooling rate).

Suite fields besides ``attacks`` / ``profiles``: ``name``, ``description``, ``dataset``, ``source``,
``score_convention`` (``"correct-only"``: accuracy on the points the model classifies correctly without
attack, the Pareto AT paper's score; or ``"all-points"``, RobustBench's robust accuracy; default
``"all-points"``; both are always reported, this one is the headline and the universal score's),
``reference`` (published natural-model scores, category -> %, under the suite's convention; used only
when asked for by name, ``reference="paper"``) and ``reference_name`` (what those numbers are).

Registered suites: ``pareto-mnist`` and ``pareto-cifar10`` (Pareto AT Appendix E / Table 1,
correct-only; Pareto Adversarial Robustness: Balancing Spatial Robustness and Sensitivity-based
Robustness, arXiv:2111.01996),
``joint-cifar10`` (Joint AT Table 1 columns), ``engstrom`` (Engstrom et al. grid and worst-of-10),
``cusp`` and ``cusp-cifar10`` (CuSP invariance and robustness profiles), ``smoke-mnist`` (seconds;
a pareto-mnist replica, correct-only), ``spatial-aa-mnist`` and ``spatial-aa-cifar10`` (the
parameter-free ensemble :class:`~art_spatial.attacks.ensemble.SpatialAutoAttack` at the pareto suites'
budgets, correct-only like them, so that each reliable number stands beside its paper-protocol one; see
docs/spatial_aa.md). The others score all points.

Example:
    >>> s = get_suite("pareto-mnist")
    >>> [(a.name, a.category, a.iterations) for a in s.attacks][0]
    ('pgd', 'sensitivity', [10, 20, 30, 40])
    >>> get_suite({"name": "mine", "attacks": [{"name": "f", "attack": "flow",
    ...            "category": "local", "iterations": [2, 4]}]}).attacks[0].max_iter
    4
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AttackEntry",
    "ProfileEntry",
    "Suite",
    "SUITES",
    "ATTACK_KINDS",
    "CATEGORIES",
    "PROFILE_KINDS",
    "get_suite",
    "register_suite",
    "list_suites",
    "validate_suite",
    "suite_evaluation",
    "EVALUATIONS",
]

#: Score conventions: accuracy on the points classified correctly without attack (Pareto AT), or on
#: all points (RobustBench).
SCORE_CONVENTIONS = ("correct-only", "all-points")


def check_score_convention(value, name: str = "score_convention") -> str:
    """``value`` if it is a score convention.

    Raises:
        ValueError: naming ``name`` and the allowed values.
    """
    if not isinstance(value, str) or value not in SCORE_CONVENTIONS:
        raise ValueError(f"{name} must be one of {SCORE_CONVENTIONS}, got {value!r}")
    return value


#: Scored categories, in the order of the Pareto paper's Table 1.
CATEGORIES = ("sensitivity", "local", "global")
MODES = ("final", "worst")
PROFILE_KINDS = ("rotation", "translation", "rotation-translation", "robustness")

#: attack kind -> (``module:Class``, fixed parameters applied on top of the entry's params)
ATTACK_KINDS: dict[str, tuple] = {
    "pgd": ("art_spatial.attacks.pixel:PixelAttack", {}),
    "fgsm": ("art_spatial.attacks.pixel:PixelAttack", {"max_iter": 1, "random_init": False}),
    "flow": ("art_spatial.attacks.spatial:FlowAttack", {}),
    "affine": ("art_spatial.attacks.spatial:AffineAttack", {}),
    "integrated": ("art_spatial.attacks.spatial:IntegratedSpatialAttack", {}),
    # written by other engineers; imported lazily when a suite uses them
    "joint": ("art_spatial.attacks.joint:JointSpatialPixelAttack", {}),
    "grid": ("art_spatial.attacks.grid:GridSpatialAttack", {"mode": "grid"}),
    "worst-of-k": ("art_spatial.attacks.grid:GridSpatialAttack", {"mode": "worst_of_k"}),
    # the parameter-free ensemble (worst case per example over APGD-CE, APGD-T, random search, grid seed)
    "spatial-aa": ("art_spatial.attacks.ensemble:SpatialAutoAttack", {}),
}

#: what a suite's numbers measure: the papers' fixed-step protocol, or the parameter-free ensemble
EVALUATIONS = ("paper-protocol", "spatial-aa")


def suite_evaluation(suite) -> str:
    """``"spatial-aa"`` when every attack of ``suite`` (a :class:`Suite` or its dict) is the ensemble,
    else ``"paper-protocol"`` (what a leaderboard entry's ``evaluation`` field says).

    >>> suite_evaluation(get_suite("spatial-aa-mnist")), suite_evaluation(get_suite("pareto-mnist"))
    ('spatial-aa', 'paper-protocol')
    """
    if isinstance(suite, Suite):
        kinds = {a.attack for a in suite.attacks}
    else:
        kinds = {a.get("attack", "") for a in (suite or {}).get("attacks", [])}
    return "spatial-aa" if kinds and kinds <= {"spatial-aa"} else "paper-protocol"


_ATTACK_KEYS = {"name", "attack", "category", "params", "iterations", "mode", "description"}
_PROFILE_KEYS = {"name", "kind", "values", "params", "description"}
_SUITE_KEYS = {
    "name",
    "description",
    "dataset",
    "attacks",
    "profiles",
    "reference",
    "reference_name",
    "source",
    "score_convention",
}
#: suite fields that change how counts are scored, not the counts (left out of the resume fingerprint)
SCORING_ONLY_KEYS = ("score_convention", "reference_name")


def _err(where: str, msg: str) -> ValueError:
    return ValueError(f"{where} {msg}")


@dataclass
class AttackEntry:
    """One attack of a suite (see the module docstring for the fields)."""

    name: str
    attack: str
    category: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    iterations: list[int] | None = None
    mode: str = "final"
    description: str = ""

    @property
    def class_path(self) -> str:
        """``module:Class`` of the attack."""
        return ATTACK_KINDS[self.attack][0] if self.attack in ATTACK_KINDS else self.attack

    @property
    def max_iter(self) -> int | None:
        """The single run's iteration count (``max(iterations)``), None for one-shot attacks."""
        return max(self.iterations) if self.iterations else None

    def attack_params(self) -> dict[str, Any]:
        """Constructor parameters: the entry's params, the kind's fixed ones, ``max_iter``."""
        p = dict(self.params)
        if self.attack == "fgsm":
            p.setdefault("eps_step", p.get("eps", 0.3))
        if self.attack in ATTACK_KINDS:
            p.update(ATTACK_KINDS[self.attack][1])
        if self.iterations:
            p["max_iter"] = self.max_iter
        return p

    def strength_labels(self) -> list[str]:
        """Human-readable strength names (``"10 it"`` ...; ``"-"`` for one-shot attacks)."""
        return [f"{k} it" for k in self.iterations] if self.iterations else ["-"]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "attack": self.attack,
            "category": self.category,
            "params": copy.deepcopy(self.params),
            "iterations": list(self.iterations) if self.iterations else None,
            "mode": self.mode,
            "description": self.description,
        }


@dataclass
class ProfileEntry:
    """One CuSP profile of a suite: ``kind`` in :data:`PROFILE_KINDS`, ``values`` the x axis."""

    name: str
    kind: str
    values: list[float]
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "values": list(self.values),
            "params": copy.deepcopy(self.params),
            "description": self.description,
        }


@dataclass
class Suite:
    """A validated evaluation suite (build it with :func:`get_suite` or :func:`validate_suite`)."""

    name: str
    attacks: list[AttackEntry] = field(default_factory=list)
    profiles: list[ProfileEntry] = field(default_factory=list)
    description: str = ""
    dataset: str | None = None
    reference: dict[str, float] | None = None
    source: str = ""
    score_convention: str = "all-points"
    reference_name: str | None = None

    @property
    def categories(self) -> list[str]:
        """Scored categories present in the suite, in :data:`CATEGORIES` order."""
        present = {a.category for a in self.attacks if a.category}
        return [c for c in CATEGORIES if c in present]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "dataset": self.dataset,
            "attacks": [a.to_dict() for a in self.attacks],
            "profiles": [p.to_dict() for p in self.profiles],
            "reference": dict(self.reference) if self.reference else None,
            "source": self.source,
            "score_convention": self.score_convention,
            "reference_name": self.reference_name,
        }

    def counting_dict(self) -> dict:
        """:meth:`to_dict` without the fields that only change how counts are scored
        (``score_convention``, ``reference_name``): what the resume state's fingerprint hashes, so a
        state file stays valid whichever convention scores it."""
        return {k: v for k, v in self.to_dict().items() if k not in SCORING_ONLY_KEYS}

    def fingerprint(self, **evaluation) -> str:
        """Stable hash of the suite's attacks, profiles and descriptive fields (:meth:`counting_dict`).

        With keyword arguments, the hash of an evaluation of the suite: :meth:`counting_dict` (under
        ``"suite"``) with the given JSON-compatible settings (the harness passes the number of points,
        seed, modes, options and a data hash: what its resumable state is keyed by).

        >>> s = get_suite("smoke-mnist")
        >>> s.fingerprint() == s.fingerprint(), s.fingerprint(seed=0) == s.fingerprint(seed=1)
        (True, False)
        """
        content = (
            {"suite": self.counting_dict(), **evaluation} if evaluation else self.counting_dict()
        )
        text = json.dumps(content, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def _check_number(where, v, positive=False, nonneg=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _err(where, f"must be a number, got {v!r}")
    if positive and not v > 0:
        raise _err(where, f"must be positive, got {v!r}")
    if nonneg and v < 0:
        raise _err(where, f"must be non-negative, got {v!r}")


def validate_suite(spec: dict) -> Suite:
    """Validate a suite dict and return a :class:`Suite`.

    Raises:
        ValueError: the message names the offending field, e.g.
            ``suite.attacks[1].iterations must be strictly increasing``.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"suite must be a dict, got {type(spec).__name__}")
    unknown = set(spec) - _SUITE_KEYS
    if unknown:
        raise _err("suite", f"has unknown fields {sorted(unknown)}; allowed: {sorted(_SUITE_KEYS)}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise _err("suite.name", f"must be a non-empty string, got {name!r}")
    attacks_raw = spec.get("attacks", []) or []
    profiles_raw = spec.get("profiles", []) or []
    if not isinstance(attacks_raw, list):
        raise _err("suite.attacks", "must be a list")
    if not isinstance(profiles_raw, list):
        raise _err("suite.profiles", "must be a list")
    attacks, seen = [], set()
    for i, a in enumerate(attacks_raw):
        w = f"suite.attacks[{i}]"
        if not isinstance(a, dict):
            raise _err(w, "must be a dict")
        unknown = set(a) - _ATTACK_KEYS
        if unknown:
            raise _err(w, f"has unknown fields {sorted(unknown)}; allowed: {sorted(_ATTACK_KEYS)}")
        an = a.get("name")
        if not isinstance(an, str) or not an:
            raise _err(f"{w}.name", f"must be a non-empty string, got {an!r}")
        if an in seen:
            raise _err(f"{w}.name", f"must be unique, {an!r} repeats")
        seen.add(an)
        kind = a.get("attack")
        if not isinstance(kind, str) or not (
            kind in ATTACK_KINDS or (":" in kind and all(kind.split(":")))
        ):
            raise _err(
                f"{w}.attack",
                f"must be one of {sorted(ATTACK_KINDS)} or 'module:Class', got {kind!r}",
            )
        cat = a.get("category")
        if cat is not None and cat not in CATEGORIES:
            raise _err(f"{w}.category", f"must be one of {CATEGORIES} or null, got {cat!r}")
        params = a.get("params", {}) or {}
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise _err(f"{w}.params", "must be a dict with string keys")
        if "max_iter" in params and a.get("iterations"):
            raise _err(f"{w}.params.max_iter", "must not be given together with iterations")
        for key in ("eps", "eps_step"):
            if key in params:
                _check_number(f"{w}.params.{key}", params[key], nonneg=True)
        its = a.get("iterations")
        if its is not None:
            if not isinstance(its, list) or not its:
                raise _err(
                    f"{w}.iterations", f"must be a non-empty list of positive integers, got {its!r}"
                )
            for k in its:
                if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                    raise _err(f"{w}.iterations", f"must contain positive integers, got {k!r}")
            if any(b <= a_ for a_, b in zip(its, its[1:], strict=False)):
                raise _err(f"{w}.iterations", f"must be strictly increasing, got {its!r}")
        mode = a.get("mode", "final")
        if mode not in MODES:
            raise _err(f"{w}.mode", f"must be one of {MODES}, got {mode!r}")
        attacks.append(
            AttackEntry(
                name=an,
                attack=kind,
                category=cat,
                params=dict(params),
                iterations=list(its) if its else None,
                mode=mode,
                description=str(a.get("description", "")),
            )
        )
    profiles, seen = [], set()
    for i, p in enumerate(profiles_raw):
        w = f"suite.profiles[{i}]"
        if not isinstance(p, dict):
            raise _err(w, "must be a dict")
        unknown = set(p) - _PROFILE_KEYS
        if unknown:
            raise _err(w, f"has unknown fields {sorted(unknown)}; allowed: {sorted(_PROFILE_KEYS)}")
        pn = p.get("name")
        if not isinstance(pn, str) or not pn:
            raise _err(f"{w}.name", f"must be a non-empty string, got {pn!r}")
        if pn in seen:
            raise _err(f"{w}.name", f"must be unique, {pn!r} repeats")
        seen.add(pn)
        kind = p.get("kind")
        if kind not in PROFILE_KINDS:
            raise _err(f"{w}.kind", f"must be one of {PROFILE_KINDS}, got {kind!r}")
        vals = p.get("values")
        if not isinstance(vals, list) or not vals:
            raise _err(f"{w}.values", f"must be a non-empty list of numbers, got {vals!r}")
        for v in vals:
            _check_number(f"{w}.values", v, nonneg=True)
        params = p.get("params", {}) or {}
        if not isinstance(params, dict):
            raise _err(f"{w}.params", "must be a dict")
        profiles.append(
            ProfileEntry(
                name=pn,
                kind=kind,
                values=[float(v) for v in vals],
                params=dict(params),
                description=str(p.get("description", "")),
            )
        )
    if not attacks and not profiles:
        raise _err("suite.attacks", "and suite.profiles are both empty: nothing to evaluate")
    ref = spec.get("reference")
    if ref is not None:
        if not isinstance(ref, dict):
            raise _err("suite.reference", "must be a dict category -> score (%)")
        for k, v in ref.items():
            if k not in CATEGORIES:
                raise _err(
                    "suite.reference", f"has an unknown category {k!r}; allowed: {CATEGORIES}"
                )
            _check_number(f"suite.reference.{k}", v)
    ref_name = spec.get("reference_name")
    if ref_name is not None and not isinstance(ref_name, str):
        raise _err("suite.reference_name", f"must be a string or null, got {ref_name!r}")
    convention = spec.get("score_convention")
    convention = check_score_convention(
        "all-points" if convention is None else convention, "suite.score_convention"
    )
    dataset = spec.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise _err("suite.dataset", f"must be a string or null, got {dataset!r}")
    return Suite(
        name=name,
        attacks=attacks,
        profiles=profiles,
        description=str(spec.get("description", "")),
        dataset=dataset,
        reference=dict(ref) if ref else None,
        source=str(spec.get("source", "")),
        score_convention=convention,
        reference_name=ref_name,
    )


# ------------------------------------------------------------------------------------------ registry
_PARETO_SOURCE = "Pareto Adversarial Robustness (journal), Appendix E and Table 1"
_PAPER_REFERENCE_NAME = (
    "Pareto AT paper Table 1 natural model, {dataset} (arXiv:2111.01996; a different model, "
    "not evaluated by this harness)"
)

SUITES: dict[str, dict] = {
    "pareto-mnist": {
        "name": "pareto-mnist",
        "description": "Pareto AT MNIST scores: PGD L-inf (sensitivity), flow (local), affine (global).",
        "dataset": "mnist",
        "source": _PARETO_SOURCE,
        "attacks": [
            {
                "name": "pgd",
                "attack": "pgd",
                "category": "sensitivity",
                "params": {"eps": 0.3, "eps_step": 0.01, "random_init": True},
                "iterations": [10, 20, 30, 40],
            },
            {
                "name": "flow",
                "attack": "flow",
                "category": "local",
                "params": {"eps": 0.3, "eps_step": 0.01, "norm": "inf", "units": "normalized"},
                "iterations": [5, 10, 15, 20],
            },
            {
                "name": "rt",
                "attack": "affine",
                "category": "global",
                "params": {"eps": 0.3, "eps_step": 0.1, "parametrization": "affine"},
                "iterations": [5, 10, 15, 20],
            },
        ],
        "score_convention": "correct-only",
        # Table 1 natural model (MNIST): a different model; used only with reference="paper"
        "reference": {"sensitivity": 29.40, "local": 14.36, "global": 16.70},
        "reference_name": _PAPER_REFERENCE_NAME.format(dataset="MNIST"),
    },
    "pareto-cifar10": {
        "name": "pareto-cifar10",
        "description": "Pareto AT CIFAR-10 scores (Appendix E budgets).",
        "dataset": "cifar10",
        "source": _PARETO_SOURCE,
        "attacks": [
            {
                "name": "pgd",
                "attack": "pgd",
                "category": "sensitivity",
                "params": {"eps": 0.031, "eps_step": 0.007, "random_init": True},
                "iterations": [5, 10, 15, 20],
            },
            {
                "name": "flow",
                "attack": "flow",
                "category": "local",
                "params": {"eps": 0.3, "eps_step": 0.001, "norm": "inf", "units": "normalized"},
                "iterations": [3, 5, 10, 15],
            },
            {
                "name": "rt",
                "attack": "affine",
                "category": "global",
                "params": {"eps": 1.0, "eps_step": 0.05, "parametrization": "affine"},
                "iterations": [3, 5, 10, 15],
            },
        ],
        "score_convention": "correct-only",
        # Table 1 natural model (CIFAR-10): a different model; used only with reference="paper"
        "reference": {"sensitivity": 0.82, "local": 9.34, "global": 57.28},
        "reference_name": _PAPER_REFERENCE_NAME.format(dataset="CIFAR-10"),
    },
    "joint-cifar10": {
        "name": "joint-cifar10",
        "description": (
            "Joint spatial-pixel AT (Zhang & Wang) Table 1 columns: FGSM, PGD-20, spatial flow "
            "(l2,inf ball, 0.3 px), joint. eps_x = 8/255; 20 steps, pixel step 2/255, spatial step "
            "0.15 px (the paper's step symbols are not legible in the available text; these are the "
            "package's defaults)."
        ),
        "dataset": "cifar10",
        "source": "Joint Adversarial Training, Table 1",
        "attacks": [
            {
                "name": "fgsm",
                "attack": "fgsm",
                "category": None,
                "params": {"eps": 8 / 255, "eps_step": 8 / 255},
            },
            {
                "name": "pgd20",
                "attack": "pgd",
                "category": "sensitivity",
                "params": {"eps": 8 / 255, "eps_step": 2 / 255, "random_init": True},
                "iterations": [20],
            },
            {
                "name": "spatial",
                "attack": "flow",
                "category": "local",
                "params": {
                    "eps": 0.3,
                    "eps_step": 0.15,
                    "norm": "2,inf",
                    "units": "pixels",
                    "random_init": True,
                },
                "iterations": [20],
            },
            {
                "name": "joint",
                "attack": "joint",
                "category": None,
                "params": {
                    "spatial": "flow",
                    "eps_pixel": 8 / 255,
                    "eps_step_pixel": 2 / 255,
                    "eps_flow": 0.3,
                    "eps_step_flow": 0.15,
                    "flow_norm": "2,inf",
                    "units": "pixels",
                    "schedule": "double-pass",
                },
                "iterations": [20],
            },
        ],
    },
    "engstrom": {
        "name": "engstrom",
        "description": (
            "Engstrom et al.: exhaustive grid over rotations (-30..30 deg, 31 values) x shifts "
            "(-3..3 px, 5x5) = 775 transforms, worst per example; and worst-of-10 random transforms."
        ),
        "dataset": None,
        "source": "Engstrom et al., Exploring the Landscape of Spatial Robustness",
        "attacks": [
            {"name": "grid", "attack": "grid", "category": "global", "params": {}},
            {
                "name": "worst-of-10",
                "attack": "worst-of-k",
                "category": "global",
                "params": {"k": 10},
            },
        ],
    },
    "cusp": {
        "name": "cusp",
        "description": (
            "CuSP profiles (MNIST scale): rotation / translation / rotation-translation invariance "
            "rates and the L-inf robustness profile 1 - fooling rate (PGD, random start, 40 it, "
            "step 0.01)."
        ),
        "dataset": "mnist",
        "source": "CuSP, Evaluation Metrics",
        "profiles": [
            {
                "name": "rotation",
                "kind": "rotation",
                "values": [float(t) for t in range(0, 181, 15)],
            },
            {
                "name": "translation",
                "kind": "translation",
                "values": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
            },
            {
                "name": "rotation-translation",
                "kind": "rotation-translation",
                "values": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0],
            },
            {
                "name": "robustness",
                "kind": "robustness",
                "values": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
                "params": {"eps_step": 0.01, "max_iter": 40},
            },
        ],
    },
    "cusp-cifar10": {
        "name": "cusp-cifar10",
        "description": "CuSP profiles at CIFAR scale: eps in k/255, PGD 10 it step 2/255.",
        "dataset": "cifar10",
        "source": "CuSP, Evaluation Metrics",
        "profiles": [
            {
                "name": "rotation",
                "kind": "rotation",
                "values": [float(t) for t in range(0, 181, 15)],
            },
            {
                "name": "translation",
                "kind": "translation",
                "values": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
            },
            {
                "name": "rotation-translation",
                "kind": "rotation-translation",
                "values": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0],
            },
            {
                "name": "robustness",
                "kind": "robustness",
                "values": [k / 255 for k in (0, 1, 2, 4, 8, 16)],
                "params": {"eps_step": 2 / 255, "max_iter": 10},
            },
        ],
    },
    "smoke-mnist": {
        "name": "smoke-mnist",
        "description": "A seconds-long pareto-mnist replica (budgets as pareto-mnist, few iterations).",
        "dataset": "mnist",
        "source": _PARETO_SOURCE,
        "score_convention": "correct-only",
        "attacks": [
            {
                "name": "pgd",
                "attack": "pgd",
                "category": "sensitivity",
                "params": {"eps": 0.3, "eps_step": 0.05, "random_init": True},
                "iterations": [1, 3],
            },
            {
                "name": "flow",
                "attack": "flow",
                "category": "local",
                "params": {"eps": 0.3, "eps_step": 0.05},
                "iterations": [1, 3],
            },
            {
                "name": "rt",
                "attack": "affine",
                "category": "global",
                "params": {"eps": 0.3, "eps_step": 0.1, "parametrization": "affine"},
                "iterations": [1, 3],
            },
        ],
        "profiles": [
            {"name": "rotation", "kind": "rotation", "values": [0.0, 90.0, 180.0]},
        ],
    },
}


def _aa_entries(pixel_eps: float, flow_eps: float, affine_eps: float, budget: dict) -> list[dict]:
    """The ``spatial-aa-*`` suites' entries: the pareto suites' threat models and budgets (same entry
    names and categories), plus the rotation-translation box and the integrated threat (not scored)."""

    def entry(name, category, threat, description, **params):
        return {
            "name": name,
            "attack": "spatial-aa",
            "category": category,
            "description": description,
            "params": {"threat": threat, **params, **budget},
        }

    return [
        entry("pgd", "sensitivity", "pixel", "pixel L-inf ensemble", eps=pixel_eps),
        entry(
            "flow",
            "local",
            "flow",
            "flow L-inf ensemble (normalized units)",
            eps=flow_eps,
            norm="inf",
            units="normalized",
        ),
        entry("rt", "global", "affine", "affine (w_RT) ensemble", eps=affine_eps),
        entry(
            "rt-box",
            None,
            "rt",
            "rotation-translation box +-30 deg, +-3 px (Engstrom et al.)",
            max_rotation=30.0,
            max_translation=3.0,
        ),
        entry(
            "integrated",
            None,
            "integrated",
            "integrated flow + affine ensemble",
            eps=affine_eps,
            eps_flow=flow_eps,
        ),
    ]


#: component budgets of the spatial-aa suites (passes per example at most about
#: 2·n_restarts·n_iter + 2·n_target_classes·n_iter + n_queries + 63)
AA_BUDGET = {"n_iter": 25, "n_restarts": 3, "n_target_classes": 2, "n_queries": 200}

SUITES["spatial-aa-mnist"] = {
    "name": "spatial-aa-mnist",
    "description": (
        "Parameter-free spatial evaluation (worst case per example over grid seed, APGD-CE, "
        "APGD-T and a gradient-free random search) at the pareto-mnist budgets."
    ),
    "dataset": "mnist",
    "source": "Croce & Hein, arXiv:2003.01690 (ensemble); Pareto AT Appendix E (budgets)",
    "score_convention": "correct-only",
    "attacks": _aa_entries(0.3, 0.3, 0.3, AA_BUDGET),
}
SUITES["spatial-aa-cifar10"] = {
    "name": "spatial-aa-cifar10",
    "description": (
        "Parameter-free spatial evaluation (worst case per example over grid seed, APGD-CE, "
        "APGD-T and a gradient-free random search) at the pareto-cifar10 budgets."
    ),
    "dataset": "cifar10",
    "source": "Croce & Hein, arXiv:2003.01690 (ensemble); Pareto AT Appendix E (budgets)",
    "score_convention": "correct-only",
    "attacks": _aa_entries(0.031, 0.3, 1.0, AA_BUDGET),
}


def list_suites() -> list[str]:
    """Names of the registered suites."""
    return sorted(SUITES)


def register_suite(spec: dict | str | os.PathLike, overwrite: bool = False) -> Suite:
    """Validate and register a suite (dict or JSON file) under its name; returns it."""
    suite = get_suite(spec)
    if suite.name in SUITES and not overwrite:
        raise ValueError(f"suite name {suite.name!r} is already registered (pass overwrite=True)")
    SUITES[suite.name] = suite.to_dict()
    return suite


def get_suite(spec: str | os.PathLike | dict | Suite) -> Suite:
    """Resolve a suite: a registered name, a path to a JSON file, a dict, or a :class:`Suite`.

    Raises:
        ValueError: unknown name / invalid content (naming the field).
        FileNotFoundError: a ``.json`` path that does not exist.
    """
    if isinstance(spec, Suite):
        return validate_suite(spec.to_dict())
    if isinstance(spec, dict):
        return validate_suite(copy.deepcopy(spec))
    if isinstance(spec, (str, os.PathLike)):
        s = os.fspath(spec)
        if s in SUITES:
            return validate_suite(copy.deepcopy(SUITES[s]))
        if s.endswith(".json") or os.path.exists(s):
            if not os.path.exists(s):
                raise FileNotFoundError(f"suite file not found: {s!r}")
            with open(s, encoding="utf-8") as fh:
                try:
                    data = json.load(fh)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"suite file {s!r} is not valid JSON: {exc}") from exc
            return validate_suite(data)
        raise ValueError(f"suite must be one of {list_suites()}, a JSON file or a dict, got {s!r}")
    raise ValueError(f"suite must be a name, a path, a dict or a Suite, got {type(spec).__name__}")
