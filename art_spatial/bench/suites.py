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
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
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
    "load_suite_schema",
    "SUITE_SCHEMA_PATH",
    "suite_evaluation",
    "EVALUATIONS",
]

#: Score conventions: accuracy on the points classified correctly without attack (Pareto AT), or on
#: all points (RobustBench).
SCORE_CONVENTION_CHOICES = ("correct-only", "all-points")


def check_score_convention(value, name: str = "score_convention") -> str:
    """``value`` if it is a score convention.

    Raises:
        ValueError: naming ``name`` and the allowed values.
    """
    if not isinstance(value, str) or value not in SCORE_CONVENTION_CHOICES:
        raise ValueError(f"{name} must be one of {SCORE_CONVENTION_CHOICES}, got {value!r}")
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


#: the JSON schema of a suite (the harness's error wording in each node's ``errorMessage``)
SUITE_SCHEMA_PATH = Path(__file__).with_name("suite.schema.json")
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


def load_suite_schema() -> dict:
    """The JSON schema of a suite (``suite.schema.json``, shipped with the package).

    >>> sorted(load_suite_schema()["properties"])[:3]
    ['attacks', 'dataset', 'description']
    """
    with open(SUITE_SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


@functools.lru_cache(maxsize=1)
def _schema_validator():
    """A validator of :func:`load_suite_schema` whose ``integer`` is an ``int`` (JSON Schema's accepts
    ``2.0``; an iteration count must be an integer)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)
    )
    return jsonschema.validators.extend(base, type_checker=checker)(load_suite_schema())


def _where(path) -> str:
    """``suite.attacks[1].iterations`` from a JSON path ``["attacks", 1, "iterations"]``."""
    return "suite" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _schema_error(err) -> ValueError:
    """A schema violation as a ``ValueError`` naming the field (in the pre-schema wording)."""
    where, schema, value = _where(err.absolute_path), err.schema, err.instance
    if err.validator == "additionalProperties" and schema.get("additionalProperties") is False:
        allowed = sorted(schema["properties"])
        unknown = sorted(k for k in value if k not in allowed)
        return ValueError(f"{where} has unknown fields {unknown}; allowed: {allowed}")
    if err.validator == "required":  # a missing field: reported as that field being None
        name = next(k for k in err.validator_value if k not in value)
        where, schema, value = f"{where}.{name}", schema["properties"][name], None
        if "$ref" in schema:  # "#/$defs/<name>"
            schema = _schema_validator().schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    message = schema.get("errorMessage", f"is invalid: {err.message}")
    return ValueError(f"{where} {message}, got {value!r}")


def _check_semantics(spec: dict) -> None:
    """The checks the schema cannot express: unique names, registered attack kinds, strictly
    increasing iterations, no ``max_iter`` beside ``iterations``, something to evaluate."""
    for group in ("attacks", "profiles"):
        seen = set()
        for i, entry in enumerate(spec.get(group) or []):
            if entry["name"] in seen:
                raise _err(f"suite.{group}[{i}].name", f"must be unique, {entry['name']!r} repeats")
            seen.add(entry["name"])
    for i, a in enumerate(spec.get("attacks") or []):
        w, kind, its = f"suite.attacks[{i}]", a["attack"], a.get("iterations")
        if not (kind in ATTACK_KINDS or (":" in kind and all(kind.split(":")))):
            raise _err(
                f"{w}.attack",
                f"must be one of {sorted(ATTACK_KINDS)} or 'module:Class', got {kind!r}",
            )
        if "max_iter" in (a.get("params") or {}) and its:
            raise _err(f"{w}.params.max_iter", "must not be given together with iterations")
        if its and any(b <= a_ for a_, b in zip(its, its[1:], strict=False)):
            raise _err(f"{w}.iterations", f"must be strictly increasing, got {its!r}")
    if not spec.get("attacks") and not spec.get("profiles"):
        raise _err("suite.attacks", "and suite.profiles are both empty: nothing to evaluate")


def validate_suite(spec: dict) -> Suite:
    """Validate a suite dict against the JSON schema (:func:`load_suite_schema`) and the checks it
    cannot express, and return a :class:`Suite`.

    Raises:
        ValueError: the message names the offending field, e.g.
            ``suite.attacks[1].iterations must be strictly increasing``.
    """
    from jsonschema.exceptions import best_match

    if not isinstance(spec, dict):
        raise ValueError(f"suite must be a dict, got {type(spec).__name__}")
    err = best_match(_schema_validator().iter_errors(spec))
    if err is not None:
        raise _schema_error(err)
    _check_semantics(spec)
    attacks = [
        AttackEntry(
            name=a["name"],
            attack=a["attack"],
            category=a.get("category"),
            params=dict(a.get("params") or {}),
            iterations=list(a["iterations"]) if a.get("iterations") else None,
            mode=a.get("mode", "final"),
            description=str(a.get("description", "")),
        )
        for a in spec.get("attacks") or []
    ]
    profiles = [
        ProfileEntry(
            name=p["name"],
            kind=p["kind"],
            values=[float(v) for v in p["values"]],
            params=dict(p.get("params") or {}),
            description=str(p.get("description", "")),
        )
        for p in spec.get("profiles") or []
    ]
    ref = spec.get("reference")
    return Suite(
        name=spec["name"],
        attacks=attacks,
        profiles=profiles,
        description=str(spec.get("description", "")),
        dataset=spec.get("dataset"),
        reference=dict(ref) if ref else None,
        source=str(spec.get("source", "")),
        score_convention=spec.get("score_convention") or "all-points",
        reference_name=spec.get("reference_name"),
    )


# ------------------------------------------------------------------------------------------ registry
_PARETO_SOURCE = "Pareto Adversarial Robustness (journal), Appendix E and Table 1"
_PAPER_REFERENCE_NAME = (
    "Pareto AT paper Table 1 natural model, {dataset} (arXiv:2111.01996; a different model, "
    "not evaluated by this harness)"
)


_AFFINE = {"parametrization": "affine"}


def _entry(name: str, attack: str, category: str | None, iterations=None, **params) -> dict:
    """A suite's attack entry dict (``iterations`` left out for one-shot attacks)."""
    entry = {"name": name, "attack": attack, "category": category, "params": params}
    if iterations:
        entry["iterations"] = iterations
    return entry


def _pareto_suite(dataset: str, label: str, description: str, reference: dict, settings: dict):
    """A Pareto AT suite (correct-only scores, the paper's natural-model numbers as reference)."""
    return {
        "name": f"pareto-{dataset}",
        "description": description,
        "dataset": dataset,
        "source": _PARETO_SOURCE,
        "attacks": _pareto_attacks(**settings),
        "score_convention": "correct-only",
        # Table 1 natural model: a different model; used only with reference="paper"
        "reference": reference,
        "reference_name": _PAPER_REFERENCE_NAME.format(dataset=label),
    }


def _pareto_attacks(*, its: tuple, pgd: tuple, flow: float, rt: tuple) -> list[dict]:
    """The Pareto AT attacks: PGD L-inf ``pgd = (eps, eps_step)`` (sensitivity), flow L-inf of 0.3 in
    normalized units with step ``flow`` (local), affine ``rt = (eps, eps_step)`` (global); ``its``:
    the pixel and the spatial attacks' iteration counts."""
    pixel_its, spatial_its = its
    return [
        _entry(
            "pgd", "pgd", "sensitivity", pixel_its, eps=pgd[0], eps_step=pgd[1], random_init=True
        ),
        _entry(
            "flow",
            "flow",
            "local",
            spatial_its,
            eps=0.3,
            eps_step=flow,
            norm="inf",
            units="normalized",
        ),
        _entry("rt", "affine", "global", spatial_its, eps=rt[0], eps_step=rt[1], **_AFFINE),
    ]


def _cusp_profiles(robustness_values: list, robustness_params: dict) -> list[dict]:
    """CuSP's four profiles: rotation, translation, rotation-translation (invariance) and the L-inf
    robustness profile at the given budgets and PGD settings."""
    return [
        {"name": "rotation", "kind": "rotation", "values": [float(t) for t in range(0, 181, 15)]},
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
            "values": robustness_values,
            "params": robustness_params,
        },
    ]


#: dataset -> Table 1 label, description, Table 1 natural-model scores, attack settings
_PARETO = {
    "mnist": (
        "MNIST",
        "Pareto AT MNIST scores: PGD L-inf (sensitivity), flow (local), affine (global).",
        {"sensitivity": 29.40, "local": 14.36, "global": 16.70},
        dict(its=([10, 20, 30, 40], [5, 10, 15, 20]), pgd=(0.3, 0.01), flow=0.01, rt=(0.3, 0.1)),
    ),
    "cifar10": (
        "CIFAR-10",
        "Pareto AT CIFAR-10 scores (Appendix E budgets).",
        {"sensitivity": 0.82, "local": 9.34, "global": 57.28},
        dict(its=([5, 10, 15, 20], [3, 5, 10, 15]), pgd=(0.031, 0.007), flow=0.001, rt=(1.0, 0.05)),
    ),
}

SUITES: dict[str, dict] = {
    **{f"pareto-{dataset}": _pareto_suite(dataset, *row) for dataset, row in _PARETO.items()},
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
            _entry("fgsm", "fgsm", None, eps=8 / 255, eps_step=8 / 255),
            _entry(
                "pgd20", "pgd", "sensitivity", [20], eps=8 / 255, eps_step=2 / 255, random_init=True
            ),
            _entry(
                "spatial",
                "flow",
                "local",
                [20],
                eps=0.3,
                eps_step=0.15,
                norm="2,inf",
                units="pixels",
                random_init=True,
            ),
            _entry(
                "joint",
                "joint",
                None,
                [20],
                spatial="flow",
                eps_pixel=8 / 255,
                eps_step_pixel=2 / 255,
                eps_flow=0.3,
                eps_step_flow=0.15,
                flow_norm="2,inf",
                units="pixels",
                schedule="double-pass",
            ),
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
            _entry("grid", "grid", "global"),
            _entry("worst-of-10", "worst-of-k", "global", k=10),
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
        "profiles": _cusp_profiles(
            [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3], {"eps_step": 0.01, "max_iter": 40}
        ),
    },
    "cusp-cifar10": {
        "name": "cusp-cifar10",
        "description": "CuSP profiles at CIFAR scale: eps in k/255, PGD 10 it step 2/255.",
        "dataset": "cifar10",
        "source": "CuSP, Evaluation Metrics",
        "profiles": _cusp_profiles(
            [k / 255 for k in (0, 1, 2, 4, 8, 16)], {"eps_step": 2 / 255, "max_iter": 10}
        ),
    },
    "smoke-mnist": {
        "name": "smoke-mnist",
        "description": "A seconds-long pareto-mnist replica (budgets as pareto-mnist, few iterations).",
        "dataset": "mnist",
        "source": _PARETO_SOURCE,
        "score_convention": "correct-only",
        "attacks": [
            _entry("pgd", "pgd", "sensitivity", [1, 3], eps=0.3, eps_step=0.05, random_init=True),
            _entry("flow", "flow", "local", [1, 3], eps=0.3, eps_step=0.05),
            _entry("rt", "affine", "global", [1, 3], eps=0.3, eps_step=0.1, **_AFFINE),
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
