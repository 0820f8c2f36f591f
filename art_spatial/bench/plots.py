"""Plots of the harness (matplotlib, Agg backend, PNG files).

* :func:`plot_pareto_front` — universal robustness score vs sacrificed clean accuracy (clean accuracy
  of the reference natural model minus the model's), as Pareto AT Fig. 7; the non-dominated models
  (higher universal score for no more sacrificed accuracy) are joined by the front line.
* :func:`plot_profiles` — CuSP invariance profiles (rate of invariance vs θ or range fraction) and the
  robustness profile (1 − fooling rate vs ε), one panel per profile, one line per report.

Example:
    >>> from art_spatial.bench.scores import RobustnessReport
    >>> pts = [("natural", 0.0, 0.0), ("at", 20.0, 5.0), ("pareto", 30.0, 4.0)]
    >>> pareto_front([(u, s) for _, u, s in pts])
    [0, 2]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from .scores import RobustnessReport

logger = logging.getLogger(__name__)

__all__ = ["pareto_front", "plot_pareto_front", "plot_profiles"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def pareto_front(points: Sequence[tuple]) -> list[int]:
    """Indices of the non-dominated ``(universal, sacrificed)`` points (maximize universal, minimize
    sacrificed), sorted by sacrificed accuracy."""
    idx = []
    for i, (u, s) in enumerate(points):
        dominated = any(
            (u2 >= u and s2 <= s) and (u2 > u or s2 < s)
            for j, (u2, s2) in enumerate(points)
            if j != i
        )
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: (points[i][1], points[i][0]))


def plot_pareto_front(
    reports: dict,
    reference: RobustnessReport | float,
    path: str | os.PathLike,
    title: str = "Universal robustness vs sacrificed clean accuracy",
) -> str:
    """Scatter of the models with the Pareto front (Pareto AT Fig. 7); returns the PNG path.

    Args:
        reports: label -> :class:`RobustnessReport` (each scored against the same reference, under
            one score convention; the y label names it).
        reference: the natural model's report, or its clean accuracy (%).
        path: output PNG.
    """
    if not reports:
        raise ValueError("reports must not be empty")
    ref_clean = (
        reference.clean_accuracy if isinstance(reference, RobustnessReport) else float(reference)
    )
    labels, pts = [], []
    for label, rep in reports.items():
        if rep.universal is None:
            raise ValueError(
                f"reports[{label!r}] has no universal score (evaluate it with a reference)"
            )
        labels.append(label)
        pts.append((float(rep.universal), ref_clean - float(rep.clean_accuracy)))
    conventions = sorted({rep.score_convention for rep in reports.values()})
    if len(conventions) > 1:
        logger.warning(
            "plot_pareto_front: the reports mix score conventions %s; their universal scores are "
            "not comparable (rescore them with RobustnessReport.with_score_convention)",
            conventions,
        )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([s for _, s in pts], [u for u, _ in pts], color="tab:blue", zorder=3)
    for lab, (u, s) in zip(labels, pts, strict=True):
        ax.annotate(lab, (s, u), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = pareto_front(pts)
    ax.plot(
        [pts[i][1] for i in front],
        [pts[i][0] for i in front],
        color="tab:red",
        lw=1.5,
        label="Pareto front",
    )
    ax.set_xlabel("sacrificed clean accuracy (%)")
    ax.set_ylabel(f"universal robustness score ({', '.join(conventions)})")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return os.fspath(path)


_XLABEL = {
    "rotation": "θ (degrees): rotation in [−θ, θ]",
    "translation": "translation range (fraction of width)",
    "rotation-translation": "range i: rotation ±i·180°, shift ±i·W",
    "robustness": "ε (L∞)",
}


def plot_profiles(reports: dict, path: str | os.PathLike, title: str = "CuSP profiles") -> str:
    """One panel per profile (invariance rates, 1 − fooling rate), one line per report; returns the path."""
    if not reports:
        raise ValueError("reports must not be empty")
    names = []
    for rep in reports.values():
        for n in rep.profiles:
            if n not in names:
                names.append(n)
    if not names:
        raise ValueError("the reports contain no profiles (use a suite with profiles, e.g. 'cusp')")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        kind = None
        for label, rep in reports.items():
            p = rep.profiles.get(name)
            if p is None:
                continue
            kind = p["kind"]
            ax.plot(p["values"], p["rates"], marker="o", ms=3, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(_XLABEL.get(kind, "value"), fontsize=8)
        ax.set_ylabel(
            "1 − fooling rate" if kind == "robustness" else "rate of invariance", fontsize=8
        )
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return os.fspath(path)
