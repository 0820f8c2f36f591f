"""CuSP: curriculum spatial-adversarial training (Kamath et al., "Can we have it all? On the trade-off between
spatial and adversarial robustness of neural networks", §5 and Algorithm 1, arXiv:2002.11318).

Training data are randomly rotated by an angle drawn uniformly from ``[−θ, θ]`` (per example) and the PGD
attack runs on the rotated input with budget ε; the stage ``(θ, ε)`` is raised each time the learning
rate drops. A stage list ``[(start_epoch, θ°, ε), ...]`` says from which epoch each stage applies: the
k-th raise belongs at the k-th milestone of the learning-rate schedule
(:meth:`CurriculumAdversarialTrainer.stages_from_milestones` builds such a list; ``fit`` warns when a
``MultiStepLR`` given to it disagrees with the stages). The official CIFAR-10 schedule (TRADES
learning-rate drops at 75-90-100 of 120 epochs): ``(120°, 2/255)`` → ``(150°, 4/255)`` at epoch 75 →
``(180°, 8/255)`` at epoch 90, the last drop (100) finding the curriculum complete
(:meth:`CurriculumAdversarialTrainer.official_cifar10`, with
:meth:`~CurriculumAdversarialTrainer.official_cifar10_scheduler` for the learning rate).

The rotation follows the package's convention (:mod:`art_spatial.warp`: counter-clockwise degrees about
the image centre, ``align_corners=True``, backward mapping of :func:`art_spatial.warp.rt_to_affine`) and,
as in the paper's setup, samples with nearest-neighbour interpolation and black (zero) fill by default
(``interpolation="bilinear"`` gives :func:`art_spatial.warp.warp_rt` exactly) — the same rotation as the
CuSP invariance profiles of :mod:`art_spatial.bench.profiles`. The angles come from a generator seeded by
``(seed, epoch, batch)``.

Example:
    >>> from art_spatial.models import SmallCNN, make_classifier
    >>> stages = [(0, 30, 0.1), (2, 60, 0.2)]
    >>> t = CurriculumAdversarialTrainer(make_classifier(SmallCNN()), stages, verbose=False)
    >>> t.stage_at(0), t.stage_at(2)
    ((30.0, 0.1), (60.0, 0.2))
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import warp as W
from ..attacks.base import check_int, check_number
from .base import AdversarialTrainerBase, BatchContext, BatchObjective, _check_attack

logger = logging.getLogger(__name__)

__all__ = ["CurriculumAdversarialTrainer", "OFFICIAL_CIFAR10_STAGES"]

#: CuSP's best CIFAR-10 schedule: (start epoch, rotation range θ in degrees, PGD ε)
OFFICIAL_CIFAR10_STAGES = ((0, 120.0, 2 / 255), (75, 150.0, 4 / 255), (90, 180.0, 8 / 255))

#: learning-rate milestones of the official schedule (TRADES: ×0.1 at 75, 90, 100 of 120 epochs)
_OFFICIAL_CIFAR10_MILESTONES = (75, 90, 100)


def _milestones_of(milestones) -> tuple:
    """Sorted milestones of a ``MultiStepLR`` (its ``milestones`` counter) or of a sequence of ints."""
    ms = getattr(milestones, "milestones", milestones)
    try:
        out = sorted(int(m) for m in ms)
    except (TypeError, ValueError):
        raise ValueError(
            f"milestones must be a MultiStepLR or a sequence of epochs, got {milestones!r}"
        ) from None
    for m in out:
        check_int("milestones", m, minimum=0)
    return tuple(out)


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
        padding_mode: padding of the rotation (``"zeros"``: black fill, as in the paper).
        interpolation: sampling of the rotation, ``"nearest"`` (default, the paper's) or ``"bilinear"``
            (equal to :func:`art_spatial.warp.warp_rt`, the rotation this trainer used before).
        **kwargs: see :class:`AdversarialTrainerBase`.

    ``history`` adds ``stage``, ``theta`` and ``eps`` of each epoch.

    ``fit`` with a ``MultiStepLR`` checks that the stages are raised at its milestones (the k-th stage
    after the first starts at the k-th milestone; milestones after the last stage are free) and warns
    otherwise; other schedulers are not checked.
    """

    #: accepted values of ``interpolation``
    INTERPOLATIONS = ("nearest", "bilinear")

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
        interpolation: str = "nearest",
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
        self._check_interpolation(interpolation)
        self.attack = attack
        self.eps_attr = eps_attr
        self.padding_mode = padding_mode
        self.interpolation = interpolation
        self._stage = 0

    @classmethod
    def _check_interpolation(cls, interpolation) -> None:
        if interpolation not in cls.INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {cls.INTERPOLATIONS}, got {interpolation!r}"
            )

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
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(_OFFICIAL_CIFAR10_MILESTONES), gamma=0.1
        )

    @staticmethod
    def stages_from_milestones(milestones, thetas: Sequence, epsilons: Sequence) -> tuple:
        """Stages ``((0, θ_0, ε_0), (m_1, θ_1, ε_1), ...)`` raised at the learning-rate drops.

        Args:
            milestones: a ``MultiStepLR`` or its epochs; the k-th raise happens at the k-th (sorted)
                milestone, milestones beyond the last stage leave the curriculum at its last stage.
            thetas, epsilons: the stages' rotation ranges (degrees) and budgets, same length, at most
                one more than the number of milestones.

        >>> stages = CurriculumAdversarialTrainer.stages_from_milestones(
        ...     [75, 90, 100], [120, 150, 180], [2 / 255, 4 / 255, 8 / 255])
        >>> stages == OFFICIAL_CIFAR10_STAGES
        True
        """
        ms = _milestones_of(milestones)
        thetas, epsilons = list(thetas), list(epsilons)
        if not thetas or len(thetas) != len(epsilons):
            raise ValueError(
                f"thetas and epsilons must be non-empty and of the same length, got {len(thetas)} "
                f"and {len(epsilons)}"
            )
        if len(thetas) - 1 > len(ms):
            raise ValueError(
                f"milestones: {len(thetas)} stages need {len(thetas) - 1} milestones, got {list(ms)}"
            )
        starts = (0,) + ms[: len(thetas) - 1]
        return _check_stages(list(zip(starts, thetas, epsilons, strict=True)))

    def milestone_mismatch(self, milestones) -> str | None:
        """Why the stages are not raised at ``milestones`` (a ``MultiStepLR`` or epochs), or None.

        The stages agree with the schedule when the k-th stage after the first starts at the k-th
        milestone; later milestones are free (the curriculum is complete).
        """
        ms = _milestones_of(milestones)
        starts = [start for start, _, _ in self.stages[1:]]
        if list(ms[: len(starts)]) == starts:
            return None
        return (
            f"CuSP raises (theta, eps) at each learning-rate drop, but the stages start at epochs "
            f"{starts} and the scheduler's milestones are {list(ms)}; build the stages with "
            f"stages_from_milestones"
        )

    def fit(self, x, y, validation_data=None, batch_size: int = 128, nb_epochs: int = 20,
            scheduler=None, **kwargs) -> None:
        """:meth:`AdversarialTrainerBase.fit`, warning when a ``MultiStepLR`` ``scheduler``'s milestones
        and the stages' start epochs disagree."""
        self._check_scheduler(scheduler)
        super().fit(x, y, validation_data=validation_data, batch_size=batch_size,
                    nb_epochs=nb_epochs, scheduler=scheduler, **kwargs)

    def fit_generator(self, generator, nb_epochs: int = 20, validation_data=None, scheduler=None,
                      **kwargs) -> None:
        """:meth:`AdversarialTrainerBase.fit_generator` with the milestone check of :meth:`fit`."""
        self._check_scheduler(scheduler)
        super().fit_generator(generator, nb_epochs=nb_epochs, validation_data=validation_data,
                              scheduler=scheduler, **kwargs)

    def _check_scheduler(self, scheduler) -> None:
        if not isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
            return
        msg = self.milestone_mismatch(scheduler)
        if msg is not None:
            logger.warning(msg)
            warnings.warn(msg, UserWarning, stacklevel=3)

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

    @classmethod
    def rotate_by(
        cls,
        x: torch.Tensor,
        angle: torch.Tensor,
        interpolation: str = "nearest",
        padding_mode: str = "zeros",
    ) -> torch.Tensor:
        """Rotate image ``i`` of ``x`` by ``angle[i]`` degrees (counter-clockwise on screen) about its
        centre, sampled with ``interpolation``; the grid is the package's (:mod:`art_spatial.warp`).

        >>> x = torch.arange(9.0).reshape(1, 1, 3, 3)
        >>> y = CurriculumAdversarialTrainer.rotate_by(x, torch.tensor([90.0]))
        >>> bool(torch.equal(y, torch.rot90(x, 1, dims=(-2, -1))))
        True
        """
        cls._check_interpolation(interpolation)
        if padding_mode not in W.PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {W.PADDING_MODES}, got {padding_mode!r}")
        h, w = x.shape[-2:]
        angle = angle.to(x.device, x.dtype)
        zero = torch.zeros_like(angle)
        A = W.rt_to_affine(torch.stack([angle, zero, zero], dim=-1), h, w)
        grid = W.make_grid(tuple(x.shape), affine=A, device=x.device, dtype=x.dtype)
        return F.grid_sample(
            x, grid, mode=interpolation, padding_mode=padding_mode, align_corners=W.ALIGN_CORNERS
        )

    def rotate(
        self, x: torch.Tensor, theta: float, generator: torch.Generator, ctx: BatchContext | None = None
    ) -> torch.Tensor:
        """Rotate every image by its own angle ~ U[−θ, θ] degrees (drawn from ``generator``), with the
        trainer's ``interpolation`` and ``padding_mode``. With a distributed ``ctx`` the angles are
        drawn for the whole global batch and this rank's rows kept."""
        n = x.shape[0] if ctx is None or ctx.n_global is None else ctx.n_global
        u = torch.rand(n, generator=generator)
        if ctx is not None:
            u = ctx.local(u)
        angle = ((2 * u - 1) * theta).to(x.device, x.dtype)
        with torch.no_grad():
            return self.rotate_by(x, angle, self.interpolation, self.padding_mode)

    def _batch_objective(self, x, y, ctx) -> BatchObjective:
        _, theta, eps = self.stages[self._stage]
        x_rot = self.rotate(x, theta, ctx.generator(7), ctx) if theta > 0 else x
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
