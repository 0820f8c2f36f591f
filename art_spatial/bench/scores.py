"""Robustness scores (Pareto AT §4.4, Table 1) and the :class:`RobustnessReport`.

Paper: Pareto Adversarial Robustness: Balancing Spatial Robustness and Sensitivity-based Robustness,
arXiv:2111.01996.

* Accuracy under an attack at a strength, in two conventions (both always computed and reported):

  - ``"correct-only"``: robust points / points the model classifies correctly without attack (%).
    The paper's robustness score (§3.1 states it for Fig. 3; its Table 2 lists models whose scores
    are 8–26 points above their clean accuracy, which all-point accuracy cannot produce).
  - ``"all-points"``: robust points / evaluated points (%), RobustBench's robust accuracy; a point
    misclassified without attack counts as non-robust.

  A report's ``score_convention`` says which one its ``category_scores`` and ``universal`` use; the
  suite chooses it (``pareto-mnist`` / ``pareto-cifar10``: correct-only), ``evaluate(...,
  score_convention=...)`` overrides it. See docs/conventions.md, "Robustness scores".
* Robustness score of a category c ∈ {sensitivity, local, global}: the mean of the accuracies (%) over
  the category's strengths (all entries of the category pooled).
* Universal robustness score: ``U = Σ_c (S_c − S_c^ref)``, the reference being a naturally trained
  model's scores under the same convention (Table 1 sets the natural model to 0). E.g. Table 1 MNIST,
  PGD AT: (98.42 − 29.40) + (38.23 − 14.36) + (12.77 − 16.70) = 88.97 (the paper prints 88.97).
  The reference must be a natural model evaluated by the same harness on the same points; without
  one there is no universal score. The paper's own natural-model numbers (a different model) are used
  only when asked for by name, ``reference="paper"``.

Example:
    >>> universal_score({"sensitivity": 98.42, "local": 38.23, "global": 12.77},
    ...                 {"sensitivity": 29.40, "local": 14.36, "global": 16.70})  # doctest: +ELLIPSIS
    88.96...
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from .._io import write_json_atomic
from .suites import CATEGORIES, check_score_convention

logger = logging.getLogger(__name__)

__all__ = [
    "RobustnessReport",
    "strengths_from_record",
    "category_scores",
    "universal_score",
    "resolve_reference",
]

#: score convention -> the per-strength accuracy key it averages
_ACCURACY_KEY = {"correct-only": "accuracy_on_correct", "all-points": "accuracy"}
#: names that select a suite's published reference numbers (``"paper"`` or ``"paper:<suite>"``)
PAPER_REFERENCE = "paper"


def _read_json(path: str | os.PathLike, what: str, remedy: str) -> Any:
    """The JSON value in ``path``; ``ValueError`` naming ``what`` (e.g. ``"the reference file"``), the
    file and ``remedy`` when it is a directory or not readable JSON (truncated, empty, garbage).
    Other ``OSError`` (a missing file, no permission) name the file themselves and pass through."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a directory, not a file: {remedy}")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"cannot read {what} {path!r} ({type(exc).__name__}: {exc}); it is truncated, empty or "
            f"not JSON (e.g. an interrupted copy): {remedy}"
        ) from None


def _nan_or_float(v):
    return float("nan") if v is None else v


def _nan_for_null(data: dict) -> dict:
    """A saved report's dict with the ``null`` that :func:`~art_spatial._io.write_json_atomic` wrote for
    non-finite numbers read back as NaN (accuracies, scores, profile rates; a universal score of NaN
    scores)."""
    data = dict(data)
    if data.get("clean_accuracy", 0.0) is None:
        data["clean_accuracy"] = float("nan")
    keys = ("accuracy", "accuracy_on_correct")
    attacks = []
    for a in data.get("attacks") or []:
        if isinstance(a, dict) and isinstance(a.get("strengths"), list):
            a = {
                **a,
                "strengths": [
                    {**s, **{k: _nan_or_float(s[k]) for k in keys if k in s}}
                    if isinstance(s, dict)
                    else s
                    for s in a["strengths"]
                ],
            }
        attacks.append(a)
    if "attacks" in data:
        data["attacks"] = attacks
    for prefix in ("category_scores", "reference_scores"):
        for suffix in ("", "_all_points", "_on_correct"):
            d = data.get(prefix + suffix)
            if isinstance(d, dict):
                data[prefix + suffix] = {k: _nan_or_float(v) for k, v in d.items()}
    if isinstance(data.get("profiles"), dict):
        data["profiles"] = {
            name: {**p, "rates": [_nan_or_float(r) for r in p["rates"]]}
            if isinstance(p, dict) and isinstance(p.get("rates"), list)
            else p
            for name, p in data["profiles"].items()
        }
    for universal, suffix in (("universal", ""), ("universal_all_points", "_all_points")):
        scores = data.get("category_scores" + suffix) or {}
        if (
            data.get(universal) is None
            and data.get("reference_scores" + suffix) is not None
            and any(v != v for v in scores.values())
        ):
            data[universal] = float("nan")  # a universal score was computed: NaN, not "none"
    return data


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den if den else float("nan")


def strengths_from_record(record: dict) -> list[dict]:
    """Per-strength accuracies (%) from an attack's raw counts.

    ``record`` holds ``n`` (points evaluated), ``n_clean_correct``, ``robust`` and ``robust_on_correct``
    (counts per strength) and ``labels``/``iterations``. ``accuracy`` is the all-point accuracy,
    ``accuracy_on_correct`` the accuracy on the ``n_clean_correct`` points.
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
        key: ``"accuracy"`` (all points) or ``"accuracy_on_correct"`` (points classified correctly
            without attack, the Pareto AT paper's score); a score convention name
            (``"all-points"`` / ``"correct-only"``) is accepted too.
    """
    key = _ACCURACY_KEY.get(key, key)
    pooled: dict[str, list[float]] = {}
    for a in attacks:
        if a.get("category"):
            pooled.setdefault(a["category"], []).extend(s[key] for s in a["strengths"])
    return {c: sum(pooled[c]) / len(pooled[c]) for c in CATEGORIES if c in pooled}


def universal_score(scores: dict[str, float], reference: dict[str, float]) -> float:
    """``Σ_c (scores[c] − reference[c])`` over the categories of ``scores``.

    Both must use the same score convention (the caller's responsibility; the report does it).

    Raises:
        ValueError: ``reference`` lacks a category of ``scores``.
    """
    missing = [c for c in scores if c not in reference]
    if missing:
        raise ValueError(
            f"reference has no score for the categories {missing}; it has {sorted(reference)}"
        )
    return float(sum(scores[c] - float(reference[c]) for c in scores))


# ------------------------------------------------------------------------------------ references
@dataclass
class _Reference:
    """A resolved reference: its category scores per score convention (``by_convention``; a
    convention without scores is absent), or numbers ``as_given`` (used under any convention)."""

    name: str | None = None
    convention: str | None = None
    by_convention: dict[str, dict[str, float]] = field(default_factory=dict)
    as_given: dict[str, float] | None = None
    data_fingerprint: str | None = None
    n_examples: int | None = None
    suite: str | None = None

    def scores(self, convention: str) -> dict[str, float] | None:
        """The reference scores under ``convention`` (numbers ``as_given`` are used as given)."""
        if self.as_given is not None:
            return dict(self.as_given)
        d = self.by_convention.get(convention)
        return dict(d) if d else None


def _floats(d, where: str) -> dict[str, float]:
    bad = [k for k in d if k not in CATEGORIES]
    if bad:
        raise ValueError(f"{where} must map categories {CATEGORIES} to scores, got keys {bad}")
    for k, v in d.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{where}[{k!r}] must be a number, got {v!r}")
    return {k: float(v) for k, v in d.items()}


def _report_like(data: dict) -> _Reference:
    """Both conventions' scores of a report (a :meth:`RobustnessReport.to_dict` dict, possibly from a
    version without ``score_convention``: its ``category_scores`` are then all-point scores)."""
    conv = check_score_convention(data.get("score_convention") or "all-points")
    main = data.get("category_scores") or {}
    on_correct = data.get("category_scores_on_correct") or (
        main if conv == "correct-only" else None
    )
    all_points = data.get("category_scores_all_points") or (main if conv == "all-points" else None)
    meta = data.get("meta") or {}
    given = (("correct-only", on_correct, "on_correct"), ("all-points", all_points, "all_points"))
    return _Reference(
        name=data.get("model_name") or f"report:{data.get('suite')}",
        convention=conv,
        by_convention={
            c: _floats(d, f"reference category_scores_{suffix}") for c, d, suffix in given if d
        },
        data_fingerprint=meta.get("data_fingerprint"),
        n_examples=data.get("n_examples"),
        suite=data.get("suite"),
    )


def _paper_reference(suite) -> _Reference:
    """The published natural-model numbers of ``suite`` (a name, dict or Suite), labelled as such.

    They are scores of the paper's natural model under the suite's ``score_convention``: a different
    model from any you evaluate, so a universal score against them is not a same-harness comparison.

    Raises:
        ValueError: the suite has no published reference numbers.
    """
    from .suites import get_suite

    s = get_suite(suite)
    if not s.reference:
        raise ValueError(
            f"reference='paper': suite {s.name!r} has no published reference numbers; "
            "pass a natural model's report evaluated on the same points instead"
        )
    name = s.reference_name or (
        f"{s.name} published natural-model scores ({s.source or 'paper'}; a different model)"
    )
    numbers = {k: float(v) for k, v in s.reference.items()}
    return _Reference(
        name=name,
        convention=s.score_convention,
        by_convention={s.score_convention: numbers},
        suite=s.name,
    )


_REFERENCE_REMEDY = (
    "pass a natural model's report.json written by the harness (rerun that evaluation if the file "
    "is damaged), a scores JSON {category: score}, or 'paper' for the paper's natural-model numbers"
)


def _resolve(reference, suite=None) -> _Reference | None:
    """A :class:`_Reference` from any accepted ``reference`` form (see :func:`resolve_reference`)."""
    if reference is None:
        return None
    if isinstance(reference, RobustnessReport):
        return _report_like(reference.to_dict())
    if isinstance(reference, str) and (
        reference == PAPER_REFERENCE or reference.startswith(PAPER_REFERENCE + ":")
    ):
        named = reference.partition(":")[2]
        if named:
            return _paper_reference(named)
        if suite is None or (isinstance(suite, dict) and not suite):
            raise ValueError(
                "reference='paper' needs the suite (give reference='paper:<suite name>')"
            )
        return _paper_reference(suite)
    if isinstance(reference, (str, os.PathLike)):
        path = os.fspath(reference)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"reference file not found: {path!r} (reference is a natural model's report JSON, "
                "a scores JSON, or 'paper' for the paper's natural-model numbers)"
            )
        data = _read_json(path, "the reference file", _REFERENCE_REMEDY)
        if not isinstance(data, dict):
            raise ValueError(
                f"the reference file {path!r} holds a JSON {type(data).__name__}, not a report or "
                f"a scores dict: {_REFERENCE_REMEDY}"
            )
        if "category_scores" in data:  # a saved report: its nulls are non-finite scores
            data = _nan_for_null(data)
        try:
            ref = _resolve(data, suite)
        except ValueError as exc:
            raise ValueError(f"the reference file {path!r}: {exc}") from None
        if ref.name in (None, "given scores"):
            ref.name = os.path.basename(path)
        return ref
    if isinstance(reference, dict):
        if "category_scores" in reference:
            return _report_like(reference)
        return _Reference(name="given scores", as_given=_floats(reference, "reference"))
    raise ValueError(
        f"reference must be None, a RobustnessReport, a dict, a JSON path or 'paper', got "
        f"{type(reference).__name__}"
    )


def resolve_reference(
    reference, score_convention: str | None = None, suite=None
) -> tuple[dict[str, float] | None, str | None]:
    """Reference category scores and a name.

    Args:
        reference: None; a natural model's :class:`RobustnessReport` or its dict / JSON path (its
            scores under ``score_convention`` are taken: a report carries both conventions); a dict
            ``category -> score`` (used as given, whatever the convention); or ``"paper"`` /
            ``"paper:<suite>"``: the suite's published natural-model numbers (a different model).
        score_convention: ``"correct-only"`` or ``"all-points"``; None = the reference report's own
            convention.
        suite: the suite (name, dict or Suite) that ``"paper"`` refers to.

    Raises:
        ValueError: unknown form or convention; the reference has no scores under the convention.
    """
    ref = _resolve(reference, suite)
    if ref is None:
        return None, None
    if ref.as_given is not None:
        return dict(ref.as_given), ref.name
    conv = check_score_convention(score_convention or ref.convention or "all-points")
    scores = ref.scores(conv)
    if scores is None:
        raise ValueError(_no_scores_message(ref, conv))
    return scores, ref.name


def _no_scores_message(ref: _Reference, convention: str) -> str:
    has = [c for c in ("correct-only", "all-points") if ref.by_convention.get(c)]
    return (
        f"reference {ref.name!r} has no {convention} scores (it has {has or 'none'}); a universal "
        f"score needs the reference's scores under the report's score_convention ({convention!r})"
    )


def _paper_suite_of(report: RobustnessReport):
    """The suite that ``reference="paper"`` refers to for ``report``: its suite config, or the registered
    suite of the same name when the config predates ``score_convention``."""
    from .suites import SUITES

    cfg = report.suite_config or {}
    if cfg.get("reference") and cfg.get("score_convention"):
        return cfg
    if report.suite in SUITES:
        return report.suite
    return cfg or report.suite


def _fmt_score(v) -> str:
    return "-" if v is None else f"{float(v):.2f}"


@dataclass
class RobustnessReport:
    """Result of :func:`art_spatial.bench.evaluate`.

    Attributes:
        suite: suite name; ``suite_config`` the full validated suite.
        n_examples: points evaluated; ``n_clean_correct`` of them classified correctly.
        clean_accuracy: %.
        attacks: one dict per attack entry: ``name, attack, category, mode, iterations, params,
            strengths`` (list of ``{label, iterations, accuracy, accuracy_on_correct, n_robust,
            n_robust_on_correct}``: ``accuracy`` on all points, ``accuracy_on_correct`` on the
            ``n_clean_correct`` points), ``perturbation`` (realised sizes on the attacked points, at
            the largest strength: mean/max of the max displacement in px, pixel L∞, |rotation| in
            degrees, |translation| in px), ``n_attacked``, ``wall_time_s``, ``n_forward``,
            ``n_backward`` (example-level model passes).
        score_convention: ``"correct-only"`` (accuracy on the points classified correctly without
            attack: the Pareto AT paper's score) or ``"all-points"`` (RobustBench's robust accuracy).
            Reports saved before the field existed load as ``"all-points"`` (what their numbers are).
        category_scores: category -> mean accuracy (%) over its strengths, under ``score_convention``.
        category_scores_all_points / category_scores_on_correct: the same under each convention
            (always both; one of them equals ``category_scores``).
        reference_scores / reference_name: the reference's scores under ``score_convention`` (None
            without a reference) and what it is; ``reference_scores_all_points`` /
            ``reference_scores_on_correct``: the reference under each convention when known (a
            reference report gives both; numbers given by hand only the report's convention).
        universal: ``Σ_c (score_c − reference_c)`` under ``score_convention``, None without a
            reference; ``universal_all_points``: the same with all-point scores (None when the
            reference has no all-point scores).
        profiles: name -> ``{kind, values, rates, n}`` (CuSP profiles, rates in [0, 1]).
        warnings: reliability-check findings (train mode, probability outputs, zero gradients,
            non-deterministic forward) and reference mismatches (a reference evaluated on other
            points).
        meta: seed, world size, versions, device, threads, totals.
    """

    suite: str
    suite_config: dict[str, Any]
    n_examples: int
    n_clean_correct: int
    clean_accuracy: float
    attacks: list[dict[str, Any]] = field(default_factory=list)
    score_convention: str = "all-points"
    category_scores: dict[str, float] = field(default_factory=dict)
    category_scores_all_points: dict[str, float] = field(default_factory=dict)
    category_scores_on_correct: dict[str, float] = field(default_factory=dict)
    reference_scores: dict[str, float] | None = None
    reference_scores_all_points: dict[str, float] | None = None
    reference_scores_on_correct: dict[str, float] | None = None
    reference_name: str | None = None
    universal: float | None = None
    universal_all_points: float | None = None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    model_name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        # a report built by hand or loaded from an older file holds only the convention's dicts:
        # fill the matching per-convention fields so that every report carries both
        self.score_convention = check_score_convention(self.score_convention)
        conv = self.score_convention
        if self.category_scores and not self._by_convention("category_scores", conv):
            self._set_by_convention("category_scores", conv, dict(self.category_scores))
        if (
            self.reference_scores is not None
            and self._by_convention("reference_scores", conv) is None
        ):
            self._set_by_convention("reference_scores", conv, dict(self.reference_scores))
        if conv == "all-points" and self.universal_all_points is None:
            self.universal_all_points = self.universal

    # ------------------------------------------------------------------------------- helpers
    def _by_convention(self, prefix: str, convention: str):
        suffix = "on_correct" if convention == "correct-only" else "all_points"
        return getattr(self, f"{prefix}_{suffix}")

    def _set_by_convention(self, prefix: str, convention: str, value) -> None:
        suffix = "on_correct" if convention == "correct-only" else "all_points"
        setattr(self, f"{prefix}_{suffix}", value)

    @property
    def convention_label(self) -> str:
        """Human-readable convention, e.g. ``"correct-only (accuracy on the 23 points classified
        correctly without attack)"``."""
        if self.score_convention == "correct-only":
            return (
                f"correct-only (accuracy on the {self.n_clean_correct} points classified correctly "
                "without attack, the Pareto AT paper's score)"
            )
        return (
            f"all-points (accuracy on all {self.n_examples} points, RobustBench's robust accuracy)"
        )

    # -------------------------------------------------------------------------------- derived
    def recompute_scores(self) -> RobustnessReport:
        """Recompute the category scores (both conventions) and the universal scores from the attack
        entries and the reference (in place).

        ``reference_scores``, when set, is the reference under ``score_convention``.
        """
        conv = self.score_convention = check_score_convention(self.score_convention)
        self.category_scores_all_points = category_scores(self.attacks, "accuracy")
        self.category_scores_on_correct = category_scores(self.attacks, "accuracy_on_correct")
        self.category_scores = dict(self._by_convention("category_scores", conv))
        if self.reference_scores is not None:
            self._set_by_convention("reference_scores", conv, dict(self.reference_scores))
        self.universal = (
            universal_score(self.category_scores, self.reference_scores)
            if self.reference_scores is not None and self.category_scores
            else None
        )
        ref_all = self.reference_scores_all_points
        self.universal_all_points = (
            universal_score(self.category_scores_all_points, ref_all)
            if ref_all is not None and self.category_scores_all_points
            else None
        )
        return self

    def _set_reference(self, ref: _Reference | None) -> None:
        self.warnings = [w for w in self.warnings if not w.startswith("reference:")]
        if ref is None:
            self.reference_scores = self.reference_scores_all_points = None
            self.reference_scores_on_correct = self.reference_name = None
            return
        conv = self.score_convention
        if ref.as_given is not None:
            self.reference_scores_on_correct = self.reference_scores_all_points = None
            self._set_by_convention("reference_scores", conv, dict(ref.as_given))
        else:
            self.reference_scores_on_correct = ref.scores("correct-only")
            self.reference_scores_all_points = ref.scores("all-points")
        self.reference_scores = self._by_convention("reference_scores", conv)
        if self.reference_scores is None:
            raise ValueError(_no_scores_message(ref, conv))
        self.reference_scores = dict(self.reference_scores)
        self.reference_name = ref.name
        mine = self.meta.get("data_fingerprint")
        problems = []
        if ref.data_fingerprint and mine and ref.data_fingerprint != mine:
            problems.append(
                f"reference: {ref.name!r} was evaluated on other points (data fingerprint "
                f"{ref.data_fingerprint} vs {mine}); the universal score compares different test sets"
            )
        if ref.suite and ref.suite != self.suite and ref.data_fingerprint:
            problems.append(
                f"reference: {ref.name!r} was evaluated with suite {ref.suite!r}, this report with "
                f"{self.suite!r}; the universal score compares different attacks"
            )
        for w in problems:
            logger.warning("%s", w)
        self.warnings.extend(problems)

    def with_reference(self, reference) -> RobustnessReport:
        """A copy scored against ``reference``, under this report's ``score_convention``.

        ``reference``: a natural model's report (or its dict / JSON path; the scores of the report's
        convention are taken from it), a dict ``category -> score`` (used as given), ``"paper"`` /
        ``"paper:<suite>"`` (the suite's published natural-model numbers, a different model), or None
        (no reference: ``universal`` None). See :func:`resolve_reference`.
        """
        rep = RobustnessReport.from_dict(self.to_dict())
        rep._set_reference(_resolve(reference, suite=_paper_suite_of(rep)))
        return rep.recompute_scores()

    def with_score_convention(self, score_convention: str) -> RobustnessReport:
        """A copy scored under ``score_convention`` (``"correct-only"`` or ``"all-points"``).

        Both conventions' accuracies are in every attack entry, so any report can be rescored; the
        universal score needs the reference's scores under the new convention (kept from a reference
        report, unknown for numbers given by hand: then ``universal`` is None).
        """
        conv = check_score_convention(score_convention)
        rep = RobustnessReport.from_dict(self.to_dict())
        rep.score_convention = conv
        rep.reference_scores = rep._by_convention("reference_scores", conv)
        if rep.reference_scores is None and rep.reference_name is not None:
            logger.info(
                "reference %r has no %s scores: no universal score under that convention",
                rep.reference_name,
                conv,
            )
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
        """Inverse of :meth:`to_dict` (unknown keys are ignored; a dict without ``score_convention``,
        written before the field existed, holds all-point scores and loads as ``"all-points"``)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, path: str | os.PathLike) -> None:
        """Write the report as JSON, atomically."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> RobustnessReport:
        """The report saved at ``path`` by :meth:`save`.

        Raises:
            ValueError: naming the file, when it is a directory, not readable JSON (truncated, empty,
                garbage) or not a report.
        """
        path = os.fspath(path)
        remedy = "rerun the evaluation that wrote it (or restore the file)"
        data = _read_json(path, "the report file", remedy)
        required = [
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [k for k in required if not isinstance(data, dict) or k not in data]
        if missing:
            raise ValueError(
                f"the report file {path!r} is not a RobustnessReport (it lacks {missing}): {remedy}"
            )
        return cls.from_dict(_nan_for_null(data))

    def summary_table(self) -> str:
        """A plain-text table: clean accuracy, every attack and strength under both conventions, the
        category and universal scores (the report's convention first, all points beside)."""
        conv = self.score_convention
        other = "all-points" if conv == "correct-only" else "correct-only"
        lines = [
            f"suite {self.suite}: {self.n_examples} examples, clean accuracy "
            f"{self.clean_accuracy:.2f}% ({self.n_clean_correct} classified correctly)",
            f"score convention: {self.convention_label}",
            f"{'attack':<14}{'category':<13}{'strength':<10}{'all points %':>14}"
            f"{'correct-only %':>16}",
        ]
        for a in self.attacks:
            for s in a["strengths"]:
                lines.append(
                    f"{a['name']:<14}{(a['category'] or '-'):<13}{s['label']:<10}"
                    f"{s['accuracy']:>14.2f}{s['accuracy_on_correct']:>16.2f}"
                )
        if self.category_scores:
            ref_head = f"reference ({conv})" if self.reference_scores is not None else ""
            lines.append(f"{'score (%)':<18}{conv + '*':>14}{other:>14}  {ref_head}")
            for c, v in self.category_scores.items():
                o = self._by_convention("category_scores", other).get(c)
                ref = (
                    ""
                    if self.reference_scores is None
                    else f"{self.reference_scores.get(c, float('nan')):.2f}"
                )
                lines.append(f"score {c:<12}{v:>14.2f}{_fmt_score(o):>14}  {ref}")
        if self.universal is not None:
            beside = (
                f"; all points {self.universal_all_points:.2f}"
                if conv == "correct-only" and self.universal_all_points is not None
                else ""
            )
            lines.append(
                f"universal score ({conv}) {self.universal:.2f}{beside}  (vs {self.reference_name})"
            )
        elif self.category_scores:
            lines.append(
                "universal score: not computed (no reference; pass a natural model's report "
                "evaluated on the same points as reference=, or reference='paper' for the paper's "
                "natural-model numbers, a different model)"
            )
        if self.category_scores:
            lines.append(f"* the report's score convention ({conv})")
        for name, p in self.profiles.items():
            vals = ", ".join(
                f"{v:g}:{r:.2f}" for v, r in zip(p["values"], p["rates"], strict=False)
            )
            lines.append(f"profile {name}: {vals}")
        for a in self.attacks:  # the ensemble's per-component counts (spatial-aa suites)
            if a.get("components"):
                parts = [
                    f"{c['name']} {c['n_fooled']}/{c['n_attacked']} fooled, "
                    f"{c['n_forward']} fwd + {c['n_backward']} bwd"
                    for c in a["components"]
                ]
                lines.append(f"components of {a['name']}: " + "; ".join(parts))
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        return "\n".join(line.rstrip() for line in lines)
