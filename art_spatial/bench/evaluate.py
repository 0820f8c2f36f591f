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

import hashlib
import importlib
import inspect
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_images, check_labels
from ..attacks.base import estimator_logits_fn, model_eval
from . import distributed as D
from .profiles import invariance_counts, robustness_counts
from .scores import (
    RobustnessReport,
    _no_scores_message,
    _read_json,
    _resolve,
    atomic_write_json,
    strengths_from_record,
)
from .suites import SCORE_CONVENTIONS, AttackEntry, Suite, get_suite

logger = logging.getLogger(__name__)

__all__ = ["evaluate", "reliability_checks", "build_attack", "as_classifier", "STATE_VERSION"]

STATE_VERSION = 1
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


# ----------------------------------------------------------------------------------------- state
def _data_fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    h = hashlib.sha1()
    h.update(x.detach().cpu().contiguous().numpy().tobytes())
    h.update(y.detach().cpu().numpy().astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def _load_state(path: str | None, fingerprint: str) -> dict[str, Any]:
    empty = {
        "version": STATE_VERSION,
        "fingerprint": fingerprint,
        "clean": None,
        "attacks": {},
        "profiles": {},
    }
    if path is None or not os.path.exists(path):
        return empty
    remedy = (
        "delete it (or move it away) to start the evaluation over, or choose another state_path "
        "(art-spatial evaluate: pass --overwrite)"
    )
    state = _read_json(path, "the evaluation state file (state_path)", remedy)
    missing = [k for k in empty if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(
            f"the evaluation state file (state_path) {path!r} is not a state file of this harness "
            f"(it lacks the entries {missing}): {remedy}"
        )
    if state.get("fingerprint") != fingerprint or state.get("version") != STATE_VERSION:
        raise ValueError(
            f"state_path {path!r} belongs to a different evaluation (suite, data, seed or options "
            "differ); delete it or choose another state_path (art-spatial evaluate: pass --overwrite "
            "to start over, or another --out)"
        )
    logger.info(
        "resuming from %s: clean %s, attacks %s, profiles %s",
        path,
        state["clean"] is not None,
        sorted(state["attacks"]),
        sorted(state["profiles"]),
    )
    return state


def _save_state(path: str | None, state: dict[str, Any]) -> None:
    if path is not None and D.is_main():
        atomic_write_json(path, state)
    D.barrier()


# ------------------------------------------------------------------------------------------- run
_COMPONENT_KEYS = ("n_attacked", "n_fooled", "n_forward", "n_backward")


def _component_record(attack) -> dict[str, Any]:
    """The ensemble's per-component counts (summed over ranks) and its warnings; ``{}`` for other attacks."""
    stats = getattr(attack, "component_stats", None)
    if stats is None:
        return {}
    names = [c["name"] for c in stats]
    summed = D.all_reduce_sum([float(c[k]) for c in stats for k in _COMPONENT_KEYS])
    walls = D.all_reduce_max([float(c["wall_time_s"]) for c in stats]) if stats else []
    comps = []
    for i, name in enumerate(names):
        row = {"name": name}
        for j, k in enumerate(_COMPONENT_KEYS):
            row[k] = int(summed[i * len(_COMPONENT_KEYS) + j])
        row["wall_time_s"] = walls[i]
        comps.append(row)
    return {"components": comps, "attack_warnings": component_warnings(comps)}


def component_warnings(comps: list[dict]) -> list[str]:
    """The ensemble's reliability warning from its per-component counts (empty when there is none)."""
    rs = next((c for c in comps if c["name"] == "random-search"), None)
    gradient = any(c["name"] in ("apgd-ce", "apgd-t") for c in comps)
    if rs is None or not gradient or rs["n_fooled"] == 0:
        return []
    return [
        f"the gradient-free random search fooled {rs['n_fooled']} example(s) on which every gradient "
        "component failed: the model's gradients may be masked (gradient attacks alone would "
        "overestimate its robustness)"
    ]


def _batches(idx: np.ndarray, batch_size: int):
    for s in range(0, len(idx), batch_size):
        yield idx[s : s + batch_size]


def _run_attack_entry(
    entry: AttackEntry,
    attack,
    logits_fn,
    x,
    y,
    clean_ok,
    local_idx,
    batch_size,
    clip,
    mode,
    attack_misclassified,
    pbar,
) -> dict[str, Any]:
    m = len(entry.iterations) if entry.iterations else 1
    robust = np.zeros(m)
    robust_c = np.zeros(m)
    n_all = int(x.shape[0])
    per_example = np.zeros(
        (n_all, m)
    )  # robust (1) or not (0) per point and strength; rows = points
    sums = dict.fromkeys(_SIZE_KEYS, 0.0)
    maxs = dict.fromkeys(_SIZE_KEYS, 0.0)
    n_att = nf = nb = 0
    t0 = time.perf_counter()
    todo = local_idx if attack_misclassified else local_idx[clean_ok[local_idx]]
    if hasattr(attack, "reset_stats"):  # the ensemble's per-component counts
        attack.reset_stats()
    for bidx in _batches(todo, batch_size):
        ib = torch.as_tensor(bidx, device=x.device)
        xb, yb = x[ib], y[ib]
        res = attack.attack_tensor(
            logits_fn, xb, yb, clip_values=clip, record=bool(entry.iterations)
        )
        if entry.iterations:
            corr = res.correct
            if corr is None:
                raise ValueError(
                    f"attack {entry.name!r} returned no per-iterate record; give it no iterations"
                )
            cols = [
                corr[:, k] if mode == "final" else corr[:, : k + 1].all(1) for k in entry.iterations
            ]
            ok = torch.stack(cols, 1)
        else:
            ok = (~torch.as_tensor(res.success, device=xb.device).bool()).unsqueeze(1)
        cb = torch.as_tensor(clean_ok[bidx], device=ok.device)
        robust += ok.sum(0).cpu().numpy()
        per_example[bidx] = ok.cpu().numpy()
        robust_c += (ok & cb.unsqueeze(1)).sum(0).cpu().numpy()
        sizes = {
            "max_displacement_px": res.max_displacement_px,
            "mean_displacement_px": res.mean_displacement_px,
            "pixel_linf": res.pixel_linf,
            "rotation_abs_deg": torch.as_tensor(res.rotation_deg).abs(),
            "translation_abs_px": torch.as_tensor(res.translation_px).abs().amax(1),
        }
        for k, v in sizes.items():
            v = torch.as_tensor(v).detach().double()
            sums[k] += float(v.sum())
            maxs[k] = max(maxs[k], float(v.max())) if v.numel() else maxs[k]
        n_att += len(bidx)
        nf += int(res.n_forward)
        nb += int(res.n_backward)
        if pbar is not None:
            pbar.update(len(bidx))
    wall = time.perf_counter() - t0
    # merge across ranks
    merged = D.all_reduce_sum(
        list(robust) + list(robust_c) + [sums[k] for k in _SIZE_KEYS] + [n_att, nf, nb]
    )
    mx = D.all_reduce_max([maxs[k] for k in _SIZE_KEYS] + [wall])
    robust, robust_c = merged[:m], merged[m : 2 * m]
    per_example = np.asarray(D.all_reduce_sum(list(per_example.T.reshape(-1)))).reshape(m, n_all)
    s = merged[2 * m : 2 * m + len(_SIZE_KEYS)]
    n_att, nf, nb = (int(v) for v in merged[2 * m + len(_SIZE_KEYS) :])
    extra = _component_record(attack)
    return {
        **extra,
        "robust": [int(v) for v in robust],
        "robust_on_correct": [int(v) for v in robust_c],
        "n_attacked": n_att,
        # per strength, one character per point: "1" robust, "0" not (for bootstrap intervals)
        "robust_examples": ["".join("1" if v > 0.5 else "0" for v in row) for row in per_example],
        "n_forward": nf,
        "n_backward": nb,
        "wall_time_s": mx[-1],
        "perturbation": {
            **{f"mean_{k}": (s[i] / n_att if n_att else 0.0) for i, k in enumerate(_SIZE_KEYS)},
            **{f"max_{k}": mx[i] for i, k in enumerate(_SIZE_KEYS)},
        },
    }


def _run_profile(p, logits_fn, x, local_idx, clean_pred, batch_size, clip, seed) -> dict[str, Any]:
    counts = np.zeros(len(p.values))
    nf = nb = 0
    t0 = time.perf_counter()
    for bidx in _batches(local_idx, batch_size):
        ib = torch.as_tensor(bidx, device=x.device)
        xb, pb = x[ib], clean_pred[ib]
        if p.kind == "robustness":
            prm = p.params
            c, f_, b_ = robustness_counts(
                logits_fn,
                xb,
                p.values,
                clip_values=clip,
                eps_step=float(prm.get("eps_step", 0.01)),
                max_iter=int(prm.get("max_iter", 40)),
                random_init=bool(prm.get("random_init", True)),
                seed=seed,
                clean_pred=pb,
            )
            nf, nb = nf + f_, nb + b_
        else:
            c = invariance_counts(
                logits_fn,
                xb,
                p.kind,
                p.values,
                seed=seed,
                clean_pred=pb,
                interpolation=p.params.get("interpolation", "nearest"),
            )
            nf += len(bidx) * len(p.values)
        counts += np.asarray(c, dtype=np.float64)
    wall = time.perf_counter() - t0
    merged = D.all_reduce_sum(list(counts) + [len(local_idx), nf, nb])
    n = int(merged[len(p.values)])
    c = merged[: len(p.values)]
    return {
        "kind": p.kind,
        "values": list(p.values),
        "unchanged": [int(v) for v in c],
        "rates": [v / n if n else float("nan") for v in c],
        "n": n,
        "n_forward": int(merged[-2]),
        "n_backward": int(merged[-1]),
        "wall_time_s": D.all_reduce_max([wall])[0],
    }


def evaluate(
    model_or_classifier,
    x,
    y,
    suite,
    reference=None,
    n_examples: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    state_path: str | None = None,
    *,
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
    """Evaluate a model on a suite (Pareto AT §4.4 scores, CuSP profiles); see the module docstring.

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
        state_path: JSON file of the resumable state (written atomically after every unit).
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

    Returns:
        A :class:`~art_spatial.bench.scores.RobustnessReport`.
    """
    from tqdm.auto import tqdm

    from .. import __version__

    t_start = time.perf_counter()
    suite_obj: Suite = get_suite(suite)
    if mode is not None and mode not in ("final", "worst"):
        raise ValueError(f"mode must be None, 'final' or 'worst', got {mode!r}")
    if score_convention is not None and score_convention not in SCORE_CONVENTIONS:
        raise ValueError(
            f"score_convention must be None or one of {SCORE_CONVENTIONS}, got {score_convention!r}"
        )
    convention = score_convention or suite_obj.score_convention
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n_examples is not None:
        if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
            raise ValueError(f"n_examples must be a positive integer or None, got {n_examples!r}")
    if not isinstance(x, torch.Tensor):
        x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images N x C x H x W, got shape {tuple(x.shape)}")
    # labels first, before anything uses them: indices or one-hot rows, never truncated
    given = _is_art_classifier(model_or_classifier)
    known_classes = model_or_classifier.nb_classes if given else nb_classes
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
        check_images(x, name="x", clip_values=clip_values)
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
    if n_examples is not None:
        x_t, y_t = x_t[:n_examples], y_t[:n_examples]
    n = int(x_t.shape[0])
    if n == 0:
        raise ValueError("x is empty: nothing to evaluate")

    classifier = as_classifier(
        model_or_classifier, x_t, nb_classes=nb_classes, clip_values=clip_values
    )
    if known_classes is None:  # the upper bound, now that the model's classes are known
        check_labels(y, len(x), classifier.nb_classes, name="y")
    module = getattr(classifier, "model", None)
    device = getattr(classifier, "_device", torch.device("cpu"))
    clip = classifier.clip_values if classifier.clip_values is not None else None
    clip = (float(np.min(clip[0])), float(np.max(clip[1]))) if clip is not None else None
    logits_fn = estimator_logits_fn(classifier)
    x_t, y_t = x_t.to(device), y_t.to(device)
    was_training = bool(
        isinstance(module, torch.nn.Module) and any(m.training for m in module.modules())
    )

    entry_modes = {a.name: (mode or a.mode) for a in suite_obj.attacks}
    attacks = {
        a.name: build_attack(a, classifier, seed, entry_modes[a.name]) for a in suite_obj.attacks
    }
    # resolved before attacking: a bad reference fails fast
    ref = _resolve(reference, suite=suite_obj)
    if ref is not None and ref.as_given is None and ref.scores(convention) is None:
        raise ValueError(_no_scores_message(ref, convention))

    rank, world = D.dist_info()
    local_idx = D.shard_indices(n, rank, world)
    data_fp = _data_fingerprint(x_t, y_t)
    fp_src = json.dumps(
        {
            "suite": suite_obj.counting_dict(),
            "n": n,
            "seed": seed,
            "modes": entry_modes,
            "attack_misclassified": attack_misclassified,
            "data": data_fp,
        },
        sort_keys=True,
    )
    fingerprint = hashlib.sha1(fp_src.encode()).hexdigest()[:16]
    state_path = os.fspath(state_path) if state_path is not None else None
    state = _load_state(state_path, fingerprint)
    # every rank reads the state before rank 0 writes it (first after the clean pass): a rank that
    # started late must not see a unit as finished that the others are still saving (a deadlock)
    D.barrier()
    resumed = (
        [k for k in ("clean",) if state["clean"] is not None]
        + list(state["attacks"])
        + list(state["profiles"])
    )

    total = n * (len(suite_obj.attacks) + len(suite_obj.profiles))
    pbar = tqdm(total=total, desc=f"evaluate {suite_obj.name}", disable=not verbose or rank != 0)
    with model_eval(module):
        warnings = state.get("warnings")
        if warnings is None:
            warnings = []
            if checks:
                m = min(n, 16)
                warnings = reliability_checks(
                    module, logits_fn, x_t[:m], y_t[:m], was_training=was_training
                )
            for w in warnings:
                logger.warning("reliability check: %s", w)
            state["warnings"] = warnings
        # clean pass (every rank computes all predictions: needed for skipping and the profiles)
        with torch.no_grad():
            clean_pred = torch.cat(
                [logits_fn(x_t[s : s + batch_size]).argmax(1) for s in range(0, n, batch_size)]
            )
        clean_ok = (clean_pred == y_t).cpu().numpy()
        if state["clean"] is None:
            state["clean"] = {"n": n, "n_correct": int(clean_ok.sum())}
            _save_state(state_path, state)
            if callback is not None:
                callback("clean", dict(state["clean"]))
        n_correct = state["clean"]["n_correct"]

        for entry in suite_obj.attacks:
            if entry.name in state["attacks"]:
                pbar.update(n)
                continue
            pbar.set_postfix_str(entry.name)
            rec = _run_attack_entry(
                entry,
                attacks[entry.name],
                logits_fn,
                x_t,
                y_t,
                clean_ok,
                local_idx,
                batch_size,
                clip,
                entry_modes[entry.name],
                attack_misclassified,
                pbar if rank == 0 else None,
            )
            if not attack_misclassified:
                pbar.update(n - rec["n_attacked"])
            state["attacks"][entry.name] = rec
            _save_state(state_path, state)
            if callback is not None:
                callback("attack", {"name": entry.name, **rec})

        for p in suite_obj.profiles:
            if p.name in state["profiles"]:
                pbar.update(n)
                continue
            pbar.set_postfix_str(p.name)
            rec = _run_profile(p, logits_fn, x_t, local_idx, clean_pred, batch_size, clip, seed)
            pbar.update(n)
            state["profiles"][p.name] = rec
            _save_state(state_path, state)
            if callback is not None:
                callback("profile", {"name": p.name, **rec})
    pbar.close()

    attack_reports = []
    for entry in suite_obj.attacks:
        rec = state["attacks"][entry.name]
        full = {
            "n": n,
            "n_clean_correct": n_correct,
            "labels": entry.strength_labels(),
            "iterations": entry.iterations,
            **rec,
        }
        attack_reports.append(
            {
                "name": entry.name,
                "attack": entry.attack,
                "category": entry.category,
                "mode": entry_modes[entry.name],
                "iterations": entry.iterations,
                "params": entry.attack_params(),
                "strengths": strengths_from_record(full),
                "perturbation": rec["perturbation"],
                "n_attacked": rec["n_attacked"],
                "robust_examples": rec.get("robust_examples"),
                "wall_time_s": rec["wall_time_s"],
                "n_forward": rec["n_forward"],
                "n_backward": rec["n_backward"],
                **({"components": rec["components"]} if "components" in rec else {}),
            }
        )
    report = RobustnessReport(
        suite=suite_obj.name,
        suite_config=suite_obj.to_dict(),
        n_examples=n,
        n_clean_correct=n_correct,
        clean_accuracy=100.0 * n_correct / n,
        attacks=attack_reports,
        score_convention=convention,
        profiles={k: dict(v) for k, v in state["profiles"].items()},
        warnings=list(state["warnings"])
        + [
            f"attack {e.name!r}: {w}"
            for e in suite_obj.attacks
            for w in state["attacks"][e.name].get("attack_warnings", [])
        ],
        wall_time_s=time.perf_counter() - t_start,
        model_name=model_name,
        meta={
            "seed": seed,
            "batch_size": batch_size,
            "world_size": world,
            "attack_misclassified": attack_misclassified,
            "resumed_units": resumed,
            "data_fingerprint": data_fp,
            # one character per point: "1" classified correctly without attack (bootstrap intervals)
            "clean_correct_examples": "".join("1" if v else "0" for v in clean_ok),
            "art_spatial": __version__,
            "torch": torch.__version__,
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
    )
    report._set_reference(ref)
    report.recompute_scores()
    if ref is None:
        logger.info(
            "%s: no reference given, so no universal score; pass reference=<a natural model's report "
            "evaluated on the same points> (or reference='paper' for the paper's natural-model "
            "numbers, a different model)",
            suite_obj.name,
        )
    elif ref.name and ref.data_fingerprint is None and ref.as_given is None:
        logger.info("universal score against %s", ref.name)
    return report
