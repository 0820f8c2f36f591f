"""Robustness scores (Pareto AT §4.4, Table 1) and the :class:`RobustnessReport`.

* Accuracy under an attack at a strength: robust points / evaluated points (%), and the variant on the
  points the model classifies correctly without attack (the paper's Fig. 3).
* Robustness score of a category c ∈ {sensitivity, local, global}: the mean of the accuracies (%) over
  the category's strengths (all entries of the category pooled).
* Universal robustness score: ``U = Σ_c (S_c − S_c^ref)``, the reference being a naturally trained
  model's scores (Table 1 sets the natural model to 0). E.g. Table 1 MNIST, PGD AT:
  (98.42 − 29.40) + (38.23 − 14.36) + (12.77 − 16.70) = 88.97 (the paper prints 88.97).

Example:
    >>> universal_score({"sensitivity": 98.42, "local": 38.23, "global": 12.77},
    ...                 {"sensitivity": 29.40, "local": 14.36, "global": 16.70})  # doctest: +ELLIPSIS
    88.96...
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .suites import CATEGORIES

__all__ = [
    "RobustnessReport",
    "strengths_from_record",
    "category_scores",
    "universal_score",
    "resolve_reference",
    "atomic_write_json",
]


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to ``path`` atomically (temporary file in the same folder + ``os.replace``)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den if den else float("nan")


def strengths_from_record(record: dict) -> list[dict]:
    """Per-strength accuracies (%) from an attack's raw counts.

    ``record`` holds ``n`` (points evaluated), ``n_clean_correct``, ``robust`` and ``robust_on_correct``
    (counts per strength) and ``labels``/``iterations``.
    """
    out = []
    its = record.get("iterations") or [None] * len(record["robust"])
    for i, (r, rc) in enumerate(zip(record["robust"], record["robust_on_correct"], strict=False)):
        out.append(
            {
                "label": record["labels"][i],
                "iterations": its[i],
                "accuracy": _pct(r, record["n"]),
                "accuracy_on_correct": _pct(rc, record["n_clean_correct"]),
                "n_robust": int(r),
                "n_robust_on_correct": int(rc),
            }
        )
    return out


def category_scores(attacks: list[dict], key: str = "accuracy") -> dict[str, float]:
    """Mean accuracy (%) over the strengths of every scored category (entries with a category).

    Args:
        attacks: the report's attack entries (each with ``category`` and ``strengths``).
        key: ``"accuracy"`` (all points, the paper's score) or ``"accuracy_on_correct"``.
    """
    pooled: dict[str, list[float]] = {}
    for a in attacks:
        if a.get("category"):
            pooled.setdefault(a["category"], []).extend(s[key] for s in a["strengths"])
    return {c: sum(pooled[c]) / len(pooled[c]) for c in CATEGORIES if c in pooled}


def universal_score(scores: dict[str, float], reference: dict[str, float]) -> float:
    """``Σ_c (scores[c] − reference[c])`` over the categories of ``scores``.

    Raises:
        ValueError: ``reference`` lacks a category of ``scores``.
    """
    missing = [c for c in scores if c not in reference]
    if missing:
        raise ValueError(
            f"reference has no score for the categories {missing}; it has {sorted(reference)}"
        )
    return float(sum(scores[c] - float(reference[c]) for c in scores))


def resolve_reference(reference) -> tuple[dict[str, float] | None, str | None]:
    """Reference category scores and a name from: None, a :class:`RobustnessReport`, a report dict,
    a dict ``category -> score`` or a path to a JSON file holding either."""
    if reference is None:
        return None, None
    if isinstance(reference, RobustnessReport):
        return dict(reference.category_scores), reference.model_name or f"report:{reference.suite}"
    if isinstance(reference, (str, os.PathLike)):
        path = os.fspath(reference)
        if not os.path.exists(path):
            raise FileNotFoundError(f"reference file not found: {path!r}")
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        scores, name = resolve_reference(data)
        return scores, name or os.path.basename(path)
    if isinstance(reference, dict):
        if "category_scores" in reference:
            return (
                {k: float(v) for k, v in reference["category_scores"].items()},
                reference.get("model_name") or f"report:{reference.get('suite')}",
            )
        bad = [k for k in reference if k not in CATEGORIES]
        if bad:
            raise ValueError(
                f"reference must map categories {CATEGORIES} to scores, got keys {bad}"
            )
        for k, v in reference.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"reference[{k!r}] must be a number, got {v!r}")
        return {k: float(v) for k, v in reference.items()}, "given scores"
    raise ValueError(
        f"reference must be None, a RobustnessReport, a dict or a JSON path, got "
        f"{type(reference).__name__}"
    )


@dataclass
class RobustnessReport:
    """Result of :func:`art_spatial.bench.evaluate`.

    Attributes:
        suite: suite name; ``suite_config`` the full validated suite.
        n_examples: points evaluated; ``n_clean_correct`` of them classified correctly.
        clean_accuracy: %.
        attacks: one dict per attack entry: ``name, attack, category, mode, iterations, params,
            strengths`` (list of ``{label, iterations, accuracy, accuracy_on_correct, n_robust,
            n_robust_on_correct}``), ``perturbation`` (realised sizes on the attacked points, at the
            largest strength: mean/max of the max displacement in px, pixel L∞, |rotation| in degrees,
            |translation| in px), ``n_attacked``, ``wall_time_s``, ``n_forward``, ``n_backward``
            (example-level model passes).
        category_scores: category -> mean accuracy (%) over its strengths; ``category_scores_on_correct``
            the same on correctly classified points.
        reference_scores / reference_name: the reference used for ``universal`` (None when none).
        universal: ``Σ_c (score_c − reference_c)``, None without a reference.
        profiles: name -> ``{kind, values, rates, n}`` (CuSP profiles, rates in [0, 1]).
        warnings: reliability-check findings (train mode, probability outputs, zero gradients,
            non-deterministic forward).
        meta: seed, world size, versions, device, threads, totals.
    """

    suite: str
    suite_config: dict[str, Any]
    n_examples: int
    n_clean_correct: int
    clean_accuracy: float
    attacks: list[dict[str, Any]] = field(default_factory=list)
    category_scores: dict[str, float] = field(default_factory=dict)
    category_scores_on_correct: dict[str, float] = field(default_factory=dict)
    reference_scores: dict[str, float] | None = None
    reference_name: str | None = None
    universal: float | None = None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    model_name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # -------------------------------------------------------------------------------- derived
    def recompute_scores(self) -> RobustnessReport:
        """Recompute ``category_scores`` and ``universal`` from the attack entries (in place)."""
        self.category_scores = category_scores(self.attacks)
        self.category_scores_on_correct = category_scores(self.attacks, key="accuracy_on_correct")
        self.universal = (
            universal_score(self.category_scores, self.reference_scores)
            if self.reference_scores is not None and self.category_scores
            else None
        )
        return self

    def with_reference(self, reference) -> RobustnessReport:
        """A copy scored against ``reference`` (see :func:`resolve_reference`)."""
        rep = RobustnessReport.from_dict(self.to_dict())
        rep.reference_scores, rep.reference_name = resolve_reference(reference)
        return rep.recompute_scores()

    def attack(self, name: str) -> dict[str, Any]:
        """The attack entry called ``name``."""
        for a in self.attacks:
            if a["name"] == name:
                return a
        raise KeyError(
            f"no attack {name!r} in the report; have {[a['name'] for a in self.attacks]}"
        )

    @property
    def n_forward(self) -> int:
        """Example-level forward passes of all attacks."""
        return int(sum(a["n_forward"] for a in self.attacks))

    @property
    def n_backward(self) -> int:
        """Example-level backward passes of all attacks."""
        return int(sum(a["n_backward"] for a in self.attacks))

    # ----------------------------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (round-trips through :meth:`from_dict`)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobustnessReport:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, path: str | os.PathLike) -> None:
        """Write the report as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> RobustnessReport:
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    def summary_table(self) -> str:
        """A plain-text table: clean accuracy, every attack and strength, category and universal scores."""
        lines = [
            f"suite {self.suite}: {self.n_examples} examples, clean accuracy {self.clean_accuracy:.2f}%",
            f"{'attack':<14}{'category':<13}{'strength':<10}{'acc %':>8}{'acc|correct %':>15}",
        ]
        for a in self.attacks:
            for s in a["strengths"]:
                lines.append(
                    f"{a['name']:<14}{(a['category'] or '-'):<13}{s['label']:<10}"
                    f"{s['accuracy']:>8.2f}{s['accuracy_on_correct']:>15.2f}"
                )
        for c, v in self.category_scores.items():
            ref = (
                ""
                if self.reference_scores is None
                else f" (reference {self.reference_scores.get(c, float('nan')):.2f})"
            )
            lines.append(f"score {c:<12} {v:8.2f}{ref}")
        if self.universal is not None:
            lines.append(f"universal score   {self.universal:8.2f}  (vs {self.reference_name})")
        for name, p in self.profiles.items():
            vals = ", ".join(
                f"{v:g}:{r:.2f}" for v, r in zip(p["values"], p["rates"], strict=False)
            )
            lines.append(f"profile {name}: {vals}")
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        return "\n".join(lines)
