"""The harness's resumable state: typed records of every finished unit, on disk as ``state.json``.

An evaluation (:func:`art_spatial.bench.evaluate`) runs in units: the clean pass, each attack entry,
each profile of the suite. After every unit the :class:`EvaluationState` is written atomically
(:meth:`EvaluationState.to_disk`); a rerun with the same arguments reads it
(:meth:`EvaluationState.from_disk`) and skips the finished units. Its ``fingerprint`` identifies the
evaluation (:meth:`art_spatial.bench.suites.Suite.fingerprint` of the suite with the data, seed and
options), so a state is never continued by another evaluation.

The records hold raw counts, not scores: an :class:`AttackRecord` the robust points per strength (on
all points and on the points classified correctly without attack), passes, perturbation sizes and the
per-example outcomes; a :class:`ProfileRecord` the unchanged predictions per profile value. Counts of
disjoint example sets add up: :meth:`EvaluationState.merge` combines the states of the shards of a
sharded evaluation (``art-spatial evaluate --shard i/n``) into the state of the whole one.

On disk (format version :data:`STATE_VERSION`)::

    {"version": 1, "fingerprint": "…", "clean": {"n": 8, "n_correct": 7},
     "attacks": {"pgd": {"robust": [3, 2], "robust_on_correct": [3, 2], "n_attacked": 7, …}},
     "profiles": {"rotation": {"kind": "rotation", "values": [0.0, 90.0], "unchanged": [7, 2], …}},
     "warnings": []}

Example:
    >>> a = ProfileRecord("rotation", [0.0, 90.0], unchanged=[2, 1], n=2)
    >>> b = ProfileRecord("rotation", [0.0, 90.0], unchanged=[1, 0], n=2)
    >>> ProfileRecord.merge([a, b]).rates
    [0.75, 0.25]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .._io import write_json_atomic
from .scores import _read_json, strengths_from_record

logger = logging.getLogger(__name__)

__all__ = [
    "STATE_VERSION",
    "AttackRecord",
    "ProfileRecord",
    "CleanRecord",
    "EvaluationState",
    "component_warnings",
]

#: ``version`` of a state file this harness writes and reads
STATE_VERSION = 1
#: the per-component counts of the ensemble attack (``components`` of an attack record)
COMPONENT_KEYS = ("n_attacked", "n_fooled", "n_forward", "n_backward")


def component_warnings(comps: list[dict]) -> list[str]:
    """The ensemble's reliability warning from its per-component counts (empty when there is none)."""
    rs = next((c for c in comps if c["name"] == "random-search"), None)
    gradient = any(c["name"] in ("apgd-ce", "apgd-t") for c in comps)
    if rs is None or not gradient or rs["n_fooled"] == 0:
        return []
    return [
        f"the gradient-free random search fooled {rs['n_fooled']} example(s) on which every gradient "
        "component failed: the model's gradients may be masked (gradient attacks alone would "
        "overestimate its robustness)"
    ]


def merge_components(per_shard: Sequence[list[dict]]) -> list[dict]:
    """The ensemble's per-component counts of disjoint example sets, summed (wall times: the maximum)."""
    comps = []
    for i, c in enumerate(per_shard[0]):
        row = {"name": c["name"]}
        for k in COMPONENT_KEYS:
            row[k] = sum(shard[i][k] for shard in per_shard)
        row["wall_time_s"] = max(shard[i]["wall_time_s"] for shard in per_shard)
        comps.append(row)
    return comps


def _column_sums(rows) -> list:
    """Element-wise sums of equally long lists (counts of disjoint shards)."""
    return [sum(col) for col in zip(*rows, strict=True)]


def _or_strings(rows: Sequence[str]) -> str:
    """Per-example outcome strings of disjoint shards combined: ``"1"`` where any shard has ``"1"``."""
    return "".join("1" if any(row[j] == "1" for row in rows) else "0" for j in range(len(rows[0])))


def _from_dict(cls, data: dict, what: str):
    """``cls(**data)`` for a record dataclass, ``ValueError`` naming ``what`` when it is not one."""
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"not a state file of this harness ({what}: {exc})") from None


@dataclass
class AttackRecord:
    """Counts of one attack entry over the evaluated points (summed over ranks / shards).

    Attributes:
        robust / robust_on_correct: robust points per strength, on all points / on the points
            classified correctly without attack.
        n_attacked: points attacked; ``n_forward`` / ``n_backward``: example-level model passes.
        robust_examples: per strength, one character per point (``"1"`` robust), or None.
        wall_time_s: seconds (the slowest rank / shard).
        perturbation: ``mean_<size>`` / ``max_<size>`` of the realised perturbation sizes.
        components / attack_warnings: the ensemble's per-component counts and its warnings (None for
            other attacks).
    """

    robust: list[int]
    robust_on_correct: list[int]
    n_attacked: int
    n_forward: int
    n_backward: int
    wall_time_s: float
    perturbation: dict[str, float]
    robust_examples: list[str] | None = None
    components: list[dict] | None = None
    attack_warnings: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as stored in ``state.json`` (the ensemble's fields first, when present)."""
        extra = {}
        if self.components is not None:
            extra = {"components": self.components, "attack_warnings": self.attack_warnings or []}
        return {
            **extra,
            "robust": list(self.robust),
            "robust_on_correct": list(self.robust_on_correct),
            "n_attacked": self.n_attacked,
            "robust_examples": self.robust_examples,
            "n_forward": self.n_forward,
            "n_backward": self.n_backward,
            "wall_time_s": self.wall_time_s,
            "perturbation": dict(self.perturbation),
        }

    @classmethod
    def from_dict(cls, data: dict) -> AttackRecord:
        """Inverse of :meth:`to_dict`."""
        return _from_dict(cls, data, "an attack entry of the state")

    def strengths(self, n: int, n_clean_correct: int, labels: list[str], iterations) -> list[dict]:
        """Accuracies (%) per strength on the ``n`` points and on the ``n_clean_correct`` classified
        correctly without attack (:func:`~art_spatial.bench.scores.strengths_from_record`)."""
        return strengths_from_record(
            {
                "n": n,
                "n_clean_correct": n_clean_correct,
                "labels": labels,
                "iterations": iterations,
                "robust": self.robust,
                "robust_on_correct": self.robust_on_correct,
            }
        )

    def report_fields(self) -> dict[str, Any]:
        """What a report's attack entry copies from the record (beside its strengths)."""
        out = {
            "perturbation": self.perturbation,
            "n_attacked": self.n_attacked,
            "robust_examples": self.robust_examples,
            "wall_time_s": self.wall_time_s,
            "n_forward": self.n_forward,
            "n_backward": self.n_backward,
        }
        if self.components is not None:
            out["components"] = self.components
        return out

    @classmethod
    def merge(cls, records: Sequence[AttackRecord]) -> AttackRecord:
        """The record of disjoint example sets: counts summed, mean sizes weighted by ``n_attacked``,
        maxima (sizes, wall time) taken, per-example outcomes combined."""
        n_att = sum(r.n_attacked for r in records)
        pert = {}
        for k in records[0].perturbation:
            if k.startswith("mean_"):
                total = sum(r.perturbation[k] * r.n_attacked for r in records)
                pert[k] = total / n_att if n_att else 0.0
            else:
                pert[k] = max(r.perturbation[k] for r in records)
        examples = None
        if all(r.robust_examples is not None for r in records):
            rows = zip(*(r.robust_examples for r in records), strict=True)
            examples = [_or_strings(per_strength) for per_strength in rows]
        comps = warns = None
        if all(r.components is not None for r in records):  # the ensemble (spatial-aa suites)
            comps = merge_components([r.components for r in records])
            warns = component_warnings(comps)
        return cls(
            robust=_column_sums(r.robust for r in records),
            robust_on_correct=_column_sums(r.robust_on_correct for r in records),
            n_attacked=n_att,
            n_forward=sum(r.n_forward for r in records),
            n_backward=sum(r.n_backward for r in records),
            wall_time_s=max(r.wall_time_s for r in records),
            perturbation=pert,
            robust_examples=examples,
            components=comps,
            attack_warnings=warns,
        )


@dataclass
class ProfileRecord:
    """Counts of one CuSP profile: ``unchanged`` predictions per value of ``values``, out of ``n``."""

    kind: str
    values: list[float]
    unchanged: list[int]
    n: int
    rates: list[float] | None = None
    n_forward: int = 0
    n_backward: int = 0
    wall_time_s: float = 0.0

    def __post_init__(self):
        if self.rates is None:
            self.rates = [v / self.n if self.n else float("nan") for v in self.unchanged]

    def to_dict(self) -> dict[str, Any]:
        """The record as stored in ``state.json`` and in a report's ``profiles``."""
        return {
            "kind": self.kind,
            "values": list(self.values),
            "unchanged": list(self.unchanged),
            "rates": list(self.rates),
            "n": self.n,
            "n_forward": self.n_forward,
            "n_backward": self.n_backward,
            "wall_time_s": self.wall_time_s,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ProfileRecord:
        """Inverse of :meth:`to_dict`."""
        return _from_dict(cls, data, "a profile entry of the state")

    @classmethod
    def merge(cls, records: Sequence[ProfileRecord]) -> ProfileRecord:
        """The record of disjoint example sets (counts summed, rates recomputed)."""
        return cls(
            kind=records[0].kind,
            values=list(records[0].values),
            unchanged=_column_sums(r.unchanged for r in records),
            n=sum(r.n for r in records),
            n_forward=sum(r.n_forward for r in records),
            n_backward=sum(r.n_backward for r in records),
            wall_time_s=max(r.wall_time_s for r in records),
        )


@dataclass(frozen=True)
class CleanRecord:
    """The clean pass: ``n`` points, ``n_correct`` of them classified correctly."""

    n: int
    n_correct: int

    def to_dict(self) -> dict[str, int]:
        """``{"n": …, "n_correct": …}``."""
        return {"n": self.n, "n_correct": self.n_correct}


_REMEDY = (
    "delete it (or move it away) to start the evaluation over, or choose another state_path "
    "(art-spatial evaluate: pass --overwrite)"
)
_REQUIRED = ("version", "fingerprint", "clean", "attacks", "profiles")


@dataclass
class EvaluationState:
    """What an evaluation has finished: the clean pass, attack and profile records, check warnings.

    Attributes:
        fingerprint: the evaluation's identity (suite, data, seed and options hashed).
        clean: the clean pass, None before it.
        attacks / profiles: entry name -> record, in the order they finished.
        warnings: the reliability checks' findings, None before they ran.
        version: :data:`STATE_VERSION`.

    >>> s = EvaluationState("abc", clean=CleanRecord(4, 3))
    >>> EvaluationState.from_dict(s.to_dict()) == s, s.finished_units()
    (True, ['clean'])
    """

    fingerprint: str
    clean: CleanRecord | None = None
    attacks: dict[str, AttackRecord] = field(default_factory=dict)
    profiles: dict[str, ProfileRecord] = field(default_factory=dict)
    warnings: list[str] | None = None
    version: int = STATE_VERSION

    def finished_units(self) -> list[str]:
        """Names of the finished units (``"clean"``, then attacks, then profiles)."""
        return ["clean"] * (self.clean is not None) + list(self.attacks) + list(self.profiles)

    # ------------------------------------------------------------------------------- on disk
    def to_dict(self) -> dict[str, Any]:
        """The JSON content of ``state.json``."""
        out = {
            "version": self.version,
            "fingerprint": self.fingerprint,
            "clean": None if self.clean is None else self.clean.to_dict(),
            "attacks": {k: r.to_dict() for k, r in self.attacks.items()},
            "profiles": {k: r.to_dict() for k, r in self.profiles.items()},
        }
        if self.warnings is not None:
            out["warnings"] = list(self.warnings)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> EvaluationState:
        """Inverse of :meth:`to_dict` (``ValueError`` when ``data`` is not a state of this harness)."""
        missing = [k for k in _REQUIRED if not isinstance(data, dict) or k not in data]
        if missing:
            raise ValueError(f"not a state file of this harness (it lacks the entries {missing})")
        clean = data["clean"]
        return cls(
            fingerprint=data["fingerprint"],
            clean=None if clean is None else CleanRecord(int(clean["n"]), int(clean["n_correct"])),
            attacks={k: AttackRecord.from_dict(v) for k, v in data["attacks"].items()},
            profiles={k: ProfileRecord.from_dict(v) for k, v in data["profiles"].items()},
            warnings=data.get("warnings"),
            version=data["version"],
        )

    @classmethod
    def from_disk(cls, path: str | os.PathLike | None, fingerprint: str) -> EvaluationState:
        """The state saved at ``path`` for the evaluation ``fingerprint``; an empty one when ``path``
        is None or does not exist.

        Raises:
            ValueError: naming the file and the remedy: not readable JSON, not a state of this
                harness, or the state of a different evaluation (another fingerprint or version).
        """
        if path is None or not os.path.exists(path):
            return cls(fingerprint)
        path = os.fspath(path)
        data = _read_json(path, "the evaluation state file (state_path)", _REMEDY)
        try:
            state = cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(
                f"the evaluation state file (state_path) {path!r} is {exc}: {_REMEDY}"
            ) from None
        if state.fingerprint != fingerprint or state.version != STATE_VERSION:
            raise ValueError(
                f"state_path {path!r} belongs to a different evaluation (suite, data, seed or options "
                "differ); delete it or choose another state_path (art-spatial evaluate: pass "
                "--overwrite to start over, or another --out)"
            )
        logger.info(
            "resuming from %s: clean %s, attacks %s, profiles %s",
            path,
            state.clean is not None,
            sorted(state.attacks),
            sorted(state.profiles),
        )
        return state

    def to_disk(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` to ``path`` as JSON, atomically."""
        write_json_atomic(path, self.to_dict())

    # ------------------------------------------------------------------------------------ merge
    @classmethod
    def merge(cls, states: Sequence[EvaluationState]) -> EvaluationState:
        """The state of the whole evaluation from the finished states of its shards (disjoint
        example sets, any order): every record's counts summed (:meth:`AttackRecord.merge`,
        :meth:`ProfileRecord.merge`); clean pass and warnings of the first state.

        Raises:
            ValueError: no states, states of different evaluations (fingerprints differ), clean passes
                that differ, or a state that lacks a unit another one finished (naming its index).
        """
        if not states:
            raise ValueError("states: give the state of every shard, got none")
        fps = {s.fingerprint for s in states}
        if len(fps) != 1:
            raise ValueError(
                "shards belong to different evaluations (suite, data, seed or options differ: state "
                f"fingerprints {sorted(fps)})"
            )
        first = states[0]
        if any(s.clean != first.clean for s in states):
            raise ValueError("shards disagree on the clean pass (different models?)")
        units = list(dict.fromkeys(u for s in states for u in s.finished_units()))
        for i, s in enumerate(states):
            missing = [u for u in units if u not in s.finished_units()]
            if missing:
                raise ValueError(f"shard {i} is unfinished (missing {missing}); resume it")
        return cls(
            fingerprint=first.fingerprint,
            clean=first.clean,
            attacks={k: AttackRecord.merge([s.attacks[k] for s in states]) for k in first.attacks},
            profiles={
                k: ProfileRecord.merge([s.profiles[k] for s in states]) for k in first.profiles
            },
            warnings=None if first.warnings is None else list(first.warnings),
        )
