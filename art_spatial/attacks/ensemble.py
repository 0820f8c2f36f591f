"""A parameter-free spatial robustness evaluation: an ensemble of diverse attacks, worst case per example.

In the spirit of AutoAttack (Croce & Hein, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", arXiv:2003.01690), for the flow, affine, rotation-translation
(RT), integrated and pixel threat models of this package. An example counts as robust only if *every*
component fails on it (the worst case over components, per example):

    robust(x, y) = ∧_c [ f(A_c(x, y)) = y ]

Components (all untargeted at the evaluation level: success = misclassification; each returns, per
example, its best iterate — misclassified first, then the highest loss):

* ``grid-seed`` (RT / affine / integrated only; gradient-free, forward passes only): a coarse
  rotation-translation grid (default 7 angles × 3 × 3 shifts spanning the budget, Engstrom et al.,
  "Exploring the Landscape of Spatial Robustness", arXiv:1712.02779), the worst candidate per example;
  its ``n_seeds`` worst candidates seed the gradient components (worst-of-k starts: spatial losses are
  non-concave, single-start ascent stalls).
* ``apgd-ce``: APGD (adaptive step, momentum, checkpoints; :class:`~art_spatial.attacks.engine.APGDStep`)
  on the cross-entropy, ``n_restarts`` restarts: from the grid seeds (RT / affine) or from the identity
  then random starts (flow, integrated, pixel).
* ``apgd-t``: APGD on the targeted DLR loss ``−(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2)`` (arXiv:2003.01690,
  Eq. 6) for the ``n_target_classes`` most likely wrong classes of the clean image, one run each.
* ``random-search``: a gradient-free random search over the same parameters in the spirit of the Square
  attack (Andriushchenko et al., arXiv:1912.00049): start at a random vertex of the budget, propose a
  change (a square window of the flow / pixel field set to a random vertex value; for RT / affine
  vectors a random move of shrinking size), keep it when the margin ``z_y − max_{i≠y} z_i`` decreases.
  It runs last, by design: whatever it fools, every gradient component failed on, and the result then
  carries a warning (as AutoAttack's checks do) — the gradients of the model are probably masked.

Runner: the components run cheapest first (by their pass budget per example; the random search last);
an example leaves as soon as it is fooled, and inside the gradient components the engine's early stop
(τ = 0) drops it at the first misclassified iterate, so no pass is spent on it afterwards.
:attr:`SpatialAutoAttack.component_stats` counts, per component, the examples attacked and fooled and
the example-level forward / backward passes spent (accumulated over ``generate`` batches until
:meth:`SpatialAutoAttack.reset_stats`). Every example draws its randomness from its own generator
seeded by ``(seed, restart, the example's bytes)``, so its verdict does not depend on the batch.

Example:
    >>> import numpy as np
    >>> from art_spatial.models import SmallCNN, make_classifier
    >>> atk = SpatialAutoAttack(make_classifier(SmallCNN()), threat="rt", n_iter=4, n_restarts=1,
    ...                         n_target_classes=1, n_queries=4, verbose=False)
    >>> _ = atk.generate(np.random.rand(2, 1, 28, 28).astype("float32"), y=np.array([3, 7]))
    >>> [c["name"] for c in atk.component_stats]
    ['grid-seed', 'apgd-ce', 'apgd-t', 'random-search']
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from art.attacks.attack import EvasionAttack

from .. import warp as W
from ..threats import L2InfFlowBall, ThreatModel
from .base import (
    ART_DEFAULTS,
    LOOP_DEFAULTS,
    ARTAttack,
    AttackCore,
    check_bool,
    check_choice,
    check_int,
    check_number,
    engine_result,
)
from .budgets import FLOW_NORMS, FLOW_UNITS
from .engine import (
    LOSSES,
    APGDStep,
    AttackSpec,
    EngineOutput,
    _generators,
    example_seeds,
    run_attack,
)
from .pixel import _PixelCore
from .spatial import _AffineCore, _FlowCore, _IntegratedCore

logger = logging.getLogger(__name__)

__all__ = [
    "SpatialAutoAttack",
    "THREATS",
    "COMPONENTS",
    "apgd_restarts",
    "random_search",
    "coarse_rt_grid",
    "restart_seed",
]

THREATS = ("flow", "affine", "rt", "integrated", "pixel")
COMPONENTS = ("grid-seed", "apgd-ce", "apgd-t", "random-search")
_GLOBAL = {"affine", "rt"}


def restart_seed(seed: int, restart: int) -> int:
    """The seed of restart ``restart`` (restart 0 uses ``seed`` itself); a non-negative int < 2**62.

    >>> restart_seed(5, 0), restart_seed(5, 1) != restart_seed(6, 1)
    (5, True)
    """
    return int(seed) if restart == 0 else (int(seed) * 1_000_003 + 7919 * int(restart)) % (2**62)


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    zy = logits.gather(1, y.view(-1, 1)).squeeze(1)
    other = logits.scatter(1, y.view(-1, 1), -float("inf")).amax(1)
    return zy - other


def _example_problem():
    """The docstring examples' toy problem: a linear 3-class model on four 4 x 4 images, a pixel budget."""
    from ..threats import LinfBox

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    spec = AttackSpec(
        blocks={"pixel": LinfBox("pixel", 0.1, 0.02, "pixel")},
        render=lambda x, p: (x + p["pixel"]).clamp(0, 1),
    )
    return model, torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]), spec


def _rank_key(fooled: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """A sortable key: misclassified first, then the higher score."""
    return torch.where(fooled, torch.full_like(score, 1e30), score.clamp(-1e29, 1e29))


# ------------------------------------------------------------------------------------- merging
class _Merged:
    """Per-example best over several runs: misclassified first, then the higher CE."""

    def __init__(self, x: torch.Tensor, spec: AttackSpec):
        n = x.shape[0]
        c, h, w = x.shape[1:]
        self.params = {
            k: tm.zeros(n, c, h, w, device=x.device, dtype=x.dtype) for k, tm in spec.blocks.items()
        }
        self.fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
        self.ce = torch.full((n,), -float("inf"), device=x.device, dtype=x.dtype)
        self.x_adv = x.detach().clone()
        self.seen = torch.zeros(n, dtype=torch.bool, device=x.device)

    def update(self, idx: torch.Tensor, params, fooled, ce, x_adv) -> torch.Tensor:
        """Merge a run on examples ``idx``; returns the (subset) mask of examples it improved."""
        bf, bc = self.fooled[idx], self.ce[idx]
        better = (fooled & ~bf) | ((fooled == bf) & (ce > bc)) | ~self.seen[idx]
        g = idx[better]
        self.seen[idx] = True
        self.fooled[g] = fooled[better]
        self.ce[g] = ce[better].to(self.ce.dtype)
        self.x_adv[g] = x_adv[better].to(self.x_adv.dtype)
        for k, v in params.items():
            self.params[k][g] = v[better].to(self.params[k].dtype)
        return better


# ---------------------------------------------------------------------------------------- grid seed
def coarse_rt_grid(
    max_rotation: float, max_translation: float, n_rot: int = 7, n_trans: int = 3
) -> torch.Tensor:
    """Rotation-translation candidates ``M x 3`` (degrees, px, px): ``n_rot × n_trans × n_trans`` points
    evenly spanning ``[−R, R] × [−T, T]²`` (the identity included when the counts are odd).

    >>> coarse_rt_grid(30, 3).shape, coarse_rt_grid(30, 3)[0].tolist()
    (torch.Size([63, 3]), [-30.0, -3.0, -3.0])
    """
    r = torch.linspace(-max_rotation, max_rotation, n_rot) if n_rot > 1 else torch.zeros(1)
    t = (
        torch.linspace(-max_translation, max_translation, n_trans)
        if n_trans > 1
        else torch.zeros(1)
    )
    return torch.cartesian_prod(r, t, t).float()


def _global_block(spec: AttackSpec) -> str | None:
    for name in spec.blocks:
        if name in _GLOBAL:
            return name
    return None


def _rt_as_block(rt: torch.Tensor, block: str, tm: ThreatModel, h: int, w: int) -> torch.Tensor:
    """RT candidates ``M x 3`` in a global block's parametrization (projected onto its budget)."""
    if block == "rt":
        return tm.project(rt)
    inc = W.rt_to_affine(rt, h, w) - torch.eye(2, 3, dtype=rt.dtype, device=rt.device)
    return tm.project(inc)


def _grid_scores(model, x, y, spec: AttackSpec, cand: torch.Tensor, eval_batch_size: int):
    """CE and misclassification of every candidate (``M x N``) of the global block, other blocks at zero."""
    block = _global_block(spec)
    n, (c, h, w) = x.shape[0], x.shape[1:]
    m = cand.shape[0]
    ces = torch.empty(m, n, device=x.device, dtype=x.dtype)
    fool = torch.empty(m, n, dtype=torch.bool, device=x.device)
    chunk = max(1, int(eval_batch_size) // max(n, 1))
    with torch.no_grad():
        for s in range(0, m, chunk):
            cc = cand[s : s + chunk]
            k = cc.shape[0]
            xs = x.unsqueeze(0).expand(k, *x.shape).reshape(k * n, c, h, w)
            params = {
                name: tm.zeros(k * n, c, h, w, device=x.device, dtype=x.dtype)
                for name, tm in spec.blocks.items()
            }
            params[block] = (
                cc.unsqueeze(1).expand(k, n, *cc.shape[1:]).reshape(k * n, *cc.shape[1:])
            )
            logits = model(spec.render(xs, params))
            yy = y.repeat(k)
            ces[s : s + k] = torch.nn.functional.cross_entropy(logits, yy, reduction="none").view(
                k, n
            )
            fool[s : s + k] = (logits.argmax(1) != yy).view(k, n)
    return ces, fool, m * n


def _grid_seeds(model, x, y, spec, cand, n_seeds, eval_batch_size):
    """The ``n_seeds`` worst candidates per example (``n_seeds`` x N x block shape), their fooling flags
    and CE, and the forward passes spent."""
    ces, fool, nf = _grid_scores(model, x, y, spec, cand, eval_batch_size)
    key = _rank_key(fool, ces)  # M x N
    k = min(int(n_seeds), cand.shape[0])
    order = key.argsort(dim=0, descending=True, stable=True)[:k]  # k x N
    seeds = cand[order]  # k x N x ...
    return seeds, fool.gather(0, order), ces.gather(0, order), nf


# ------------------------------------------------------------------------------------------- APGD
def apgd_restarts(
    model: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    *,
    n_iter: int,
    n_restarts: int = 1,
    loss: str = "ce",
    targets: torch.Tensor | None = None,
    seed: int = 0,
    inits: list[dict | None] | None = None,
    random_first: bool = False,
    early_stop: bool = True,
    policy: APGDStep | None = None,
) -> tuple[_Merged, int, int]:
    """APGD with restarts; per example, the best iterate over all restarts (misclassified first).

    Restart ``r`` starts from ``inits[r]`` (a dict of block parameters, e.g. a grid seed) when given,
    else from the identity (``r = 0`` unless ``random_first``) or from a uniformly random point of the
    budget drawn from the example's generator seeded by ``(restart_seed(seed, r), its bytes)``. An
    example fooled in a restart is not attacked again. ``loss``: ``"ce"``, ``"dlr"`` or
    ``"dlr-targeted"`` (then ``targets``: ``N`` target classes). Every iterate is projected onto the
    budget, so every restart's result is inside it. Returns the merged result (``params`` block ->
    ``N x ...``, ``fooled`` ``N`` bool, ``ce`` ``N`` cross-entropy w.r.t. ``y``, ``x_adv`` ``N x C x H x W``)
    and the example-level forward / backward passes spent. Paper: Croce & Hein 2020 (arXiv:2003.01690).

    >>> model, x, y, spec = _example_problem()  # a linear model, a pixel budget of 0.1
    >>> res, nf, nb = apgd_restarts(model, x, y, spec, n_iter=5, n_restarts=2, random_first=True)
    >>> bool(res.params["pixel"].abs().max() <= 0.1 + 1e-6), nb <= 2 * 5 * 4  # early stop: fewer
    (True, True)
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
    merged = _Merged(x, spec)
    nf = nb = 0
    policy = policy or APGDStep()
    labels = y if loss != "dlr-targeted" else torch.stack([y, targets.to(y.device)], 1)
    for r in range(int(n_restarts)):
        todo = torch.nonzero(~merged.fooled).flatten()
        if todo.numel() == 0:
            break
        init = None
        if inits is not None and r < len(inits) and inits[r] is not None:
            init = {k: v[todo] for k, v in inits[r].items()}
        rand = bool(random_first) or r > 0
        out = run_attack(
            model,
            x[todo],
            labels[todo],
            spec,
            max_iter=int(n_iter),
            y_true=y[todo],
            random_init=rand,
            seed=restart_seed(seed, r),
            early_stop_tau=0 if early_stop else None,
            final_eval=True,
            loss_fn=LOSSES[loss],
            init_params=init,
            step_policy=policy,
        )
        nf += out.n_forward
        nb += out.n_backward
        merged.update(todo, out.params, ~out.final_correct, out.final_loss, out.x_adv)
    return merged, nf, nb


# ---------------------------------------------------------------------------------- random search
def _square_p(it: int, n_queries: int, p_init: float) -> float:
    """The Square attack's schedule of the changed fraction (arXiv:1912.00049, §3; rescaled to 10000)."""
    i = int(it / max(n_queries, 1) * 10000)
    for bound, div in (
        (10, 1),
        (50, 2),
        (200, 4),
        (500, 8),
        (1000, 16),
        (2000, 32),
        (4000, 64),
        (6000, 128),
        (8000, 256),
    ):
        if i <= bound:
            return p_init / div
    return p_init / 512


def _is_field(tm: ThreatModel) -> bool:
    return tm.shape in ("flow", "pixel")


def _vertex(tm: ThreatModel, u: torch.Tensor) -> torch.Tensor:
    """A random vertex of the budget from uniform noise ``u`` of the parameter shape."""
    if isinstance(tm, L2InfFlowBall):
        phi = 2.0 * math.pi * u[..., 0]
        return torch.stack([torch.cos(phi), torch.sin(phi)], -1) * tm.eps
    return torch.where(u < 0.5, -1.0, 1.0).to(u.dtype) * tm.radius(u)


def random_search(
    model: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    *,
    n_queries: int,
    seed: int = 0,
    p_init: float = 0.8,
) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Gradient-free random search over the blocks of ``spec`` (Square-attack style, arXiv:1912.00049).

    Minimizes the margin ``z_y − max_{i≠y} z_i`` from a random vertex of the budget; at query ``i`` one
    block (cyclically) gets a proposal — for a flow / pixel field a random ``s × s`` window (side from
    the Square schedule of the changed fraction ``p_i``) set to one random vertex value (per channel /
    per flow component; a random direction of length ε for the ℓ2,∞ flow ball); for an RT / affine
    vector a uniform move of size ``2 p_i / p_init · ε`` per coordinate — projected onto the budget and
    accepted when the margin decreases. An example stops at its first misclassification. One forward per
    query and example. Returns ``(params, fooled, ce, x_adv, n_forward)`` (``N``-row tensors; ``ce`` the
    cross-entropy of ``x_adv`` w.r.t. ``y``). Randomness: the example's own generator.

    >>> model, x, y, spec = _example_problem()  # a linear model, a pixel budget of 0.1
    >>> params, fooled, ce, x_adv, nf = random_search(model, x, y, spec, n_queries=10)
    >>> bool(params["pixel"].abs().max() <= 0.1 + 1e-6), nf <= 4 * 12
    (True, True)
    """
    n, (c, h, w) = x.shape[0], x.shape[1:]
    gens = _generators(example_seeds(x, restart_seed(seed, 101))) if n else []
    names = list(spec.blocks)

    def draw(shape, idx):
        return torch.stack([torch.rand(shape, generator=gens[int(i)]) for i in idx]).to(
            x.device, x.dtype
        )

    all_idx = torch.arange(n, device=x.device)
    params = {
        k: tm.project(_vertex(tm, draw(tm.param_shape(c, h, w), all_idx)))
        for k, tm in spec.blocks.items()
    }
    if spec.feasible is not None:
        params = spec.feasible(x, params)
    nf = 0
    with torch.no_grad():
        logits = model(spec.render(x, params))
        nf += n
        margin = _margin(logits, y)
        fooled = logits.argmax(1) != y
        for it in range(int(n_queries)):
            act = torch.nonzero(~fooled).flatten()
            if act.numel() == 0:
                break
            name = names[it % len(names)]
            pi = _square_p(it, n_queries, p_init)
            noise = functools.partial(draw, idx=act.cpu())
            new = _proposal(spec.blocks[name], params[name][act], pi, p_init, noise)
            nf += _try_proposal(model, x, y, spec, params, (name, new, act), margin, fooled)
        x_adv = spec.render_final(x, params)
        ce = torch.nn.functional.cross_entropy(model(x_adv), y, reduction="none") if n else margin
        nf += n
    return params, fooled, ce, x_adv, nf


def _proposal(tm: ThreatModel, p: torch.Tensor, pi: float, p_init: float, draw) -> torch.Tensor:
    """A random-search proposal for the rows ``p`` of one block (projected onto its budget).

    Flow / pixel field: a random ``s × s`` window set to one random vertex value; RT / affine vector: a
    uniform move of ``2 p_i / p_init · ε`` per coordinate. ``draw(shape)`` gives each row's uniform noise.
    """
    if not _is_field(tm):
        u = draw(tuple(p.shape[1:]))
        size = min(2.0, 2.0 * pi / p_init)
        return tm.project(p + size * (2.0 * u - 1.0) * tm.radius(p))
    hh, ww = (p.shape[-2], p.shape[-1]) if tm.shape == "pixel" else (p.shape[1], p.shape[2])
    s = int(max(1, min(round(math.sqrt(pi * hh * ww)), hh - 1)))
    k_ch = p.shape[1] if tm.shape == "pixel" else 2
    u = draw((2 + k_ch,))
    r0 = (u[:, 0] * (hh - s + 1)).floor().long().clamp(max=hh - s)
    c0 = (u[:, 1] * (ww - s + 1)).floor().long().clamp(max=ww - s)
    rows = torch.arange(hh, device=p.device).view(1, hh, 1)
    cols = torch.arange(ww, device=p.device).view(1, 1, ww)
    win = (
        (rows >= r0.view(-1, 1, 1))
        & (rows < (r0 + s).view(-1, 1, 1))
        & (cols >= c0.view(-1, 1, 1))
        & (cols < (c0 + s).view(-1, 1, 1))
    )
    if tm.shape == "pixel":
        val = _vertex(tm, u[:, 2:].view(-1, k_ch, 1, 1).expand(-1, k_ch, hh, ww))
        new = torch.where(win.unsqueeze(1), val, p)
    else:
        val = _vertex(tm, u[:, 2:].view(-1, 1, 1, 2).expand(-1, hh, ww, 2))
        new = torch.where(win.unsqueeze(-1), val, p)
    return tm.project(new)


def _try_proposal(model, x, y, spec, params, proposal, margin, fooled) -> int:
    """Evaluate ``proposal = (block, new rows, example indices)``; keep it where the margin decreases
    (``params``, ``margin`` and ``fooled`` are updated in place). Returns the forwards spent."""
    name, new, act = proposal
    cand = {k: v[act] for k, v in params.items()}
    cand[name] = new
    if spec.feasible is not None:
        cand = spec.feasible(x[act], cand)
    lg = model(spec.render(x[act], cand))
    mg = _margin(lg, y[act])
    acc = mg < margin[act]
    if bool(acc.any()):
        ga = act[acc]
        for k in params:
            params[k][ga] = cand[k][acc]
        margin[ga] = mg[acc]
        fooled[ga] = lg[acc].argmax(1) != y[ga]
    return int(act.numel())


# ------------------------------------------------------------------------------------------- core
def _threat_core(threat: str, attack) -> AttackCore:
    """A core of the existing attacks holding the threat model's budget: its ``_spec``, ``_grid_of`` and
    ``_affine_of`` serve the ensemble (the ensemble's runner, not the core's loop, attacks)."""
    if threat == "flow":
        core = _FlowCore()
        core.eps, core.norm, core.units = attack.eps, attack.norm, attack.units
        core.eps_step = max(
            float(attack.eps), 1e-12
        )  # unused by APGD (steps scale with the radius)
    elif threat in _GLOBAL:
        core = _AffineCore()
        core.parametrization = "affine" if threat == "affine" else "rotation-translation"
        core.eps, core.eps_step = attack.eps, max(float(attack.eps), 1e-12)
        core.max_rotation, core.max_translation = attack.max_rotation, attack.max_translation
        core.rotation_step = max(float(attack.max_rotation), 1e-12)
        core.translation_step = max(float(attack.max_translation), 1e-12)
        core.affine_scope = "per-example"
    elif threat == "integrated":
        core = _IntegratedCore()
        core.eps_flow, core.eps_affine = attack.eps_flow, attack.eps
        core.eps_step_flow = max(float(attack.eps_flow), 1e-12)
        core.eps_step_affine = max(float(attack.eps), 1e-12)
        core.flow_norm, core.units, core.parametrization = attack.norm, attack.units, "affine"
        core.max_rotation, core.max_translation = attack.max_rotation, attack.max_translation
        core.rotation_step = core.translation_step = 1.0
        core.affine_scope = "per-example"
    else:
        core = _PixelCore()
        core.eps, core.eps_step = attack.eps, max(float(attack.eps), 1e-12)
    core.padding_mode = attack.padding_mode  # what its render and summary read besides the budget
    return core


@dataclass
class _EnsembleRun:
    """One batch of the ensemble: its inputs, the merged worst case, the grid seeds (once per batch)."""

    model: Callable
    x: torch.Tensor
    y: torch.Tensor
    spec: AttackSpec
    seed: int
    merged: _Merged
    block: str | None
    seeds: torch.Tensor | None = None  # k x N x block shape


class _EnsembleCore(AttackCore):
    """The ensemble runner (see the module docstring)."""

    def _check_core(self):
        check_choice("threat", self.threat, THREATS)
        check_number("eps", self.eps, nonneg=True)
        check_number("eps_flow", self.eps_flow, nonneg=True)
        check_choice("norm", self.norm, FLOW_NORMS)
        check_choice("units", self.units, FLOW_UNITS)
        check_number("max_rotation", self.max_rotation, nonneg=True)
        check_number("max_translation", self.max_translation, nonneg=True)
        check_int("n_iter", self.n_iter, minimum=1)
        check_int("n_restarts", self.n_restarts, minimum=0)
        check_int("n_target_classes", self.n_target_classes, minimum=0)
        check_int("n_queries", self.n_queries, minimum=0)
        check_int("eval_batch_size", self.eval_batch_size, minimum=1)
        if (
            not isinstance(self.grid_size, (tuple, list))
            or len(self.grid_size) != 2
            or any(
                isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                for v in self.grid_size
            )
        ):
            raise ValueError(
                f"grid_size must be a pair of positive integers (angles, shifts), got "
                f"{self.grid_size!r}"
            )
        if self.components is not None:
            if isinstance(self.components, str) or not all(
                c in COMPONENTS for c in self.components
            ):
                raise ValueError(
                    f"components must be None or a list of {COMPONENTS}, got {self.components!r}"
                )
            if len(set(self.components)) != len(self.components) or not self.components:
                raise ValueError(
                    f"components must be a non-empty list without repeats, got {self.components!r}"
                )
        if not self.plan():
            raise ValueError(
                f"components {self.components!r} leave nothing to run for threat {self.threat!r} "
                "(grid-seed needs a global block; zero n_restarts / n_target_classes / n_queries "
                "remove their component)"
            )
        check_bool("early_stop", self.early_stop)
        super()._check_core()  # targeted, seed, padding_mode
        if self.targeted:
            raise ValueError(
                "targeted must be False: the ensemble measures robust accuracy (untargeted); its "
                "targeted component picks its own targets"
            )

    # -------------------------------------------------------------------------------- plumbing
    def _core(self) -> AttackCore:
        return _threat_core(self.threat, self)

    def _grid_of(self, params, shape):
        return self._core()._grid_of(params, shape)

    def _affine_of(self, params, shape):
        return self._core()._affine_of(params, shape)

    def reset_stats(self) -> None:
        """Restart :attr:`component_stats` at zero, one row per component of :meth:`plan` (so that every
        process of a sharded evaluation reports the same rows, even one with no example to attack)."""
        self._stats = None
        self._last_fooled_by = None
        for name in self.plan():
            self._account(name, 0, 0, 0, 0, 0.0)

    @property
    def component_stats(self) -> list[dict]:
        """Per component (in run order): ``name``, ``n_attacked``, ``n_fooled``, ``n_forward``,
        ``n_backward``, ``wall_time_s``, accumulated over the runs since :meth:`reset_stats`."""
        return [dict(s) for s in (getattr(self, "_stats", None) or [])]

    def plan(self) -> list[str]:
        """The components that run, in order: the grid seed (RT / affine / integrated) first, then the
        gradient components cheapest first by passes per example, the random search last."""
        comps = list(self.components) if self.components is not None else list(COMPONENTS)
        has_global = self.threat in ("rt", "affine", "integrated")
        if not has_global:
            comps = [c for c in comps if c != "grid-seed"]
        if self.n_restarts == 0:
            comps = [c for c in comps if c != "apgd-ce"]
        if self.n_target_classes == 0:
            comps = [c for c in comps if c != "apgd-t"]
        if self.n_queries == 0:
            comps = [c for c in comps if c != "random-search"]
        cost = {
            "grid-seed": self.grid_size[0] * self.grid_size[1] ** 2,
            "apgd-ce": self.n_restarts * (2 * self.n_iter + 1),
            "apgd-t": self.n_target_classes * (2 * self.n_iter + 1) + 1,
            "random-search": float("inf"),
        }
        # the grid seeds the gradient components, so it comes first; the random search is the check, last
        stage = {"grid-seed": 0, "apgd-ce": 1, "apgd-t": 1, "random-search": 2}
        return sorted(comps, key=lambda c: (stage[c], cost[c], COMPONENTS.index(c)))

    def _account(self, name, n_att, n_fool, nf, nb, dt):
        stats = getattr(self, "_stats", None)
        if stats is None:
            stats = self._stats = []
        row = next((s for s in stats if s["name"] == name), None)
        if row is None:
            row = {
                "name": name,
                "n_attacked": 0,
                "n_fooled": 0,
                "n_forward": 0,
                "n_backward": 0,
                "wall_time_s": 0.0,
            }
            stats.append(row)
        row["n_attacked"] += int(n_att)
        row["n_fooled"] += int(n_fool)
        row["n_forward"] += int(nf)
        row["n_backward"] += int(nb)
        row["wall_time_s"] += float(dt)

    # -------------------------------------------------------------------------------------- run
    def _attack_batch(self, model, x, y, clip, *, seed, y_true, record, final_eval, as_numpy):
        if record:
            raise ValueError(
                "record must be False: the ensemble reports one verdict per example (give its "
                "suite entry no iterations)"
            )
        if y_true is not None:
            y = y_true
        core = self._core()
        spec = core._spec(tuple(x.shape), clip)
        run = _EnsembleRun(model, x, y.to(x.device).long(), spec, seed, _Merged(x, spec), None)
        run.block = _global_block(spec)
        out, fooled_by = self._run_plan(run)
        res = engine_result(core, out, x, spec, as_numpy)
        res.extras["fooled_by"] = fooled_by.cpu().numpy() if as_numpy else fooled_by
        return res

    def _run_plan(self, run: _EnsembleRun) -> tuple[EngineOutput, torch.Tensor]:
        """The components of :meth:`plan` in turn on the examples not fooled yet; the merged output
        and, per example, the index of the component that fooled it (−1: robust)."""
        n, merged = run.x.shape[0], run.merged
        fooled_by = torch.full((n,), -1, dtype=torch.long, device=run.x.device)
        plan = self._last_plan = self.plan()
        components = {
            "grid-seed": self._grid_seed,
            "apgd-ce": self._apgd_ce,
            "apgd-t": self._apgd_t,
            "random-search": self._random_search,
        }
        nf_tot = nb_tot = 0
        for ci, comp in enumerate(plan):
            todo = torch.nonzero(~merged.fooled).flatten()
            if todo.numel() == 0:
                self._account(comp, 0, 0, 0, 0, 0.0)
                continue
            t0 = time.perf_counter()
            before = merged.fooled.clone()
            nf, nb = components[comp](run, todo)
            newly = merged.fooled & ~before
            fooled_by[newly] = ci
            nf_tot, nb_tot = nf_tot + nf, nb_tot + nb
            self._account(comp, todo.numel(), int(newly.sum()), nf, nb, time.perf_counter() - t0)
            gradient_ran = any(c in ("apgd-ce", "apgd-t") for c in plan[:ci])
            if comp == "random-search" and gradient_ran and bool(newly.any()):
                logger.warning(
                    "%s (%s): the gradient-free random search fooled %d example(s) on which every "
                    "gradient component failed: the model's gradients may be masked, the gradient "
                    "components' robust accuracy would overestimate its robustness",
                    type(self).__name__,
                    self.threat,
                    int(newly.sum()),
                )
        self._last_fooled_by = fooled_by
        zeros = torch.zeros(n, dtype=torch.long, device=run.x.device)
        out = EngineOutput(
            x_adv=merged.x_adv,
            params=merged.params,
            kappa=zeros,
            stop_step=zeros,
            correct=None,
            final_correct=~merged.fooled,
            final_loss=merged.ce,
            n_forward=nf_tot,
            n_backward=nb_tot,
        )
        return out, fooled_by

    # ------------------------------------------------------------------------------- components
    def _seed_grid(self, run: _EnsembleRun, todo: torch.Tensor) -> tuple:
        """The grid's worst candidates for examples ``todo`` (kept in ``run.seeds``): ``(seeds, fooled,
        ce, forwards)``."""
        x = run.x
        cand = coarse_rt_grid(
            float(self.max_rotation), float(self.max_translation), *self.grid_size
        )
        cand = _rt_as_block(
            cand.to(x.device, x.dtype), run.block, run.spec.blocks[run.block], *x.shape[2:]
        )
        s, f, ce, nf = _grid_seeds(
            run.model,
            x[todo],
            run.y[todo],
            run.spec,
            cand,
            max(1, int(self.n_restarts)),
            self.eval_batch_size,
        )
        run.seeds = torch.zeros(
            (s.shape[0], x.shape[0]) + tuple(s.shape[2:]), device=x.device, dtype=x.dtype
        )
        run.seeds[:, todo] = s
        return s, f, ce, nf

    def _grid_seed(self, run: _EnsembleRun, todo: torch.Tensor) -> tuple[int, int]:
        s, f, ce, nf = self._seed_grid(run, todo)
        (c, h, w), x = run.x.shape[1:], run.x
        params = {
            k: tm.zeros(todo.numel(), c, h, w, device=x.device, dtype=x.dtype)
            for k, tm in run.spec.blocks.items()
        }
        params[run.block] = s[0]
        with torch.no_grad():
            x_adv = run.spec.render_final(x[todo], params)
        run.merged.update(todo, params, f[0], ce[0], x_adv)
        return nf, 0

    def _inits(self, run: _EnsembleRun, idx: torch.Tensor, first_only: bool = False):
        """The grid seeds of examples ``idx`` as APGD starting points (None without a global block)."""
        if run.seeds is None:
            return None
        k = 1 if first_only else run.seeds.shape[0]
        return [{run.block: run.seeds[r][idx]} for r in range(k)]

    def _apgd(self, run: _EnsembleRun, idx: torch.Tensor, **kwargs) -> tuple[int, int]:
        """One :func:`apgd_restarts` call on examples ``idx``, merged; returns the passes spent."""
        m, nf, nb = apgd_restarts(
            run.model,
            run.x[idx],
            run.y[idx],
            run.spec,
            n_iter=self.n_iter,
            random_first=self.threat == "pixel",
            early_stop=self.early_stop,
            **kwargs,
        )
        run.merged.update(idx, m.params, m.fooled, m.ce, m.x_adv)
        return nf, nb

    def _apgd_ce(self, run: _EnsembleRun, todo: torch.Tensor) -> tuple[int, int]:
        nf = 0
        if run.block is not None and run.seeds is None:
            # run without the grid-seed component: this component computes its own seeds
            nf = self._seed_grid(run, todo)[3]
        f_, b_ = self._apgd(
            run,
            todo,
            n_restarts=self.n_restarts,
            loss="ce",
            seed=run.seed,
            inits=self._inits(run, todo),
        )
        return nf + f_, b_

    def _apgd_t(self, run: _EnsembleRun, todo: torch.Tensor) -> tuple[int, int]:
        nf = nb = 0
        if run.block is not None and run.seeds is None:
            nf = self._seed_grid(run, todo)[3]
        with torch.no_grad():
            lg = run.model(run.x[todo])
        nf += todo.numel()
        if lg.shape[1] < 4:
            raise ValueError(
                "n_target_classes > 0 needs a model with at least 4 classes (the "
                "targeted DLR loss); set n_target_classes=0"
            )
        lg = lg.scatter(1, run.y[todo].view(-1, 1), -float("inf"))
        k = min(int(self.n_target_classes), lg.shape[1] - 1)
        tgts = lg.argsort(dim=1, descending=True, stable=True)[:, :k]
        for j in range(k):
            sub = torch.nonzero(~run.merged.fooled[todo]).flatten()
            if sub.numel() == 0:
                break
            idx = todo[sub]
            f_, b_ = self._apgd(
                run,
                idx,
                n_restarts=1,
                loss="dlr-targeted",
                targets=tgts[sub, j],
                seed=restart_seed(run.seed, 1000 + j),
                inits=self._inits(run, idx, first_only=True),
            )
            nf, nb = nf + f_, nb + b_
        return nf, nb

    def _random_search(self, run: _EnsembleRun, todo: torch.Tensor) -> tuple[int, int]:
        params, f, ce, x_adv, nf = random_search(
            run.model, run.x[todo], run.y[todo], run.spec, n_queries=self.n_queries, seed=run.seed
        )
        run.merged.update(todo, params, f, ce, x_adv)
        return nf, 0

    @property
    def warnings(self) -> list[str]:
        """The runner's reliability warning: the random search fooled examples that the gradient
        components (which ran before it) did not (see the module docstring)."""
        out = []
        gradient = [t for t in self.component_stats if t["name"] in ("apgd-ce", "apgd-t")]
        for s in self.component_stats:
            if s["name"] == "random-search" and s["n_fooled"] > 0 and gradient:
                gattacked = max(t["n_attacked"] for t in gradient)
                out.append(
                    f"{self.threat}: the gradient-free random search fooled {s['n_fooled']} example(s) "
                    f"that the gradient components ({gattacked} attacked) did not: gradients may be "
                    "masked; the gradient attacks alone overestimate robustness here"
                )
        return out


class SpatialAutoAttack(_EnsembleCore, ARTAttack):
    """Parameter-free spatial robustness evaluation: worst case per example over an attack ensemble.

    See the module docstring for the components and the runner (Croce & Hein, "Reliable evaluation of
    adversarial robustness with an ensemble of diverse parameter-free attacks", arXiv:2003.01690;
    Andriushchenko et al., "Square Attack", arXiv:1912.00049; Engstrom et al., "Exploring the Landscape
    of Spatial Robustness", arXiv:1712.02779). ``generate`` returns, per example, the adversarial image of
    the first component that fooled it (else the highest-CE candidate found); ``last_result.success`` is
    the ensemble's verdict and ``last_result.extras["fooled_by"]`` the index into :meth:`plan` of the
    component that fooled each example (−1: robust).

    Args:
        estimator: ART ``PyTorchClassifier`` (differentiated through, preprocessing included).
        threat: ``"flow"`` (``‖w_F‖∞ ≤ eps`` in ``units``, or the ℓ2,∞ ball with ``norm="2,inf"``),
            ``"affine"`` (``‖w_RT‖∞ ≤ eps``, normalized units), ``"rt"`` (``|angle| ≤ max_rotation``°,
            ``|t| ≤ max_translation`` px), ``"integrated"`` (flow ``eps_flow`` + affine ``eps``, one grid)
            or ``"pixel"`` (``‖δ‖∞ ≤ eps``).
        eps, eps_flow, norm, units, max_rotation, max_translation: the budget (defaults: the
            ``pareto-mnist`` suite's: flow 0.3, affine 0.3, RT ±30° / ±3 px, pixel 0.3).
        n_iter: APGD iterations per run (step sizes are adaptive: no step parameter).
        n_restarts: APGD-CE restarts (RT / affine: from the ``n_restarts`` worst grid points).
        n_target_classes: APGD-T runs, one per most likely wrong class (0 = no targeted component).
        n_queries: random-search queries (0 = no gradient-free component).
        grid_size: ``(angles, shifts)`` of the coarse rotation-translation grid (RT / affine / integrated).
        components: run only these (names of :data:`COMPONENTS`); default: all that apply.
        early_stop: drop an example at its first misclassified iterate inside APGD (saves passes; the
            verdict is the same).
        seed: base seed of the per-example random streams.
        padding_mode, eval_batch_size, batch_size, verbose: as for the other attacks.

    Example:
        >>> import numpy as np
        >>> from art_spatial.models import SmallCNN, make_classifier
        >>> atk = SpatialAutoAttack(make_classifier(SmallCNN()), threat="flow", eps=0.5, units="pixels",
        ...                         n_iter=3, n_restarts=1, n_target_classes=0, n_queries=2, verbose=False)
        >>> x_adv = atk.generate(np.random.rand(2, 1, 28, 28).astype("float32"), y=np.array([1, 2]))
        >>> atk.plan(), bool(atk.last_result.max_displacement_px.max() <= 0.5 + 1e-4)
        (['apgd-ce', 'random-search'], True)
    """

    _defaults = {
        "threat": "rt",
        "eps": 0.3,
        "eps_flow": 0.3,
        "norm": "inf",
        "units": "normalized",
        "max_rotation": 30.0,
        "max_translation": 3.0,
        "n_iter": 50,
        "n_restarts": 2,
        "n_target_classes": 3,
        "n_queries": 500,
        "grid_size": (7, 3),
        "components": None,
        "early_stop": True,
        **{name: LOOP_DEFAULTS[name] for name in ("seed", "padding_mode")},
        "eval_batch_size": 128,
        **ART_DEFAULTS,
    }
    attack_params = EvasionAttack.attack_params + [*_defaults, "targeted"]

    def _init_state(self) -> None:
        if isinstance(self.grid_size, list):
            self.grid_size = tuple(self.grid_size)
        if isinstance(self.components, tuple):
            self.components = list(self.components)
        self._targeted = False
        self._stats = None
        self._last_fooled_by = None
