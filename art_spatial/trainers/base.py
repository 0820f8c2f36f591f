"""The one adversarial-training loop behind every trainer, as an ART ``Trainer``.

Every trainer of :mod:`art_spatial.trainers` is an :class:`AdversarialTrainerBase`: a subclass of
``art.defences.trainer.Trainer`` that takes an ART ``PyTorchClassifier`` and implements only
:meth:`AdversarialTrainerBase._batch_objective` — the per-batch objective(s) computed from a batch
``(x, y)``. The loop (batching, attacks, update, schedulers, progress, history, checkpoints, resume)
exists once, here:

    for epoch in start .. nb_epochs-1:
        on_epoch_start(epoch)                      # τ schedule (FAT), curriculum stage (CuSP), ...
        for batch b in a permutation seeded by (seed, epoch):
            attacks on (x_b, y_b)                  # model in eval mode, parameters frozen
            L = objective(model in train mode)     # BatchNorm statistics update here
            θ ← optimizer step on ∇θ L
            after_step(...)                        # Pareto AT: window, μ, Σ, QP for α
        scheduler.step()                           # any torch 2 LR scheduler, once per epoch
        history.append(epoch metrics); checkpoint

In the code: ``_train`` (check the arguments, resume or reset) → ``_train_epochs`` (hooks, record,
checkpoint per epoch) → ``_train_epoch`` (``_batch`` → ``_batch_objective`` → ``_update`` →
``_after_step`` per batch). What surrounds the loop lives beside it: :mod:`.batches` (seeds, the
epoch's batch order, input checks and conversion), :mod:`.metrics` (:class:`~.metrics.EpochMetrics`,
the epoch's sums and its ``history`` record) and :mod:`.checkpoint` (the checkpoint file).

Reproducibility: the batch order of an epoch is a permutation drawn from ``(seed, epoch)``; each attack
call gets the seed ``hash(seed, epoch, batch, tag)`` with the call (``attack_tensor(..., seed=)``; the
attack object is never modified), and every other random draw of a batch (random rotations of CuSP,
random targets of the joint training mode) comes from a generator seeded the same way. Together with
the checkpointed model, optimizer, scheduler, trainer state and global RNG states (torch, numpy,
python), ``resume=True`` gives exactly the run that was not interrupted.

Losses: cross-entropy on logits (optionally label-smoothed), per example — the papers' choice for every
trainer here; the classifier's ``_loss`` is not used. Logits pass through the classifier's PyTorch
``preprocessing`` (e.g. ``(mean, std)``) in both the attack and the update.

Accuracies in ``history`` are read from logits the objective computed anyway (no extra passes): the
robust training accuracy from the logits of the adversarial batch in train mode (for several attacks: the
example is counted correct only if it is correct under all of them), the clean training accuracy only
when the objective forwards the natural batch (Pareto AT, ``include_natural``) — otherwise ``nan``.

Example:
    >>> import numpy as np
    >>> from art_spatial.models import SmallCNN, make_classifier
    >>> from art_spatial.attacks import PixelAttack
    >>> from art_spatial.trainers import PGDAdversarialTrainer
    >>> clf = make_classifier(SmallCNN())
    >>> trainer = PGDAdversarialTrainer(clf, PixelAttack(clf, max_iter=1, verbose=False), verbose=False)
    >>> x, y = np.random.rand(8, 1, 28, 28).astype("float32"), np.arange(8) % 10
    >>> trainer.fit(x, y, nb_epochs=1, batch_size=4)
    >>> sorted(k for k in trainer.history[0] if k in ("loss", "robust_acc"))
    ['loss', 'robust_acc']
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.defences.trainer import Trainer

from ..attacks.base import (
    _clip_tuple,
    check_bool,
    check_int,
    check_number,
    estimator_inputs,
    model_eval,
)
from .batches import BatchContext, as_batch, check_x, check_y, derive_seed, epoch_batches
from .checkpoint import (
    CHECKPOINT_NAME,
    check_checkpoint_path,
    checkpoint_note,
    read_checkpoint,
    restore_rng,
    save_checkpoint,
)
from .metrics import EpochMetrics

logger = logging.getLogger(__name__)

__all__ = [
    "AdversarialTrainerBase",
    "BatchObjective",
    "BatchContext",
    "derive_seed",
    "override_attrs",
    "CHECKPOINT_NAME",
    "BUDGET_ATTRS",
]

#: attack attributes that measure a budget or a step; the ε warm-up scales those an attack has
BUDGET_ATTRS = (
    "eps",
    "eps_step",
    "eps_pixel",
    "eps_step_pixel",
    "eps_flow",
    "eps_step_flow",
    "eps_affine",
    "eps_step_affine",
    "max_rotation",
    "max_translation",
    "rotation_step",
    "translation_step",
)


@contextlib.contextmanager
def override_attrs(obj: Any, **attrs):
    """Temporarily set attributes of ``obj`` (e.g. an attack's ``seed``); restored on exit."""
    old = {k: getattr(obj, k) for k in attrs}
    try:
        for k, v in attrs.items():
            setattr(obj, k, v)
        yield obj
    finally:
        for k, v in old.items():
            setattr(obj, k, v)


@dataclass
class BatchObjective:
    """What a trainer's :meth:`AdversarialTrainerBase._batch_objective` returns for one batch.

    Attributes:
        loss: scalar tensor minimized by the optimizer step (carries the graph).
        losses: objective name -> scalar (batch mean, float or tensor) reported in ``history``.
        correct_clean: ``N`` bool correctness on the natural batch, or None when not computed.
        correct_robust: ``N`` bool correctness on the adversarial batch (all attacks), or None.
        stats: additional per-batch numbers, summed over the epoch into ``history`` (e.g. counts).
        means: additional per-batch numbers, averaged (example-weighted) over the epoch (e.g. κ).
        aux: values of this batch for the trainer's own :meth:`~AdversarialTrainerBase._after_step`
            hook, not recorded (e.g. Pareto AT's loss vector ``L``, which feeds its window).
    """

    loss: torch.Tensor
    losses: dict[str, Any]
    correct_clean: torch.Tensor | None = None
    correct_robust: torch.Tensor | None = None
    stats: dict[str, float] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    aux: dict[str, Any] = field(default_factory=dict)


def _with_attrs(attack: Any, attrs: dict[str, Any]) -> Any:
    """``attack`` itself when ``attrs`` is empty, else a shallow copy of it with ``attrs`` set (the
    attack shared by every batch, and by the caller, keeps its own values)."""
    if not attrs:
        return attack
    call = copy.copy(attack)
    for name, value in attrs.items():
        setattr(call, name, value)
    return call


def _check_attack(name: str, attack: Any) -> None:
    if not callable(getattr(attack, "attack_tensor", None)):
        raise ValueError(
            f"{name} must be an attack of art_spatial.attacks (with an attack_tensor method), "
            f"got {type(attack).__name__}"
        )


class AdversarialTrainerBase(Trainer):
    """Base class of the adversarial trainers (ART ``Trainer``): the loop, progress, history, checkpoints.

    Subclasses implement :meth:`_batch_objective` and optionally the hooks :meth:`_on_epoch_start`,
    :meth:`_after_step`, :meth:`_epoch_record`, :meth:`_state` / :meth:`_load_state`.

    Args:
        classifier: ART ``PyTorchClassifier`` (its ``model``, ``optimizer``, ``device``, ``clip_values``
            and PyTorch ``preprocessing`` are used; an optimizer is required).
        seed: seed of the batch order, the attacks' random starts and every other draw.
        verbose: tqdm progress bars over epochs and batches.
        checkpoint_dir: directory receiving ``last.pt`` (model, optimizer, scheduler, history, RNG states,
            trainer state, epoch) after every epoch, written atomically; None = no checkpoints.
        resume: continue from ``checkpoint_dir/last.pt`` if it exists (may also be passed to ``fit``).
        label_smoothing: label smoothing of the training cross-entropy (``torch`` semantics), in ``[0, 1)``.
        eps_warmup: linear warm-up of every training attack's budget over the first ``eps_warmup`` epochs
            (0 = off). At batch ``b`` of ``B`` in epoch ``e`` every attribute of :data:`BUDGET_ATTRS` the
            attack has (budget and step alike, so the attack's reach relative to its budget is kept) is
            multiplied by ``min(1, (e + (b + 1) / B) / eps_warmup)``: the ramp of Madry et al.'s and Gowal
            et al.'s large-budget training ("On the effectiveness of interval bound propagation",
            arXiv:1810.12715, §4), which keeps a cold start at ε = 0.3 from collapsing the model.
            ``history`` records the factor reached at the end of each epoch (``eps_scale``).
        epoch_callback: ``callback(trainer, epoch) -> dict`` called after every epoch (model in eval
            mode, before the checkpoint); the returned numbers join that epoch's ``history`` record, e.g.
            clean and robust accuracy of a monitor set for convergence curves. Its time is recorded as
            ``time_callback_s`` and not counted in ``time_epoch_s``. Under distributed training it runs
            on every rank (it may itself use collectives, e.g. a sharded ``evaluate``).
        distributed: data-parallel training under ``torch.distributed`` (see ``docs/distributed.md``):
            None (default) = when a default process group with more than one process is initialized
            at ``fit`` time (e.g. launched with ``torchrun``); True = require one; False = never. Then
            the model is wrapped in ``DistributedDataParallel``, every rank attacks and trains on its
            share of each global batch of ``batch_size`` examples, every statistic a trainer derives
            from a batch is reduced across ranks (all ranks take the same decisions), and rank 0
            alone writes checkpoints. With the same global batch the run equals a one-process run up
            to float rounding (models without BatchNorm; BatchNorm statistics are per rank unless the
            model uses ``torch.nn.SyncBatchNorm``).
        amp_dtype: mixed precision, ``None`` (float32, default), ``"bfloat16"`` or ``"float16"``: the
            model's forward (attacks and update) runs under ``torch.autocast``; the images, attack
            parameters, steps, projections, logits and losses stay float32 (:mod:`art_spatial.amp`).
            float16 adds a ``torch.amp.GradScaler`` (checkpointed).
        channels_last: convert the model and the batches to ``torch.channels_last`` memory format
            (faster convolutions on recent GPUs and CPUs); the values are unchanged.
        augment: None (default: train on the data as given) or a batch augmentation such as
            :class:`art_spatial.augment.CropFlip` (the CIFAR-10 random crop and flip), applied to each
            training batch before it is attacked, with per-example draws of the trainer's
            ``(seed, epoch, batch)`` generator (reproducible, resumable, the same on any number of
            ranks).

    Attributes:
        history: list of per-epoch dicts: ``epoch``, ``loss`` (minimized objective), ``loss_<name>`` per
            objective, ``clean_acc``/``robust_acc`` (training batches, see the module docstring),
            ``lr``, ``time_epoch_s``/``time_attack_s``/``time_update_s``, ``n_examples``, the trainer's
            extras (α, fallback counts, τ, stage, ...) and ``val_clean_acc`` with ``validation_data``.
    """

    def __init__(
        self,
        classifier,
        *,
        seed: int = 0,
        verbose: bool = True,
        checkpoint_dir=None,
        resume: bool = False,
        label_smoothing: float = 0.0,
        eps_warmup: int = 0,
        epoch_callback=None,
        distributed: bool | None = None,
        amp_dtype: str | None = None,
        channels_last: bool = False,
        augment=None,
    ):
        super().__init__(classifier)
        for attr in ("model", "optimizer"):
            if not hasattr(classifier, attr):
                raise ValueError(
                    "classifier must be an art.estimators.classification.PyTorchClassifier, got "
                    f"{type(classifier).__name__}"
                )
        if classifier.optimizer is None:
            raise ValueError(
                "classifier must have an optimizer (PyTorchClassifier(..., optimizer=...)) to be trained"
            )
        check_int("seed", seed, minimum=0)
        check_bool("verbose", verbose)
        check_bool("resume", resume)
        check_number("label_smoothing", label_smoothing, nonneg=True)
        if label_smoothing >= 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.seed = int(seed)
        self.verbose = bool(verbose)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.resume = bool(resume)
        self.label_smoothing = float(label_smoothing)
        check_int("eps_warmup", eps_warmup, minimum=0)
        if epoch_callback is not None and not callable(epoch_callback):
            raise ValueError(
                "epoch_callback must be callable(trainer, epoch) -> dict, got "
                f"{type(epoch_callback).__name__}"
            )
        self.eps_warmup = int(eps_warmup)
        self.epoch_callback = epoch_callback
        if distributed is not None:
            check_bool("distributed", distributed)
        self.distributed = distributed
        from ..amp import resolve_amp_dtype

        self.amp_dtype = resolve_amp_dtype(amp_dtype)
        check_bool("channels_last", channels_last)
        self.channels_last = bool(channels_last)
        if augment is not None and not (callable(augment) and hasattr(augment, "n_draws")):
            raise ValueError(
                "augment must be None or a batch augmentation (x, draws) -> x with an n_draws attribute, "
                f"e.g. art_spatial.augment.CropFlip(); got {type(augment).__name__}"
            )
        self.augment = augment
        self._scaler = None
        self._rank, self._world = 0, 1
        self._ddp = None
        self._nb_batches = 1
        self.history: list[dict[str, Any]] = []
        self._metrics = EpochMetrics()  # the current epoch's sums (attack time also outside fit)

    # ------------------------------------------------------------------------------------ accessors
    @property
    def model(self) -> torch.nn.Module:
        """The trained ``nn.Module`` (``classifier.model``)."""
        return self._classifier.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The classifier's optimizer (ART's ``classifier.optimizer``)."""
        return self._classifier.optimizer

    @property
    def device(self) -> torch.device:
        """The classifier's device (ART's ``classifier.device``)."""
        return self._classifier.device

    @property
    def clip_values(self) -> tuple:
        """``(min, max)`` of valid inputs (infinite when the classifier has none)."""
        return _clip_tuple(self._classifier.clip_values)

    @property
    def channels_first(self) -> bool:
        """The classifier's layout (ART's ``channels_first``); the loop itself works channels-first."""
        return bool(getattr(self._classifier, "channels_first", True))

    def _as_batch(self, x_np) -> torch.Tensor:
        """A float32 ``N x C x H x W`` tensor on the device from data in the classifier's layout."""
        return as_batch(
            x_np, self.device, channels_first=self.channels_first, channels_last=self.channels_last
        )

    def _labels(self, y, n: int, name: str = "y") -> np.ndarray:
        return check_y(self._classifier, y, n, name=name)

    def _check_x(self, x, name: str = "x") -> np.ndarray:
        return check_x(self._classifier, x, name=name)

    # ---------------------------------------------------------------------------------- forward/attack
    def logits(self, x: torch.Tensor, fit: bool = False) -> torch.Tensor:
        """Logits of ``x`` through the classifier's PyTorch preprocessing and model (differentiable).

        The model's mode is not changed: the loop puts it in train mode for the update. ``x`` is
        ``N x C x H x W`` (the layout of the loop and the attacks); for a classifier with
        ``channels_first=False`` it is transposed to ``N x H x W x C`` before preprocessing and model.
        """
        clf = self._classifier
        xp = estimator_inputs(clf, x, fit=fit)
        # the update's forward goes through DistributedDataParallel (gradient all-reduce) when training
        # distributed; attacks and evaluation use the bare model
        net = self._ddp if (fit and self._ddp is not None) else clf.model
        if self.amp_dtype is None:
            return net(xp)
        from ..amp import autocast

        with autocast(xp.device, self.amp_dtype):
            out = net(xp)
        return out.float()

    def ce(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example training cross-entropy (``N``), label-smoothed by ``label_smoothing``."""
        return F.cross_entropy(logits, y, reduction="none", label_smoothing=self.label_smoothing)

    def train_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for the update: model in train mode (BatchNorm statistics update), gradients on."""
        self.model.train()
        return self.logits(x, fit=True)

    def run_attack(
        self,
        attack,
        x: torch.Tensor,
        y: torch.Tensor,
        ctx: BatchContext,
        tag: int = 0,
        *,
        y_true: torch.Tensor | None = None,
        **overrides,
    ):
        """Run ``attack`` on a batch with the model in eval mode and frozen parameters.

        The attack runs with the seed ``ctx.seed_for(tag)``, passed with the call, and with any
        ``overrides`` (e.g. ``early_stop_tau``) and the ε warm-up's budgets set on a shallow copy made
        for this call: the attack object itself is never changed. Returns the attack's
        ``AttackResult`` (tensors); its ``final_eval`` pass is skipped (the update's forward provides
        the accuracy).
        """
        t0 = time.perf_counter()
        call = _with_attrs(attack, self._warmed_up(attack, ctx, overrides))
        with model_eval(self.model):
            res = call.attack_tensor(
                lambda z: self.logits(z, fit=False),
                x,
                y,
                clip_values=self.clip_values,
                y_true=y_true,
                final_eval=False,
                seed=ctx.seed_for(tag),
            )
        self._metrics.add_time("attack", time.perf_counter() - t0)
        return res

    def _warmed_up(self, attack, ctx: BatchContext, overrides: dict) -> dict:
        """``overrides`` with every budget attribute of ``attack`` scaled by the ε warm-up."""
        scale = self.eps_scale(ctx)
        if scale < 1.0:
            for name in BUDGET_ATTRS:
                if name in overrides or hasattr(attack, name):
                    value = overrides.get(name, getattr(attack, name))
                    if value is not None:
                        overrides[name] = float(value) * scale
        return overrides

    def eps_scale(self, ctx: BatchContext) -> float:
        """Factor of the ε warm-up at batch ``ctx`` (1.0 when ``eps_warmup`` is 0 or over)."""
        if self.eps_warmup == 0:
            return 1.0
        progress = ctx.epoch + (ctx.batch + 1) / max(self._nb_batches, 1)
        return min(1.0, progress / self.eps_warmup)

    # ------------------------------------------------------------------------------ subclass interface
    def _batch_objective(
        self, x: torch.Tensor, y: torch.Tensor, ctx: BatchContext
    ) -> BatchObjective:
        """The per-batch objective(s) of the trainer (abstract)."""
        raise NotImplementedError

    def _on_epoch_start(self, epoch: int, nb_epochs: int) -> None:
        """Hook: epoch-level schedules (τ of FAT, curriculum stage of CuSP)."""

    def _after_step(self, obj: BatchObjective, ctx: BatchContext) -> None:
        """Hook after the optimizer step (Pareto AT: window and α)."""

    def _epoch_record(self, epoch: int, nb_batches: int) -> dict[str, Any]:
        """Hook: trainer-specific entries of the epoch's ``history`` record."""
        return {}

    def _state(self) -> dict[str, Any]:
        """Hook: trainer state to checkpoint (e.g. Pareto α and window)."""
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        """Hook: restore :meth:`_state`."""

    # ---------------------------------------------------------------------------------- distributed
    def _dist_info(self) -> tuple:
        """``(rank, world)`` this trainer trains with (``(0, 1)`` unless distributed)."""
        if self.distributed is False:
            return 0, 1
        active = torch.distributed.is_available() and torch.distributed.is_initialized()
        if not active:
            if self.distributed:
                raise ValueError(
                    "distributed=True needs an initialized torch.distributed process group (launch "
                    "with torchrun and call torch.distributed.init_process_group, or "
                    "art_spatial.bench.distributed.init_from_env())"
                )
            return 0, 1
        return torch.distributed.get_rank(), torch.distributed.get_world_size()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the ranks of a distributed run (on ``t``'s device); ``t`` itself otherwise.

        For trainers' per-batch statistics, e.g. Pareto AT's loss vector, GAIRAT's weight sum.
        """
        if self._world == 1:
            return t
        from ..bench.distributed import all_reduce_tensor

        return all_reduce_tensor(t, "sum")

    def _wrap_ddp(self):
        from torch.nn.parallel import DistributedDataParallel

        dev = self.device
        ids = None
        if dev.type == "cuda":
            ids = [dev.index if dev.index is not None else torch.cuda.current_device()]
        # the classifier's model (ART's public ``model``): rank 0's parameters broadcast on wrapping
        return DistributedDataParallel(self._classifier.model, device_ids=ids)

    # ---------------------------------------------------------------------------------------- public
    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        validation_data=None,
        batch_size: int = 128,
        nb_epochs: int = 20,
        scheduler=None,
        **kwargs,
    ) -> None:
        """Train the classifier (ART ``Trainer.fit`` signature).

        Args:
            x: training images ``N x C x H x W`` (numpy, in ``clip_values``; not modified).
            y: labels, one-hot ``N x classes`` or indices ``N``.
            validation_data: optional ``(x_val, y_val)``; natural validation accuracy per epoch in
                ``history`` (``val_clean_acc``).
            batch_size: examples per step (under distributed training: the global batch, shared by the
                ranks; every batch must give each rank at least one example).
            nb_epochs: total number of epochs (with ``resume``, the run continues up to this epoch).
            scheduler: any torch LR scheduler on the classifier's optimizer, stepped once per epoch
                (``ReduceLROnPlateau`` receives the epoch's training loss).
            resume: keyword, overrides the constructor's ``resume``.
            checkpoint_dir: keyword, overrides the constructor's ``checkpoint_dir``.
        """
        x = self._check_x(x)
        labels = self._labels(y, x.shape[0])
        check_int("batch_size", batch_size, minimum=1)
        nb_batches = int(math.ceil(x.shape[0] / batch_size))
        rank, world = self._dist_info()
        last = x.shape[0] - (nb_batches - 1) * batch_size
        if world > 1 and (batch_size < world or last < world):
            raise ValueError(
                f"batch_size {batch_size} with {x.shape[0]} examples gives a batch of "
                f"{min(batch_size, last)} examples, fewer than the {world} processes: every rank needs "
                "at least one example of every batch (batch_size is the global batch of all ranks)"
            )
        self._train(
            lambda epoch: epoch_batches(
                x, labels, batch_size, seed=self.seed, epoch=epoch, rank=rank, world=world
            ),
            nb_batches,
            nb_epochs,
            validation_data,
            scheduler,
            **kwargs,
        )

    def fit_generator(
        self, generator, nb_epochs: int = 20, validation_data=None, scheduler=None, **kwargs
    ) -> None:
        """Train from an ART ``DataGenerator`` (e.g. ``PyTorchDataGenerator``): ``ceil(size / batch_size)``
        calls of ``generator.get_batch()`` per epoch.

        The batch order is the generator's: ``resume`` restores the model, optimizer and RNG states, but
        the result equals an uninterrupted run only if the generator itself is reproducible.
        """
        if not callable(getattr(generator, "get_batch", None)):
            raise ValueError(
                f"generator must be an art.data_generators.DataGenerator, got {type(generator).__name__}"
            )
        size, bs = getattr(generator, "size", None), getattr(generator, "batch_size", None)
        if not size or not bs:
            raise ValueError("generator must know its size and batch_size")
        nb_batches = int(math.ceil(size / bs))

        def batches(epoch):
            for _ in range(nb_batches):
                xb, yb = generator.get_batch()[:2]
                xb = self._check_x(xb, name="x (a batch of the generator)")
                yield xb, self._labels(yb, xb.shape[0], name="y (a batch of the generator)")

        self._train(batches, nb_batches, nb_epochs, validation_data, scheduler, **kwargs)

    # ----------------------------------------------------------------------------------------- loop
    def _train(
        self, batches_of, nb_batches: int, nb_epochs: int, validation_data, scheduler, **kwargs
    ) -> None:
        """Check the run's arguments, restore or reset the state, then train epoch after epoch."""
        run = self._plan_run(batches_of, nb_batches, nb_epochs, validation_data, scheduler, kwargs)
        rank, world = self._dist_info()
        self._scaler = None
        if self.amp_dtype == torch.float16:
            self._scaler = torch.amp.GradScaler(self.device.type)
        if run.resume:
            run.start = self._load_checkpoint(run.ckpt_dir / CHECKPOINT_NAME, scheduler)
        else:
            self.history = []
        self._rank, self._world = rank, world
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        try:
            if world > 1:
                self._ddp = self._wrap_ddp()
            self._train_epochs(run)
        finally:
            self._ddp = None
            self._rank, self._world = 0, 1

    def _plan_run(
        self, batches_of, nb_batches, nb_epochs, validation_data, scheduler, kwargs
    ) -> _Run:
        """Validate ``fit``'s arguments (before any training) into a :class:`_Run`."""
        check_int("nb_epochs", nb_epochs, minimum=1)
        unknown = set(kwargs) - {"resume", "checkpoint_dir"}
        if unknown:
            raise ValueError(f"unknown fit arguments: {sorted(unknown)}")
        resume = kwargs.get("resume", self.resume)
        check_bool("resume", resume)
        ckpt_dir = kwargs.get("checkpoint_dir", self.checkpoint_dir)
        ckpt_dir = None if ckpt_dir is None else Path(ckpt_dir)
        if scheduler is not None and not callable(getattr(scheduler, "step", None)):
            raise ValueError(
                f"scheduler must be a torch LR scheduler, got {type(scheduler).__name__}"
            )
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            xv = self._check_x(validation_data[0], name="x_val (validation_data[0])")
            yv = self._labels(validation_data[1], xv.shape[0], name="y_val (validation_data[1])")
            validation_data = (xv, yv)
        if ckpt_dir is not None:  # fail now, not when the first epoch's checkpoint is written
            check_checkpoint_path(ckpt_dir / CHECKPOINT_NAME)
        if resume and ckpt_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        return _Run(
            batches_of,
            int(nb_batches),
            int(nb_epochs),
            validation_data,
            scheduler,
            ckpt_dir,
            bool(resume),
        )

    def _train_epochs(self, run: _Run) -> None:
        """The epochs ``run.start .. nb_epochs - 1``: hooks, batches, record, checkpoint."""
        from tqdm.auto import tqdm

        self._nb_batches = run.nb_batches
        epochs = range(run.start, run.nb_epochs)
        for epoch in tqdm(
            epochs,
            desc=type(self).__name__,
            disable=not self._show_progress,
            initial=run.start,
            total=run.nb_epochs,
        ):
            self._on_epoch_start(epoch, run.nb_epochs)
            self._metrics = EpochMetrics()
            t_epoch = time.perf_counter()
            metrics = self._train_epoch(run, epoch)
            self.model.eval()
            rec = self._epoch_history_record(run, epoch, metrics, t_epoch)
            self.history.append(rec)
            if self._rank == 0:
                logger.info(
                    "%s epoch %d/%d: loss %.4f, clean acc %.3f, robust acc %.3f, %.1f s",
                    type(self).__name__,
                    epoch + 1,
                    run.nb_epochs,
                    rec["loss"],
                    rec["clean_acc"],
                    rec["robust_acc"],
                    rec["time_epoch_s"],
                )
            self._write_checkpoint(run, epoch)
        self.model.eval()

    @property
    def _show_progress(self) -> bool:
        return self.verbose and self._rank == 0

    def _train_epoch(self, run: _Run, epoch: int) -> EpochMetrics:
        """One pass over the epoch's batches: attack, objective, update, ``_after_step`` hook. Returns
        the epoch's metrics, summed over the ranks."""
        from tqdm.auto import tqdm

        metrics = self._metrics
        note = checkpoint_note(run.ckpt_dir, epoch)
        bar = tqdm(
            run.batches_of(epoch),
            total=run.nb_batches,
            desc=f"epoch {epoch + 1}/{run.nb_epochs}",
            disable=not self._show_progress,
            leave=False,
        )
        for b, item in enumerate(bar):
            xb, yb, ctx = self._batch(item, epoch, b)
            obj = self._batch_objective(xb, yb, ctx)
            where = f"epoch {epoch + 1}/{run.nb_epochs}, batch {b + 1}/{run.nb_batches}"
            self._update(obj, ctx, xb.shape[0], where, note)
            self._after_step(obj, ctx)
            metrics.add(obj, xb.shape[0])
            bar.set_postfix(loss=f"{metrics.loss_sum / metrics.n_seen:.3f}", refresh=False)
        if self._world > 1:  # the epoch's sums over every rank's examples (one collective)
            from ..bench.distributed import all_reduce_sum

            metrics = metrics.all_reduced(all_reduce_sum)
        return metrics

    def _batch(self, item, epoch: int, b: int) -> tuple:
        """``(x, y, ctx)`` of a batch as the loop yields it: tensors on the device (augmented when the
        trainer has an ``augment``) and its context."""
        xb = self._as_batch(item[0])
        yb = torch.as_tensor(item[1], device=self.device).long()
        if self._world == 1:
            ctx = BatchContext(epoch=epoch, batch=b, seed=self.seed)
        elif len(item) == 4:  # a share of a global batch (fit)
            ctx = BatchContext(epoch, b, self.seed, n_global=item[2], positions=item[3])
        else:  # a generator's local batch (fit_generator): the global batch is the union of the ranks'
            from ..bench.distributed import all_reduce_tensor

            # a tensor on the device: nccl reduces CUDA tensors only
            size = torch.tensor([float(xb.shape[0])], device=self.device)
            n_global = int(all_reduce_tensor(size, "sum")[0])
            ctx = BatchContext(epoch, b, self.seed, n_global=n_global, positions=None)
        if self.augment is not None:
            xb = self._augmented(xb, ctx)
        return xb, yb, ctx

    def _augmented(self, xb: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        """``self.augment`` applied with per-example draws of the (seed, epoch, batch) generator: drawn
        for the whole global batch and cut to this rank's rows, so a run is reproducible, resumes
        identically and augments each example alike on any number of ranks (``fit_generator`` under
        several ranks: each rank draws for its own rows from the same stream)."""
        n = xb.shape[0] if ctx.positions is None else ctx.n_global
        draws = torch.rand(n, self.augment.n_draws, generator=ctx.generator(11))
        xb = self.augment(xb, ctx.local(draws))
        return xb.contiguous(memory_format=torch.channels_last) if self.channels_last else xb

    def _update(
        self, obj: BatchObjective, ctx: BatchContext, m: int, where: str, note: str
    ) -> None:
        """The optimizer step on ``obj.loss`` (a batch of ``m`` examples on this rank), refused when
        the loss or the new weights are not finite."""
        if self._world == 1:
            self._check_loss_finite(obj.loss, where, note)
            grad_loss = obj.loss
        else:
            from ..bench.distributed import all_reduce_tensor

            # the global batch's loss, the same on every rank (all stop together if non-finite)
            total = all_reduce_tensor(obj.loss.detach().double().reshape(1) * m, "sum")
            self._check_loss_finite(total / ctx.n_global, where, note)
            # DDP averages the ranks' gradients: weight each rank's mean by its share m / M so the step
            # is the gradient of the global batch's mean
            grad_loss = obj.loss * (m * self._world / ctx.n_global)
        t0 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        if self._scaler is None:
            grad_loss.backward()
            self.optimizer.step()
        else:  # float16: scaled loss; steps with non-finite gradients are skipped
            self._scaler.scale(grad_loss).backward()
            self._scaler.step(self.optimizer)
            self._scaler.update()
        self._check_weights_finite(obj.loss, where, note)
        self._metrics.add_time("update", time.perf_counter() - t0)

    def _epoch_history_record(
        self, run: _Run, epoch: int, metrics: EpochMetrics, t_epoch: float
    ) -> dict:
        """The epoch's ``history`` record; steps the scheduler and runs the epoch callback."""
        lr = float(self.optimizer.param_groups[0]["lr"])
        rec = metrics.record(epoch)
        rec.update(self._epoch_record(epoch, run.nb_batches))
        rec["lr"] = lr
        rec["n_examples"] = metrics.n_seen
        if run.validation_data is not None:
            rec["val_clean_acc"] = self._accuracy(*run.validation_data)
        if isinstance(run.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            run.scheduler.step(rec["loss"])
        elif run.scheduler is not None:
            run.scheduler.step()
        rec["time_attack_s"] = metrics.timers["attack"]
        rec["time_update_s"] = metrics.timers["update"]
        rec["time_epoch_s"] = time.perf_counter() - t_epoch
        if self.eps_warmup:
            last = BatchContext(epoch=epoch, batch=run.nb_batches - 1, seed=self.seed)
            rec["eps_scale"] = self.eps_scale(last)
        if self.epoch_callback is not None:
            t_cb = time.perf_counter()
            with model_eval(self.model):
                extra = self.epoch_callback(self, epoch)
            rec.update(dict(extra or {}))
            rec["time_callback_s"] = time.perf_counter() - t_cb
        return rec

    def _write_checkpoint(self, run: _Run, epoch: int) -> None:
        """Rank 0 writes the checkpoint of ``epoch + 1`` completed epochs; the others wait for it."""
        if run.ckpt_dir is None:
            return
        if self._rank == 0:
            self._save_checkpoint(run.ckpt_dir / CHECKPOINT_NAME, epoch + 1, run.scheduler)
        if self._world > 1:  # no rank runs ahead of a checkpoint that is not yet on disk
            from ..bench.distributed import barrier

            barrier()

    def _check_loss_finite(self, loss: torch.Tensor, where: str, note: str) -> None:
        """Refuse a non-finite training loss before the optimizer step (the weights stay as they are)."""
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"{type(self).__name__}: the training loss is {value} at {where}; the optimizer step "
                f"was not taken and {note}. Typical causes: a learning rate too large, an attack "
                "returning non-finite images, a loss that overflows"
            )

    def _check_weights_finite(self, loss: torch.Tensor, where: str, note: str) -> None:
        """Refuse non-finite weights right after the optimizer step, before any checkpoint is written."""
        params = list(self.model.parameters())
        if not params or bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            return
        bad = [n for n, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())]
        raise FloatingPointError(
            f"{type(self).__name__}: the model weights became non-finite ({', '.join(bad[:5])}"
            f"{', ...' if len(bad) > 5 else ''}) after the optimizer step at {where} (training loss "
            f"{float(loss.detach()):.4g}); {note}. Lower the learning rate or clip the gradients"
        )

    @torch.no_grad()
    def _accuracy(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
        correct = 0
        with model_eval(self.model):
            for s in range(0, x.shape[0], batch_size):
                xb = self._as_batch(x[s : s + batch_size])
                pred = self.logits(xb).argmax(1).cpu().numpy()
                correct += int((pred == y[s : s + batch_size]).sum())
        return correct / x.shape[0]

    # ---------------------------------------------------------------------------------- checkpoints
    def _save_checkpoint(self, path: Path, epoch: int, scheduler) -> None:
        """Write the run's state after ``epoch`` completed epochs (:mod:`.checkpoint`)."""
        save_checkpoint(
            path,
            trainer=type(self).__name__,
            epoch=epoch,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=None if scheduler is None else scheduler.state_dict(),
            history=self.history,
            trainer_state=self._state(),
            scaler=None if self._scaler is None else self._scaler.state_dict(),
        )

    def _load_checkpoint(self, path: Path, scheduler) -> int:
        """Restore the run from ``path`` (if it exists); returns the number of completed epochs."""
        check_checkpoint_path(path)
        if not path.exists():
            logger.info("no checkpoint at %s: starting from epoch 0", path)
            self.history = []
            return 0
        state = read_checkpoint(path, type(self).__name__, map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            if state["scheduler"] is None:
                raise ValueError("scheduler given but the checkpoint holds no scheduler state")
            scheduler.load_state_dict(state["scheduler"])
        self.history = list(state["history"])
        self._load_state(state["trainer_state"])
        if self._scaler is not None and state.get("scaler") is not None:
            self._scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"])
        logger.info("resumed %s from %s after epoch %d", type(self).__name__, path, state["epoch"])
        return int(state["epoch"])


@dataclass
class _Run:
    """One ``fit`` call: where the batches come from and what surrounds the epochs."""

    batches_of: Callable[[int], Iterable]  # epoch -> the epoch's batches
    nb_batches: int
    nb_epochs: int
    validation_data: tuple | None
    scheduler: Any
    ckpt_dir: Path | None
    resume: bool
    start: int = 0  # first epoch to train (after a resume: the epochs the checkpoint holds)


def check_attacks(name: str, attacks: Sequence[Any]) -> list:
    """Validate a non-empty list of package attacks (``ValueError`` naming ``name``)."""
    if (
        attacks is None
        or isinstance(attacks, (str, bytes))
        or not hasattr(attacks, "__len__")
        or len(attacks) == 0
    ):
        raise ValueError(f"{name} must be a non-empty list of attacks, got {attacks!r}")
    for i, a in enumerate(attacks):
        _check_attack(f"{name}[{i}]", a)
    return list(attacks)
