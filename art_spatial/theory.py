"""The spatial vs adversarial robustness trade-off on the cyclic-code distribution (CuSP paper, §3).

Paper: "On the (im)possibility of spatial and adversarial robustness" style trade-off of Kamath et al.
("Can we have it all? On the trade-off between spatial and adversarial robustness of neural
networks", arXiv:2002.11318, §3, Proposition 1, Theorems 2-3 and their
proofs in the supplementary), a cyclic-code variant of the distribution of Tsipras et al.

Distribution (implemented exactly as stated in §3):

* ``Y`` is ``±1`` with probability 1/2 each;
* ``X0 | Y = y`` equals ``y`` with probability ``p`` and ``−y`` with probability ``1 − p`` (``p ≥ 1/2``);
* ``Xt | Y = y ~ N(2 c_t y / √d, 1)`` independently for ``1 ≤ t ≤ d``, with ``c ∈ {−1, 1}^d`` the
  generator codeword of a binary cyclic code;
* ``r_j(x) = (x0, x_{mj+1}, …, x_d, x_1, …, x_{mj})`` is the cyclic shift by ``m·j`` coordinates
  (``m`` divides ``d``; ``x0`` is fixed) and ``r(x) = r_J(x)`` with ``J`` uniform over
  ``{1, …, d/m}`` (``J = d/m`` is the identity).

Convention: arrays ``x`` are ``n x (d+1)`` float64 with column 0 holding ``x0`` and columns ``1..d`` the
coordinates ``x_1..x_d``; labels ``y`` are ``n`` int arrays in ``{−1, +1}``; classifiers are callables
``x -> {−1, +1}^n``. All randomness goes through :class:`numpy.random.Generator` objects (or an int
seed turned into one).

Objects (``D = CyclicCodeDistribution(d, m, p)``):

* ``D.sample(n, rng)``, ``D.shift(x, j)``, ``D.random_shift(x, rng)``;
* ``D.bayes_classifier(x, j=0)`` — the maximum-accuracy classifier ``f*_j`` on ``(r_j(X), Y)``
  (proof of Proposition 1): ``sign(log ρ(x0) + (4/√d) Σ_t (r_j c)_t x_t)`` with
  ``log ρ(x0) = x0 · log(p / (1 − p))``;
* ``D.invariant_bayes_classifier(x)`` — the maximum-accuracy classifier on ``(r(X), Y)``;
* ``D.attack(x, y, j=0)`` — the ℓ∞ perturbation ``A(x)`` of the proof of Theorem 3:
  ``A(x)_0 = 0``, ``A(x)_t = −4 (r_j c)_t y / √d`` (``‖A(x)‖∞ = 4/√d``), which turns the law of the last
  ``d`` coordinates given ``Y = y`` into the law given ``Y = −y``;
* :func:`check_theorem2` — a Monte-Carlo check of Theorem 2's bound for any classifier.

Reading of Theorem 2 that is checked. The proof applies the Tsipras et al. argument to each shifted
distribution ``r_j(X)`` (its attack uses the shifted codeword ``r_j(c)``, i.e. the attacked point is
``r_j(X + A(X))``) and averages over ``j``. So with

    adversarial accuracy  a_r = Pr(f(r_J(X + A(X))) = Y)   (accuracy under A on the transformed data)
    spatial accuracy      s   = Pr(f(r_J(X)) = Y)

the statement ``a_r ≥ 1 − η  ⇒  s ≤ η p/(1 − p)`` holds for *every* classifier ``f`` (and its
converse form ``s ≥ 1 − η ⇒ a_r ≤ 1 − (1 − p)(1 − η)/p`` is the same inequality). Any ℓ∞ attack of
budget ``4/√d`` is at least as strong as ``A``, so the worst-case robust accuracy obeys the same bound.
If the adversarial accuracy is instead measured on the *untransformed* data,
``a_0 = Pr(f(X + A(X)) = Y)``, the bound can fail for classifiers that are not invariant
(e.g. ``f*_1`` with ``d/m = 2``, see :func:`check_theorem2`'s ``theorem2_untransformed_holds``); what
holds then is the bound of Theorem 3's proof, which we reconstruct (the paper's displayed equation is an
image) as ``s ≤ (m/d) · η0 p/(1 − p) + (1 − m/d)`` with ``η0 = 1 − a_0``: the identity shift (probability
``m/d``) keeps standard accuracy ``≤ η0 p/(1 − p)`` and every other shift contributes at most 1. It
reproduces both limits stated in the paper (``1 − m/d`` as ``p → 1/2, η → 0``; ``1/2 + η/2`` for
``m = d/2``).

Example:
    >>> import numpy as np
    >>> D = CyclicCodeDistribution(d=63, m=21, p=0.6)
    >>> x, y = D.sample(4000, np.random.default_rng(0))
    >>> x.shape, round(float(np.mean(D.bayes_classifier(x) == y)), 1)
    ((4000, 64), 1.0)
    >>> r = check_theorem2(D, D.bayes_classifier, n=20000, rng=0)
    >>> r["theorem2_holds"]
    True
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

from ._checks import check_int

logger = logging.getLogger(__name__)

__all__ = [
    "CyclicCodeDistribution",
    "msequence_codeword",
    "check_theorem2",
    "theorem2_bound",
    "theorem3_bound",
    "sign_x0_classifier",
]

#: Taps (1-based register positions) of primitive polynomials x^k + ... + 1 for Fibonacci LFSRs.
_PRIMITIVE_TAPS = {
    2: (2, 1),
    3: (3, 2),
    4: (4, 3),
    5: (5, 3),
    6: (6, 5),
    7: (7, 6),
    8: (8, 6, 5, 4),
    9: (9, 5),
    10: (10, 7),
    11: (11, 9),
    12: (12, 11, 10, 4),
}

Classifier = Callable[[np.ndarray], np.ndarray]


def _rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(0 if rng is None else int(rng))
    raise ValueError(f"rng must be a numpy Generator or an int seed, got {rng!r}")


def msequence_codeword(k: int) -> np.ndarray:
    """Generator codeword of the binary simplex code of length ``d = 2^k − 1`` as ``±1`` values.

    A maximal-length LFSR sequence: every non-trivial cyclic shift agrees with it in exactly
    ``2^{k−1} − 1`` coordinates (``⟨c, r c⟩ = −1``), so the cyclic code generated by it has relative
    distance ``2^{k−1} / (2^k − 1) > 1/2 ≥ 3/8`` (the CuSP paper's Proposition 1 needs ``δ ≥ 3/8``;
    MacWilliams & Sloane ch. 8 / 14).

    Args:
        k: register length, 2 ≤ k ≤ 12.

    Returns:
        ``int8`` array of length ``2^k − 1`` with values in ``{−1, 1}``.

    Example:
        >>> c = msequence_codeword(4)
        >>> len(c), int(np.dot(c, np.roll(c, 3)))
        (15, -1)
    """
    k = check_int("k", k, minimum=2)
    if k not in _PRIMITIVE_TAPS:
        raise ValueError(f"k must be in {sorted(_PRIMITIVE_TAPS)}, got {k}")
    taps = _PRIMITIVE_TAPS[k]
    state = [1] * k
    bits = np.empty(2**k - 1, dtype=np.int8)
    for i in range(len(bits)):
        bits[i] = state[-1]
        feedback = 0
        for t in taps:
            feedback ^= state[t - 1]
        state = [feedback] + state[:-1]
    return (1 - 2 * bits).astype(np.int8)


class CyclicCodeDistribution:
    """The cyclic-code input distribution of the CuSP paper §3 (Kamath et al.).

    See the module docstring for the exact definition. ``n_shifts = d / m`` shifts ``r_1 … r_{d/m}``
    (``r_{d/m}`` = identity).

    Args:
        d: number of Gaussian coordinates (``x`` has ``d + 1`` columns).
        m: shift step; must divide ``d``.
        p: ``Pr(X0 = Y)``, ``1/2 ≤ p < 1``.
        codeword: generator codeword ``c`` (``d`` values in ``{−1, 1}``), or ``None``: the m-sequence
            (simplex code) when ``d = 2^k − 1`` (2 ≤ k ≤ 12), otherwise a random ``±1`` word drawn from
            ``seed``. :attr:`relative_distance` reports the realised ``δ`` over the used shifts.
        seed: seed of the random codeword (only used when one is drawn).

    Raises:
        ValueError: a parameter is invalid (the message names it).

    Example:
        >>> D = CyclicCodeDistribution(d=15, m=5, p=0.7)
        >>> D.n_shifts, round(D.relative_distance, 3), round(D.epsilon, 4)
        (3, 0.533, 1.0328)
    """

    def __init__(self, d: int, m: int, p: float, codeword=None, seed: int = 0) -> None:
        self.d = check_int("d", d, minimum=1)
        self.m = check_int("m", m, minimum=1)
        if self.d % self.m != 0:
            raise ValueError(f"m must divide d, got d={d}, m={m}")
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.5 <= p < 1:
            raise ValueError(f"p must be a number in [0.5, 1), got {p!r}")
        self.p = float(p)
        if codeword is None:
            k = int(round(math.log2(self.d + 1)))
            if 2**k - 1 == self.d and k in _PRIMITIVE_TAPS:
                c = msequence_codeword(k)
                self.codeword_kind = "m-sequence"
            else:
                c = np.where(np.random.default_rng(seed).random(self.d) < 0.5, -1, 1)
                self.codeword_kind = "random"
        else:
            c = np.asarray(codeword)
            if c.shape != (self.d,) or not np.all(np.isin(c, (-1, 1))):
                raise ValueError(
                    f"codeword must be {self.d} values in {{-1, 1}}, got shape {c.shape}"
                )
            self.codeword_kind = "given"
        self.codeword = c.astype(np.float64)
        self.codeword.setflags(write=False)

    # ------------------------------------------------------------------------------- properties
    @property
    def n_shifts(self) -> int:
        """Number ``d / m`` of shifts ``r_j`` in the random transformation ``r``."""
        return self.d // self.m

    @property
    def epsilon(self) -> float:
        """ℓ∞ size ``4/√d`` of the attack ``A``."""
        return 4.0 / math.sqrt(self.d)

    @property
    def log_odds_x0(self) -> float:
        """``log(p / (1 − p))`` — the weight of ``x0`` in the Bayes classifiers."""
        return math.log(self.p / (1.0 - self.p))

    @property
    def relative_distance(self) -> float:
        """``δ = min_j #{t : (r_j c)_t ≠ c_t} / d`` over the non-trivial shifts (nan when ``m = d``)."""
        if self.n_shifts == 1:
            return float("nan")
        return min(
            float(np.mean(self.shifted_codeword(j) != self.codeword))
            for j in range(1, self.n_shifts)
        )

    def shifted_codeword(self, j: int) -> np.ndarray:
        """``r_j(c)``: the codeword of the shifted distribution ``r_j(X)`` (``(r_j c)_t = c_{t+mj}``)."""
        return np.roll(self.codeword, -self.m * int(j))

    # --------------------------------------------------------------------------------- sampling
    def sample(self, n: int, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` pairs ``(X, Y)``; returns ``x`` (``n x (d+1)`` float64) and ``y`` (``n`` in ±1)."""
        n = check_int("n", n, minimum=0)
        g = _rng(rng)
        y = np.where(g.random(n) < 0.5, -1, 1)
        x0 = np.where(g.random(n) < self.p, y, -y).astype(np.float64)
        mean = (2.0 / math.sqrt(self.d)) * y[:, None] * self.codeword[None, :]
        rest = mean + g.standard_normal((n, self.d))
        return np.concatenate([x0[:, None], rest], axis=1), y

    def _check_x(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.d + 1:
            raise ValueError(f"x must have shape (n, {self.d + 1}), got {x.shape}")
        return x

    def shift(self, x, j) -> np.ndarray:
        """``r_j(x)`` for an int ``j`` or per-row ints ``j`` (``n``); ``x0`` unchanged; returns a copy."""
        x = self._check_x(x)
        j = np.asarray(j)
        if j.ndim == 0:
            out = x.copy()
            out[:, 1:] = np.roll(x[:, 1:], -self.m * int(j), axis=1)
            return out
        if j.shape != (x.shape[0],):
            raise ValueError(f"j must be an int or have shape ({x.shape[0]},), got {j.shape}")
        idx = (np.arange(self.d)[None, :] + self.m * j[:, None]) % self.d
        out = x.copy()
        out[:, 1:] = np.take_along_axis(x[:, 1:], idx, axis=1)
        return out

    def random_shift(self, x, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """``r(x)``: each row shifted by ``r_J`` with ``J`` uniform on ``{1, …, d/m}``; returns (x', J)."""
        x = self._check_x(x)
        j = _rng(rng).integers(1, self.n_shifts + 1, size=x.shape[0])
        return self.shift(x, j), j

    # ------------------------------------------------------------------------------- classifiers
    def bayes_score(self, x, j: int = 0) -> np.ndarray:
        """Log-likelihood ratio ``log ρ(x0) + (4/√d) ⟨x_{1:d}, r_j c⟩`` of ``(r_j(X), Y)``."""
        x = self._check_x(x)
        c = self.shifted_codeword(j)
        return x[:, 0] * self.log_odds_x0 + (4.0 / math.sqrt(self.d)) * (x[:, 1:] @ c)

    def bayes_classifier(self, x, j: int = 0) -> np.ndarray:
        """``f*_j``: the maximum-accuracy classifier on ``(r_j(X), Y)`` (ties -> +1); ``j = 0``: on X."""
        return np.where(self.bayes_score(x, j) >= 0, 1, -1)

    def invariant_bayes_score(self, x) -> np.ndarray:
        """Log-likelihood ratio of ``(r(X), Y)``: ``log ρ(x0) + LSE_j(2 s_j) − LSE_j(−2 s_j)``.

        ``s_j = ⟨x_{1:d}, r_j c⟩ / √d``; the mixture over the ``d/m`` equally likely shifts.
        """
        x = self._check_x(x)
        s = np.stack([x[:, 1:] @ self.shifted_codeword(j) for j in range(self.n_shifts)], axis=1)
        s = s / math.sqrt(self.d)
        return x[:, 0] * self.log_odds_x0 + _logsumexp(2 * s) - _logsumexp(-2 * s)

    def invariant_bayes_classifier(self, x) -> np.ndarray:
        """The maximum-accuracy classifier on ``(r(X), Y)``; invariant to every ``r_j`` (ties -> +1)."""
        return np.where(self.invariant_bayes_score(x) >= 0, 1, -1)

    # ------------------------------------------------------------------------------------ attack
    def attack(self, x, y, j: int = 0) -> np.ndarray:
        """The ℓ∞ perturbation ``A(x)`` of the proof of Theorem 3 (for the shifted data ``r_j(X)``).

        ``A(x)_0 = 0`` and ``A(x)_t = −4 (r_j c)_t y / √d``; ``‖A(x)‖∞ = 4/√d``. Given ``Y = y`` the
        last ``d`` coordinates of ``x + A(x)`` have the law of ``Y = −y``. Returns the perturbation
        (``n x (d+1)``), not the perturbed point. Per-row ``j`` (``n`` ints) is accepted.
        """
        x = self._check_x(x)
        y = np.asarray(y)
        if y.shape != (x.shape[0],) or not np.all(np.isin(y, (-1, 1))):
            raise ValueError(f"y must be {x.shape[0]} labels in {{-1, 1}}")
        j = np.asarray(j)
        if j.ndim == 0:
            c = np.broadcast_to(self.shifted_codeword(int(j)), (x.shape[0], self.d))
        else:
            if j.shape != (x.shape[0],):
                raise ValueError(f"j must be an int or have shape ({x.shape[0]},), got {j.shape}")
            idx = (np.arange(self.d)[None, :] + self.m * j[:, None]) % self.d
            c = self.codeword[idx]
        a = np.zeros_like(x)
        a[:, 1:] = -(4.0 / math.sqrt(self.d)) * y[:, None] * c
        return a

    def __repr__(self) -> str:
        return (
            f"CyclicCodeDistribution(d={self.d}, m={self.m}, p={self.p}, "
            f"codeword={self.codeword_kind!r})"
        )


def _logsumexp(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=1)
    return top + np.log(np.exp(a - top[:, None]).sum(axis=1))


def sign_x0_classifier(x) -> np.ndarray:
    """``f(x) = x0`` (as ±1): ignores the Gaussian coordinates — robust and invariant, accuracy ``p``."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x[:, 0] >= 0, 1, -1)


def theorem2_bound(adversarial_accuracy: float, p: float) -> float:
    """Theorem 2: the largest spatial accuracy allowed by ``adversarial accuracy = 1 − η``: ``η p/(1−p)``."""
    eta = 1.0 - float(adversarial_accuracy)
    return min(1.0, eta * p / (1.0 - p))


def theorem3_bound(adversarial_accuracy_untransformed: float, p: float, m: int, d: int) -> float:
    """Our reconstruction of Theorem 3's first bound: ``(m/d) η0 p/(1−p) + 1 − m/d`` (capped at 1)."""
    eta0 = 1.0 - float(adversarial_accuracy_untransformed)
    frac = m / d
    return min(1.0, frac * min(1.0, eta0 * p / (1.0 - p)) + (1.0 - frac))


def check_theorem2(
    dist: CyclicCodeDistribution,
    classifier: Classifier,
    n: int = 100_000,
    rng=None,
    chunk: int = 20_000,
    z: float = 4.0,
) -> dict:
    """Monte-Carlo check of Theorem 2 (and of the Theorem 3 bound) for one classifier.

    Draws ``n`` pairs, a shift ``J`` uniform on ``{1, …, d/m}`` per pair, and estimates

    * ``clean_accuracy``            ``Pr(f(X) = Y)``
    * ``spatial_accuracy``          ``s = Pr(f(r_J(X)) = Y)``
    * ``adversarial_accuracy``      ``a_r = Pr(f(r_J(X + A(X))) = Y)``  (the attack on the shifted data)
    * ``adversarial_accuracy_untransformed``  ``a_0 = Pr(f(X + A(X)) = Y)``

    and compares ``s`` with ``theorem2_bound(a_r, p)`` (the statement proved in the paper),
    ``theorem2_bound(a_0, p)`` (a stronger reading that need not hold) and ``theorem3_bound(a_0, …)``.
    A bound "holds" when the estimate does not exceed it by more than ``z`` Monte-Carlo standard errors
    (standard error of ``s`` plus ``p/(1−p)`` times that of the adversarial accuracy).

    Args:
        dist: the distribution.
        classifier: ``x (n x (d+1)) -> ±1`` predictions.
        n: Monte-Carlo sample size.
        rng: numpy Generator or int seed.
        chunk: rows per batch (memory).
        z: tolerance in standard errors.

    Returns:
        A dict with the estimates above, their standard errors, the bounds, ``*_holds`` booleans and
        ``margin`` (= bound − estimate; negative means the estimate exceeds the bound).
    """
    n = check_int("n", n, minimum=1)
    chunk = check_int("chunk", chunk, minimum=1)
    acc = _theorem2_accuracies(dist, classifier, n, _rng(rng), chunk)
    out = _theorem2_report(dist, acc, n, z)
    logger.info(
        "theorem 2 check d=%d m=%d p=%.3f: spatial %.4f <= bound %.4f (%s)",
        dist.d,
        dist.m,
        dist.p,
        out["spatial_accuracy"],
        out["theorem2_bound"],
        out["theorem2_holds"],
    )
    return out


def _theorem2_accuracies(
    dist: CyclicCodeDistribution, classifier: Classifier, n: int, g: np.random.Generator, chunk: int
) -> dict[str, float]:
    """Monte-Carlo accuracies ``clean``, ``spatial`` (``s``), ``adv`` (``a_r``), ``adv0`` (``a_0``)
    of :func:`check_theorem2` over ``n`` pairs drawn ``chunk`` at a time from ``g``."""
    hits = dict(clean=0, spatial=0, adv=0, adv0=0)
    done = 0
    while done < n:
        k = min(chunk, n - done)
        x, y = dist.sample(k, g)
        j = g.integers(1, dist.n_shifts + 1, size=k)
        x_adv = x + dist.attack(x, y)
        hits["clean"] += int(np.sum(classifier(x) == y))
        hits["spatial"] += int(np.sum(classifier(dist.shift(x, j)) == y))
        hits["adv"] += int(np.sum(classifier(dist.shift(x_adv, j)) == y))
        hits["adv0"] += int(np.sum(classifier(x_adv) == y))
        done += k
    return {key: v / n for key, v in hits.items()}


def _theorem2_report(dist: CyclicCodeDistribution, acc: dict, n: int, z: float) -> dict:
    """The result dict of :func:`check_theorem2`: estimates, standard errors, bounds, verdicts."""

    def se(q: float) -> float:
        return math.sqrt(max(q * (1 - q), 1.0 / n) / n)

    ratio = dist.p / (1 - dist.p)
    s, a_r, a_0 = acc["spatial"], acc["adv"], acc["adv0"]
    b2 = theorem2_bound(a_r, dist.p)
    b2_0 = theorem2_bound(a_0, dist.p)
    b3 = theorem3_bound(a_0, dist.p, dist.m, dist.d)
    tol_r = z * (se(s) + ratio * se(a_r))
    tol_0 = z * (se(s) + ratio * se(a_0))
    b_clean = theorem2_bound(a_0, dist.p)  # standard accuracy step of Theorem 3's proof
    tol_clean = z * (se(acc["clean"]) + ratio * se(a_0))
    return {
        "d": dist.d,
        "m": dist.m,
        "p": dist.p,
        "n": n,
        "n_shifts": dist.n_shifts,
        "relative_distance": dist.relative_distance,
        "epsilon": dist.epsilon,
        "clean_accuracy": acc["clean"],
        "spatial_accuracy": s,
        "adversarial_accuracy": a_r,
        "adversarial_accuracy_untransformed": a_0,
        "se_spatial": se(s),
        "se_adversarial": se(a_r),
        "theorem2_bound": b2,
        "theorem2_holds": bool(s <= b2 + tol_r),
        "margin": b2 - s,
        "theorem2_converse_bound": 1 - (1 - dist.p) * s / dist.p,
        "theorem2_untransformed_bound": b2_0,
        "theorem2_untransformed_holds": bool(s <= b2_0 + tol_0),
        "theorem3_bound": b3,
        "theorem3_holds": bool(s <= b3 + tol_0),
        "clean_vs_adversarial_bound": b_clean,
        "clean_vs_adversarial_holds": bool(acc["clean"] <= b_clean + tol_clean),
    }
