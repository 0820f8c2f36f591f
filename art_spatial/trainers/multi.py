"""Training against several attacks: average (Ave AT) and per-example maximum (Max AT).

Pareto AT §4.2 (Tramèr & Boneh 2019, "Adversarial training and robustness for multiple perturbations"):

* Ave AT: ``R_ave = E_(x,y) [ (1/m) Σ_i max_{r∈S_i} L(f(x + r), y) ]`` — the mean of the attacks' losses;
* Max AT: ``R_max = E_(x,y) [ max_i max_{r∈S_i} L(f(x + r), y) ]`` — per example, the attack with the
  highest cross-entropy (the "max" strategy of Tramèr & Boneh).

Each attack gets its own seed per batch (tag ``i``). The adversarial batches are generated first (model
in eval mode), then each is forwarded in train mode; the per-example cross-entropies form an
``m x N`` matrix of which Ave AT takes the mean and Max AT the column-wise max (so the gradient flows
through the chosen attack only). ``history`` records each attack's mean loss (``loss_<name>``) and, for
Max AT, how often each attack was the per-example maximum (``max_count_<name>``).

Example:
    >>> import numpy as np
    >>> from art_spatial.models import SmallCNN, make_classifier
    >>> from art_spatial.attacks import PixelAttack, FlowAttack
    >>> clf = make_classifier(SmallCNN())
    >>> attacks = [PixelAttack(clf, max_iter=1, verbose=False), FlowAttack(clf, max_iter=1, verbose=False)]
    >>> t = MaxAdversarialTrainer(clf, attacks, verbose=False)
    >>> t.fit(np.random.rand(4, 1, 28, 28).astype("float32"), np.arange(4), nb_epochs=1)
    >>> t.history[0]["max_count_PixelAttack"] + t.history[0]["max_count_FlowAttack"]
    4.0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..attacks.base import check_bool
from .base import AdversarialTrainerBase, BatchObjective, check_attacks

__all__ = [
    "MultiAttackTrainer",
    "AverageAdversarialTrainer",
    "MaxAdversarialTrainer",
    "attack_names",
]


def attack_names(attacks: Sequence, names: Sequence[str] | None = None) -> list[str]:
    """Unique attack names for ``history`` keys: ``names`` if given, else class names
    (``_2``, ... on clashes)."""
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(attacks) or len(set(names)) != len(names):
            raise ValueError(f"names must be {len(attacks)} distinct strings, got {names!r}")
        return names
    out, seen = [], {}
    for a in attacks:
        base = type(a).__name__
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return out


class MultiAttackTrainer(AdversarialTrainerBase):
    """Shared part of the multi-attack trainers: attacks, names, the ``m x N`` loss matrix.

    Args:
        classifier: ART ``PyTorchClassifier``.
        attacks: list of attacks of :mod:`art_spatial.attacks`.
        names: optional names of the attacks in ``history`` (default: class names).
        include_natural: also compute the natural loss ``L_0`` (one extra forward/backward of the clean
            batch; gives ``clean_acc``).
        **kwargs: see :class:`AdversarialTrainerBase`.
    """

    def __init__(self, classifier, attacks, *, names=None, include_natural: bool = False, **kwargs):
        super().__init__(classifier, **kwargs)
        self.attacks = check_attacks("attacks", attacks)
        self.names = attack_names(self.attacks, names)
        check_bool("include_natural", include_natural)
        self.include_natural = bool(include_natural)

    def _loss_matrix(self, x, y, ctx):
        """Per-example CE of every attack (``m x N``, with graph), robust correctness, natural part."""
        advs = [self.run_attack(a, x, y, ctx, tag=i).x_adv for i, a in enumerate(self.attacks)]
        rows, correct = [], None
        nat_ce = nat_ok = None
        if self.include_natural:
            logits = self.train_logits(x)
            nat_ce = self.ce(logits, y)
            nat_ok = logits.detach().argmax(1) == y
        for xa in advs:
            logits = self.train_logits(xa)
            rows.append(self.ce(logits, y))
            ok = logits.detach().argmax(1) == y
            correct = ok if correct is None else correct & ok
        return torch.stack(rows), correct, nat_ce, nat_ok


class AverageAdversarialTrainer(MultiAttackTrainer):
    """Ave AT: minimize the mean of the attacks' cross-entropies (Pareto AT §4.2, R_ave).

    With ``include_natural=True`` the natural loss is one more term of the mean.
    """

    def _batch_objective(self, x, y, ctx) -> BatchObjective:
        L, correct, nat_ce, nat_ok = self._loss_matrix(x, y, ctx)
        terms = L.mean(1)
        if nat_ce is not None:
            terms = torch.cat([nat_ce.mean().view(1), terms])
        losses = {n: L[i].detach().mean() for i, n in enumerate(self.names)}
        if nat_ce is not None:
            losses["natural"] = nat_ce.detach().mean()
        return BatchObjective(
            loss=terms.mean(), losses=losses, correct_clean=nat_ok, correct_robust=correct
        )


class MaxAdversarialTrainer(MultiAttackTrainer):
    """Max AT: per example, the attack with the highest cross-entropy (Pareto AT §4.2, R_max; Tramèr & Boneh).

    The choice is made on the training-mode cross-entropies of the adversarial batches; ties go to the
    first attack in the list. ``include_natural`` is not part of the max (it adds ``L_0`` to it, mean of
    the two, if set).
    """

    @staticmethod
    def select_max(L: torch.Tensor):
        """Column-wise max of the ``m x N`` loss matrix: (``N`` losses with graph, ``N`` indices)."""
        vals, idx = L.max(0)
        return vals, idx

    def _batch_objective(self, x, y, ctx) -> BatchObjective:
        L, correct, nat_ce, nat_ok = self._loss_matrix(x, y, ctx)
        worst, idx = self.select_max(L)
        loss = worst.mean() if nat_ce is None else 0.5 * (worst.mean() + nat_ce.mean())
        losses = {n: L[i].detach().mean() for i, n in enumerate(self.names)}
        losses["max"] = worst.detach().mean()
        if nat_ce is not None:
            losses["natural"] = nat_ce.detach().mean()
        counts = torch.bincount(idx.detach().cpu(), minlength=len(self.attacks))
        stats = {f"max_count_{n}": float(counts[i]) for i, n in enumerate(self.names)}
        self.last_choice = idx.detach()
        return BatchObjective(
            loss=loss, losses=losses, correct_clean=nat_ok, correct_robust=correct, stats=stats
        )
