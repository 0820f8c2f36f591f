"""Sharded evaluation without a process group: partial reports of job-array shards and their merge.

``art-spatial evaluate --shard i/n`` evaluates the examples ``i, i + n, i + 2n, …`` (the strided shard of
:func:`art_spatial.bench.distributed.shard_indices`, the one a rank of a process group gets) and writes
``partial.json``: this shard's resumable evaluation state (raw counts per attack and profile) and its
report. :func:`merge_partials` sums the counts of all ``n`` partials — robust points per strength,
passes, perturbation-size sums, the per-example robustness strings — and rebuilds the report; it equals
the report of one unsharded evaluation (per-example random streams make an example's attack independent
of its shard), up to the float rounding of the mean perturbation sizes and the wall times.

Example:
    >>> merge_partials([])
    Traceback (most recent call last):
    ...
    ValueError: partials: give the partial.json of every shard, got none
"""

from __future__ import annotations

import copy
import json
import logging
import os
from typing import Any

from .scores import RobustnessReport
from .state import EvaluationState

logger = logging.getLogger(__name__)

__all__ = ["PARTIAL_FORMAT", "partial_payload", "load_partial", "merge_partials"]

#: ``format`` entry of a ``partial.json``
PARTIAL_FORMAT = "art-spatial-partial-report"


def partial_payload(
    index: int,
    count: int,
    state: EvaluationState | dict,
    report: RobustnessReport,
    model_info: dict | None = None,
) -> dict[str, Any]:
    """The content of ``partial.json`` for shard ``index`` of ``count``: this shard's ``state`` (an
    :class:`~art_spatial.bench.state.EvaluationState` or its dict) and report (``model_info``: the
    keyword arguments of :func:`art_spatial.bench.leaderboard.to_model_info` for the merged report)."""
    if isinstance(state, EvaluationState):
        state = state.to_dict()
    return {
        "format": PARTIAL_FORMAT,
        "version": 1,
        "shard": [int(index), int(count)],
        "state": state,
        "report": report.to_dict(),
        "model_info": dict(model_info or {}),
    }


def load_partial(path) -> dict[str, Any]:
    """Read a ``partial.json`` (``ValueError`` naming the file if it is not one)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"partial report {path!r}: cannot read it ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != PARTIAL_FORMAT:
        raise ValueError(
            f"partial report {path!r} is not a partial.json of 'art-spatial evaluate --shard'"
        )
    return data


def merge_partials(partials: list[dict]) -> RobustnessReport:
    """The report of the whole evaluation from the partials of all its shards.

    Args:
        partials: the ``partial.json`` contents (:func:`load_partial`) of shards ``0 .. n-1``, any order.

    Raises:
        ValueError: no partials, a shard missing or given twice, shards of different evaluations
            (suite, data, seed or options: the state fingerprints differ), or an unfinished shard.
    """
    if not partials:
        raise ValueError("partials: give the partial.json of every shard, got none")
    counts = {int(p["shard"][1]) for p in partials}
    if len(counts) != 1:
        raise ValueError(f"partials come from different shardings (n = {sorted(counts)})")
    n = counts.pop()
    seen = sorted(int(p["shard"][0]) for p in partials)
    if seen != list(range(n)):
        raise ValueError(
            f"partials: need shards 0..{n - 1} exactly once, got {seen} (a shard is missing or repeated)"
        )
    partials = sorted(partials, key=lambda p: int(p["shard"][0]))
    state = EvaluationState.merge([EvaluationState.from_dict(p["state"]) for p in partials])
    rep = copy.deepcopy(partials[0]["report"])
    missing = [a["name"] for a in rep["attacks"] if a["name"] not in state.attacks]
    missing += [k for k in rep["profiles"] if k not in state.profiles]
    if missing:
        raise ValueError(f"the shards are unfinished (missing {missing}); resume them")
    for entry in rep["attacks"]:
        rec = state.attacks[entry["name"]]
        labels = [st["label"] for st in entry["strengths"]]
        entry["strengths"] = rec.strengths(
            rep["n_examples"], rep["n_clean_correct"], labels, entry["iterations"]
        )
        entry.update(rec.report_fields())
        if rec.components is not None:
            prefix = f"attack {entry['name']!r}: "
            rep["warnings"] = [w for w in rep["warnings"] if not w.startswith(prefix)] + [
                prefix + w for w in rec.attack_warnings
            ]
    rep["profiles"] = {k: state.profiles[k].to_dict() for k in rep["profiles"]}
    rep["wall_time_s"] = max(p["report"]["wall_time_s"] for p in partials)
    rep["meta"] = {**rep["meta"], "world_size": 1, "shards": n, "merged_from_shards": True}
    out = RobustnessReport.from_dict(rep)
    return out.recompute_scores()
