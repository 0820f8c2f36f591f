"""Tests of art_spatial.theory: the cyclic-code distribution of the CuSP paper §3 and Theorem 2."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from art_spatial.theory import (
    CyclicCodeDistribution,
    check_theorem2,
    msequence_codeword,
    sign_x0_classifier,
    theorem2_bound,
    theorem3_bound,
)


def test_msequence_codeword_is_a_cyclic_code_with_large_distance():
    for k in (3, 6, 8):
        c = msequence_codeword(k)
        d = 2**k - 1
        assert c.shape == (d,) and set(np.unique(c)) == {-1, 1}
        # every non-trivial cyclic shift agrees in 2^{k-1} - 1 places: <c, r c> = -1
        assert all(int(np.dot(c, np.roll(c, s))) == -1 for s in range(1, d))
    D = CyclicCodeDistribution(63, 9, 0.6)
    assert D.codeword_kind == "m-sequence"
    assert D.relative_distance == pytest.approx(32 / 63) and D.relative_distance >= 3 / 8


def test_sampler_moments():
    D = CyclicCodeDistribution(d=15, m=5, p=0.7)
    n = 60_000
    x, y = D.sample(n, np.random.default_rng(0))
    assert x.shape == (n, 16) and set(np.unique(y)) == {-1, 1}
    assert np.mean(y == 1) == pytest.approx(0.5, abs=4 * 0.5 / math.sqrt(n))
    assert set(np.unique(x[:, 0])) == {-1.0, 1.0}
    assert np.mean(x[:, 0] == y) == pytest.approx(0.7, abs=4 * math.sqrt(0.21 / n))
    for label in (-1, 1):
        rows = x[y == label, 1:]
        se = 1 / math.sqrt(len(rows))
        np.testing.assert_allclose(
            rows.mean(0), 2 * D.codeword * label / math.sqrt(15), atol=5 * se
        )
        np.testing.assert_allclose(rows.var(0), 1.0, atol=0.05)
    # coordinates are independent given Y
    corr = np.corrcoef(x[y == 1, 1:].T)
    assert np.abs(corr - np.eye(15)).max() < 0.05
    # reproducible under the seed
    x2, y2 = D.sample(n, np.random.default_rng(0))
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


def test_shifts_follow_the_paper():
    D = CyclicCodeDistribution(d=6, m=2, p=0.6, codeword=[1, 1, -1, 1, -1, -1])
    x = np.arange(7, dtype=float)[None]  # (x0, x1, ..., x6) = (0, 1, ..., 6)
    # r_j(x) = (x0, x_{mj+1}, ..., x_d, x_1, ..., x_{mj})
    np.testing.assert_array_equal(D.shift(x, 1), [[0, 3, 4, 5, 6, 1, 2]])
    np.testing.assert_array_equal(D.shift(x, 2), [[0, 5, 6, 1, 2, 3, 4]])
    np.testing.assert_array_equal(D.shift(x, D.n_shifts), x)  # r_{d/m} = identity
    rows = np.repeat(x, 3, axis=0)
    np.testing.assert_array_equal(
        D.shift(rows, np.array([1, 2, 3])), np.concatenate([D.shift(x, 1), D.shift(x, 2), x])
    )
    xs, j = D.random_shift(np.repeat(x, 500, axis=0), np.random.default_rng(1))
    assert set(np.unique(j)) == {1, 2, 3}
    assert np.all(xs[:, 0] == 0)
    # the shifted data has the law of the shifted codeword
    Dl = CyclicCodeDistribution(d=15, m=5, p=0.6)
    xx, yy = Dl.sample(40_000, np.random.default_rng(2))
    mean = (Dl.shift(xx, 1)[:, 1:] * yy[:, None]).mean(0)
    np.testing.assert_allclose(mean, 2 * Dl.shifted_codeword(1) / math.sqrt(15), atol=0.03)


def test_attack_is_linf_bounded_and_flips_the_gaussian_part():
    D = CyclicCodeDistribution(d=31, m=31, p=0.55)
    x, y = D.sample(40_000, np.random.default_rng(3))
    a = D.attack(x, y)
    assert np.all(a[:, 0] == 0)
    np.testing.assert_allclose(np.abs(a).max(1), 4 / math.sqrt(31))
    assert D.epsilon == pytest.approx(4 / math.sqrt(31))
    xa = x + a
    # given Y = y, the last d coordinates of x + A(x) follow the law of Y = -y
    np.testing.assert_allclose(
        (xa[:, 1:] * y[:, None]).mean(0), -2 * D.codeword / math.sqrt(31), atol=0.03
    )
    assert np.array_equal(x, D.sample(40_000, np.random.default_rng(3))[0])  # input untouched


def test_bayes_classifiers_match_proposition_1():
    D = CyclicCodeDistribution(d=63, m=21, p=0.5 + 1e-6)  # p -> 1/2
    n = 40_000
    x, y = D.sample(n, np.random.default_rng(4))
    tol = 4 * math.sqrt(0.25 / n)
    # f* on X: sign(sum_t c_t X_t) with sum ~ N(2y sqrt(d), d): accuracy Phi(2) ~ 97.7 %
    assert np.mean(D.bayes_classifier(x) == y) == pytest.approx(norm.cdf(2), abs=tol)
    for j in (1, 2):
        xs = D.shift(x, j)
        # f*_j is as accurate on r_j(X) ...
        assert np.mean(D.bayes_classifier(xs, j) == y) == pytest.approx(norm.cdf(2), abs=tol)
        # ... but f* applied to r_j(X) is at most 85 % (here: <c, r_j c> = -1, so ~ chance)
        acc = np.mean(D.bayes_classifier(xs) == y)
        assert acc <= 0.85
        assert acc == pytest.approx(norm.cdf(2 * -1 / 63), abs=tol)
    # the invariant Bayes classifier gives the same prediction on every shift
    inv = D.invariant_bayes_classifier(x)
    for j in range(1, 4):
        np.testing.assert_array_equal(D.invariant_bayes_classifier(D.shift(x, j)), inv)


@pytest.mark.parametrize("d, m, p", [(63, 21, 0.6), (63, 9, 0.75), (15, 5, 0.55), (64, 32, 0.51)])
def test_theorem2_bound_holds_in_simulation(d, m, p):
    D = CyclicCodeDistribution(d=d, m=m, p=p)
    classifiers = {
        "bayes": D.bayes_classifier,
        "bayes_shift1": lambda x: D.bayes_classifier(x, 1),
        "invariant_bayes": D.invariant_bayes_classifier,
        "x0": sign_x0_classifier,
        "mixed": lambda x: np.where(3 * x[:, 0] + D.invariant_bayes_score(x) >= 0, 1, -1),
    }
    for name, f in classifiers.items():
        r = check_theorem2(D, f, n=20_000, rng=5)
        assert r["theorem2_holds"], (name, r)
        assert r["theorem3_holds"], (name, r)
        assert r["clean_vs_adversarial_holds"], (name, r)
        assert r["spatial_accuracy"] <= r["theorem2_bound"] + 4 * (
            r["se_spatial"] + p / (1 - p) * r["se_adversarial"]
        )
    # the sign(x0) classifier sits on the bound: adversarial = spatial = p = (1 - p) * p / (1 - p)
    r = check_theorem2(D, sign_x0_classifier, n=20_000, rng=6)
    assert r["spatial_accuracy"] == pytest.approx(p, abs=4 * r["se_spatial"])
    assert r["theorem2_bound"] == pytest.approx(p, abs=4 * p / (1 - p) * r["se_adversarial"])


def test_theorem2_needs_the_attack_on_the_transformed_data():
    # A non-invariant classifier (f*_1, d/m = 2 shifts) is accurate against A on the untransformed
    # data, so the reading "a_0 >= 1 - eta => spatial <= eta p/(1-p)" fails, while the statement the
    # paper proves (attack on r_J(X)) and the Theorem 3 bound hold.
    D = CyclicCodeDistribution(d=64, m=32, p=0.51)
    r = check_theorem2(
        D,
        lambda x: np.where(D.bayes_score(x, 1) - x[:, 0] * D.log_odds_x0 >= 0, 1, -1),
        n=20_000,
        rng=7,
    )
    assert r["theorem2_holds"] and r["theorem3_holds"]
    assert not r["theorem2_untransformed_holds"]
    assert r["spatial_accuracy"] > r["theorem2_untransformed_bound"] + 0.2


def test_bound_helpers():
    assert theorem2_bound(1.0, 0.7) == 0.0
    assert theorem2_bound(0.6, 0.6) == pytest.approx(0.6)
    assert theorem2_bound(0.0, 0.9) == 1.0
    # the paper's limits of Theorem 3: 1 - m/d as p -> 1/2, eta -> 0; 1/2 + eta/2 for m = d/2
    assert theorem3_bound(1.0, 0.5, 16, 64) == pytest.approx(1 - 16 / 64)
    assert theorem3_bound(0.9, 0.5, 32, 64) == pytest.approx(0.5 + 0.1 / 2)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(d=10, m=3, p=0.6), "m"),
        (dict(d=10, m=5, p=0.4), "p"),
        (dict(d=0, m=1, p=0.6), "d"),
        (dict(d=4, m=2, p=0.6, codeword=[1, 0, 1, 1]), "codeword"),
    ],
)
def test_distribution_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CyclicCodeDistribution(**kwargs)
