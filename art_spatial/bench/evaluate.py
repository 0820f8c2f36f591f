"""The harness: run a suite on a model and return a :class:`~art_spatial.bench.scores.RobustnessReport`.

Scores follow Pareto AT §4.4 / Table 1 (see :mod:`art_spatial.bench.scores`); suites are data
(:mod:`art_spatial.bench.suites`); profiles follow CuSP (:mod:`art_spatial.bench.profiles`).

Score convention: every strength's accuracy is computed on all points and on the points classified
correctly without attack; the suite's ``score_convention`` (``pareto-mnist`` / ``pareto-cifar10``:
``"correct-only"``, the paper's score) chooses which one makes ``report.category_scores`` and
``report.universal``; the other is reported beside it. The universal score needs ``reference=``, a
natural model's report evaluated by this harness on the same points; without one it is None.

Multi-strength in one run. For an attack listed with iteration counts ``k_1 < … < k_m`` the harness runs
it once to ``K = k_m`` steps through the attacks' tensor API with ``record=True``; ``correct[:, k]`` is
the correctness of iterate k, which is exactly the final iterate of a separate k-step run under the same
seed (per-example random starts; the first k steps of both runs coincide). So one run costs K
forward/backward passes instead of ``Σ k_i``: for pareto-mnist 80 instead of 200 per example (0.40×).
``mode="worst"`` scores the stronger "any iterate misclassified" variant, ``correct[:, :k+1].all(1)``:
a point fooled at iterate t is non-robust at every k ≥ t, so the run drops it from the batch at once
(the engine's early stop with τ = 0) — no later iterate can change its score, and the passes it would
have spent are saved.

Points the model misclassifies without attack are counted non-robust without attacking them
(AutoAttack's convention; ``attack_misclassified=True`` attacks them too). This applies equally to
the one-run and the separate-run evaluations.

Reliability (AutoAttack-style checks), reported in ``report.warnings``: model in
train mode, outputs that look like probabilities, all-zero input gradients, a non-deterministic
forward. Resumable: with ``state_path`` the merged counts of every finished unit (clean pass, each
attack, each profile) are written atomically; a rerun with the same arguments skips finished units.
Distributed: under an initialized ``torch.distributed`` group the examples are sharded across ranks and
the counts summed (:mod:`art_spatial.bench.distributed`).

Example:
    >>> import torch
    >>> from art_spatial.models import SmallCNN
    >>> from art_spatial.data import load_mnist5k
    >>> x, y = load_mnist5k("test")
    >>> rep = evaluate(SmallCNN(), x[:4], y[:4], "smoke-mnist")  # doctest: +SKIP
    >>> sorted(rep.category_scores)  # doctest: +SKIP
    ['global', 'local', 'sensitivity']
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_images, check_labels
from ..attacks.base import estimator_logits_fn, model_eval
from . import distributed as D
from .profiles import invariance_counts, robustness_counts
from .scores import RobustnessReport, _no_scores_message, _resolve
from .state import (
    COMPONENT_KEYS,
    STATE_VERSION,
    AttackRecord,
    CleanRecord,
    EvaluationState,
    ProfileRecord,
    component_warnings,
)
from .suites import SCORE_CONVENTION_CHOICES, AttackEntry, Suite, get_suite

logger = logging.getLogger(__name__)

__all__ = ["evaluate", "reliability_checks", "build_attack", "as_classifier", "STATE_VERSION"]

#: realised perturbation sizes of an attack's report (``mean_<key>`` / ``max_<key>``)
_SIZE_KEYS = (
    "max_displacement_px",
    "mean_displacement_px",
    "pixel_linf",
    "rotation_abs_deg",
    "translation_abs_px",
)


# ------------------------------------------------------------------------------------------ model
def _is_art_classifier(obj) -> bool:
    return (
        hasattr(obj, "_model")
        and hasattr(obj, "_apply_preprocessing")
        and hasattr(obj, "clip_values")
    )


def as_classifier(
    model_or_classifier, x: torch.Tensor, nb_classes: int | None = None, clip_values=(0.0, 1.0)
):
    """An ART ``PyTorchClassifier`` for ``model_or_classifier`` (returned unchanged if it is one)."""
    if _is_art_classifier(model_or_classifier):
        return model_or_classifier
    if not isinstance(model_or_classifier, torch.nn.Module):
        raise ValueError(
            "model_or_classifier must be a torch.nn.Module or an ART PyTorchClassifier, got "
            f"{type(model_or_classifier).__name__}"
        )
    from ..models import make_classifier

    model = model_or_classifier
    param = next(model.parameters(), None)
    on_gpu = param is not None and param.device.type == "cuda"
    if nb_classes is None:
        with model_eval(model), torch.no_grad():
            dev = param.device if param is not None else torch.device("cpu")
            nb_classes = int(model(x[:1].to(dev)).shape[1])
    return make_classifier(
        model,
        input_shape=tuple(x.shape[1:]),
        nb_classes=nb_classes,
        clip_values=clip_values,
        device_type="gpu" if on_gpu else "cpu",
    )


def _declared_input_shape(model) -> tuple[int, ...] | None:
    """The ``C, H, W`` an ``nn.Module`` declares in an ``input_shape`` attribute (of itself or a
    submodule, e.g. :class:`~art_spatial.models.SmallCNN`), None when it declares none."""
    if not isinstance(model, torch.nn.Module):
        return None
    from ..models import _infer_input_shape

    shape = _infer_input_shape(model)
    return shape if shape is not None and len(shape) == 3 else None


def _import_class(path: str):
    module, _, name = path.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"attack class {path!r} is not available ({exc}); the suite needs it"
        ) from exc
    try:
        return getattr(mod, name)
    except AttributeError:
        raise ImportError(f"module {module!r} has no attack class {name!r}") from None


def build_attack(entry: AttackEntry, classifier, seed: int, mode: str):
    """Instantiate the ART attack of a suite entry on ``classifier`` (validates its parameters)."""
    cls = _import_class(entry.class_path)
    params = entry.attack_params()
    params.setdefault("seed", seed)
    sig = inspect.signature(cls.__init__).parameters
    if mode == "worst" and entry.iterations:
        if "early_stop_tau" not in sig:
            raise ValueError(
                f"suite attack {entry.name!r}: mode 'worst' needs an attack with early_stop_tau"
            )
        params["early_stop_tau"] = 0
    if "verbose" in sig:
        params["verbose"] = False
    try:
        return cls(classifier, **params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"suite attack {entry.name!r} ({entry.class_path}) params: {exc}") from exc


# ----------------------------------------------------------------------------------------- checks
def reliability_checks(
    module: torch.nn.Module | None,
    logits_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    was_training: bool = False,
) -> list[str]:
    """AutoAttack-style sanity checks before attacking; returns warnings (empty = all fine).

    * train mode: the model was in train mode (it is evaluated in eval mode);
    * probabilities: every output row is non-negative and sums to 1 (softmax outputs flatten the
      cross-entropy gradient; attacks need logits);
    * zero gradients: some examples have an all-zero input gradient of the cross-entropy (saturated or
      masked gradients make gradient attacks report false robustness);
    * non-deterministic forward: two forwards of the same batch differ (randomized defences need EOT).
    """
    warnings: list[str] = []
    if was_training:
        warnings.append(
            "model was in train mode; it was evaluated in eval mode (BatchNorm / Dropout "
            "behave differently in train mode)"
        )
    if x.shape[0] == 0:
        return warnings
    with torch.no_grad():
        out1 = logits_fn(x)
        out2 = logits_fn(x)
    if bool((out1 >= 0).all()) and bool(
        torch.allclose(out1.sum(1), torch.ones_like(out1[:, 0]), atol=1e-3)
    ):
        warnings.append(
            "model outputs look like probabilities (non-negative rows summing to 1); attacks and "
            "the cross-entropy expect logits"
        )
    diff = float((out1 - out2).abs().max())
    if diff > 1e-5 * max(1.0, float(out1.abs().max())):
        warnings.append(
            f"non-deterministic forward: two passes on the same batch differ by {diff:.3g} "
            "(randomized model: use expectation over transformation)"
        )
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(logits_fn(xg), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xg, allow_unused=True)
    zero = x.shape[0] if g is None else int((g.flatten(1).abs().amax(1) == 0).sum())
    if zero:
        warnings.append(
            f"zero gradients: {zero}/{x.shape[0]} checked examples have an all-zero input gradient "
            "(gradient masking or saturated outputs; gradient attacks may overestimate robustness)"
        )
    return warnings


# --------------------------------------------------------------------------------------- evaluate
def evaluate(
    model_or_classifier,
    x,
    y,
    suite,
    reference=None,
    n_examples: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    *,
    state_path: str | os.PathLike | None = None,
    mode: str | None = None,
    attack_misclassified: bool = False,
    nb_classes: int | None = None,
    clip_values=(0.0, 1.0),
    checks: bool = True,
    verbose: bool = False,
    callback: Callable[[str, dict], None] | None = None,
    model_name: str | None = None,
    score_convention: str | None = None,
) -> RobustnessReport:
    """Evaluate a model on a suite (Pareto AT §4.4 scores, CuSP profiles) and return its
    :class:`~art_spatial.bench.scores.RobustnessReport`; see the module docstring.

    Args:
        model_or_classifier: ``nn.Module`` returning logits (wrapped in an ART ``PyTorchClassifier``
            with ``clip_values``) or an ART ``PyTorchClassifier`` (its preprocessing is used).
        x: float images ``N x C x H x W`` (numpy or tensor), finite and inside ``clip_values`` (the
            classifier's for an ART classifier); for an ART classifier with ``channels_first=False``,
            ``N x H x W x C`` (its layout; transposed to ``N x C x H x W`` for the attacks and
            profiles, so the report equals the channels-first twin's).
        y: ``N`` integer class indices (integer-valued floats accepted, never truncated) or one-hot
            rows ``N x classes``. Both are checked before any forward pass (``ValueError`` naming
            ``x`` or ``y``: NaN / Inf, values outside ``clip_values``, integer images, channels-last
            data for a channels-first model, non-integer or out-of-range labels; see
            docs/reliability.md).
        suite: registered name, JSON path, dict or :class:`~art_spatial.bench.suites.Suite`.
        reference: what the universal score subtracts: a naturally trained model's
            :class:`~art_spatial.bench.scores.RobustnessReport` (or its JSON path / dict) evaluated by
            this harness on the same points (its scores under this report's convention are used); a
            dict ``category -> score`` (used as given); or ``"paper"`` / ``"paper:<suite>"``, the
            suite's published natural-model numbers (a different model, labelled as such). Default
            None: no universal score (``report.universal`` is None).
        n_examples: evaluate the first ``n_examples`` points (RobustBench convention); None = all.
        batch_size: attack batch size.
        seed: seed of every attack and random transformation (per-example streams).
        state_path: JSON file of the resumable state (written atomically after every unit; see
            :class:`~art_spatial.bench.state.EvaluationState`).
        mode: overrides every entry's ``mode`` (``"final"`` or ``"worst"``).
        attack_misclassified: also attack points misclassified without attack (default: count them
            non-robust without attacking, as AutoAttack).
        nb_classes: number of classes (default: inferred by a forward pass).
        clip_values: input range when wrapping an ``nn.Module``.
        checks: run the reliability checks.
        verbose: tqdm progress bar (rank 0 only).
        callback: ``callback(event, info)`` after every finished unit (``"clean"``, ``"attack"``,
            ``"profile"``); raising from it interrupts the evaluation (the state is already saved).
        model_name: stored in the report.
        score_convention: ``"correct-only"`` (accuracy on the points classified correctly without
            attack, the Pareto AT paper's score) or ``"all-points"`` (RobustBench); default: the
            suite's ``score_convention``. Both are always in the report.
    """
    t_start = time.perf_counter()
    options = _Options(
        n_examples=n_examples,
        batch_size=batch_size,
        seed=seed,
        mode=mode,
        attack_misclassified=attack_misclassified,
        nb_classes=nb_classes,
        clip_values=clip_values,
        score_convention=score_convention,
    )
    ev = _prepare(model_or_classifier, x, y, suite, reference, options)
    state, clean_pred, resumed = _run(
        ev, state_path, checks=checks, verbose=verbose, callback=callback
    )
    return _report(ev, state, clean_pred, resumed, t_start=t_start, model_name=model_name)


# ---------------------------------------------------------------------------------------- prepare
@dataclass(frozen=True)
class _Options:
    """:func:`evaluate`'s settings of what is counted (see its docstring)."""

    n_examples: int | None
    batch_size: int
    seed: int
    mode: str | None
    attack_misclassified: bool
    nb_classes: int | None
    clip_values: Any
    score_convention: str | None

    def check(self) -> None:
        """``ValueError`` naming the first invalid setting."""
        mode, convention, n_examples = self.mode, self.score_convention, self.n_examples
        if mode is not None and mode not in ("final", "worst"):
            raise ValueError(f"mode must be None, 'final' or 'worst', got {mode!r}")
        if convention is not None and convention not in SCORE_CONVENTION_CHOICES:
            raise ValueError(
                f"score_convention must be None or one of {SCORE_CONVENTION_CHOICES}, got {convention!r}"
            )
        if not _positive_int(self.batch_size):
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if n_examples is not None and not _positive_int(n_examples):
            raise ValueError(f"n_examples must be a positive integer or None, got {n_examples!r}")


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


@dataclass
class _Evaluation:
    """What :func:`_prepare` resolved: the suite, the wrapped model, the checked data on its device,
    the attacks, the reference and this rank's place among the ranks."""

    suite: Suite
    classifier: Any
    logits_fn: Callable
    x: torch.Tensor
    y: torch.Tensor
    modes: dict[str, str]
    attacks: dict[str, Any]
    reference: Any
    convention: str
    rank: int
    world: int
    options: _Options
    was_training: bool

    @property
    def n(self) -> int:
        """The number of evaluated points."""
        return int(self.x.shape[0])

    @property
    def module(self):
        """The classifier's ``nn.Module`` (None for a classifier without one)."""
        return getattr(self.classifier, "model", None)

    @property
    def clip(self) -> tuple | None:
        """The classifier's input range as two floats (None: unbounded)."""
        clip = self.classifier.clip_values
        return (float(np.min(clip[0])), float(np.max(clip[1]))) if clip is not None else None

    @property
    def local_idx(self) -> np.ndarray:
        """The points this rank evaluates."""
        return D.shard_indices(self.n, self.rank, self.world)

    @functools.cached_property
    def data_fingerprint(self) -> str:
        """A hash of the evaluated images and labels."""
        h = hashlib.sha1()
        h.update(self.x.detach().cpu().contiguous().numpy().tobytes())
        h.update(self.y.detach().cpu().numpy().astype(np.int64).tobytes())
        return h.hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """What the resumable state is keyed by: the suite with the data, seed and options."""
        return self.suite.fingerprint(
            n=self.n,
            seed=self.options.seed,
            modes=self.modes,
            attack_misclassified=self.options.attack_misclassified,
            data=self.data_fingerprint,
        )


def _checked_data(model_or_classifier, x, y, options: _Options) -> tuple:
    """``(x, y, known_classes)``: the images ``N x C x H x W`` (float tensor) and the label indices of
    the first ``n_examples`` points, checked before any forward pass."""
    if not isinstance(x, torch.Tensor):
        x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images N x C x H x W, got shape {tuple(x.shape)}")
    # labels first, before anything uses them: indices or one-hot rows, never truncated
    given = _is_art_classifier(model_or_classifier)
    known_classes = model_or_classifier.nb_classes if given else options.nb_classes
    y_idx = check_labels(y, len(x), known_classes, name="y")
    # images: the model's layout, finite, inside clip_values (before any forward pass)
    if given:
        channels_first = bool(getattr(model_or_classifier, "channels_first", True))
        check_images(
            x,
            name="x",
            input_shape=model_or_classifier.input_shape,
            channels_first=channels_first,
            clip_values=model_or_classifier.clip_values,
        )
    else:
        channels_first = True
        check_images(x, name="x", clip_values=options.clip_values)
        declared = _declared_input_shape(model_or_classifier)
        if declared is not None and tuple(x.shape[1:]) != declared:
            raise ValueError(
                f"x has shape {tuple(x.shape)} but the model declares input_shape {declared} "
                f"(images N x {' x '.join(map(str, declared))}): pass data of that shape (another "
                "dataset?), or wrap the model in an ART classifier with the input_shape of x"
            )
    x_t = torch.as_tensor(x).float()
    if not channels_first:  # the harness works N x C x H x W (estimator_logits_fn transposes back)
        x_t = x_t.permute(0, 3, 1, 2).contiguous()
    y_t = torch.as_tensor(y_idx)
    if options.n_examples is not None:
        x_t, y_t = x_t[: options.n_examples], y_t[: options.n_examples]
    if int(x_t.shape[0]) == 0:
        raise ValueError("x is empty: nothing to evaluate")
    return x_t, y_t, known_classes


def _prepare(model_or_classifier, x, y, suite, reference, options: _Options) -> _Evaluation:
    """Check the settings and the data, wrap the model, build the attacks and resolve the reference
    (all before any attack runs)."""
    suite_obj: Suite = get_suite(suite)
    options.check()
    x_t, y_t, known_classes = _checked_data(model_or_classifier, x, y, options)
    classifier = as_classifier(
        model_or_classifier, x_t, nb_classes=options.nb_classes, clip_values=options.clip_values
    )
    if known_classes is None:  # the upper bound, now that the model's classes are known
        check_labels(y, len(x), classifier.nb_classes, name="y")
    device = getattr(classifier, "device", torch.device("cpu"))
    module = getattr(classifier, "model", None)
    logits_fn = estimator_logits_fn(classifier)
    modes = {a.name: (options.mode or a.mode) for a in suite_obj.attacks}
    seed = options.seed
    attacks = {a.name: build_attack(a, classifier, seed, modes[a.name]) for a in suite_obj.attacks}
    convention = options.score_convention or suite_obj.score_convention
    ref = _resolve(reference, suite=suite_obj)  # before attacking: a bad reference fails fast
    if ref is not None and ref.as_given is None and ref.scores(convention) is None:
        raise ValueError(_no_scores_message(ref, convention))
    rank, world = D.dist_info()
    return _Evaluation(
        suite=suite_obj,
        classifier=classifier,
        logits_fn=logits_fn,
        x=x_t.to(device),
        y=y_t.to(device),
        modes=modes,
        attacks=attacks,
        reference=ref,
        convention=convention,
        rank=rank,
        world=world,
        options=options,
        was_training=bool(
            isinstance(module, torch.nn.Module) and any(m.training for m in module.modules())
        ),
    )


# -------------------------------------------------------------------------------------------- run
def _batches(idx: np.ndarray, batch_size: int):
    for s in range(0, len(idx), batch_size):
        yield idx[s : s + batch_size]


def _sizes(res) -> dict[str, Any]:
    """The realised perturbation sizes of an attack result, per example (:data:`_SIZE_KEYS`)."""
    return {
        "max_displacement_px": res.max_displacement_px,
        "mean_displacement_px": res.mean_displacement_px,
        "pixel_linf": res.pixel_linf,
        "rotation_abs_deg": torch.as_tensor(res.rotation_deg).abs(),
        "translation_abs_px": torch.as_tensor(res.translation_px).abs().amax(1),
    }


def _component_counts(attack) -> list[dict] | None:
    """The ensemble's per-component counts summed over ranks; None for other attacks."""
    stats = getattr(attack, "component_stats", None)
    if stats is None:
        return None
    sums = D.all_reduce_fields(
        {str(i): [float(c[k]) for k in COMPONENT_KEYS] for i, c in enumerate(stats)}
    )
    walls = D.all_reduce_max([float(c["wall_time_s"]) for c in stats]) if stats else []
    return [
        {
            "name": c["name"],
            **{k: int(v) for k, v in zip(COMPONENT_KEYS, sums[str(i)], strict=True)},
            "wall_time_s": walls[i],
        }
        for i, c in enumerate(stats)
    ]


class _AttackTally:
    """This rank's counts of one attack entry, batch by batch; :meth:`record` merges the ranks."""

    def __init__(self, n_all: int, m: int):
        self.robust = np.zeros(m)
        self.robust_c = np.zeros(m)
        self.per_example = np.zeros((n_all, m))  # robust (1) or not (0) per point and strength
        self.sums = dict.fromkeys(_SIZE_KEYS, 0.0)
        self.maxs = dict.fromkeys(_SIZE_KEYS, 0.0)
        self.passes = [0, 0, 0]  # points attacked, forward, backward

    def add(self, bidx: np.ndarray, ok: torch.Tensor, clean_ok: np.ndarray, res) -> None:
        """Count a batch: ``ok`` (points x strengths) robust, ``res`` the attack's result."""
        cb = torch.as_tensor(clean_ok[bidx], device=ok.device)
        self.robust += ok.sum(0).cpu().numpy()
        self.per_example[bidx] = ok.cpu().numpy()
        self.robust_c += (ok & cb.unsqueeze(1)).sum(0).cpu().numpy()
        for k, v in _sizes(res).items():
            v = torch.as_tensor(v).detach().double()
            self.sums[k] += float(v.sum())
            self.maxs[k] = max(self.maxs[k], float(v.max())) if v.numel() else self.maxs[k]
        for i, v in enumerate((len(bidx), res.n_forward, res.n_backward)):
            self.passes[i] += int(v)

    def record(self, wall: float, attack) -> AttackRecord:
        """The :class:`AttackRecord` of all ranks (sums and maxima over ranks)."""
        total = D.all_reduce_fields(
            {
                "robust": list(self.robust),
                "robust_on_correct": list(self.robust_c),
                "size_sums": [self.sums[k] for k in _SIZE_KEYS],
                "passes": self.passes,
            }
        )
        top = D.all_reduce_fields(
            {"size_max": [self.maxs[k] for k in _SIZE_KEYS], "wall": [wall]}, "max"
        )
        m, n_all = self.per_example.shape[1], self.per_example.shape[0]
        per_example = D.all_reduce_sum(list(self.per_example.T.reshape(-1)))
        per_example = np.asarray(per_example).reshape(m, n_all)
        n_att, nf, nb = (int(v) for v in total["passes"])
        comps = _component_counts(attack)
        mean = [(s / n_att if n_att else 0.0) for s in total["size_sums"]]
        return AttackRecord(
            robust=[int(v) for v in total["robust"]],
            robust_on_correct=[int(v) for v in total["robust_on_correct"]],
            n_attacked=n_att,
            n_forward=nf,
            n_backward=nb,
            wall_time_s=top["wall"][0],
            perturbation={
                **{f"mean_{k}": v for k, v in zip(_SIZE_KEYS, mean, strict=True)},
                **{f"max_{k}": v for k, v in zip(_SIZE_KEYS, top["size_max"], strict=True)},
            },
            # per strength, one character per point: "1" robust, "0" not (for bootstrap intervals)
            robust_examples=["".join("1" if v > 0.5 else "0" for v in row) for row in per_example],
            components=comps,
            attack_warnings=None if comps is None else component_warnings(comps),
        )


def _robust_columns(entry: AttackEntry, res, mode: str, device) -> torch.Tensor:
    """Robust (True) or not per attacked point (rows) and strength (columns) of one batch."""
    if not entry.iterations:
        return (~torch.as_tensor(res.success, device=device).bool()).unsqueeze(1)
    corr = res.correct
    if corr is None:
        raise ValueError(
            f"attack {entry.name!r} returned no per-iterate record; give it no iterations"
        )
    cols = [corr[:, k] if mode == "final" else corr[:, : k + 1].all(1) for k in entry.iterations]
    return torch.stack(cols, 1)


def _run_attack_entry(entry: AttackEntry, ev: _Evaluation, clean_ok, pbar) -> AttackRecord:
    """Attack this rank's points (the correctly classified ones unless ``attack_misclassified``)."""
    attack, mode = ev.attacks[entry.name], ev.modes[entry.name]
    tally = _AttackTally(ev.n, len(entry.iterations) if entry.iterations else 1)
    t0 = time.perf_counter()
    todo = ev.local_idx if ev.options.attack_misclassified else ev.local_idx[clean_ok[ev.local_idx]]
    if hasattr(attack, "reset_stats"):  # the ensemble's per-component counts
        attack.reset_stats()
    for bidx in _batches(todo, ev.options.batch_size):
        ib = torch.as_tensor(bidx, device=ev.x.device)
        xb, yb = ev.x[ib], ev.y[ib]
        res = attack.attack_tensor(
            ev.logits_fn, xb, yb, clip_values=ev.clip, record=bool(entry.iterations)
        )
        tally.add(bidx, _robust_columns(entry, res, mode, xb.device), clean_ok, res)
        if pbar is not None:
            pbar.update(len(bidx))
    return tally.record(time.perf_counter() - t0, attack)


def _run_profile(p, ev: _Evaluation, clean_pred: torch.Tensor) -> ProfileRecord:
    """The profile's unchanged predictions on this rank's points, summed over ranks."""
    counts = np.zeros(len(p.values))
    nf = nb = 0
    t0 = time.perf_counter()
    for bidx in _batches(ev.local_idx, ev.options.batch_size):
        ib = torch.as_tensor(bidx, device=ev.x.device)
        xb, pb = ev.x[ib], clean_pred[ib]
        if p.kind == "robustness":
            prm = p.params
            c, f_, b_ = robustness_counts(
                ev.logits_fn,
                xb,
                p.values,
                clip_values=ev.clip,
                eps_step=float(prm.get("eps_step", 0.01)),
                max_iter=int(prm.get("max_iter", 40)),
                random_init=bool(prm.get("random_init", True)),
                seed=ev.options.seed,
                clean_pred=pb,
            )
            nf, nb = nf + f_, nb + b_
        else:
            c = invariance_counts(
                ev.logits_fn,
                xb,
                p.kind,
                p.values,
                seed=ev.options.seed,
                clean_pred=pb,
                interpolation=p.params.get("interpolation", "nearest"),
            )
            nf += len(bidx) * len(p.values)
        counts += np.asarray(c, dtype=np.float64)
    wall = time.perf_counter() - t0
    total = D.all_reduce_fields({"unchanged": list(counts), "totals": [len(ev.local_idx), nf, nb]})
    n, nf, nb = (int(v) for v in total["totals"])
    return ProfileRecord(
        kind=p.kind,
        values=list(p.values),
        unchanged=[int(v) for v in total["unchanged"]],
        rates=[v / n if n else float("nan") for v in total["unchanged"]],
        n=n,
        n_forward=nf,
        n_backward=nb,
        wall_time_s=D.all_reduce_max([wall])[0],
    )


def _save(state: EvaluationState, path: str | None) -> None:
    """Write the state (rank 0), then wait for every rank."""
    if path is not None and D.is_main():
        state.to_disk(path)
    D.barrier()


def _clean_pass(ev: _Evaluation, state: EvaluationState, checks: bool) -> torch.Tensor:
    """The reliability checks (once per state) and every point's clean prediction (every rank
    computes all of them: skipping and the profiles need them)."""
    if state.warnings is None:
        warnings = []
        if checks:
            m = min(ev.n, 16)
            warnings = reliability_checks(
                ev.module, ev.logits_fn, ev.x[:m], ev.y[:m], was_training=ev.was_training
            )
        for w in warnings:
            logger.warning("reliability check: %s", w)
        state.warnings = warnings
    with torch.no_grad():
        return torch.cat(
            [
                ev.logits_fn(ev.x[s : s + ev.options.batch_size]).argmax(1)
                for s in range(0, ev.n, ev.options.batch_size)
            ]
        )


def _run(ev: _Evaluation, state_path, *, checks: bool, verbose: bool, callback) -> tuple:
    """Run every unfinished unit (clean pass, attacks, profiles), saving the state after each;
    returns ``(state, clean_pred, resumed_units)``."""
    from tqdm.auto import tqdm

    state_path = os.fspath(state_path) if state_path is not None else None
    state = EvaluationState.from_disk(state_path, ev.fingerprint)
    # every rank reads the state before rank 0 writes it (first after the clean pass): a rank that
    # started late must not see a unit as finished that the others are still saving (a deadlock)
    D.barrier()
    resumed = state.finished_units()
    n, suite = ev.n, ev.suite
    total = n * (len(suite.attacks) + len(suite.profiles))
    pbar = tqdm(total=total, desc=f"evaluate {suite.name}", disable=not verbose or ev.rank != 0)

    def finished(event: str, info: dict) -> None:
        _save(state, state_path)
        if callback is not None:
            callback(event, info)

    with model_eval(ev.module):
        clean_pred = _clean_pass(ev, state, checks)
        clean_ok = (clean_pred == ev.y).cpu().numpy()
        if state.clean is None:
            state.clean = CleanRecord(n, int(clean_ok.sum()))
            finished("clean", state.clean.to_dict())
        for entry in suite.attacks:
            if entry.name not in state.attacks:
                pbar.set_postfix_str(entry.name)
                rec = _run_attack_entry(entry, ev, clean_ok, pbar if ev.rank == 0 else None)
                pbar.update(0 if ev.options.attack_misclassified else n - rec.n_attacked)
                state.attacks[entry.name] = rec
                finished("attack", {"name": entry.name, **rec.to_dict()})
            else:
                pbar.update(n)
        for p in suite.profiles:
            if p.name not in state.profiles:
                pbar.set_postfix_str(p.name)
                state.profiles[p.name] = _run_profile(p, ev, clean_pred)
                finished("profile", {"name": p.name, **state.profiles[p.name].to_dict()})
            pbar.update(n)
    pbar.close()
    return state, clean_pred, resumed


# ----------------------------------------------------------------------------------------- report
def _attack_report(
    entry: AttackEntry, mode: str, rec: AttackRecord, n: int, n_correct: int
) -> dict:
    """A report's attack entry: the suite entry, the accuracies per strength on the ``n`` points (and
    on the ``n_correct`` classified correctly without attack) and the record's counts."""
    return {
        "name": entry.name,
        "attack": entry.attack,
        "category": entry.category,
        "mode": mode,
        "iterations": entry.iterations,
        "params": entry.attack_params(),
        "strengths": rec.strengths(n, n_correct, entry.strength_labels(), entry.iterations),
        **rec.report_fields(),
    }


def _report_meta(ev: _Evaluation, clean_pred: torch.Tensor, resumed: list[str]) -> dict[str, Any]:
    from .. import __version__

    clean_ok = (clean_pred == ev.y).cpu().numpy()
    return {
        "seed": ev.options.seed,
        "batch_size": ev.options.batch_size,
        "world_size": ev.world,
        "attack_misclassified": ev.options.attack_misclassified,
        "resumed_units": resumed,
        "data_fingerprint": ev.data_fingerprint,
        # one character per point: "1" classified correctly without attack (bootstrap intervals)
        "clean_correct_examples": "".join("1" if v else "0" for v in clean_ok),
        "art_spatial": __version__,
        "torch": torch.__version__,
        "device": str(ev.x.device),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def _report(ev: _Evaluation, state: EvaluationState, clean_pred, resumed, *, t_start, model_name):
    """The :class:`RobustnessReport` of a finished state (scored against the reference)."""
    suite, n_correct = ev.suite, state.clean.n_correct
    report = RobustnessReport(
        suite=suite.name,
        suite_config=suite.to_dict(),
        n_examples=ev.n,
        n_clean_correct=n_correct,
        clean_accuracy=100.0 * n_correct / ev.n,
        attacks=[
            _attack_report(e, ev.modes[e.name], state.attacks[e.name], ev.n, n_correct)
            for e in suite.attacks
        ],
        score_convention=ev.convention,
        profiles={k: v.to_dict() for k, v in state.profiles.items()},
        warnings=list(state.warnings)
        + [
            f"attack {e.name!r}: {w}"
            for e in suite.attacks
            for w in state.attacks[e.name].attack_warnings or []
        ],
        wall_time_s=time.perf_counter() - t_start,
        model_name=model_name,
        meta=_report_meta(ev, clean_pred, resumed),
    )
    report._set_reference(ev.reference)
    report.recompute_scores()
    if ev.reference is None:
        logger.info(
            "%s: no reference given, so no universal score; pass reference=<a natural model's report "
            "evaluated on the same points> (or reference='paper' for the paper's natural-model "
            "numbers, a different model)",
            suite.name,
        )
    elif (
        ev.reference.name
        and ev.reference.data_fingerprint is None
        and ev.reference.as_given is None
    ):
        logger.info("universal score against %s", ev.reference.name)
    return report
