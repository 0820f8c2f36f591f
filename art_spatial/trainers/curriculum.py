"""CuSP: curriculum spatial-adversarial training (Kamath et al., "Can we have it all? On the trade-off between
spatial and adversarial robustness of neural networks", §5 and Algorithm 1).

Training data are randomly rotated by an angle drawn uniformly from ``[−θ, θ]`` (per example) and the PGD
attack runs on the rotated input with budget ε; the stage ``(θ, ε)`` is raised each time the learning
rate drops. A stage list ``[(start_epoch, θ°, ε), ...]`` says from which epoch each stage applies. The
official CIFAR-10 schedule (TRADES learning-rate drops at 75-90-100 of 120 epochs):
``(120°, 2/255)`` → ``(150°, 4/255)`` at epoch 75 → ``(180°, 8/255)`` at epoch 90
(:meth:`CurriculumAdversarialTrainer.official_cifar10`, with
:meth:`~CurriculumAdversarialTrainer.official_cifar10_scheduler` for the learning rate).

The rotation is :func:`art_spatial.warp.warp_rt` (counter-clockwise degrees, zero padding); the angles come
from a generator seeded by ``(seed, epoch, batch)``.

Example:
    >>> from art_spatial.models import SmallCNN, make_classifier
    >>> stages = [(0, 30, 0.1), (2, 60, 0.2)]
    >>> t = CurriculumAdversarialTrainer(make_classifier(SmallCNN()), stages, verbose=False)
    >>> t.stage_at(0), t.stage_at(2)
    ((30.0, 0.1), (60.0, 0.2))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import warp as W
from ..attacks.base import check_number
from .base import AdversarialTrainerBase, BatchObjective, _check_attack

__all__ = ["CurriculumAdversarialTrainer", "OFFICIAL_CIFAR10_STAGES"]

#: CuSP's best CIFAR-10 schedule: (start epoch, rotation range θ in degrees, PGD ε)
OFFICIAL_CIFAR10_STAGES = ((0, 120.0, 2 / 255), (75, 150.0, 4 / 255), (90, 180.0, 8 / 255))


def _check_stages(stages) -> tuple:
    try:
        stages = tuple((int(s[0]), float(s[1]), float(s[2])) for s in stages)
    except (TypeError, ValueError, IndexError):
        raise ValueError(
            f"stages must be a sequence of (start_epoch, theta_deg, eps), got {stages!r}"
        ) from None
    if not stages or stages[0][0] != 0:
        raise ValueError(f"stages must start at epoch 0, got {stages!r}")
    for i, (start, theta, eps) in enumerate(stages):
        check_number(f"stages[{i}] theta", theta, nonneg=True)
        check_number(f"stages[{i}] eps", eps, nonneg=True)
        if theta > 180:
            raise ValueError(f"stages[{i}] theta must be <= 180 degrees, got {theta}")
        if i and start <= stages[i - 1][0]:
            raise ValueError(f"stages start epochs must increase, got {stages!r}")
    return stages


class CurriculumAdversarialTrainer(AdversarialTrainerBase):
    """CuSP: PGD adversarial training on randomly rotated inputs, with a (θ, ε) curriculum.

    Args:
        classifier: ART ``PyTorchClassifier``.
        stages: ``[(start_epoch, θ_degrees, ε), ...]`` starting at epoch 0, increasing start epochs (put
            them at the scheduler's milestones).
        attack: the attack run on the rotated batch (default :class:`~art_spatial.attacks.PixelAttack`
            with ``eps_step`` and ``max_iter``); its attribute ``eps_attr`` receives the stage's ε.
        eps_step, max_iter: step and iterations of the default PGD (CuSP: 2/255, 10).
        eps_attr: attribute of ``attack`` set to the stage's ε (None: leave the attack's budget alone).
        padding_mode: padding of the rotation (``"zeros"``).
        **kwargs: see :class:`AdversarialTrainerBase`.

    ``history`` adds ``stage``, ``theta`` and ``eps`` of each epoch.
    """

    def __init__(
        self,
        classifier,
        stages: Sequence = OFFICIAL_CIFAR10_STAGES,
        attack=None,
        *,
        eps_step: float = 2 / 255,
        max_iter: int = 10,
        eps_attr: str | None = "eps",
        padding_mode: str = "zeros",
        **kwargs,
    ):
        super().__init__(classifier, **kwargs)
        self.stages = _check_stages(stages)
        if attack is None:
            from ..attacks import PixelAttack

            attack = PixelAttack(
                classifier,
                eps=self.stages[0][2],
                eps_step=eps_step,
                max_iter=max_iter,
                random_init=True,
                verbose=False,
            )
        _check_attack("attack", attack)
        if eps_attr is not None and not hasattr(attack, eps_attr):
            raise ValueError(
                f"eps_attr: the attack {type(attack).__name__} has no attribute {eps_attr!r}"
            )
        if padding_mode not in W.PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {W.PADDING_MODES}, got {padding_mode!r}")
        self.attack = attack
        self.eps_attr = eps_attr
        self.padding_mode = padding_mode
        self._stage = 0

    @classmethod
    def official_cifar10(cls, classifier, **kwargs) -> CurriculumAdversarialTrainer:
        """CuSP's CIFAR-10 preset: stages :data:`OFFICIAL_CIFAR10_STAGES`, PGD step 2/255, 10 steps.

        Train 120 epochs with :meth:`official_cifar10_scheduler` (SGD lr 0.1, ×0.1 at 75, 90, 100).
        """
        kwargs.setdefault("eps_step", 2 / 255)
        kwargs.setdefault("max_iter", 10)
        return cls(classifier, OFFICIAL_CIFAR10_STAGES, **kwargs)

    @staticmethod
    def official_cifar10_scheduler(optimizer) -> torch.optim.lr_scheduler.MultiStepLR:
        """The learning-rate schedule CuSP follows (TRADES): ×0.1 at epochs 75, 90 and 100."""
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[75, 90, 100], gamma=0.1)

    def stage_index(self, epoch: int) -> int:
        """Index of the stage active at ``epoch`` (0-based)."""
        idx = 0
        for i, (start, _, _) in enumerate(self.stages):
            if epoch >= start:
                idx = i
        return idx

    def stage_at(self, epoch: int) -> tuple:
        """``(θ, ε)`` active at ``epoch``."""
        _, theta, eps = self.stages[self.stage_index(epoch)]
        return theta, eps

    def _on_epoch_start(self, epoch, nb_epochs):
        self._stage = self.stage_index(epoch)

    def rotate(self, x: torch.Tensor, theta: float, generator: torch.Generator) -> torch.Tensor:
        """Rotate every image by its own angle ~ U[−θ, θ] degrees (drawn from ``generator``)."""
        u = torch.rand(x.shape[0], generator=generator)
        angle = ((2 * u - 1) * theta).to(x.device, x.dtype)
        zero = torch.zeros_like(angle)
        with torch.no_grad():
            return W.warp_rt(x, angle, zero, zero, padding_mode=self.padding_mode)

    def _batch_objective(self, x, y, ctx) -> BatchObjective:
        _, theta, eps = self.stages[self._stage]
        x_rot = self.rotate(x, theta, ctx.generator(7)) if theta > 0 else x
        over = {} if self.eps_attr is None else {self.eps_attr: eps}
        res = self.run_attack(self.attack, x_rot, y, ctx, tag=0, **over)
        logits = self.train_logits(res.x_adv)
        ce = self.ce(logits, y)
        return BatchObjective(
            loss=ce.mean(),
            losses={"adv": ce.detach().mean()},
            correct_robust=logits.detach().argmax(1) == y,
        )

    def _epoch_record(self, epoch, nb_batches):
        _, theta, eps = self.stages[self._stage]
        return {"stage": self._stage, "theta": theta, "eps": eps}
