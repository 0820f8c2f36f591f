"""Engstrom et al. (2019) grid and worst-of-k rotation-translation attacks (gradient-free).

"Exploring the Landscape of Spatial Robustness" (Engstrom, Tran, Tsipras, Schmidt, Madry; ICML 2019),
§3-4: the attacker picks, per example, the worst rotation-translation ``(θ, t_x, t_y)`` of a finite set:

* ``mode="grid"``: every transform of ``rotations × translations_x × translations_y`` (default
  ``linspace(-30, 30, 31) × linspace(-3, 3, 5) × linspace(-3, 3, 5)`` = 775 transforms, the identity
  included);
* ``mode="worst_of_k"``: ``k`` transforms per example drawn uniformly from the box spanned by the three
  ranges, from the example's own generator (:func:`art_spatial.attacks.engine.example_seeds`); the clean
  image is not a candidate.

"Worst" is lexicographic: a misclassifying transform first (the target predicted when ``targeted``),
then the highest cross-entropy w.r.t. the label (the lowest w.r.t. the target when ``targeted``); ties go
to the earliest candidate. Transforms are evaluated batched: a chunk of transforms × all examples of the
batch goes through the model in one forward (``eval_batch_size`` images per forward), no per-example loop.

Convention: rotation in degrees (counter-clockwise on screen), translations in pixels (right / down),
applied with :func:`art_spatial.warp.rt_to_affine` (kornia's ``translate(rotate(x))``), bilinear,
``padding_mode`` fill. The result is an :class:`AttackResult` with ``params["rt"]`` (``N x 3``);
``extras["n_fooling"]`` counts the fooling candidates per example. κ and ``stop_step`` are not defined for
a gradient-free search and are reported as 0.

Example:
    >>> import numpy as np
    >>> from art_spatial.models import SmallCNN, make_classifier
    >>> attack = GridSpatialAttack(make_classifier(SmallCNN()), rotations=[-10, 0, 10],
    ...                            translations_x=[0], translations_y=[-1, 1], verbose=False)
    >>> _ = attack.generate(np.random.rand(2, 1, 28, 28).astype("float32"), y=np.array([3, 7]))
    >>> attack.last_result.params["rt"].shape, attack.last_result.n_forward
    ((2, 3), 12)
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator

from .. import warp as W
from .base import (
    ART_DEFAULTS,
    LOOP_DEFAULTS,
    ARTAttack,
    AttackCore,
    AttackResult,
    check_choice,
    check_int,
    clamp_images,
)
from .engine import _generators, example_seeds, per_example_uniform

logger = logging.getLogger(__name__)

__all__ = ["GridSpatialAttack", "GRID_MODES", "grid_transforms"]

GRID_MODES = ("grid", "worst_of_k")
#: Engstrom et al.'s grid: 31 rotations (degrees) x 5 x 5 translations (pixels) = 775 transforms
ROTATIONS = tuple(np.linspace(-30, 30, 31).tolist())
TRANSLATIONS = tuple(np.linspace(-3, 3, 5).tolist())


def grid_transforms(rotations, translations_x, translations_y) -> np.ndarray:
    """All ``(angle, tx, ty)`` combinations, rotation-major, as a float32 ``M x 3`` array."""
    return np.array(
        list(itertools.product(rotations, translations_x, translations_y)), dtype=np.float32
    )


def _as_values(name: str, values) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from err
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {values!r}")
    return arr


@dataclass
class _GridOutput:
    x_adv: torch.Tensor
    rt: torch.Tensor
    success: torch.Tensor
    n_fooling: torch.Tensor
    n_forward: int


class _GridCore(AttackCore):
    """Gradient-free search over rotation-translations (see the module docstring): forward passes only,
    no iterative loop (its hyper-parameters besides ``targeted``, ``seed``, ``padding_mode`` are the
    candidate set and the evaluation batch)."""

    def _check_core(self):
        super()._check_core()
        _as_values("rotations", self.rotations)
        _as_values("translations_x", self.translations_x)
        _as_values("translations_y", self.translations_y)
        check_choice("mode", self.mode, GRID_MODES)
        check_int("k", self.k, minimum=1)
        check_int("eval_batch_size", self.eval_batch_size, minimum=1)

    # ------------------------------------------------------------------------------ candidates
    def _candidates(self, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """Candidate transforms ``M x N x 3`` (grid: the same M for every example; worst-of-k: drawn
        from the streams of ``seed``, None = the ``seed`` attribute)."""
        n = x.shape[0]
        seed = int(self.seed if seed is None else seed)
        if self.mode == "grid":
            t = torch.as_tensor(
                grid_transforms(self.rotations, self.translations_x, self.translations_y),
                device=x.device,
                dtype=x.dtype,
            )
            return t.unsqueeze(1).expand(t.shape[0], n, 3)
        lo = torch.tensor(
            [np.min(self.rotations), np.min(self.translations_x), np.min(self.translations_y)],
            device=x.device,
            dtype=x.dtype,
        )
        hi = torch.tensor(
            [np.max(self.rotations), np.max(self.translations_x), np.max(self.translations_y)],
            device=x.device,
            dtype=x.dtype,
        )
        u = per_example_uniform(
            _generators(example_seeds(x, seed)), (int(self.k), 3), x.device, x.dtype
        )
        return (lo + u * (hi - lo)).transpose(0, 1)  # k x N x 3

    def _render(self, x: torch.Tensor, rt: torch.Tensor, clip: tuple) -> torch.Tensor:
        h, w = x.shape[-2:]
        grid = W.make_grid(
            tuple(x.shape), affine=W.rt_to_affine(rt, h, w), device=x.device, dtype=x.dtype
        )
        return clamp_images(W.sample(x, grid, self.padding_mode), clip)

    # ------------------------------------------------------------------------------------- run
    def _attack_batch(self, model, x, y, clip, *, seed, y_true, record, final_eval, as_numpy):
        return self._summarize(self._search(model, x, y, clip, seed), x, as_numpy)

    def _search(self, model, x, y, clip, seed: int) -> _GridOutput:
        """The worst candidate per example (``y_true`` / ``record`` / ``final_eval`` do not apply)."""
        n = x.shape[0]
        cand = self._candidates(x, seed)
        m = cand.shape[0]
        targeted = bool(self.targeted)
        y = y.to(x.device).long()
        best_fool = torch.zeros(n, dtype=torch.bool, device=x.device)
        best_score = torch.full((n,), -float("inf"), device=x.device, dtype=x.dtype)
        best_idx = torch.zeros(n, dtype=torch.long, device=x.device)
        n_fooling = torch.zeros(n, dtype=torch.long, device=x.device)
        n_fwd = 0
        chunk = max(1, int(self.eval_batch_size) // max(n, 1))
        with torch.no_grad():
            for start in range(0, m, chunk):
                rt = cand[start : start + chunk]  # c x N x 3
                c = rt.shape[0]
                xs = x.unsqueeze(0).expand(c, *x.shape).reshape(c * n, *x.shape[1:])
                logits = model(self._render(xs, rt.reshape(c * n, 3), clip))
                n_fwd += c * n
                yy = y.repeat(c)
                ce = F.cross_entropy(logits, yy, reduction="none").view(c, n)
                pred = logits.argmax(1).view(c, n)
                fool = pred == y if targeted else pred != y
                score = -ce if targeted else ce
                n_fooling += fool.sum(0)
                # chunk winner: a fooling candidate first, then the best score (first index on ties)
                any_fool = fool.any(0)
                idx_fool = score.masked_fill(~fool, -float("inf")).argmax(0)
                idx = torch.where(any_fool, idx_fool, score.argmax(0))
                c_fool = any_fool
                c_score = score.gather(0, idx.unsqueeze(0)).squeeze(0)
                better = (c_fool & ~best_fool) | ((c_fool == best_fool) & (c_score > best_score))
                best_fool = torch.where(better, c_fool, best_fool)
                best_score = torch.where(better, c_score, best_score)
                best_idx = torch.where(better, idx + start, best_idx)
            chosen = cand[best_idx, torch.arange(n, device=x.device)] if n else cand.new_zeros(0, 3)
            x_adv = self._render(x, chosen, clip) if n else x.clone()
        return _GridOutput(
            x_adv=x_adv, rt=chosen, success=best_fool, n_fooling=n_fooling, n_forward=n_fwd
        )

    def _summarize(self, out: _GridOutput, x, as_numpy: bool) -> AttackResult:
        n = x.shape[0]
        h, w = x.shape[-2:]
        with torch.no_grad():
            grid = W.make_grid(
                tuple(x.shape), affine=W.rt_to_affine(out.rt, h, w), device=x.device, dtype=x.dtype
            )
            disp = W.displacement_pixels(grid).flatten(1)
            dmax = disp.amax(1) if n else disp.new_zeros(0)
            dmean = disp.mean(1) if n else disp.new_zeros(0)
        zeros = torch.zeros(n, dtype=torch.long, device=x.device)

        def cv(t):
            return t.detach().cpu().numpy() if as_numpy else t

        return AttackResult(
            x_adv=cv(out.x_adv),
            params={"rt": cv(out.rt)},
            success=cv(out.success),
            max_displacement_px=cv(dmax),
            mean_displacement_px=cv(dmean),
            rotation_deg=cv(out.rt[:, 0]),
            translation_px=cv(out.rt[:, 1:]),
            pixel_linf=cv(torch.zeros(n, device=x.device)),
            kappa=cv(zeros),
            stop_step=cv(zeros),
            correct=None,
            n_forward=out.n_forward,
            n_backward=0,
            extras={"n_fooling": cv(out.n_fooling)},
        )


class GridSpatialAttack(_GridCore, ARTAttack):
    """Engstrom et al.'s exhaustive grid / worst-of-k rotation-translation attack as an ART attack.

    Args:
        estimator: ART ``PyTorchClassifier`` (only forward passes are used).
        rotations: candidate angles in degrees (grid) / their range (worst-of-k).
        translations_x, translations_y: candidate shifts in pixels (grid) / their range (worst-of-k).
        mode: ``"grid"`` or ``"worst_of_k"``.
        k: number of random transforms per example in ``"worst_of_k"``.
        targeted: look for the target label given as ``y``.
        seed: seed of the per-example random transforms (worst-of-k).
        padding_mode: ``"zeros"`` (black fill, as Engstrom et al.) or ``"border"``.
        eval_batch_size: images per forward pass (transforms × examples); small batches are faster
            per image on CPU (SmallCNN, 1 thread: 0.9 ms/image at 128 vs 1.6 ms at 2048).
        batch_size, verbose: batch size of ``generate`` and its progress bar.

    Example:
        >>> import numpy as np
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> atk = GridSpatialAttack(make_classifier(SmallCNN()), mode="worst_of_k", k=4, verbose=False)
        >>> _ = atk.generate(np.random.rand(3, 1, 28, 28).astype("float32"), y=np.array([0, 1, 2]))
        >>> bool(np.abs(atk.last_result.params["rt"][:, 0]).max() <= 30)
        True
    """

    _defaults = {
        "rotations": ROTATIONS,
        "translations_x": TRANSLATIONS,
        "translations_y": TRANSLATIONS,
        "mode": "grid",
        "k": 10,
        **{name: LOOP_DEFAULTS[name] for name in ("targeted", "seed", "padding_mode")},
        "eval_batch_size": 128,
        **ART_DEFAULTS,
    }
    _estimator_requirements = (BaseEstimator, ClassifierMixin)
