"""Single-attack adversarial training: PGD AT (Madry), Spatial AT (Pareto §2.4), Joint AT (Joint AT §4.2).

All three minimize ``E_(x,y) CE(f(x_adv), y)`` where ``x_adv`` is one attack's output on the batch
(Madry et al. 2018, Eq. 2.1 of "Towards deep learning models resistant to adversarial attacks"); they
differ in the attack and, for Joint AT, in the training mode of the attack (random non-true target
label, descended on) and the label-smoothed training loss.

Defaults are the Pareto paper's MNIST settings (Appendix E): PGD ε = 0.3, step 0.01, 30 iterations;
integrated spatial attack ε_F = ε_RT = 0.3, steps 0.01 / 0.1, 20 iterations. Any attack of
:mod:`art_spatial.attacks` may be passed instead.

Example:
    >>> import numpy as np
    >>> from art_spatial.models import SmallCNN, make_classifier
    >>> from art_spatial.attacks import FlowAttack
    >>> clf = make_classifier(SmallCNN())
    >>> trainer = SpatialAdversarialTrainer(clf, FlowAttack(clf, max_iter=1, verbose=False), verbose=False)
    >>> trainer.fit(np.random.rand(4, 1, 28, 28).astype("float32"), np.eye(10)[:4], nb_epochs=1)
    >>> len(trainer.history)
    1
"""

from __future__ import annotations

import logging

import torch

from ..attacks.base import check_bool
from ..attacks.engine import random_targets
from .base import AdversarialTrainerBase, BatchContext, BatchObjective, _check_attack

logger = logging.getLogger(__name__)

__all__ = [
    "NaturalTrainer",
    "SingleAttackTrainer",
    "PGDAdversarialTrainer",
    "SpatialAdversarialTrainer",
    "JointAdversarialTrainer",
    "random_targets",
]


class NaturalTrainer(AdversarialTrainerBase):
    """Natural (standard) training, ``min_θ E CE(f_θ(x), y)``, in the same loop as the adversarial trainers.

    The "Natural" column of the Pareto AT paper's Table 1: with it, the reference model shares the
    adversarial models' batch order, schedulers, checkpoints, resume and ``history`` (``clean_acc`` is
    the training-batch accuracy). No attack runs.

    Example:
        >>> import numpy as np
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> t = NaturalTrainer(make_classifier(SmallCNN()), verbose=False)
        >>> t.fit(np.random.rand(4, 1, 28, 28).astype("float32"), np.arange(4), nb_epochs=1)
        >>> round(t.history[0]["robust_acc"], 1) != round(t.history[0]["robust_acc"], 1)  # nan: no attack
        True
    """

    def _batch_objective(self, x, y, ctx) -> BatchObjective:
        logits = self.train_logits(x)
        ce = self.ce(logits, y)
        return BatchObjective(
            loss=ce.mean(),
            losses={"natural": ce.detach().mean()},
            correct_clean=logits.detach().argmax(1) == y,
        )


class SingleAttackTrainer(AdversarialTrainerBase):
    """Adversarial training on one attack: ``min_θ E CE(f_θ(attack(x, y)), y)``.

    Args:
        classifier: ART ``PyTorchClassifier``.
        attack: any attack of :mod:`art_spatial.attacks` (its estimator is not used: the trainer runs it
            through :meth:`attack_tensor` on the classifier being trained).
        targeted_training: train on targeted attacks towards a random non-true label per example (the
            attack is run with ``targeted=True`` for the call; κ / early stop still refer to the true label).
        **kwargs: ``seed``, ``verbose``, ``checkpoint_dir``, ``resume``, ``label_smoothing`` of
            :class:`AdversarialTrainerBase`.
    """

    def __init__(self, classifier, attack, *, targeted_training: bool = False, **kwargs):
        super().__init__(classifier, **kwargs)
        _check_attack("attack", attack)
        check_bool("targeted_training", targeted_training)
        self.attack = attack
        self.targeted_training = bool(targeted_training)

    # overridable pieces (FAT: τ, GAIRAT: weights) ------------------------------------------------------
    def _attack_overrides(self) -> dict:
        return {}

    def _example_weights(self, result, ctx: BatchContext) -> torch.Tensor | None:
        return None

    def _adversarial(self, x, y, ctx):
        if self.targeted_training:
            targets = random_targets(y, self._classifier.nb_classes, ctx.generator(1), ctx)
            return self.run_attack(
                self.attack,
                x,
                targets,
                ctx,
                tag=0,
                y_true=y,
                targeted=True,
                **self._attack_overrides(),
            )
        return self.run_attack(self.attack, x, y, ctx, tag=0, **self._attack_overrides())

    def _batch_objective(self, x, y, ctx) -> BatchObjective:
        res = self._adversarial(x, y, ctx)
        logits = self.train_logits(res.x_adv)
        ce = self.ce(logits, y)
        w = self._example_weights(res, ctx)
        loss = ce.mean() if w is None else (w * ce).mean()
        means = {"kappa_mean": float(res.kappa.float().mean())} if res.kappa is not None else {}
        stats = {"attack_forward": float(res.n_forward), "attack_backward": float(res.n_backward)}
        return BatchObjective(
            loss=loss,
            losses={"adv": ce.detach().mean()},
            correct_robust=logits.detach().argmax(1) == y,
            stats=stats,
            means=means,
        )


class PGDAdversarialTrainer(SingleAttackTrainer):
    """PGD adversarial training (Madry et al., 2018): ``min_θ E max_{‖δ‖∞≤ε} CE(f_θ(x + δ), y)``.

    Default attack: :class:`~art_spatial.attacks.PixelAttack` with the Pareto paper's MNIST training
    setting (ε = 0.3, step 0.01, 30 iterations, random start; Appendix E). Pass any attack to change it.

    Example:
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> PGDAdversarialTrainer(make_classifier(SmallCNN()), verbose=False).attack.max_iter
        30
    """

    def __init__(self, classifier, attack=None, **kwargs):
        if attack is None:
            from ..attacks import PixelAttack

            attack = PixelAttack(
                classifier, eps=0.3, eps_step=0.01, max_iter=30, random_init=True, verbose=False
            )
        super().__init__(classifier, attack, **kwargs)


class SpatialAdversarialTrainer(SingleAttackTrainer):
    """Spatial adversarial training (Pareto AT §2.4): training on the integrated spatial attack (Eq. 7-9).

    Default attack: :class:`~art_spatial.attacks.IntegratedSpatialAttack` with the MNIST budgets
    (ε_F = ε_RT = 0.3, steps 0.01 / 0.1, 20 iterations; Appendix E). Any attack is accepted.

    Example:
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> type(SpatialAdversarialTrainer(make_classifier(SmallCNN()), verbose=False).attack).__name__
        'IntegratedSpatialAttack'
    """

    def __init__(self, classifier, attack=None, **kwargs):
        if attack is None:
            from ..attacks import IntegratedSpatialAttack

            attack = IntegratedSpatialAttack(
                classifier,
                eps_flow=0.3,
                eps_affine=0.3,
                eps_step_flow=0.01,
                eps_step_affine=0.1,
                max_iter=20,
                verbose=False,
            )
        super().__init__(classifier, attack, **kwargs)


class JointAdversarialTrainer(SingleAttackTrainer):
    """Joint spatial-pixel adversarial training (Joint AT, §4.2 and Alg. 3).

    The batch is replaced by the joint attack's output ``T(x; ω) + δ`` (double-pass attack, Alg. 2)
    generated in the paper's *training mode*: targeted towards a uniformly random non-true label per
    example (gradient sign flipped), and the model is trained with label smoothing (a variant of the
    paper's, [32]): ``min_θ E CE_ls(f_θ(x_adv), y)``. :meth:`one_step` builds the paper's preferred
    one-step variant.

    Args:
        classifier: ART ``PyTorchClassifier``.
        attack: a joint attack (default: :class:`art_spatial.attacks.joint.JointSpatialPixelAttack` with
            its own defaults, the paper's CIFAR budgets); any attack of the package is accepted.
        label_smoothing: label smoothing of the training loss (default 0.5).
        targeted_training: the random-target training mode (default True). An attack with a
            ``training_mode`` attribute (the joint attack) draws its own per-example targets; for any
            other attack the trainer draws them and runs the attack with ``targeted=True``.
        **kwargs: see :class:`AdversarialTrainerBase`.

    Example:
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> t = JointAdversarialTrainer.one_step(make_classifier(SmallCNN()), verbose=False)
        >>> t.attack.max_iter, t.attack.schedule, t.label_smoothing
        (1, 'double-pass', 0.5)
    """

    def __init__(
        self,
        classifier,
        attack=None,
        *,
        label_smoothing: float = 0.5,
        targeted_training: bool = True,
        **kwargs,
    ):
        if attack is None:
            attack = self._default_attack(classifier)
        super().__init__(
            classifier,
            attack,
            targeted_training=targeted_training,
            label_smoothing=label_smoothing,
            **kwargs,
        )

    @staticmethod
    def _default_attack(classifier, **attack_kwargs):
        from ..attacks.joint import JointSpatialPixelAttack  # lazy: optional module

        attack_kwargs.setdefault("verbose", False)
        return JointSpatialPixelAttack(classifier, **attack_kwargs)

    def _adversarial(self, x, y, ctx):
        if self.targeted_training and hasattr(self.attack, "training_mode"):
            return self.run_attack(
                self.attack, x, y, ctx, tag=0, training_mode=True, targeted=False
            )
        return super()._adversarial(x, y, ctx)

    @classmethod
    def one_step(
        cls, classifier, attack_kwargs: dict | None = None, **kwargs
    ) -> JointAdversarialTrainer:
        """The one-step variant (Joint AT Table 1, "one-step Joint", the paper's choice): one double-pass
        step from a random start whose step sizes equal the budgets, in the training mode, with label
        smoothing. ``attack_kwargs`` go to :class:`~art_spatial.attacks.joint.JointSpatialPixelAttack`
        (budgets ``eps_pixel``, ``eps_flow``, ...); the steps follow the budgets unless given.
        """
        from ..attacks.joint import JointSpatialPixelAttack

        ak = dict(attack_kwargs or {})
        probe = JointSpatialPixelAttack(classifier, verbose=False, **ak)
        ak.setdefault("eps_step_pixel", max(float(probe.eps_pixel), 1e-12))
        ak.setdefault("eps_step_flow", max(float(probe.eps_flow), 1e-12))
        ak.setdefault("eps_step_affine", max(float(probe.eps_affine), 1e-12))
        ak.setdefault("rotation_step", max(float(probe.max_rotation), 1e-12))
        ak.setdefault("translation_step", max(float(probe.max_translation), 1e-12))
        ak.update(max_iter=1, random_init=True)
        return cls(classifier, cls._default_attack(classifier, **ak), **kwargs)
