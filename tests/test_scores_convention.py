"""Score conventions of the harness: correct-only (the Pareto AT paper's score) and all-points.

Pareto Adversarial Robustness: Balancing Spatial Robustness and Sensitivity-based Robustness
(arXiv:2111.01996) scores robustness as the accuracy on the test points the model classifies correctly
without attack (§3.1, Fig. 3; Table 2 lists scores above clean accuracy). See docs/conventions.md,
"Robustness scores".

The hand-computed tests run the real :func:`art_spatial.bench.evaluate` with a table model and a table
attack whose outcomes are written into the images, so every count is known in advance:

* pixel (0, 0) holds the point's id / 10; the table model misclassifies the ids it is given;
* pixel (1, c) holds the level L / 10 of the attack reading column c: the point stays correctly
  classified through iterate L (fooled from iterate L + 1 on).
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import torch

from art_spatial.bench import evaluate, get_suite
from art_spatial.bench.scores import RobustnessReport, resolve_reference

# levels per attack column, for the ids 0..3
LEVELS = {"s": [3, 1, 0, 3], "l": [1, 1, 1, 0], "g": [0, 0, 2, 2]}
COLUMN = {"s": 0, "l": 1, "g": 2}


class TableModel(torch.nn.Module):
    """Predicts class 1 for the ``wrong`` ids (labels are all 0), class 0 otherwise."""

    def __init__(self, wrong):
        super().__init__()
        self.register_buffer("wrong", torch.tensor(sorted(wrong), dtype=torch.long))
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        ids = torch.round(x[:, 0, 0, 0] * 10).long()
        w = torch.isin(ids, self.wrong).float()
        return 5.0 * self.scale * torch.stack([1 - w, w], 1) + 0.0 * x.flatten(1).sum(1, True)


class TableAttack:
    """A suite attack (``"module:Class"``) whose per-iterate correctness is read from the image."""

    def __init__(self, estimator, column=0, max_iter=1, seed=0):
        self.column, self.max_iter = int(column), int(max_iter)

    def attack_tensor(self, model, x, y, *, clip_values=None, record=False):
        level = torch.round(x[:, 0, 1, self.column] * 10).long()
        with torch.no_grad():
            clean = model(x).argmax(1) == y
        k = torch.arange(self.max_iter + 1, device=x.device)
        correct = clean[:, None] & (k[None, :] <= level[:, None])
        n, z = x.shape[0], torch.zeros(x.shape[0])
        return SimpleNamespace(
            correct=correct,
            success=~correct[:, -1],
            max_displacement_px=z,
            mean_displacement_px=z,
            pixel_linf=z,
            rotation_deg=z,
            translation_px=torch.zeros(n, 2),
            n_forward=n * self.max_iter,
            n_backward=n * self.max_iter,
        )


def _entry(name, category, iterations):
    return {
        "name": name,
        "attack": f"{__name__}:TableAttack",
        "category": category,
        "params": {"column": COLUMN[name]},
        "iterations": iterations,
    }


HAND = {
    "name": "hand",
    "score_convention": "correct-only",
    "attacks": [
        _entry("s", "sensitivity", [1, 2]),
        _entry("l", "local", [1]),
        _entry("g", "global", [1, 2]),
    ],
    "reference": {"sensitivity": 10.0, "local": 20.0, "global": 30.0},
    "reference_name": "hand-made published numbers (a different model)",
}


def _data(ids=(0, 1, 2, 3)):
    x = torch.zeros(len(ids), 1, 4, 4)
    for row, i in enumerate(ids):
        x[row, 0, 0, 0] = i / 10
        for name, c in COLUMN.items():
            x[row, 0, 1, c] = LEVELS[name][i] / 10
    return x, torch.zeros(len(ids), dtype=torch.long)


def _eval(model, x, y, suite=HAND, **kw):
    return evaluate(model, x, y, suite, checks=False, batch_size=3, **kw)


# ------------------------------------------------------------------------------- hand computation
def test_hand_computed_scores_under_both_conventions():
    x, y = _data()
    rep = _eval(TableModel([3]), x, y)  # 4 points, ids 0-2 correct without attack
    assert rep.score_convention == "correct-only" and rep.n_clean_correct == 3
    # s: robust at 1 it = ids {0, 1}, at 2 it = {0}; l: {0, 1, 2}; g: {2} at both strengths
    assert [s["n_robust"] for s in rep.attack("s")["strengths"]] == [2, 1]
    assert [s["n_robust"] for s in rep.attack("g")["strengths"]] == [1, 1]
    on_correct = {"sensitivity": (200 / 3 + 100 / 3) / 2, "local": 100.0, "global": 100 / 3}
    all_points = {"sensitivity": (50.0 + 25.0) / 2, "local": 75.0, "global": 25.0}
    assert rep.category_scores == pytest.approx(on_correct)
    assert rep.category_scores_on_correct == pytest.approx(on_correct)
    assert rep.category_scores_all_points == pytest.approx(all_points)
    # correct-only scores may exceed the clean accuracy (75 %); all-point scores never do
    assert rep.category_scores["local"] > rep.clean_accuracy
    assert max(rep.category_scores_all_points.values()) <= rep.clean_accuracy
    assert rep.universal is None and rep.universal_all_points is None  # no reference given

    # the same counts under the all-points convention
    rep_all = _eval(TableModel([3]), x, y, score_convention="all-points")
    assert rep_all.score_convention == "all-points"
    assert rep_all.category_scores == pytest.approx(all_points)
    assert rep_all.category_scores_on_correct == pytest.approx(on_correct)

    # against hand numbers (used as given, in the report's convention): Σ (score − reference)
    hand = {"sensitivity": 10.0, "local": 20.0, "global": 30.0}
    assert rep.with_reference(hand).universal == pytest.approx(40 + 80 + (100 / 3 - 30))
    assert rep_all.with_reference(hand).universal == pytest.approx(27.5 + 55 - 5)

    # against a natural model's report on the same points: the matching convention is taken from it
    nat = _eval(TableModel([2, 3]), x, y, model_name="Natural")  # ids 0, 1 correct
    assert nat.category_scores_on_correct == pytest.approx(
        {"sensitivity": 75.0, "local": 100.0, "global": 0.0}
    )
    assert nat.category_scores_all_points == pytest.approx(
        {"sensitivity": 37.5, "local": 50.0, "global": 0.0}
    )
    scored = _eval(TableModel([3]), x, y, reference=nat)
    assert scored.reference_name == "Natural"
    assert scored.reference_scores == pytest.approx(nat.category_scores_on_correct)
    assert scored.universal == pytest.approx((50 - 75) + (100 - 100) + (100 / 3 - 0))
    assert scored.universal_all_points == pytest.approx((37.5 - 37.5) + (75 - 50) + (25 - 0))
    scored_all = _eval(TableModel([3]), x, y, reference=nat, score_convention="all-points")
    assert scored_all.reference_scores == pytest.approx(nat.category_scores_all_points)
    assert scored_all.universal == pytest.approx(50.0)
    # rescoring a report under the other convention keeps a reference report's both sides
    flipped = scored.with_score_convention("all-points")
    assert flipped.universal == pytest.approx(50.0) and flipped.category_scores == pytest.approx(
        all_points
    )
    assert flipped.with_score_convention("correct-only").universal == pytest.approx(
        scored.universal
    )
    assert nat.with_reference(nat).universal == pytest.approx(0.0)
    assert scored.warnings == []  # same points, same suite


def test_correct_only_scores_unchanged_when_misclassified_points_are_removed():
    x, y = _data()
    full = _eval(TableModel([3]), x, y)
    kept = _eval(TableModel([3]), x[:3], y[:3])  # id 3 (misclassified) removed
    assert kept.n_clean_correct == full.n_clean_correct == 3
    assert kept.category_scores == full.category_scores  # exactly
    # all-point accuracy changes (the denominator shrinks): it now equals the correct-only score
    assert kept.category_scores_all_points == pytest.approx(full.category_scores_on_correct)
    assert kept.category_scores_all_points != pytest.approx(full.category_scores_all_points)


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.fc = torch.nn.Linear(36, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(3, 36, generator=g))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_real_attacks_correct_only_scores_ignore_misclassified_points():
    """Real PGD / flow / affine attacks on a fixed linear model: dropping the points it misclassifies
    without attack leaves the correct-only scores exactly unchanged (attack randomness is per example,
    batch size 1 keeps every float identical)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10, 1, 6, 6, generator=g)
    model = _Linear().eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    y[[1, 4, 7]] = (y[[1, 4, 7]] + 1) % 3  # three points misclassified without attack
    suite = {
        "name": "lin",
        "score_convention": "correct-only",
        "attacks": [
            {
                "name": "pgd",
                "attack": "pgd",
                "category": "sensitivity",
                "params": {"eps": 0.05, "eps_step": 0.02, "random_init": True},
                "iterations": [1, 3],
            },
            {
                "name": "flow",
                "attack": "flow",
                "category": "local",
                "params": {"eps": 0.3, "eps_step": 0.1},
                "iterations": [1, 2],
            },
            {
                "name": "rt",
                "attack": "affine",
                "category": "global",
                "params": {"eps": 0.3, "eps_step": 0.1},
                "iterations": [2],
            },
        ],
    }
    full = evaluate(model, x, y, suite, batch_size=1, seed=3)
    ok = [i for i in range(10) if i not in (1, 4, 7)]
    kept = evaluate(model, x[ok], y[ok], suite, batch_size=1, seed=3)
    assert full.n_clean_correct == kept.n_clean_correct == 7 and kept.clean_accuracy == 100.0
    assert kept.category_scores == full.category_scores
    assert kept.category_scores_all_points == kept.category_scores
    # under all-points the three misclassified points count as non-robust: scores × 7/10
    for c, v in full.category_scores_all_points.items():
        assert v == pytest.approx(full.category_scores[c] * 0.7)


# ------------------------------------------------------------------------------------ references
def test_no_reference_means_no_universal_score(caplog):
    x, y = _data()
    with caplog.at_level(logging.INFO, logger="art_spatial.bench.evaluate"):
        rep = _eval(TableModel([3]), x, y)
    assert rep.universal is None and rep.reference_scores is None and rep.reference_name is None
    assert any("no universal score" in r.getMessage() for r in caplog.records)
    assert "universal score: not computed (no reference" in rep.summary_table()
    # the registered paper suites carry the paper's numbers, but never use them silently
    for name in ("pareto-mnist", "pareto-cifar10"):
        s = get_suite(name)
        assert s.score_convention == "correct-only" and s.reference
        assert "different model" in s.reference_name


def test_paper_reference_only_by_name_and_labelled():
    x, y = _data()
    rep = _eval(TableModel([3]), x, y, reference="paper")
    assert rep.reference_name == HAND["reference_name"]
    assert rep.reference_scores == HAND["reference"]
    assert rep.universal == pytest.approx(40 + 80 + (100 / 3 - 30))
    assert rep.universal_all_points is None  # the paper's numbers are correct-only scores
    assert _eval(TableModel([3]), x, y).with_reference("paper").universal == rep.universal
    # the registered suites' numbers, by suite name
    scores, name = resolve_reference("paper:pareto-mnist")
    assert scores == {"sensitivity": 29.40, "local": 14.36, "global": 16.70}
    assert "Pareto AT paper Table 1 natural model" in name and "a different model" in name
    assert resolve_reference("paper", suite="pareto-cifar10")[0]["global"] == 57.28
    # correct-only numbers cannot score an all-points report; a suite without numbers has none
    with pytest.raises(ValueError, match="no all-points scores"):
        _eval(TableModel([3]), x, y, reference="paper", score_convention="all-points")
    no_numbers = {k: v for k, v in HAND.items() if k not in ("reference", "reference_name")}
    with pytest.raises(ValueError, match="no published reference numbers"):
        _eval(TableModel([3]), x, y, suite=no_numbers, reference="paper")


def test_reference_on_other_points_is_flagged():
    x, y = _data()
    nat = _eval(TableModel([2, 3]), x[:2], y[:2], model_name="Natural")
    rep = _eval(TableModel([3]), x, y, reference=nat)
    assert rep.universal is not None
    assert any(w.startswith("reference:") and "other points" in w for w in rep.warnings)
    assert not [w for w in rep.with_reference(None).warnings if w.startswith("reference:")]


def test_invalid_score_convention_raises_naming_the_parameter():
    x, y = _data()
    with pytest.raises(ValueError, match="score_convention"):
        _eval(TableModel([3]), x, y, score_convention="correct")
    with pytest.raises(ValueError, match="suite.score_convention"):
        get_suite(dict(HAND, score_convention="robustbench"))
    rep = _eval(TableModel([3]), x, y)
    with pytest.raises(ValueError, match="score_convention"):
        rep.with_score_convention("all")
    with pytest.raises(ValueError, match="score_convention"):
        RobustnessReport.from_dict(dict(rep.to_dict(), score_convention="mean"))


# ------------------------------------------------------------------------- old files, leaderboard
def test_old_report_files_load_as_all_points(tmp_path):
    x, y = _data()
    nat = _eval(TableModel([2, 3]), x, y, score_convention="all-points", model_name="Natural")
    new = _eval(TableModel([3]), x, y, reference=nat, score_convention="all-points").to_dict()
    old = {
        k: v
        for k, v in new.items()
        if k
        not in (
            "score_convention",
            "category_scores_all_points",
            "reference_scores_all_points",
            "reference_scores_on_correct",
            "universal_all_points",
        )
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    rep = RobustnessReport.load(path)
    assert rep.score_convention == "all-points"
    assert rep.category_scores_all_points == rep.category_scores == new["category_scores"]
    assert rep.universal_all_points == rep.universal == pytest.approx(50.0)
    assert rep.recompute_scores().universal == pytest.approx(50.0)
    # an old report as a reference gives both conventions (it stored the correct-only scores too)
    scored = _eval(TableModel([3]), x, y, reference=str(path))
    assert scored.reference_scores == pytest.approx(new["category_scores_on_correct"])


def test_model_info_and_leaderboard_state_the_convention(tmp_path, caplog):
    from art_spatial.bench.leaderboard import render_leaderboard, to_model_info

    x, y = _data()
    nat = _eval(TableModel([2, 3]), x, y, model_name="Natural")
    rep = _eval(TableModel([3]), x, y, reference=nat)
    info = to_model_info(rep, name="A", architecture="Table", path=tmp_path / "a.json")
    assert info["score_convention"] == "correct-only"
    assert info["universal_score"] == f"{rep.universal:.2f}"
    assert info["universal_score_all_points"] == "50.00"
    assert (
        info["local_spatial_score"] == "100.00"
        and info["local_spatial_score_all_points"] == "75.00"
    )
    assert info["attacks"]["s"] == {"1 it": "50.00", "2 it": "25.00"}
    assert info["attacks_on_correct"]["s"] == {"1 it": "66.67", "2 it": "33.33"}
    to_model_info(nat.with_reference(nat), name="N", architecture="Table", path=tmp_path / "n.json")
    md = render_leaderboard(tmp_path, "md").splitlines()
    assert "Universal (correct-only)" in md[0] and "Sensitivity (correct-only)" in md[0]
    assert "Universal (all points)" in md[0] and "| Convention |" in md[0]
    assert md[2].startswith("| 1 | A |") and md[3].startswith("| 2 | N |")
    # an entry of another convention: ranked separately, headers defer to the Convention column
    old = to_model_info(rep.with_score_convention("all-points"), name="B", architecture="Table")
    del old["score_convention"]  # an entry written before the field existed = all-points
    (tmp_path / "b.json").write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING, logger="art_spatial.bench.leaderboard"):
        csv_rows = render_leaderboard(tmp_path, "csv").splitlines()
    assert any("mixes score conventions" in r.getMessage() for r in caplog.records)
    assert "Universal (see Convention)" in csv_rows[0]
    assert csv_rows[1].startswith("1,B,") and csv_rows[1].endswith(",all-points,hand,Natural")
    assert csv_rows[2].startswith("1,A,") and csv_rows[3].startswith("2,N,")


def test_summary_table_states_the_convention():
    x, y = _data()
    nat = _eval(TableModel([2, 3]), x, y, model_name="Natural")
    text = _eval(TableModel([3]), x, y, reference=nat).summary_table()
    assert "score convention: correct-only (accuracy on the 3 points classified correctly" in text
    assert "universal score (correct-only) 8.33; all points 50.00  (vs Natural)" in text
    assert (
        "all-points (accuracy on all 4 points"
        in nat.with_score_convention("all-points").summary_table()
    )
