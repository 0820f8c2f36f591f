"""The numbers an epoch accumulates from its batches, and the ``history`` record made of them.

:class:`EpochMetrics` adds up what each batch objective reports
(:class:`~art_spatial.trainers.base.BatchObjective`): the minimized loss and every named loss weighted
by the batch size, correctness counts on the natural and adversarial batches, summed ``stats``,
example-weighted ``means``, and the time spent attacking and updating. Under distributed training
:meth:`EpochMetrics.all_reduced` sums every rank's numbers in one collective; :meth:`EpochMetrics.record`
turns them into the epoch's entries of ``history``.

Example:
    >>> import torch
    >>> from art_spatial.trainers.base import BatchObjective
    >>> m = EpochMetrics()
    >>> m.add(BatchObjective(loss=torch.tensor(2.0), losses={"adv": 2.0},
    ...                      correct_robust=torch.tensor([True, False])), batch_size=2)
    >>> m.add(BatchObjective(loss=torch.tensor(1.0), losses={"adv": 1.0},
    ...                      correct_robust=torch.tensor([True, True])), batch_size=2)
    >>> rec = m.record(epoch=0)
    >>> rec["loss"], rec["loss_adv"], rec["robust_acc"], rec["clean_acc"] != rec["clean_acc"]
    (1.5, 1.5, 0.75, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EpochMetrics"]


@dataclass
class EpochMetrics:
    """Running sums of one epoch (of this process, until :meth:`all_reduced`).

    Attributes:
        n_seen: examples trained on.
        loss_sum: Σ (minimized loss × batch size).
        losses: objective name -> Σ (loss × batch size).
        stats: name -> Σ value (e.g. counts).
        means: name -> Σ (value × batch size) (e.g. κ).
        correct_clean, n_clean: correct and counted examples of the natural batches (only those whose
            objective computed it).
        correct_robust, n_robust: the same for the adversarial batches.
        timers: seconds spent in ``"attack"`` and ``"update"``.
    """

    n_seen: int = 0
    loss_sum: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    correct_clean: int = 0
    n_clean: int = 0
    correct_robust: int = 0
    n_robust: int = 0
    timers: dict[str, float] = field(default_factory=lambda: {"attack": 0.0, "update": 0.0})

    def add(self, obj, batch_size: int) -> None:
        """Add the batch objective ``obj`` of a batch of ``batch_size`` examples."""
        m = batch_size
        self.n_seen += m
        self.loss_sum += float(obj.loss.detach()) * m
        for k, v in obj.losses.items():
            self.losses[k] = self.losses.get(k, 0.0) + float(v) * m
        for k, v in obj.stats.items():
            self.stats[k] = self.stats.get(k, 0.0) + float(v)
        for k, v in obj.means.items():
            self.means[k] = self.means.get(k, 0.0) + float(v) * m
        if obj.correct_clean is not None:
            self.correct_clean += int(obj.correct_clean.sum())
            self.n_clean += m
        if obj.correct_robust is not None:
            self.correct_robust += int(obj.correct_robust.sum())
            self.n_robust += m

    def add_time(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to the timer ``name``."""
        self.timers[name] = self.timers.get(name, 0.0) + seconds

    @property
    def mean_loss(self) -> float:
        """The epoch's mean minimized loss so far (0 before the first batch)."""
        return self.loss_sum / max(self.n_seen, 1)

    def all_reduced(self, all_reduce_sum: Callable[[list], list]) -> EpochMetrics:
        """The sums over every rank: ``all_reduce_sum`` sums a list of floats across the ranks (one
        collective; every rank must hold the same names). The timers stay this rank's."""
        ks, kt, km = sorted(self.losses), sorted(self.stats), sorted(self.means)
        head = [
            self.n_seen,
            self.loss_sum,
            self.correct_clean,
            self.n_clean,
            self.correct_robust,
            self.n_robust,
        ]
        vec = all_reduce_sum(
            head
            + [self.losses[k] for k in ks]
            + [self.stats[k] for k in kt]
            + [self.means[k] for k in km]
        )
        n_seen, c_clean, n_clean, c_rob, n_rob = (int(round(vec[i])) for i in (0, 2, 3, 4, 5))
        rest = vec[len(head) :]
        return EpochMetrics(
            n_seen=n_seen,
            loss_sum=vec[1],
            losses=dict(zip(ks, rest[: len(ks)], strict=True)),
            stats=dict(zip(kt, rest[len(ks) : len(ks) + len(kt)], strict=True)),
            means=dict(zip(km, rest[len(ks) + len(kt) :], strict=True)),
            correct_clean=c_clean,
            n_clean=n_clean,
            correct_robust=c_rob,
            n_robust=n_rob,
            timers=self.timers,
        )

    def record(self, epoch: int) -> dict[str, Any]:
        """The epoch's ``history`` entries: ``epoch`` (1-based), ``loss``, ``loss_<name>``,
        ``clean_acc``, ``robust_acc`` (``nan`` when not computed), the means and the stats."""
        n = max(self.n_seen, 1)
        rec: dict[str, Any] = {"epoch": epoch + 1, "loss": self.loss_sum / n}
        rec.update({f"loss_{k}": v / n for k, v in self.losses.items()})
        rec["clean_acc"] = self.correct_clean / self.n_clean if self.n_clean else float("nan")
        rec["robust_acc"] = self.correct_robust / self.n_robust if self.n_robust else float("nan")
        rec.update({k: v / n for k, v in self.means.items()})
        rec.update(self.stats)
        return rec
