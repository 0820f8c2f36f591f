"""Pareto AT's lower-level QP (Pareto AT Eq. 12-13, Appendix D) and the trainer's α update (Algorithm 1)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from test_trainers_helpers import ShiftAttack, toy_classifier, toy_data

from art_spatial.trainers import (
    FrontPoint,
    InfeasibleTargetError,
    ParetoAdversarialTrainer,
    feasible_range,
    nondominated,
    pareto_front,
    pareto_matrix,
    pareto_weights,
)


def _random_problem(rng, n):
    B = rng.normal(size=(n, n))
    sigma = B @ B.T / n  # random PSD covariance
    mu = rng.uniform(0.2, 3.0, size=n)
    return mu, sigma


def _objective(P, a):
    return float(a @ P @ a)


def _brute_force(P, c, r, steps=801):
    """Minimum of αᵀPα over a fine grid of the feasible set {c·α = r, Σα = 1, α ≥ 0} (null-space grid)."""
    n = len(c)
    A = np.stack([c, np.ones(n)])
    a0 = np.linalg.lstsq(A, np.array([r, 1.0]), rcond=None)[0]
    null = np.linalg.svd(A)[2][2:].T  # n x (n-2) basis of the null space of A
    grid = np.linspace(-1.5, 1.5, steps if n == 3 else 161)
    T = np.array(list(itertools.product(grid, repeat=n - 2)))
    alphas = a0 + T @ null.T
    ok = (alphas >= -1e-12).all(1)
    alphas = alphas[ok]
    vals = np.einsum("ki,ij,kj->k", alphas, P, alphas)
    k = int(np.argmin(vals))
    return float(vals[k]), alphas[k]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n,include_natural", [(3, False), (3, True), (4, True)])
def test_pareto_weights_constraints_and_brute_force(seed, n, include_natural):
    rng = np.random.default_rng(seed)
    mu, sigma = _random_problem(rng, n)
    lo, hi = feasible_range(mu, include_natural)
    r = float(lo + rng.uniform(0.15, 0.85) * (hi - lo))
    a = pareto_weights(mu, sigma, r, include_natural=include_natural)
    c = mu.copy()
    if include_natural:
        c[0] = 0.0
    # constraints of Eq. 13
    assert a.shape == (n,)
    assert abs(a.sum() - 1) < 1e-6
    assert abs(c @ a - r) < 1e-5 * max(1, r)
    assert (a >= -1e-9).all()
    # optimality against a brute-force search over the feasible set
    P = pareto_matrix(mu, sigma)
    best, best_a = _brute_force(P, c, r)
    assert _objective(P, a) <= best + 1e-6 * max(1.0, best)
    assert np.abs(a - best_a).max() < 0.03  # grid resolution (3/800 for n=3, 3/160 for n=4)


def test_pareto_matrix_equals_pairwise_dispersion():
    """αᵀPα = Σ_i Σ_j E(α_i L_i − α_j L_j)² (Appendix D); μ, Σ = sample mean, population covariance."""
    rng = np.random.default_rng(0)
    for n in (2, 3, 4, 5):
        L = rng.gamma(2.0, 1.0, size=(50, n)) + rng.normal(size=(50, 1))  # correlated losses
        mu = L.mean(0)
        sigma = (L - mu).T @ (L - mu) / L.shape[0]
        P = pareto_matrix(mu, sigma)
        M = L.T @ L / L.shape[0]  # E[L Lᵀ] = Σ + μμᵀ
        np.testing.assert_allclose(P, 2 * n * np.diag(np.diag(M)) - 2 * M, rtol=1e-12, atol=1e-12)
        for _ in range(5):
            a = rng.dirichlet(np.ones(n))
            by_hand = sum(
                np.mean((a[i] * L[:, i] - a[j] * L[:, j]) ** 2) for i in range(n) for j in range(n)
            )
            assert abs(_objective(P, a) - by_hand) < 1e-9 * max(1.0, by_hand)
    # the paper's n = 4 form: 8(diag Σ + diag μμᵀ) − 2(Σ + μμᵀ)
    mu, sigma = _random_problem(rng, 4)
    paper = 8 * (np.diag(np.diag(sigma)) + np.diag(mu**2)) - 2 * (sigma + np.outer(mu, mu))
    np.testing.assert_allclose(pareto_matrix(mu, sigma), paper, rtol=1e-12)


def test_infeasible_r_raises_and_boundary_is_exact():
    mu = np.array([0.1, 0.5, 1.5, 1.0])
    sigma = np.diag([0.01, 0.02, 0.03, 0.04])
    with pytest.raises(InfeasibleTargetError, match="infeasible"):
        pareto_weights(mu, sigma, 1.6)
    with pytest.raises(InfeasibleTargetError):
        pareto_weights(mu, sigma, -0.1)
    with pytest.raises(InfeasibleTargetError):  # without the natural loss r must be >= min mu
        pareto_weights(mu, sigma, 0.05, include_natural=False)
    # r = max mu: all weight on the hardest attack
    np.testing.assert_allclose(pareto_weights(mu, sigma, 1.5), [0, 0, 1, 0], atol=1e-12)
    # r = 0 with the natural loss: only the natural loss
    np.testing.assert_allclose(pareto_weights(mu, sigma, 0.0), [1, 0, 0, 0], atol=1e-12)


def test_pareto_weights_bad_input_and_cvxopt_options_restored():
    from cvxopt import solvers

    before = dict(solvers.options)
    pareto_weights([0.2, 1.0, 2.0], np.eye(3) * 0.1, 1.0)
    assert dict(solvers.options) == before
    with pytest.raises(ValueError, match="sigma"):
        pareto_weights([0.2, 1.0], np.eye(3), 0.5)
    with pytest.raises(ValueError, match="r"):
        pareto_weights([0.2, 1.0], np.eye(2), float("nan"))
    with pytest.raises(ValueError, match="mu"):
        pareto_weights([0.2, np.inf], np.eye(2), 0.5)


def _pareto(clf, attacks, r, **kw):
    kw.setdefault("verbose", False)
    return ParetoAdversarialTrainer(clf, attacks, r, **kw)


def test_trainer_follows_algorithm_1():
    """α starts uniform; after every batch α = QP(window moments); the window keeps the last `window` vectors;
    θ is updated on Σ α_i L_i with the α of the previous batch."""
    x, y = toy_data(48)
    clf = toy_classifier()
    attacks = [ShiftAttack(0.5), ShiftAttack(-1.0), ShiftAttack(2.0)]
    t = _pareto(clf, attacks, r=0.7, window=3, names=["a", "b", "c"])
    np.testing.assert_allclose(t.alpha, np.full(4, 0.25))
    seen = []
    orig = t._batch_objective

    def spy(xb, yb, ctx):
        seen.append(t.alpha.copy())
        obj = orig(xb, yb, ctx)
        L = obj.aux["loss_vector"]
        np.testing.assert_allclose(float(obj.loss.detach()), float(seen[-1] @ L), rtol=1e-5)
        return obj

    t._batch_objective = spy
    t.fit(x, y, nb_epochs=1, batch_size=8)
    assert len(seen) == 6
    np.testing.assert_allclose(seen[0], np.full(4, 0.25))
    assert len(t._window) == 3
    mu, sigma = t.window_moments()
    lo, hi = feasible_range(mu)
    assert lo <= 0.7 <= hi  # feasible here: no fallback
    np.testing.assert_allclose(t.alpha, pareto_weights(mu, sigma, 0.7), atol=1e-7)
    h = t.history[0]
    assert h["qp_fallbacks"] == 0 and h["qp_failures"] == 0
    assert h["loss_names"] == ["natural", "a", "b", "c"]
    np.testing.assert_allclose(h["alpha"], np.mean(seen, axis=0), atol=1e-12)
    assert all(k in h for k in ("loss_natural", "loss_a", "loss_b", "loss_c", "time_qp_s"))


@pytest.mark.parametrize("mode", ["clip", "keep"])
def test_infeasible_r_takes_the_fallback(mode):
    x, y = toy_data(32)
    t = _pareto(
        toy_classifier(), [ShiftAttack(0.5), ShiftAttack(-1.0)], r=1e3, infeasible=mode, window=4
    )
    with pytest.warns(RuntimeWarning, match="infeasible") as rec:
        t.fit(x, y, nb_epochs=2, batch_size=8)
    assert sum("infeasible" in str(w.message) for w in rec) == 2  # once per epoch
    assert [h["qp_fallbacks"] for h in t.history] == [4, 4]
    if mode == "keep":
        np.testing.assert_allclose(t.alpha, np.full(3, 1 / 3))
    else:  # r clipped to max_i mu_i: all weight on the attack with the highest windowed loss
        mu = t.window_moments()[0]
        expected = np.zeros(3)
        expected[1 + int(np.argmax(mu[1:]))] = 1.0
        np.testing.assert_allclose(t.alpha, expected, atol=1e-9)


def test_feasible_r_gives_no_warning():
    x, y = toy_data(16)
    t = _pareto(toy_classifier(), [ShiftAttack(0.5)], r=0.0, window=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        t.fit(x, y, nb_epochs=1, batch_size=8)
    assert t.history[0]["qp_fallbacks"] == 0


def test_pareto_trainer_bad_arguments():
    clf = toy_classifier()
    a = [ShiftAttack(0.1)]
    with pytest.raises(ValueError, match="window"):
        ParetoAdversarialTrainer(clf, a, 1.0, window=0)
    with pytest.raises(ValueError, match="infeasible"):
        ParetoAdversarialTrainer(clf, a, 1.0, infeasible="raise")
    with pytest.raises(ValueError, match="attacks"):
        ParetoAdversarialTrainer(clf, [], 1.0)
    with pytest.raises(ValueError, match="attacks"):
        ParetoAdversarialTrainer(clf, [object()], 1.0)
    with pytest.raises(ValueError, match="r"):
        ParetoAdversarialTrainer(clf, a, "big")


def test_pareto_front_sweeps_r():
    x, y = toy_data(16)

    def make():
        torch.manual_seed(0)
        return toy_classifier()

    def evaluate(clf):
        with torch.no_grad():
            logits = clf._model(torch.as_tensor(x))[-1]
        return {
            "acc": float((logits.argmax(1).numpy() == y).mean()),
            "neg_norm": -float(logits.norm()),
        }

    pts = pareto_front(
        make,
        lambda c: [ShiftAttack(1.0)],
        [0.2, 0.6],
        x,
        y,
        eval_fn=evaluate,
        batch_size=8,
        trainer_kwargs={"verbose": False, "window": 2},
    )
    assert [p.r for p in pts] == [0.2, 0.6]
    assert all(isinstance(p, FrontPoint) and set(p.metrics) == {"acc", "neg_norm"} for p in pts)
    assert pts[0].classifier is not pts[1].classifier
    # a larger r puts more weight on the robust loss
    assert pts[1].trainer.history[0]["alpha"][1] > pts[0].trainer.history[0]["alpha"][1]
    front = nondominated(pts, ["acc", "neg_norm"])
    assert 1 <= len(front) <= 2
    with pytest.raises(ValueError, match="rs"):
        pareto_front(make, lambda c: [ShiftAttack(1.0)], [], x, y)
