"""Friendly adversarial training (FAT, Zhang et al. ICML 2020) and geometry-aware instance-reweighted
adversarial training (GAIRAT, Zhang et al. ICLR 2021), for any attack of the package.

FAT trains on *friendly* adversarial data from the early-stopped attack PGD-K-τ (the talk's Algorithm 1):
an example already misclassified spends one unit of τ per step and stops when τ is exhausted (τ = K is
plain PGD). τ grows during training; the original schedule is τ = 0 → 1 → 2 at epochs 0 / 50 / 90 of 120,
which :class:`FriendlyAdversarialTrainer` rescales to the actual number of epochs. The early stop lives in
the one attack loop (:mod:`art_spatial.attacks.engine`), so flow, affine, integrated and joint attacks
become "friendly" too.

GAIRAT weights each adversarial loss by the geometry value κ of its natural example (the number of the K
attack iterates at which the example was still classified correctly, ``AttackResult.kappa``):

    w_i = (tanh(λ + 5·(h − κ_i)/h) + 1) / 2,    h = ⌊K/2⌋,        w ← w · N / Σ_j w_j

so the batch's weights sum to the batch size N; the loss is ``(1/N) Σ_i w_i CE(f(x̃_i), y_i)``. λ = −1
(GAIRAT) or 0 (GAIR-FAT, with ``early_stop_tau``). Weights are 1 during the first ``burn_in`` epochs, by
default the first half of training (``⌊nb_epochs/2⌋``, resolved at ``fit`` time): the authors' code
(github.com/zjfheart/Geometry-aware-Instance-reweighted-Adversarial-Training, ``GAIRAT.py``) trains 120
epochs and switches the weights on at ``--begin_epoch 60`` (λ = +∞, i.e. all weights 1, before), together
with its first learning-rate drop.

Example:
    >>> import torch
    >>> w = GeometryAwareAdversarialTrainer.gairat_weights(torch.tensor([0, 5, 10]), max_iter=10, lam=-1.0)
    >>> round(float(w.sum()), 5), bool(w[0] > w[1] > w[2])
    (3.0, True)
"""

from __future__ import annotations

import logging
import math

import torch

from ..attacks.base import check_int, check_number
from .single import PGDAdversarialTrainer

logger = logging.getLogger(__name__)

__all__ = ["FriendlyAdversarialTrainer", "GeometryAwareAdversarialTrainer", "FAT_TAU_SCHEDULE"]

#: FAT's τ schedule on CIFAR-10 (epoch -> τ, out of 120 epochs)
FAT_TAU_SCHEDULE = {0: 0, 50: 1, 90: 2}


def _check_schedule(schedule) -> dict[int, int]:
    if not isinstance(schedule, dict) or not schedule:
        raise ValueError(f"tau_schedule must be a non-empty dict epoch -> tau, got {schedule!r}")
    out = {}
    for k, v in schedule.items():
        check_int("tau_schedule epoch", k, minimum=0)
        check_int("tau_schedule tau", v, minimum=0)
        out[int(k)] = int(v)
    if 0 not in out:
        raise ValueError(f"tau_schedule must define tau at epoch 0, got {schedule!r}")
    return dict(sorted(out.items()))


class FriendlyAdversarialTrainer(PGDAdversarialTrainer):
    """FAT: adversarial training on early-stopped attacks (PGD-K-τ) with a τ schedule.

    Args:
        classifier: ART ``PyTorchClassifier``.
        attack: any attack of the package (default: PGD as :class:`PGDAdversarialTrainer`); its
            ``early_stop_tau`` is set by the schedule for each call.
        tau_schedule: ``{epoch: τ}`` (must contain epoch 0).
        schedule_epochs: the schedule's reference length: epochs are rescaled by ``nb_epochs /
            schedule_epochs`` at ``fit`` time (default 120, the original run); None = absolute epochs.
        **kwargs: see :class:`AdversarialTrainerBase`.

    ``history`` adds ``tau`` of each epoch.

    Example:
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> t = FriendlyAdversarialTrainer(make_classifier(SmallCNN()), verbose=False)
        >>> [t.tau_at(e, nb_epochs=12) for e in (0, 4, 5, 8, 9, 11)]
        [0, 0, 1, 1, 2, 2]
    """

    def __init__(
        self,
        classifier,
        attack=None,
        *,
        tau_schedule: dict | None = None,
        schedule_epochs: int | None = 120,
        **kwargs,
    ):
        super().__init__(classifier, attack, **kwargs)
        self.tau_schedule = _check_schedule(
            FAT_TAU_SCHEDULE if tau_schedule is None else tau_schedule
        )
        check_int("schedule_epochs", schedule_epochs, minimum=1, allow_none=True)
        self.schedule_epochs = schedule_epochs
        self.current_tau = self.tau_schedule[0]

    def tau_at(self, epoch: int, nb_epochs: int) -> int:
        """τ at ``epoch`` (0-based) of a run of ``nb_epochs`` epochs."""
        scale = 1.0 if self.schedule_epochs is None else nb_epochs / self.schedule_epochs
        tau = self.tau_schedule[0]
        for start, value in self.tau_schedule.items():
            if epoch >= math.floor(start * scale + 1e-9):
                tau = value
        return tau

    def _on_epoch_start(self, epoch, nb_epochs):
        self.current_tau = self.tau_at(epoch, nb_epochs)

    def _attack_overrides(self):
        return {"early_stop_tau": self.current_tau}

    def _epoch_record(self, epoch, nb_batches):
        return {"tau": self.current_tau}


class GeometryAwareAdversarialTrainer(PGDAdversarialTrainer):
    """GAIRAT: κ-based instance weights on the adversarial losses (see the module docstring).

    Args:
        classifier: ART ``PyTorchClassifier``.
        attack: any attack of the package (default PGD as :class:`PGDAdversarialTrainer`); κ is counted out
            of its ``max_iter`` = K steps.
        lam: λ of the weight function; default −1, or 0 when ``early_stop_tau`` is set (GAIR-FAT).
        burn_in: epochs of unweighted training before the weights switch on (0-based epochs
            ``0 .. burn_in − 1`` are unweighted). Default None = half of training, ``nb_epochs // 2`` of
            the ``fit`` call: the authors' code weights from epoch 60 of 120 (see the module docstring;
            its check ``epoch + 1 >= 60`` makes that 59 unweighted epochs, one fewer than half). An int
            fixes the number of epochs.
        early_stop_tau: optional FAT τ for the attack (None = plain attack).
        **kwargs: see :class:`AdversarialTrainerBase`.

    ``history`` adds ``weighted`` (whether the weights were on), ``burn_in`` (the effective burn-in of
    the run), ``weight_max`` (largest weight of the epoch) and ``kappa_mean``.

    The effective burn-in is checkpointed: resuming with the same ``nb_epochs`` continues the same
    schedule; resuming with another ``nb_epochs`` while ``burn_in=None`` re-resolves it (logged as a
    warning).

    Example:
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> t = GeometryAwareAdversarialTrainer(make_classifier(SmallCNN()), verbose=False)
        >>> t.effective_burn_in(120), t.effective_burn_in(5)
        (60, 2)
    """

    def __init__(
        self,
        classifier,
        attack=None,
        *,
        lam: float | None = None,
        burn_in: int | None = None,
        early_stop_tau: int | None = None,
        **kwargs,
    ):
        super().__init__(classifier, attack, **kwargs)
        check_int("early_stop_tau", early_stop_tau, minimum=0, allow_none=True)
        if lam is None:
            lam = -1.0 if early_stop_tau is None else 0.0
        check_number("lam", lam)
        check_int("burn_in", burn_in, minimum=0, allow_none=True)
        self.lam = float(lam)
        self.burn_in = None if burn_in is None else int(burn_in)
        self.early_stop_tau = early_stop_tau
        self._weighted = False
        self._wmax = 0.0
        self._burn_in_used: int | None = None  # effective burn-in of the current run
        self._burn_in_resumed: int | None = None  # effective burn-in read from a checkpoint

    def effective_burn_in(self, nb_epochs: int) -> int:
        """Unweighted epochs of a run of ``nb_epochs`` epochs: ``burn_in``, or ``nb_epochs // 2`` if None."""
        check_int("nb_epochs", nb_epochs, minimum=1)
        return nb_epochs // 2 if self.burn_in is None else self.burn_in

    @staticmethod
    def gairat_weights(kappa: torch.Tensor, max_iter: int, lam: float) -> torch.Tensor:
        """GAIRAT weights ``w = (tanh(λ + 5(h − κ)/h) + 1)/2``, ``h = ⌊K/2⌋`` (``max(h, 1)`` when K < 2),
        normalized to sum to ``N`` (float, ``N``)."""
        w = GeometryAwareAdversarialTrainer._raw_weights(kappa, max_iter, lam)
        return (w * w.shape[0] / w.sum()).to(torch.float32)

    @staticmethod
    def _raw_weights(kappa: torch.Tensor, max_iter: int, lam: float) -> torch.Tensor:
        """The unnormalized weights ``(tanh(λ + 5(h − κ)/h) + 1)/2`` (float64)."""
        h = max(int(max_iter) // 2, 1)
        k = kappa.to(torch.float64)
        return (torch.tanh(lam + 5.0 * (h - k) / h) + 1.0) / 2.0

    def _on_epoch_start(self, epoch, nb_epochs):
        burn_in = self.effective_burn_in(nb_epochs)
        resumed = self._burn_in_resumed
        if resumed is not None and resumed != burn_in:
            logger.warning(
                "GAIRAT: the checkpoint was trained with burn_in %d, this fit (nb_epochs %d) uses %d "
                "from epoch %d on",
                resumed,
                nb_epochs,
                burn_in,
                epoch + 1,
            )
        self._burn_in_resumed = None
        self._burn_in_used = burn_in
        self._weighted = epoch >= burn_in
        self._wmax = 0.0

    def _attack_overrides(self):
        return {} if self.early_stop_tau is None else {"early_stop_tau": self.early_stop_tau}

    def _example_weights(self, result, ctx):
        if not self._weighted:
            return None
        if ctx.n_global is None:
            w = self.gairat_weights(result.kappa, int(self.attack.max_iter), self.lam).to(
                result.x_adv.device
            )
        else:  # distributed: normalized over the global batch (the weights of all ranks sum to M)
            raw = self._raw_weights(result.kappa, int(self.attack.max_iter), self.lam)
            total = self.all_reduce_sum(raw.sum().reshape(1))
            w = (raw * ctx.n_global / total).to(torch.float32).to(result.x_adv.device)
        self._wmax = max(self._wmax, float(w.max()))
        return w

    def _epoch_record(self, epoch, nb_batches):
        if self._world > 1:
            from ..bench.distributed import all_reduce_max

            self._wmax = all_reduce_max([self._wmax])[0]
        return {
            "weighted": self._weighted,
            "burn_in": self._burn_in_used,
            "weight_max": self._wmax,
            "lam": self.lam,
        }

    def _state(self):
        return {"burn_in": self._burn_in_used}

    def _load_state(self, state):
        self._burn_in_resumed = state.get("burn_in")
