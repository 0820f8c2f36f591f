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

from .evaluate import component_warnings
from .scores import RobustnessReport, strengths_from_record

logger = logging.getLogger(__name__)

__all__ = ["PARTIAL_FORMAT", "partial_payload", "load_partial", "merge_partials"]

#: ``format`` entry of a ``partial.json``
PARTIAL_FORMAT = "art-spatial-partial-report"


def partial_payload(
    index: int, count: int, state: dict, report: RobustnessReport, model_info: dict | None = None
) -> dict[str, Any]:
    """The content of ``partial.json`` for shard ``index`` of ``count`` (``model_info``: the keyword
    arguments of :func:`art_spatial.bench.leaderboard.to_model_info` for the merged report)."""
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


def _merge_attack(recs: list[dict]) -> dict[str, Any]:
    n_att = sum(r["n_attacked"] for r in recs)
    m = len(recs[0]["robust"])
    pert_keys = sorted(recs[0]["perturbation"])
    pert = {}
    for k in pert_keys:
        if k.startswith("mean_"):
            total = sum(r["perturbation"][k] * r["n_attacked"] for r in recs)
            pert[k] = total / n_att if n_att else 0.0
        else:
            pert[k] = max(r["perturbation"][k] for r in recs)
    examples = None
    if all(r.get("robust_examples") is not None for r in recs):
        examples = []
        for s in range(m):
            rows = [r["robust_examples"][s] for r in recs]
            examples.append(
                "".join(
                    "1" if any(row[j] == "1" for row in rows) else "0" for j in range(len(rows[0]))
                )
            )
    extra = {}
    if all("components" in r for r in recs):  # the ensemble's per-component counts (spatial-aa)
        comps = []
        for i, c in enumerate(recs[0]["components"]):
            row = {"name": c["name"]}
            for k in ("n_attacked", "n_fooled", "n_forward", "n_backward"):
                row[k] = sum(r["components"][i][k] for r in recs)
            row["wall_time_s"] = max(r["components"][i]["wall_time_s"] for r in recs)
            comps.append(row)
        extra = {"components": comps, "attack_warnings": component_warnings(comps)}
    return {
        **extra,
        "robust": [sum(r["robust"][i] for r in recs) for i in range(m)],
        "robust_on_correct": [sum(r["robust_on_correct"][i] for r in recs) for i in range(m)],
        "n_attacked": n_att,
        "robust_examples": examples,
        "n_forward": sum(r["n_forward"] for r in recs),
        "n_backward": sum(r["n_backward"] for r in recs),
        "wall_time_s": max(r["wall_time_s"] for r in recs),
        "perturbation": {k: pert[k] for k in recs[0]["perturbation"]},
    }


def _merge_profile(recs: list[dict]) -> dict[str, Any]:
    n = sum(r["n"] for r in recs)
    k = len(recs[0]["unchanged"])
    unchanged = [sum(r["unchanged"][i] for r in recs) for i in range(k)]
    return {
        **recs[0],
        "unchanged": unchanged,
        "rates": [v / n if n else float("nan") for v in unchanged],
        "n": n,
        "n_forward": sum(r["n_forward"] for r in recs),
        "n_backward": sum(r["n_backward"] for r in recs),
        "wall_time_s": max(r["wall_time_s"] for r in recs),
    }


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
    fps = {p["state"]["fingerprint"] for p in partials}
    if len(fps) != 1:
        raise ValueError(
            "partials belong to different evaluations (suite, data, seed or options differ: state "
            f"fingerprints {sorted(fps)})"
        )
    states = [p["state"] for p in partials]
    if any(s["clean"] != states[0]["clean"] for s in states):
        raise ValueError("partials disagree on the clean pass (different models?)")
    rep = copy.deepcopy(partials[0]["report"])
    names = [a["name"] for a in rep["attacks"]]
    for s, p in zip(states, partials, strict=True):
        missing = [a for a in names if a not in s["attacks"]] + [
            k for k in rep["profiles"] if k not in s["profiles"]
        ]
        if missing:
            raise ValueError(f"shard {p['shard'][0]} is unfinished (missing {missing}); resume it")
    n_total = rep["n_examples"]
    for entry in rep["attacks"]:
        rec = _merge_attack([s["attacks"][entry["name"]] for s in states])
        full = {
            "n": n_total,
            "n_clean_correct": rep["n_clean_correct"],
            "labels": [st["label"] for st in entry["strengths"]],
            "iterations": entry["iterations"],
            **rec,
        }
        entry["strengths"] = strengths_from_record(full)
        for k in (
            "perturbation",
            "n_attacked",
            "robust_examples",
            "wall_time_s",
            "n_forward",
            "n_backward",
        ):
            entry[k] = rec[k]
        if "components" in rec:
            entry["components"] = rec["components"]
            prefix = f"attack {entry['name']!r}: "
            rep["warnings"] = [w for w in rep["warnings"] if not w.startswith(prefix)] + [
                prefix + w for w in rec["attack_warnings"]
            ]
    rep["profiles"] = {
        k: _merge_profile([s["profiles"][k] for s in states]) for k in rep["profiles"]
    }
    rep["wall_time_s"] = max(p["report"]["wall_time_s"] for p in partials)
    rep["meta"] = {**rep["meta"], "world_size": 1, "shards": n, "merged_from_shards": True}
    out = RobustnessReport.from_dict(rep)
    return out.recompute_scores()
