"""Pareto adversarial training (Pareto AT §4.3, Eq. 12-13, Algorithm 1) and the approximate
Pareto front (§4.4).

Losses ``L_0`` (natural CE) and ``L_1..L_m`` (CE of each attack's adversarial batch) are random variables
over mini-batches. Per batch (Algorithm 1):

1. compute ``L = (L_0, L_1, ..., L_m)`` (batch means);
2. θ step on ``Σ_i α_i L_i`` with the current α (α starts uniform, ``1/n``);
3. push ``L`` into a sliding window of the last ``window`` batches; ``μ``, ``Σ`` = mean and (population)
   covariance of the window; ``M = Σ + μμᵀ`` (= the window's second moment ``E[L Lᵀ]``);
4. α ← argmin ``αᵀ P α`` s.t. ``[0, μ_1, ..., μ_m]·α = r``, ``Σ α_i = 1``, ``α ≥ 0`` with
   ``P = 2n·Diag(M) − 2M`` (n = number of losses; the paper's ``8(diag Σ + diag μμᵀ) − 2(Σ + μμᵀ)`` for
   n = 4), solved with cvxopt's ``solvers.qp``.

Derivation (Appendix D): ``Σ_{i,j} E(α_i L_i − α_j L_j)² = Σ_{i,j} (α_i² M_ii + α_j² M_jj − 2 α_i α_j M_ij)
= αᵀ(2n·Diag(M) − 2M)α``. ``P`` is positive semi-definite.

Feasibility: with α on the simplex, ``c·α`` (``c = [0, μ_1..μ_m]``) ranges over ``[min c, max c]``, so the
problem is infeasible when ``r > max_i μ_i`` (or, without the natural loss, ``r < min_i μ_i``). Fallback
(``infeasible=``): ``"clip"`` (default) solves the problem for ``r`` clipped to the feasible interval — at
``r = max μ_i`` all the weight goes to the hardest attack(s), the closest to the requested robustness the
window allows; ``"keep"`` keeps the previous α. Every fallback is counted in ``history``
(``qp_fallbacks``), and a warning is issued once per epoch in which it happened. A solver failure keeps
the previous α and is counted separately (``qp_failures``).

Relative target (``r_mode="relative"``, this package's addition): the attack losses fall during training,
and an absolute ``r`` (the paper's 2.2 on MNIST) soon lies above every windowed ``μ_i``; the ``clip``
fallback then puts all the weight on the hardest attack, which is no longer Pareto AT. With
``r_mode="relative"``, ``r ∈ [0, 1]`` is a fraction of the window's reachable interval of the attack
losses, ``r_abs = min_{i≥1} μ_i + r·(max_{i≥1} μ_i − min_{i≥1} μ_i)``, feasible by construction: 0 asks for
the easiest attack's loss level, 1 for the hardest one's, 0.5 for the middle. ``history`` records the
effective absolute target (``r_effective``, epoch mean) and, in both modes, how often the absolute ``r``
would have been infeasible (``r_infeasible``).

Example:
    >>> import numpy as np
    >>> mu = np.array([0.1, 1.0, 2.0]); sigma = np.diag([0.01, 0.04, 0.09])
    >>> a = pareto_weights(mu, sigma, r=1.2)
    >>> bool(abs(a.sum() - 1) < 1e-6 and abs(a[1:] @ mu[1:] - 1.2) < 1e-5 and (a >= -1e-9).all())
    True
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..attacks.base import check_bool, check_choice, check_int, check_number
from .base import AdversarialTrainerBase, BatchObjective, check_attacks
from .multi import attack_names

logger = logging.getLogger(__name__)

__all__ = [
    "ParetoAdversarialTrainer",
    "pareto_matrix",
    "pareto_weights",
    "feasible_range",
    "InfeasibleTargetError",
    "pareto_front",
    "FrontPoint",
    "nondominated",
]

INFEASIBLE_MODES = ("clip", "keep")
R_MODES = ("absolute", "relative")


class InfeasibleTargetError(ValueError):
    """``r`` lies outside ``[min c, max c]``: no α on the simplex reaches it."""


def _as_mu_sigma(mu, sigma):
    mu = np.asarray(mu, dtype=np.float64).reshape(-1)
    sigma = np.asarray(sigma, dtype=np.float64)
    n = mu.shape[0]
    if n < 1 or not np.all(np.isfinite(mu)):
        raise ValueError(f"mu must be a non-empty finite vector, got {mu!r}")
    if sigma.shape != (n, n) or not np.all(np.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite {n} x {n} matrix, got shape {sigma.shape}")
    return mu, 0.5 * (sigma + sigma.T)


def pareto_matrix(mu, sigma) -> np.ndarray:
    """``P = 2n·Diag(M) − 2M`` with ``M = Σ + μμᵀ`` (Pareto AT Eq. 13, Appendix D), ``n x n``.

    ``αᵀPα = Σ_{i,j} E(α_i L_i − α_j L_j)²`` for losses with mean ``μ`` and covariance ``Σ``.

    >>> pareto_matrix([1.0, 2.0], np.zeros((2, 2))).tolist()
    [[2.0, -4.0], [-4.0, 8.0]]
    """
    mu, sigma = _as_mu_sigma(mu, sigma)
    M = sigma + np.outer(mu, mu)
    n = mu.shape[0]
    return 2.0 * n * np.diag(np.diag(M)) - 2.0 * M


def _constraint_row(mu: np.ndarray, include_natural: bool) -> np.ndarray:
    c = mu.copy()
    if include_natural:
        c[0] = 0.0
    return c


def feasible_range(mu, include_natural: bool = True) -> tuple:
    """``(min c, max c)`` of ``c = [0, μ_1..μ_m]`` (or ``μ`` without natural loss): the reachable ``r``."""
    c = _constraint_row(np.asarray(mu, dtype=np.float64).reshape(-1), include_natural)
    return float(c.min()), float(c.max())


def _qp(P: np.ndarray, A: np.ndarray | None, b: np.ndarray | None) -> np.ndarray:
    """min ½ xᵀ(2P)x s.t. A x = b, x ≥ 0 with cvxopt (matrices from numpy arrays, silent)."""
    from cvxopt import matrix, solvers

    n = P.shape[0]
    scale = max(float(np.abs(P).max()), 1e-12)
    Pn = P / scale + 1e-10 * np.eye(n)  # scale-free and strictly convex up to 1e-10
    args = [
        matrix(2.0 * Pn),
        matrix(np.zeros((n, 1))),
        matrix(-np.eye(n)),
        matrix(np.zeros((n, 1))),
    ]
    if A is not None:
        args += [
            matrix(np.ascontiguousarray(A, dtype=np.float64)),
            matrix(np.asarray(b, np.float64).reshape(-1, 1)),
        ]
    old = dict(solvers.options)
    solvers.options["show_progress"] = False
    try:
        sol = solvers.qp(*args)
    finally:
        solvers.options.clear()
        solvers.options.update(old)
    if sol["status"] != "optimal":
        raise ArithmeticError(f"cvxopt status {sol['status']}")
    x = np.clip(np.array(sol["x"]).reshape(-1), 0.0, None)
    return x / x.sum()


def pareto_weights(
    mu, sigma, r: float, *, include_natural: bool = True, tol: float = 1e-9
) -> np.ndarray:
    """Lower-level problem of Pareto AT (Eq. 13): ``argmin_α αᵀPα`` s.t. ``[0, μ_1..μ_m]·α = r``, ``Σα = 1``,
    ``α ≥ 0``.

    Args:
        mu: ``n`` mean losses ``(μ_0, μ_1, ..., μ_m)`` (``μ_0`` = natural, ignored in the constraint when
            ``include_natural``; without it every entry is an attack loss).
        sigma: ``n x n`` covariance of the losses.
        r: required expected robust loss ``Σ_{i≥1} α_i μ_i``.
        include_natural: entry 0 is the natural loss.
        tol: relative tolerance on the feasibility of ``r``.

    Returns:
        ``α`` (``n``, float64) on the simplex.

    Raises:
        InfeasibleTargetError: ``r`` outside :func:`feasible_range` (a ``ValueError``).
        ArithmeticError: cvxopt did not reach an optimal solution.
    """
    mu, sigma = _as_mu_sigma(mu, sigma)
    check_number("r", r)
    P = pareto_matrix(mu, sigma)
    c = _constraint_row(mu, include_natural)
    lo, hi = float(c.min()), float(c.max())
    t = tol * max(1.0, abs(lo), abs(hi))
    if r > hi + t or r < lo - t:
        raise InfeasibleTargetError(
            f"r = {r:.6g} is infeasible: reachable robust loss is [{lo:.6g}, {hi:.6g}]"
        )
    n = mu.shape[0]
    if hi - lo <= t:  # c constant: the constraint holds for every α on the simplex
        return _qp(P, np.ones((1, n)), np.ones(1))
    # on the boundary only the face {α_i > 0 ⇒ c_i = bound} is feasible: solve there (no interior point)
    for bound in (hi, lo):
        if abs(r - bound) <= t:
            S = np.flatnonzero(np.abs(c - bound) <= t)
            alpha = np.zeros(n)
            if S.size == 1:
                alpha[S[0]] = 1.0
            else:
                alpha[S] = _qp(P[np.ix_(S, S)], np.ones((1, S.size)), np.ones(1))
            return alpha
    A = np.stack([c, np.ones(n)])
    return _qp(P, A, np.array([r, 1.0]))


class ParetoAdversarialTrainer(AdversarialTrainerBase):
    """Pareto adversarial training (Pareto AT Algorithm 1), see the module docstring for the maths.

    Args:
        classifier: ART ``PyTorchClassifier``.
        attacks: the attacks ``1..m`` (the paper: PGD, Flow, RT), any of :mod:`art_spatial.attacks`.
        r: required robust loss level (MNIST 0.2 … 2.2, CIFAR-10 0.5 … 4.0 in the paper) with
            ``r_mode="absolute"``; a fraction in ``[0, 1]`` of the window's attack-loss interval with
            ``r_mode="relative"``.
        r_mode: ``"absolute"`` (the paper's) or ``"relative"`` (feasible by construction; module docstring).
        window: number of recent batches whose loss vectors define ``μ`` and ``Σ``.
        include_natural: ``L_0`` = natural CE is one of the losses (Algorithm 1); False = attacks only.
        infeasible: fallback when ``r`` is unreachable: ``"clip"`` or ``"keep"``.
        names: names of the attacks in ``history`` (default: class names).
        **kwargs: see :class:`AdversarialTrainerBase`.

    ``history`` adds ``alpha`` (batch-averaged α of the epoch, natural first), ``alpha_last``, ``mu_last``,
    ``qp_fallbacks``, ``qp_failures``, ``time_qp_s``.

    Example:
        >>> import numpy as np
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> from art_spatial.attacks import PixelAttack, FlowAttack
        >>> clf = make_classifier(SmallCNN())
        >>> atk = [PixelAttack(clf, max_iter=1, verbose=False), FlowAttack(clf, max_iter=1, verbose=False)]
        >>> t = ParetoAdversarialTrainer(clf, atk, r=1.0, verbose=False)
        >>> t.alpha.tolist()
        [0.3333333333333333, 0.3333333333333333, 0.3333333333333333]
    """

    def __init__(
        self,
        classifier,
        attacks,
        r: float,
        *,
        r_mode: str = "absolute",
        window: int = 20,
        include_natural: bool = True,
        infeasible: str = "clip",
        names=None,
        **kwargs,
    ):
        super().__init__(classifier, **kwargs)
        self.attacks = check_attacks("attacks", attacks)
        self.names = attack_names(self.attacks, names)
        check_number("r", r)
        check_choice("r_mode", r_mode, R_MODES)
        if r_mode == "relative" and not 0.0 <= float(r) <= 1.0:
            raise ValueError(f"r must be in [0, 1] with r_mode='relative', got {r!r}")
        check_int("window", window, minimum=1)
        check_bool("include_natural", include_natural)
        check_choice("infeasible", infeasible, INFEASIBLE_MODES)
        self.r = float(r)
        self.r_mode = r_mode
        self.window = int(window)
        self.include_natural = bool(include_natural)
        self.infeasible = infeasible
        self.loss_names = (["natural"] if include_natural else []) + self.names
        n = len(self.loss_names)
        self.alpha = np.full(n, 1.0 / n)
        self._window: deque = deque(maxlen=self.window)
        self._reset_epoch_counters()

    def _reset_epoch_counters(self):
        self._n_fallback = 0
        self._n_failure = 0
        self._n_infeasible = 0
        self._r_eff_sum = 0.0
        self._alpha_sum = np.zeros(len(self.loss_names))
        self._n_batches = 0
        self._qp_time = 0.0

    # ----------------------------------------------------------------------------------- objective
    def _batch_objective(self, x, y, ctx) -> BatchObjective:
        advs = [self.run_attack(a, x, y, ctx, tag=i).x_adv for i, a in enumerate(self.attacks)]
        terms, correct, nat_ok = [], None, None
        if self.include_natural:
            logits = self.train_logits(x)
            terms.append(self.ce(logits, y).mean())
            nat_ok = logits.detach().argmax(1) == y
        for xa in advs:
            logits = self.train_logits(xa)
            terms.append(self.ce(logits, y).mean())
            ok = logits.detach().argmax(1) == y
            correct = ok if correct is None else correct & ok
        L = torch.stack(terms)
        a = torch.as_tensor(self.alpha, dtype=L.dtype, device=L.device)
        self._alpha_sum += self.alpha
        self._n_batches += 1
        if ctx.n_global is None:
            self._last_L = L.detach().cpu().double().numpy()
        else:  # distributed: the global batch's means, identical on every rank (hence the same α)
            Lg = self.all_reduce_sum(L.detach().double() * x.shape[0]) / ctx.n_global
            self._last_L = Lg.cpu().numpy()
        return BatchObjective(
            loss=(a * L).sum(),
            losses={n: L[i].detach() for i, n in enumerate(self.loss_names)},
            correct_clean=nat_ok,
            correct_robust=correct,
        )

    def _after_step(self, obj, ctx) -> None:
        t0 = time.perf_counter()
        self._window.append(self._last_L)
        self.alpha = self.update_alpha()
        self._qp_time += time.perf_counter() - t0

    def window_moments(self):
        """``(μ, Σ)`` of the loss vectors in the window (population covariance: ``Σ + μμᵀ = E[L Lᵀ]``)."""
        W = np.stack(list(self._window))
        mu = W.mean(0)
        D = W - mu
        return mu, D.T @ D / W.shape[0]

    def target(self, mu: np.ndarray) -> float:
        """The absolute target of the window with means ``mu``: ``r`` itself (``r_mode="absolute"``) or
        ``min μ_i + r (max μ_i − min μ_i)`` over the attack losses (``"relative"``)."""
        if self.r_mode == "absolute":
            return self.r
        attack_mu = mu[1:] if self.include_natural else mu
        lo, hi = float(attack_mu.min()), float(attack_mu.max())
        return lo + self.r * (hi - lo)

    def update_alpha(self) -> np.ndarray:
        """Solve Eq. 13 on the current window, applying the fallback when ``r`` is infeasible."""
        mu, sigma = self.window_moments()
        lo, hi = feasible_range(mu, self.include_natural)
        r = self.target(mu)
        self._r_eff_sum += r
        if not lo - 1e-9 * max(1.0, abs(lo)) <= self.r <= hi + 1e-9 * max(1.0, abs(hi)):
            self._n_infeasible += 1  # the absolute r, whatever the mode
        try:
            if lo - 1e-9 * max(1.0, abs(lo)) <= r <= hi + 1e-9 * max(1.0, abs(hi)):
                return pareto_weights(mu, sigma, r, include_natural=self.include_natural)
            self._n_fallback += 1
            if self.infeasible == "keep":
                return self.alpha
            return pareto_weights(
                mu, sigma, float(np.clip(r, lo, hi)), include_natural=self.include_natural
            )
        except (ArithmeticError, ValueError) as err:
            self._n_failure += 1
            logger.debug("Pareto QP failed (%s): keeping the previous alpha", err)
            return self.alpha

    # ------------------------------------------------------------------------------------- epochs
    def _on_epoch_start(self, epoch, nb_epochs):
        self._reset_epoch_counters()

    def _epoch_record(self, epoch, nb_batches) -> dict[str, Any]:
        if self._n_fallback:
            msg = (
                f"Pareto AT epoch {epoch + 1}: r = {self.r} was infeasible (outside the reachable "
                f"range of the windowed losses) in {self._n_fallback} of {self._n_batches} batches; "
                f"fallback '{self.infeasible}' applied (r_mode='relative' stays feasible)"
            )
            logger.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        mu = self.window_moments()[0] if self._window else np.full(len(self.loss_names), np.nan)
        return {
            "alpha": (self._alpha_sum / max(self._n_batches, 1)).tolist(),
            "alpha_last": self.alpha.tolist(),
            "mu_last": mu.tolist(),
            "qp_fallbacks": self._n_fallback,
            "qp_failures": self._n_failure,
            "r_infeasible": self._n_infeasible,
            "r_effective": self._r_eff_sum / max(self._n_batches, 1),
            "time_qp_s": self._qp_time,
            "loss_names": list(self.loss_names),
        }

    def _state(self):
        return {"alpha": self.alpha.copy(), "window": [w.copy() for w in self._window]}

    def _load_state(self, state):
        self.alpha = np.asarray(state["alpha"], dtype=np.float64).copy()
        self._window = deque((np.asarray(w) for w in state["window"]), maxlen=self.window)


# ------------------------------------------------------------------------------------------ front
@dataclass
class FrontPoint:
    """One model of an r-sweep: ``r``, the trained classifier, its trainer (``history``) and its metrics."""

    r: float
    classifier: Any
    trainer: ParetoAdversarialTrainer
    metrics: dict[str, float] = field(default_factory=dict)


def pareto_front(
    make_classifier_fn: Callable[[], Any],
    attacks_fn: Callable[[Any], Sequence],
    rs: Sequence[float],
    x: np.ndarray,
    y: np.ndarray,
    *,
    eval_fn: Callable[[Any], dict[str, float]] | None = None,
    nb_epochs: int = 1,
    batch_size: int = 128,
    trainer_kwargs: dict | None = None,
    fit_kwargs: dict | None = None,
) -> list[FrontPoint]:
    """Approximate Pareto front (Pareto AT §4.4): train one Pareto AT model per ``r`` and evaluate it.

    Args:
        make_classifier_fn: ``() -> PyTorchClassifier``, a fresh model each call (seed it inside for
            comparable runs).
        attacks_fn: ``classifier -> list of attacks`` for that classifier.
        rs: the values of ``r`` (MNIST: 0.2 … 2.2).
        x, y: training data.
        eval_fn: ``classifier -> {metric: value}`` (e.g. clean accuracy and robustness scores); its output
            is stored in each point's ``metrics``.
        nb_epochs, batch_size: training length.
        trainer_kwargs: extra arguments of :class:`ParetoAdversarialTrainer` (``window``, ``seed``, ...).
        fit_kwargs: extra arguments of ``fit``.

    Returns:
        One :class:`FrontPoint` per ``r``, in the order of ``rs``. Use :func:`nondominated` to keep the
        Pareto-optimal points.

    Example:
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> from art_spatial.attacks import PixelAttack
        >>> import numpy as np
        >>> pts = pareto_front(lambda: make_classifier(SmallCNN()),
        ...                    lambda c: [PixelAttack(c, max_iter=1, verbose=False)], [0.5, 1.0],
        ...                    np.random.rand(4, 1, 28, 28).astype("float32"), np.arange(4),
        ...                    trainer_kwargs={"verbose": False})
        >>> [p.r for p in pts]
        [0.5, 1.0]
    """
    if len(rs) == 0:
        raise ValueError("rs must contain at least one value of r")
    out = []
    for r in rs:
        clf = make_classifier_fn()
        trainer = ParetoAdversarialTrainer(clf, attacks_fn(clf), float(r), **(trainer_kwargs or {}))
        trainer.fit(x, y, nb_epochs=nb_epochs, batch_size=batch_size, **(fit_kwargs or {}))
        metrics = dict(eval_fn(clf)) if eval_fn is not None else {}
        out.append(FrontPoint(r=float(r), classifier=clf, trainer=trainer, metrics=metrics))
    return out


def nondominated(
    points: Sequence[FrontPoint], keys: Sequence[str], maximize: bool = True
) -> list[FrontPoint]:
    """The points not dominated by another on ``keys`` of their metrics (larger is better if ``maximize``).

    >>> pts = [FrontPoint(0.5, None, None, {"a": 1, "b": 0}), FrontPoint(1, None, None, {"a": 0, "b": 0})]
    >>> [p.r for p in nondominated(pts, ["a", "b"])]
    [0.5]
    """
    sgn = 1.0 if maximize else -1.0
    vals = np.array([[sgn * float(p.metrics[k]) for k in keys] for p in points])
    keep = []
    for i, p in enumerate(points):
        dom = np.any(np.all(vals >= vals[i], axis=1) & np.any(vals > vals[i], axis=1))
        if not dom:
            keep.append(p)
    return keep
