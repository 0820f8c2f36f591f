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

Reproducibility: the batch order of an epoch is a permutation drawn from ``(seed, epoch)``; each attack
call gets the seed ``hash(seed, epoch, batch, tag)`` through the attack's ``seed`` attribute (restored
afterwards), and every other random draw of a batch (random rotations of CuSP, random targets of the joint
training mode) comes from a generator seeded the same way. Together with the checkpointed model,
optimizer, scheduler, trainer state and global RNG states (torch, numpy, python), ``resume=True`` gives
exactly the run that was not interrupted.

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
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.defences.trainer import Trainer

from .._checks import check_images, check_labels
from ..attacks.base import _clip_tuple, check_bool, check_int, check_number, model_eval

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

#: file name of the checkpoint written to ``checkpoint_dir`` after every epoch
CHECKPOINT_NAME = "last.pt"

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


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers via ``numpy.random.SeedSequence``, e.g.
    ``derive_seed(seed, epoch, batch, tag)``."""
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0] >> 1
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
class BatchContext:
    """Where the loop is: ``epoch`` (0-based), ``batch`` (0-based inside the epoch), the trainer ``seed``.

    Under distributed training (:mod:`torch.distributed`, several ranks) a rank holds only part of the
    global batch: ``n_global`` is the size of the global batch and ``positions`` (int64 tensor) the
    positions of this rank's examples in it. Both are None in a single process. A per-example random
    draw made for the whole global batch and cut with :meth:`local` is the same on any number of ranks.
    """

    epoch: int
    batch: int
    seed: int
    n_global: int | None = None
    positions: torch.Tensor | None = None

    def local(self, draw: torch.Tensor) -> torch.Tensor:
        """This rank's rows of ``draw``, a per-example draw of the whole global batch (first dimension
        ``n_global``); ``draw`` itself in a single process."""
        return draw if self.positions is None else draw[self.positions.to(draw.device)]

    def seed_for(self, tag: int) -> int:
        """Deterministic seed of this (seed, epoch, batch) for the random source number ``tag``."""
        return derive_seed(self.seed, self.epoch, self.batch, tag)

    def generator(self, tag: int) -> torch.Generator:
        """A CPU ``torch.Generator`` seeded by :meth:`seed_for`."""
        return torch.Generator().manual_seed(self.seed_for(tag))


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
    """

    loss: torch.Tensor
    losses: dict[str, Any]
    correct_clean: torch.Tensor | None = None
    correct_robust: torch.Tensor | None = None
    stats: dict[str, float] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)


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
        classifier: ART ``PyTorchClassifier`` (its ``model``, ``_optimizer``, ``_device``, ``clip_values``
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
    ):
        super().__init__(classifier)
        for attr in ("model", "_optimizer"):
            if not hasattr(classifier, attr):
                raise ValueError(
                    "classifier must be an art.estimators.classification.PyTorchClassifier, got "
                    f"{type(classifier).__name__}"
                )
        if classifier._optimizer is None:
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
        self._scaler = None
        self._rank, self._world = 0, 1
        self._ddp = None
        self._nb_batches = 1
        self.history: list[dict[str, Any]] = []
        self._timers: dict[str, float] = {}

    # ------------------------------------------------------------------------------------ accessors
    @property
    def model(self) -> torch.nn.Module:
        """The trained ``nn.Module`` (``classifier.model``)."""
        return self._classifier.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The classifier's optimizer (``classifier._optimizer``)."""
        return self._classifier._optimizer

    @property
    def device(self) -> torch.device:
        """The classifier's device."""
        return getattr(self._classifier, "_device", torch.device("cpu"))

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
        xb = torch.as_tensor(np.asarray(x_np, dtype=np.float32), device=self.device)
        xb = xb if self.channels_first else xb.permute(0, 3, 1, 2).contiguous()
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb

    # ---------------------------------------------------------------------------------- forward/attack
    def logits(self, x: torch.Tensor, fit: bool = False) -> torch.Tensor:
        """Logits of ``x`` through the classifier's PyTorch preprocessing and model (differentiable).

        The model's mode is not changed: the loop puts it in train mode for the update. ``x`` is
        ``N x C x H x W`` (the layout of the loop and the attacks); for a classifier with
        ``channels_first=False`` it is transposed to ``N x H x W x C`` before preprocessing and model.
        """
        clf = self._classifier
        if not self.channels_first:
            x = x.permute(0, 2, 3, 1)
        xp, _ = clf._apply_preprocessing(x, y=None, fit=fit, no_grad=False)
        # the update's forward goes through DistributedDataParallel (gradient all-reduce) when training
        # distributed; attacks and evaluation use the bare model
        net = self._ddp if (fit and self._ddp is not None) else clf._model
        if self.amp_dtype is None:
            return net(xp)[-1]
        from ..amp import autocast

        with autocast(xp.device, self.amp_dtype):
            out = net(xp)[-1]
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

        The attack's ``seed`` is set to ``ctx.seed_for(tag)`` (and any ``overrides``, e.g.
        ``early_stop_tau``) for this call only. Returns the attack's ``AttackResult`` (tensors); its
        ``final_eval`` pass is skipped (the update's forward provides the accuracy).
        """
        t0 = time.perf_counter()
        scale = self.eps_scale(ctx)
        if scale < 1.0:
            for name in BUDGET_ATTRS:
                if name in overrides or hasattr(attack, name):
                    value = overrides.get(name, getattr(attack, name))
                    if value is not None:
                        overrides[name] = float(value) * scale
        with override_attrs(attack, seed=ctx.seed_for(tag), **overrides), model_eval(self.model):
            res = attack.attack_tensor(
                lambda z: self.logits(z, fit=False),
                x,
                y,
                clip_values=self.clip_values,
                y_true=y_true,
                final_eval=False,
            )
        self._timers["attack"] = self._timers.get("attack", 0.0) + time.perf_counter() - t0
        return res

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

    # ----------------------------------------------------------------------------------------- data
    def _labels(self, y, n: int, name: str = "y") -> np.ndarray:
        return check_labels(y, n, self._classifier.nb_classes, name=name)

    def _check_x(self, x, name: str = "x") -> np.ndarray:
        x = np.asarray(x)
        check_images(x, name=name, input_shape=self._classifier.input_shape,
                     channels_first=self.channels_first, clip_values=self._classifier.clip_values)
        if x.shape[0] == 0:
            raise ValueError(f"{name} must not be empty")
        return x

    def _array_batches(
        self, x: np.ndarray, y: np.ndarray, batch_size: int, epoch: int, rank: int = 0, world: int = 1
    ):
        perm = np.random.default_rng(
            np.random.SeedSequence([self.seed, epoch, 0x5EED])
        ).permutation(x.shape[0])
        for start in range(0, x.shape[0], batch_size):
            idx = perm[start : start + batch_size]
            if world == 1:
                yield x[idx], y[idx]
            else:  # every rank draws the same global batch and keeps positions rank, rank + world, ...
                pos = np.arange(rank, idx.shape[0], world)
                yield x[idx[pos]], y[idx[pos]], int(idx.shape[0]), torch.as_tensor(pos)

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
        # the ART wrapper module holds the model: same parameters, rank 0's copy broadcast on wrapping
        return DistributedDataParallel(self._classifier._model, device_ids=ids)

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
            lambda epoch: self._array_batches(x, labels, batch_size, epoch, rank, world),
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
            _check_checkpoint_path(ckpt_dir / CHECKPOINT_NAME)
        rank, world = self._dist_info()
        self._scaler = None
        if self.amp_dtype == torch.float16:
            self._scaler = torch.amp.GradScaler(self.device.type)
        start = 0
        if resume:
            if ckpt_dir is None:
                raise ValueError("resume=True needs a checkpoint_dir")
            start = self._load_checkpoint(ckpt_dir / CHECKPOINT_NAME, scheduler)
        else:
            self.history = []
        self._rank, self._world = rank, world
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        try:
            if world > 1:
                self._ddp = self._wrap_ddp()
            self._train_epochs(
                batches_of, nb_batches, nb_epochs, start, validation_data, scheduler, ckpt_dir
            )
        finally:
            self._ddp = None
            self._rank, self._world = 0, 1

    def _train_epochs(
        self, batches_of, nb_batches, nb_epochs, start, validation_data, scheduler, ckpt_dir
    ) -> None:
        from tqdm.auto import tqdm

        rank, world = self._rank, self._world
        if world > 1:
            from ..bench import distributed as D
        device = self.device
        model = self.model
        self._nb_batches = int(nb_batches)
        show = self.verbose and rank == 0
        for epoch in tqdm(
            range(start, nb_epochs),
            desc=type(self).__name__,
            disable=not show,
            initial=start,
            total=nb_epochs,
        ):
            self._on_epoch_start(epoch, nb_epochs)
            self._timers = {"attack": 0.0, "update": 0.0}
            t_epoch = time.perf_counter()
            sums: dict[str, float] = {}
            stats: dict[str, float] = {}
            means: dict[str, float] = {}
            n_seen = n_clean = n_rob = 0
            c_clean = c_rob = 0
            loss_sum = 0.0
            note = self._checkpoint_note(ckpt_dir, epoch)
            bar = tqdm(
                batches_of(epoch),
                total=nb_batches,
                desc=f"epoch {epoch + 1}/{nb_epochs}",
                disable=not show,
                leave=False,
            )
            for b, item in enumerate(bar):
                xb_np, yb_np = item[0], item[1]
                xb = self._as_batch(xb_np)
                yb = torch.as_tensor(yb_np, device=device).long()
                m = xb.shape[0]
                if world == 1:
                    ctx = BatchContext(epoch=epoch, batch=b, seed=self.seed)
                elif len(item) == 4:  # a share of a global batch (fit)
                    ctx = BatchContext(epoch, b, self.seed, n_global=item[2], positions=item[3])
                else:  # a generator's local batch (fit_generator): the global batch is their union
                    size = torch.tensor([float(m)], device=device)  # nccl reduces CUDA tensors only
                    n_glob = int(D.all_reduce_tensor(size, "sum")[0])
                    ctx = BatchContext(epoch, b, self.seed, n_global=n_glob, positions=None)
                obj = self._batch_objective(xb, yb, ctx)
                where = f"epoch {epoch + 1}/{nb_epochs}, batch {b + 1}/{nb_batches}"
                if world == 1:
                    self._check_loss_finite(obj.loss, where, note)
                    grad_loss = obj.loss
                else:
                    # the global batch's loss, the same on every rank (all stop together if non-finite)
                    total = D.all_reduce_tensor(obj.loss.detach().double().reshape(1) * m, "sum")
                    self._check_loss_finite(total / ctx.n_global, where, note)
                    # DDP averages the ranks' gradients: weight each rank's mean by its share m / M so
                    # the step is the gradient of the global batch's mean
                    grad_loss = obj.loss * (m * world / ctx.n_global)
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
                self._timers["update"] += time.perf_counter() - t0
                self._after_step(obj, ctx)
                n_seen += m
                loss_sum += float(obj.loss.detach()) * m
                for k, v in obj.losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * m
                for k, v in obj.stats.items():
                    stats[k] = stats.get(k, 0.0) + float(v)
                for k, v in obj.means.items():
                    means[k] = means.get(k, 0.0) + float(v) * m
                if obj.correct_clean is not None:
                    c_clean += int(obj.correct_clean.sum())
                    n_clean += m
                if obj.correct_robust is not None:
                    c_rob += int(obj.correct_robust.sum())
                    n_rob += m
                bar.set_postfix(loss=f"{loss_sum / n_seen:.3f}", refresh=False)
            if world > 1:  # the epoch's sums over every rank's examples (one collective)
                ks, kt, km = sorted(sums), sorted(stats), sorted(means)
                head = [n_seen, loss_sum, c_clean, n_clean, c_rob, n_rob]
                vec = D.all_reduce_sum(
                    head + [sums[k] for k in ks] + [stats[k] for k in kt] + [means[k] for k in km]
                )
                n_seen, c_clean, n_clean, c_rob, n_rob = (
                    int(round(vec[i])) for i in (0, 2, 3, 4, 5)
                )
                loss_sum = vec[1]
                rest = vec[len(head) :]
                sums = dict(zip(ks, rest[: len(ks)], strict=True))
                stats = dict(zip(kt, rest[len(ks) : len(ks) + len(kt)], strict=True))
                means = dict(zip(km, rest[len(ks) + len(kt) :], strict=True))
            model.eval()
            lr = float(self.optimizer.param_groups[0]["lr"])
            rec: dict[str, Any] = {"epoch": epoch + 1, "loss": loss_sum / max(n_seen, 1)}
            rec.update({f"loss_{k}": v / max(n_seen, 1) for k, v in sums.items()})
            rec["clean_acc"] = c_clean / n_clean if n_clean else float("nan")
            rec["robust_acc"] = c_rob / n_rob if n_rob else float("nan")
            rec.update({k: v / max(n_seen, 1) for k, v in means.items()})
            rec.update(stats)
            rec.update(self._epoch_record(epoch, nb_batches))
            rec["lr"] = lr
            rec["n_examples"] = n_seen
            if validation_data is not None:
                rec["val_clean_acc"] = self._accuracy(*validation_data)
            if scheduler is not None:
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(rec["loss"])
                else:
                    scheduler.step()
            rec["time_attack_s"] = self._timers["attack"]
            rec["time_update_s"] = self._timers["update"]
            rec["time_epoch_s"] = time.perf_counter() - t_epoch
            if self.eps_warmup:
                rec["eps_scale"] = self.eps_scale(
                    BatchContext(epoch=epoch, batch=nb_batches - 1, seed=self.seed)
                )
            if self.epoch_callback is not None:
                t_cb = time.perf_counter()
                with model_eval(self.model):
                    extra = self.epoch_callback(self, epoch)
                rec.update(dict(extra or {}))
                rec["time_callback_s"] = time.perf_counter() - t_cb
            self.history.append(rec)
            if rank == 0:
                logger.info(
                    "%s epoch %d/%d: loss %.4f, clean acc %.3f, robust acc %.3f, %.1f s",
                    type(self).__name__,
                    epoch + 1,
                    nb_epochs,
                    rec["loss"],
                    rec["clean_acc"],
                    rec["robust_acc"],
                    rec["time_epoch_s"],
                )
            if ckpt_dir is not None:
                if rank == 0:
                    self._save_checkpoint(ckpt_dir / CHECKPOINT_NAME, epoch + 1, scheduler)
                if world > 1:  # no rank runs ahead of a checkpoint that is not yet on disk
                    D.barrier()
        model.eval()

    @staticmethod
    def _checkpoint_note(ckpt_dir: Path | None, epoch: int) -> str:
        """What a non-finite stop left on disk (``epoch`` = epochs completed and checkpointed)."""
        if ckpt_dir is None:
            return "no checkpoint is kept (checkpoint_dir=None)"
        path = ckpt_dir / CHECKPOINT_NAME
        if epoch == 0:
            return f"nothing was written to {path}"
        return f"{path} was not overwritten (it holds epoch {epoch})"

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
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": 1,
            "trainer": type(self).__name__,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "history": self.history,
            "trainer_state": self._state(),
            "scaler": None if self._scaler is None else self._scaler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            torch.save(state, tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def _load_checkpoint(self, path: Path, scheduler) -> int:
        _check_checkpoint_path(path)
        if not path.exists():
            logger.info("no checkpoint at %s: starting from epoch 0", path)
            self.history = []
            return 0
        remedy = (
            "delete it (or move it away) and resume again to start from epoch 0, or train with "
            "resume=False (the next checkpoint replaces it)"
        )
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)  # our own file
        except Exception as err:  # truncated / empty / garbage: torch and pickle raise many types
            raise ValueError(
                f"cannot read the trainer checkpoint {path} ({type(err).__name__}: {err}); it is "
                f"truncated, empty or not a checkpoint (e.g. an interrupted copy): {remedy}"
            ) from err
        if not isinstance(state, dict) or not _CHECKPOINT_KEYS <= set(state):
            raise ValueError(
                f"{path} is not a trainer checkpoint (it lacks the entries "
                f"{sorted(_CHECKPOINT_KEYS - set(state) if isinstance(state, dict) else _CHECKPOINT_KEYS)}; "
                f"e.g. a bare model state_dict): {remedy}"
            )
        if state.get("trainer") != type(self).__name__:
            raise ValueError(
                f"checkpoint {path} was written by {state.get('trainer')}, not {type(self).__name__}"
            )
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
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        logger.info("resumed %s from %s after epoch %d", type(self).__name__, path, state["epoch"])
        return int(state["epoch"])


#: entries every checkpoint written by ``_save_checkpoint`` has
_CHECKPOINT_KEYS = frozenset(
    {"trainer", "epoch", "model", "optimizer", "scheduler", "history", "trainer_state", "rng"}
)


def _check_checkpoint_path(path: Path) -> None:
    """Refuse, before any training, a checkpoint path that could be neither read nor written."""
    if path.is_dir():
        raise ValueError(
            f"the trainer checkpoint {path} is a directory, not a checkpoint file: remove or rename it "
            "(training then starts from epoch 0), or choose another checkpoint_dir"
        )
    if path.parent.exists() and not path.parent.is_dir():
        raise ValueError(
            f"checkpoint_dir {path.parent} is a file, not a directory: remove or rename it, or choose "
            "another checkpoint_dir"
        )


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
