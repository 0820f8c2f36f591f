"""The Table-1 training recipe: ε warm-up, epoch callback, natural trainer, Pareto AT's relative target,
per-example outcomes in reports and the reproduction benchmark's statistics."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_trainers_helpers import ShiftAttack, toy_classifier, toy_data

from art_spatial.trainers import (
    NaturalTrainer,
    ParetoAdversarialTrainer,
    PGDAdversarialTrainer,
    feasible_range,
    pareto_weights,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class BudgetSpy(ShiftAttack):
    """A scripted attack with budget attributes; records the budget it is called with."""

    def __init__(self):
        super().__init__(0.1)
        self.eps, self.eps_step, self.max_rotation = 0.3, 0.03, 30.0
        self.budgets = []

    def attack_tensor(self, model, x, y, **kw):
        self.budgets.append((self.eps, self.eps_step, self.max_rotation))
        return super().attack_tensor(model, x, y, **kw)


# --------------------------------------------------------------------------------------- warm-up
def test_eps_warmup_ramps_every_budget_linearly_and_restores_it():
    x, y = toy_data(32)
    spy = BudgetSpy()
    t = PGDAdversarialTrainer(toy_classifier(), spy, eps_warmup=2, verbose=False)
    t.fit(x, y, nb_epochs=3, batch_size=16)  # 2 batches per epoch
    factors = [b[0] / 0.3 for b in spy.budgets]
    np.testing.assert_allclose(factors, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0], rtol=1e-12)
    # budget and step move together: the step keeps its ratio to the budget
    np.testing.assert_allclose([b[1] / b[0] for b in spy.budgets], 0.1, rtol=1e-12)
    np.testing.assert_allclose([b[2] / 30.0 for b in spy.budgets], factors, rtol=1e-12)
    assert (spy.eps, spy.eps_step, spy.max_rotation) == (
        0.3,
        0.03,
        30.0,
    )  # restored after every call
    assert [h["eps_scale"] for h in t.history] == [0.5, 1.0, 1.0]


def test_no_warmup_means_full_budget_and_no_record():
    x, y = toy_data(16)
    spy = BudgetSpy()
    t = PGDAdversarialTrainer(toy_classifier(), spy, verbose=False)
    t.fit(x, y, nb_epochs=1, batch_size=8)
    assert spy.budgets == [(0.3, 0.03, 30.0)] * 2
    assert "eps_scale" not in t.history[0]
    with pytest.raises(ValueError, match="eps_warmup"):
        PGDAdversarialTrainer(toy_classifier(), spy, eps_warmup=-1)


def test_epoch_callback_joins_history_in_eval_mode():
    x, y = toy_data(16)
    seen = []

    def cb(trainer, epoch):
        seen.append((epoch, trainer.model.training))
        return {"monitor": 10.0 * epoch}

    t = NaturalTrainer(toy_classifier(), epoch_callback=cb, verbose=False)
    t.fit(x, y, nb_epochs=2, batch_size=8)
    assert seen == [(0, False), (1, False)]
    assert [h["monitor"] for h in t.history] == [0.0, 10.0]
    assert all(h["time_callback_s"] >= 0 for h in t.history)
    with pytest.raises(ValueError, match="epoch_callback"):
        NaturalTrainer(toy_classifier(), epoch_callback=3)


def test_natural_trainer_learns_mnist(mnist_train):
    from art_spatial.models import SmallCNN, make_classifier

    x, y = mnist_train
    x, y = x[:512], y[:512]
    torch.manual_seed(0)
    clf = make_classifier(SmallCNN())
    before = float((clf.predict(x).argmax(1) == y).mean())
    t = NaturalTrainer(clf, verbose=False)
    t.fit(x, y, nb_epochs=3, batch_size=32)
    after = float((clf.predict(x).argmax(1) == y).mean())
    assert before < 0.3 and after > 0.75, (before, after)  # measured 0.11 -> 0.85
    assert t.history[-1]["clean_acc"] > t.history[0]["clean_acc"]
    assert np.isnan(t.history[0]["robust_acc"])  # no attack: no robust accuracy


# ------------------------------------------------------------------------------ Pareto relative r
def test_relative_target_is_the_interval_fraction():
    t = ParetoAdversarialTrainer(
        toy_classifier(),
        [ShiftAttack(0.1), ShiftAttack(0.2)],
        0.25,
        r_mode="relative",
        verbose=False,
    )
    mu = np.array([0.1, 0.8, 2.0])
    assert t.target(mu) == pytest.approx(0.8 + 0.25 * 1.2)
    t.r = 0.0
    assert t.target(mu) == pytest.approx(0.8)
    t.r = 1.0
    assert t.target(mu) == pytest.approx(2.0)
    absolute = ParetoAdversarialTrainer(toy_classifier(), [ShiftAttack(0.1)], 2.2, verbose=False)
    assert absolute.target(mu) == 2.2


@pytest.mark.parametrize("r", [-0.1, 1.5])
def test_relative_r_must_be_a_fraction(r):
    with pytest.raises(ValueError, match="r must be in"):
        ParetoAdversarialTrainer(toy_classifier(), [ShiftAttack(0.1)], r, r_mode="relative")
    with pytest.raises(ValueError, match="r_mode"):
        ParetoAdversarialTrainer(toy_classifier(), [ShiftAttack(0.1)], 0.5, r_mode="fraction")


def test_relative_r_never_falls_back_where_absolute_r_does():
    """r = 1000 is infeasible every batch; relative r = 0.5 solves the QP at the middle of the
    window's attack-loss interval in every batch and counts how often the absolute r would fail."""
    x, y = toy_data(32)
    attacks = [ShiftAttack(0.5), ShiftAttack(-1.0)]
    with pytest.warns(RuntimeWarning, match="infeasible"):
        absolute = ParetoAdversarialTrainer(toy_classifier(), attacks, 1e3, window=4, verbose=False)
        absolute.fit(x, y, nb_epochs=1, batch_size=8)
    assert absolute.history[0]["qp_fallbacks"] == 4 and absolute.history[0]["r_infeasible"] == 4
    rel = ParetoAdversarialTrainer(
        toy_classifier(), attacks, 0.5, r_mode="relative", window=4, verbose=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rel.fit(x, y, nb_epochs=1, batch_size=8)
    h = rel.history[0]
    assert h["qp_fallbacks"] == 0 and h["qp_failures"] == 0
    mu, sigma = rel.window_moments()
    target = mu[1:].min() + 0.5 * (mu[1:].max() - mu[1:].min())
    lo, hi = feasible_range(mu)
    assert lo <= target <= hi
    np.testing.assert_allclose(rel.alpha, pareto_weights(mu, sigma, target), atol=1e-7)
    assert float(rel.alpha[1:] @ mu[1:]) == pytest.approx(target, rel=1e-5)


def test_infeasible_warning_names_the_range():
    x, y = toy_data(16)
    t = ParetoAdversarialTrainer(toy_classifier(), [ShiftAttack(0.5)], 1e3, window=2, verbose=False)
    with pytest.warns(RuntimeWarning, match="outside the reachable range"):
        t.fit(x, y, nb_epochs=1, batch_size=8)


# --------------------------------------------------------------------------- per-example outcomes
def test_report_keeps_per_example_outcomes_consistent_with_counts(trained_smallcnn, mnist_test):
    from art_spatial.bench import evaluate

    x, y = mnist_test
    x, y = x[:40].copy(), y[:40].copy()
    y[:3] = (y[:3] + 1) % 10  # three points wrong on purpose
    suite = {
        "name": "tiny",
        "attacks": [
            {
                "name": "pgd",
                "attack": "pgd",
                "category": "sensitivity",
                "iterations": [1, 3],
                "params": {"eps": 0.3, "eps_step": 0.1},
            }
        ],
    }
    rep = evaluate(trained_smallcnn, x, y, suite, batch_size=16)
    clean = np.array([c == "1" for c in rep.meta["clean_correct_examples"]])
    assert clean.sum() == rep.n_clean_correct and not clean[:3].any()
    entry = rep.attacks[0]
    assert len(entry["robust_examples"]) == 2
    for s, flags in zip(entry["strengths"], entry["robust_examples"], strict=True):
        rob = np.array([c == "1" for c in flags])
        assert len(rob) == 40 and rob.sum() == s["n_robust"]
        assert not rob[~clean].any()  # points misclassified without attack are not robust
    # more iterations never make a point robust again (final iterate after 3 steps vs 1)
    r1, r3 = (np.array([c == "1" for c in f]) for f in entry["robust_examples"])
    assert r3.sum() <= r1.sum()


# --------------------------------------------------------------------------- benchmark statistics
def _outcome(clean, sens, local, glob):
    return {
        "clean": np.array(clean, bool),
        "sensitivity": np.array(sens, bool),
        "local": np.array(local, bool),
        "global": np.array(glob, bool),
    }


def test_cells_hand_computed_in_both_conventions():
    from benchmarks.reproduce_pareto_mnist import cell_values

    # 4 points, 3 correct; sensitivity strengths: [1,1,0,0] and [1,0,0,0] robust
    out = _outcome(
        [1, 1, 1, 0], [[1, 1], [1, 0], [0, 0], [0, 0]], [[1], [1], [1], [0]], [[0], [0], [0], [0]]
    )
    idx = np.arange(4)
    co = cell_values(out, idx, "correct-only")
    ap = cell_values(out, idx, "all-points")
    assert co["clean_accuracy"] == 75.0
    assert co["sensitivity"] == pytest.approx(100 * (2 / 3 + 1 / 3) / 2)
    assert ap["sensitivity"] == pytest.approx(100 * (2 / 4 + 1 / 4) / 2)
    assert co["local"] == 100.0 and ap["local"] == 75.0 and co["global"] == 0.0
    # correct-only scores do not move when the misclassified point is dropped
    assert cell_values(out, np.arange(3), "correct-only") == {**co, "clean_accuracy": 100.0}


def test_bootstrap_and_verdicts():
    from benchmarks.reproduce_pareto_mnist import bootstrap, verdicts

    rng = np.random.default_rng(0)
    n = 200
    outs = {}
    for s in (0, 1):
        clean = np.ones(n, bool)
        outs[("Natural", s)] = _outcome(clean, np.zeros((n, 1)), np.zeros((n, 1)), np.zeros((n, 1)))
        strong = rng.random((n, 1)) < 0.9
        weak = rng.random((n, 1)) < 0.5
        outs[("A", s)] = _outcome(clean, strong, strong, strong)
        outs[("B", s)] = _outcome(clean, weak, weak, weak)
        outs[("C", s)] = _outcome(clean, weak, weak, weak)  # same outcomes as B: a tie
    cells, draws = bootstrap(
        outs, ["Natural", "A", "B", "C"], [0, 1], n, "correct-only", n_boot=200
    )
    assert cells["Natural"]["universal"]["mean"] == 0.0
    a = cells["A"]["universal"]
    assert a["lo"] < a["mean"] < a["hi"] and 240 < a["mean"] < 300
    paper = {"A": {"universal": 2.0}, "B": {"universal": 1.0}, "C": {"universal": 3.0}}
    res = {
        tuple(v["pair"]): v["verdict"]
        for v in verdicts(cells, draws, paper, "universal", {m: m for m in paper})
    }
    assert res[("A", "B")] == "held"  # A > B in the paper and here
    assert res[("A", "C")] == "missed"  # the paper puts C above A; here A is clearly better
    assert (
        res[("B", "C")] == "tie"
    )  # identical outcomes: the difference interval is [0, 0]... a tie


def test_benchmark_jobs_and_the_table_columns():
    """Every seed trains the Table-1 models, the absolute-r Pareto AT and Spatial AT with doubled epochs
    and warm-up (the Table-1 Spatial AT column once it exists); only the sweep seeds train the r sweep."""
    from art_spatial.demo import DemoConfig
    from benchmarks.reproduce_pareto_mnist import (
        TABLE_METHODS,
        make_jobs,
        spatial_long_label,
        table_labels,
    )

    cfg = DemoConfig.preset("full")
    jobs = make_jobs(cfg, [0, 1, 2], [0])
    labels = {s: [j[1] for j in jobs if j[0] == s] for s in (0, 1, 2)}
    long = spatial_long_label(cfg)
    assert long == "Spatial AT (20 ep)"
    for s in (0, 1, 2):
        assert set(TABLE_METHODS) | {"Pareto AT (r=2.2 abs)", long} <= set(labels[s])
    assert len(labels[0]) == len(labels[1]) + 4  # relative 0.2 / 0.8, absolute 0.5 / 1.2
    (long_cfg,) = [j[3] for j in jobs if j[0] == 1 and j[1] == long]
    assert (long_cfg.adv_epochs, long_cfg.eps_warmup) == (2 * cfg.adv_epochs, 2 * cfg.eps_warmup)
    assert long_cfg.training_key("Spatial AT") != cfg.training_key(
        "Spatial AT"
    )  # its own cache entry
    assert table_labels(cfg, {long: {}})["Spatial AT"] == long
    assert (
        table_labels(cfg, {})["Spatial AT"] == "Spatial AT"
    )  # not finished yet: the preset-length model
    assert table_labels(cfg, {long: {}}, spatial_long=False)["Spatial AT"] == "Spatial AT"
