"""Leaderboard entries in RobustBench's ``model_info`` style and ranked tables (Markdown / HTML / CSV).

An entry carries RobustBench's fields (``link, name, authors, additional_data, number_forward_passes,
dataset, venue, architecture, eps, clean_acc, reported``; percentages as strings with two decimals,
e.g. ``"89.69"``) with ``threat_model: "spatial"`` and the Pareto AT scores (§4.4, Table 1):
``universal_score`` (Σ over categories of score − natural reference score), ``sensitivity_score``,
``local_spatial_score``, ``global_spatial_score`` (mean accuracy over the suite's strengths), all under
``score_convention`` (``"correct-only"``: accuracy on the points classified correctly without attack,
the Pareto AT paper's score; ``"all-points"``: RobustBench's robust accuracy; entries without the field
are all-points), the same scores on all points beside them (``*_all_points``), the suite, the
reference and per-attack accuracies (``attacks``: all points, ``attacks_on_correct``: correct-only).
The JSON schema ships as ``model_info.schema.json``.

``evaluation`` says which evaluation the headline scores come from: ``"paper-protocol"`` (the papers'
fixed-step attacks, e.g. ``pareto-mnist``) or ``"spatial-aa"`` (the parameter-free ensemble of
``spatial-aa-mnist`` / ``spatial-aa-cifar10``, docs/spatial_aa.md). Given the ensemble's report of the
same model (``reliable=``), an entry also carries its category scores under the entry's convention
(``spatial_aa_*_score``), shown in the tables beside the paper-protocol columns; an entry whose own
report is a spatial-aa one fills them from it.

Tables are ranked by the universal score (entries without one last); the score headers name the
convention, e.g. ``Universal (correct-only)``. Entries of different conventions are not comparable:
they are ranked separately (a warning is logged) and the Convention column tells them apart.

Example:
    >>> from art_spatial.bench.scores import RobustnessReport
    >>> rep = RobustnessReport(suite="s", suite_config={}, n_examples=10, n_clean_correct=9,
    ...     clean_accuracy=90.0, category_scores={"sensitivity": 50.0}, universal=12.5,
    ...     reference_name="natural")
    >>> info = to_model_info(rep, name="My model", authors="me", venue="arXiv", architecture="SmallCNN")
    >>> info["clean_acc"], info["universal_score"], info["threat_model"], info["score_convention"]
    ('90.00', '12.50', 'spatial', 'all-points')
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from .._io import write_json_atomic
from .scores import RobustnessReport

logger = logging.getLogger(__name__)

__all__ = [
    "SCHEMA_PATH",
    "load_schema",
    "validate_model_info",
    "to_model_info",
    "load_entries",
    "render_leaderboard",
    "COLUMNS",
]

SCHEMA_PATH = Path(__file__).with_name("model_info.schema.json")
_CATEGORY_FIELDS = {
    "sensitivity": "sensitivity_score",
    "local": "local_spatial_score",
    "global": "global_spatial_score",
}
#: (header, model_info field) of the rendered tables, after the rank column; the headers of
#: :data:`CONVENTION_FIELDS` get the entries' score convention appended, e.g. "Universal (correct-only)"
COLUMNS = [
    ("Model", "name"),
    ("Architecture", "architecture"),
    ("Venue", "venue"),
    ("Clean", "clean_acc"),
    ("Universal", "universal_score"),
    ("Sensitivity", "sensitivity_score"),
    ("Local spatial", "local_spatial_score"),
    ("Global spatial", "global_spatial_score"),
    ("Sensitivity, spatial-AA", "spatial_aa_sensitivity_score"),
    ("Local spatial, spatial-AA", "spatial_aa_local_spatial_score"),
    ("Global spatial, spatial-AA", "spatial_aa_global_spatial_score"),
    ("Universal (all points)", "universal_score_all_points"),
    ("Evaluation", "evaluation"),
    ("Convention", "score_convention"),
    ("Suite", "suite"),
    ("Reference", "reference"),
]
#: model_info fields whose numbers use the entry's ``score_convention``
CONVENTION_FIELDS = (
    "universal_score",
    "sensitivity_score",
    "local_spatial_score",
    "global_spatial_score",
    "spatial_aa_sensitivity_score",
    "spatial_aa_local_spatial_score",
    "spatial_aa_global_spatial_score",
)
FORMATS = ("md", "html", "csv")


def _fmt(v) -> str:
    return "" if v is None or not math.isfinite(float(v)) else f"{float(v):.2f}"


def entry_convention(info: dict) -> str:
    """An entry's score convention (entries written before the field existed are all-points)."""
    return info.get("score_convention") or "all-points"


def load_schema() -> dict:
    """The shipped JSON schema of a leaderboard entry."""
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def validate_model_info(info: dict) -> None:
    """Validate an entry against the schema.

    Raises:
        ValueError: naming the offending field (wraps ``jsonschema.ValidationError``).
    """
    import jsonschema

    try:
        jsonschema.validate(info, load_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(entry)"
        raise ValueError(f"model_info field {where!r} is invalid: {exc.message}") from None


def _eps_string(report: RobustnessReport) -> str:
    parts = []
    for a in report.attacks:
        p = a.get("params", {})
        if "eps" in p:
            parts.append(f"{a['name']} {float(p['eps']):g}")
    return "; ".join(parts)


def to_model_info(
    report: RobustnessReport,
    *,
    name: str,
    authors: str = "",
    venue: str = "",
    architecture: str,
    link: str = "",
    additional_data: bool = False,
    number_forward_passes: int = 1,
    dataset: str | None = None,
    reported: float | None = None,
    footnote: str | None = None,
    path: str | os.PathLike | None = None,
    reliable: RobustnessReport | None = None,
) -> dict[str, Any]:
    """A RobustBench ``model_info``-style leaderboard entry for ``report`` (validated; written if ``path``).

    Args:
        report: the model's :class:`RobustnessReport`.
        name, authors, venue, architecture, link, additional_data, number_forward_passes: RobustBench's
            descriptive fields.
        dataset: default: the suite's dataset.
        reported: the universal score the authors report (%), if any (under the report's
            ``score_convention``).
        footnote: free text.
        path: write the entry there as JSON (atomically).
        reliable: the same model's report on a ``spatial-aa-*`` suite (the parameter-free ensemble);
            its category scores (under ``report``'s convention) and per-attack accuracies fill the
            ``spatial_aa_*`` fields.
    """
    from .. import __version__
    from .suites import suite_evaluation

    if not isinstance(report, RobustnessReport):
        raise ValueError(f"report must be a RobustnessReport, got {type(report).__name__}")
    _check_reliable(reliable)
    evaluation = suite_evaluation(report.suite_config)
    aa = reliable if reliable is not None else (report if evaluation == "spatial-aa" else None)
    info = {
        "link": link,
        "name": name,
        "authors": authors,
        "additional_data": bool(additional_data),
        "number_forward_passes": int(number_forward_passes),
        "dataset": dataset or (report.suite_config or {}).get("dataset") or "unknown",
        "venue": venue,
        "architecture": architecture,
        "eps": _eps_string(report),
        "clean_acc": _fmt(report.clean_accuracy),
        "reported": _fmt(reported),
        "footnote": footnote,
        "threat_model": "spatial",
        "suite": report.suite,
        "n_examples": int(report.n_examples),
        **_score_fields(report),
        "evaluation": evaluation,
        "art_spatial_version": __version__,
    }
    if aa is not None:
        info.update(_spatial_aa_fields(aa, report.score_convention))
    validate_model_info(info)
    if path is not None:
        write_json_atomic(path, info)
    return info


def _check_reliable(reliable) -> None:
    """``ValueError`` unless ``reliable`` is None or a report of a spatial-aa suite."""
    from .suites import suite_evaluation

    if reliable is None:
        return
    if not isinstance(reliable, RobustnessReport):
        raise ValueError(
            f"reliable must be None or a RobustnessReport, got {type(reliable).__name__}"
        )
    if suite_evaluation(reliable.suite_config) != "spatial-aa":
        raise ValueError(
            f"reliable must be a report of a spatial-aa suite (the ensemble), got suite "
            f"{reliable.suite!r}"
        )


def _score_fields(report: RobustnessReport) -> dict[str, Any]:
    """An entry's scores: under the report's convention, on all points, per attack and strength."""
    return {
        "score_convention": report.score_convention,
        "universal_score": _fmt(report.universal),
        **{f: _fmt(report.category_scores.get(c)) for c, f in _CATEGORY_FIELDS.items()},
        "universal_score_all_points": _fmt(report.universal_all_points),
        **{
            f"{f}_all_points": _fmt(report.category_scores_all_points.get(c))
            for c, f in _CATEGORY_FIELDS.items()
        },
        "reference": report.reference_name or "",
        "attacks": {
            a["name"]: {s["label"]: _fmt(s["accuracy"]) for s in a["strengths"]}
            for a in report.attacks
        },
        "attacks_on_correct": {
            a["name"]: {s["label"]: _fmt(s["accuracy_on_correct"]) for s in a["strengths"]}
            for a in report.attacks
        },
    }


def _spatial_aa_fields(aa: RobustnessReport, convention: str) -> dict[str, Any]:
    """The ``spatial_aa_*`` fields from the ensemble's report, under ``convention``."""
    scores = aa._by_convention("category_scores", convention)
    info = {"spatial_aa_suite": aa.suite, "spatial_aa_n_examples": int(aa.n_examples)}
    for c, f in _CATEGORY_FIELDS.items():
        info[f"spatial_aa_{f}"] = _fmt(scores.get(c))
    key = "accuracy_on_correct" if convention == "correct-only" else "accuracy"
    info["spatial_aa_attacks"] = {a["name"]: _fmt(a["strengths"][-1][key]) for a in aa.attacks}
    return info


def load_entries(folder: str | os.PathLike) -> list[dict]:
    """Leaderboard entries under ``folder`` (recursively), validated, ranked by universal score
    (grouped by score convention first: scores of different conventions are not comparable).

    Every ``*.json`` file holding a ``threat_model`` field is an entry (so a folder of ``evaluate``
    outputs can be rendered directly; ``report.json`` / ``state.json`` files are skipped).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ValueError: an entry is invalid (the message names the file and the field).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"leaderboard folder not found: {str(folder)!r}")
    entries = []
    for f in sorted(folder.rglob("*.json")):
        if not f.is_file():
            continue
        try:
            with open(f, encoding="utf-8") as fh:
                info = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{f}: not valid JSON: {exc}") from None
        if not isinstance(info, dict) or "threat_model" not in info:
            logger.debug("skipping %s: not a model_info entry", f)
            continue
        try:
            validate_model_info(info)
        except ValueError as exc:
            raise ValueError(f"{f}: {exc}") from None
        entries.append(info)

    conventions = sorted({entry_convention(e) for e in entries})
    if len(conventions) > 1:
        logger.warning(
            "leaderboard %s mixes score conventions %s: entries are ranked within each convention "
            "(their numbers are not comparable)",
            folder,
            conventions,
        )

    def key(e):
        u = e.get("universal_score") or ""
        group = conventions.index(entry_convention(e))
        return (group, 0, -float(u), e["name"]) if u else (group, 1, 0.0, e["name"])

    return sorted(entries, key=key)


def _rows(entries):
    rows, rank, last = [], 0, None
    for e in entries:
        conv = entry_convention(e)
        rank = 1 if conv != last else rank + 1  # ranks restart for each convention
        last = conv
        cells = [str(rank)]
        for _, k in COLUMNS:
            cells.append(conv if k == "score_convention" else str(e.get(k) or ""))
        rows.append(cells)
    return rows


def _header(entries) -> list[str]:
    conventions = sorted({entry_convention(e) for e in entries})
    suffix = f" ({conventions[0]})" if len(conventions) == 1 else " (see Convention)"
    return ["Rank"] + [h + suffix if k in CONVENTION_FIELDS else h for h, k in COLUMNS]


def render_leaderboard(folder: str | os.PathLike, fmt: str = "md") -> str:
    """Render the entries of ``folder`` as a ranked table (``fmt``: ``"md"``, ``"html"`` or ``"csv"``).

    Universal score first (ranking key), then the category scores, under the entries' score
    convention (named in the headers, e.g. ``Universal (correct-only)``), then the all-point universal
    score beside it and the convention. Entries of different conventions are ranked separately.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ValueError: ``folder`` holds no entries, or an entry is invalid.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    entries = load_entries(folder)
    if not entries:
        raise ValueError(
            f"leaderboard folder {os.fspath(folder)!r} holds no leaderboard entries (model_info "
            "*.json files with a threat_model field, as art-spatial evaluate writes into "
            "<out>/model_info.json): nothing to render"
        )
    header = _header(entries)
    rows = _rows(entries)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        return buf.getvalue()
    if fmt == "md":

        def cell(s):
            return s.replace("|", "\\|")

        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for e, r in zip(entries, rows, strict=True):
            if e.get("link"):
                r = list(r)
                r[1] = f"[{r[1]}]({e['link']})"
            lines.append("| " + " | ".join(cell(c) for c in r) + " |")
        return "\n".join(lines) + "\n"
    out = [
        '<table class="leaderboard">',
        "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>",
        "<tbody>",
    ]
    for e, r in zip(entries, rows, strict=True):
        cells = [html.escape(c) for c in r]
        if e.get("link"):
            cells[1] = f'<a href="{html.escape(e["link"], quote=True)}">{cells[1]}</a>'
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out) + "\n"
