"""The one iterative loop behind every attack of the package, and the named result it returns.

Every iterative attack — flow, affine / rotation-translation, integrated, pixel PGD and joint
spatial+pixel — is an :class:`AttackSpec`: an ordered set of parameter blocks (threat models from
:mod:`art_spatial.threats`), a differentiable ``render(x, params) -> x_adv`` and a *phase* schedule
saying which blocks one forward/backward updates. :func:`run_attack` runs projected steepest ascent on
that spec (Madry et al.'s PGD; Pareto AT Eq. 2, 6, 9; Joint AT Alg. 1-2):

    for t in 0 .. K-1:
        for each phase (blocks B):                  # double-pass = two phases
            J = CE(f(render(x, w)), y)              # -CE(f(.), target) when targeted
            w_B <- Π_B(w_B + α_B · dir_B(∇_{w_B} J))

Early stop (FAT's PGD-K-τ): before each step an example already misclassified spends one unit of its
budget τ; once τ is exhausted it stops moving and leaves the batch (no more forward/backward for it).
τ = K reproduces the plain attack exactly. κ (GAIRAT) is the number of iterates 0..K-1 at which the
example was still classified correctly. With ``record=True`` the correctness of every iterate 0..K is
kept, so one run to K steps answers every iteration count k ≤ K (final-iterate accuracy at k is
``correct[:, k]``; the "any iterate" worst case is ``correct[:, :k+1].all(1)``).

Randomness is per example: each example draws its random start (and, in the training mode of the joint
attack, its random target) from a generator seeded by ``(seed, the example's bytes)``, so attacking an
example alone or inside any batch gives the same result.

Batch-shared blocks (a threat model with ``shared=True``, e.g. ``AffineAttack(affine_scope="batch")``)
are the exception: the block is one parameter for the whole batch, stored as ``N`` identical rows. Its
gradient is the sum over the batch of the per-example gradients (the gradient of the summed loss
w.r.t. the one parameter; the sign step is the same as for the mean), broadcast back to every row before
the step and the projection, and its random start is drawn once from a batch stream seeded by
``(seed, the bytes of the whole batch)`` that advances block by block as an example's stream does (for
a batch of one it *is* that example's stream, so a batch of one reproduces the per-example attack
exactly). The result then depends on the batch composition — a batch-level attack, like ART's
``SpatialTransformation``. Early stop drops examples from the batch one by one, which would change the
shared parameter's batch mid-attack, so it is refused with a shared block.

Step policy. By default every block steps by its threat model's fixed ``eps_step`` (the papers' PGD)
and the last iterate is returned. ``step_policy=APGDStep()`` makes the same loop APGD (Croce & Hein,
"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks",
arXiv:2003.01690, Alg. 1): a per-example step ``η·ε`` along the block's unit direction with momentum,
halved at checkpoints when the loss stalls, the example moving back to its best iterate; and
``keep_best=True`` (implied) returns each example's best iterate (misclassified first, then the highest
objective) at no extra pass. Losses for it: :data:`LOSSES` (cross-entropy, DLR, targeted DLR).

Example:
    >>> import torch
    >>> from art_spatial.threats import LinfBox
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    >>> spec = AttackSpec(blocks={"pixel": LinfBox("pixel", 0.1, 0.02, "pixel")},
    ...                   render=lambda x, p: (x + p["pixel"]).clamp(0, 1))
    >>> out = run_attack(model, x, y, spec, max_iter=5, seed=0)
    >>> bool((out.x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..threats import ThreatModel

logger = logging.getLogger(__name__)

__all__ = [
    "AttackSpec",
    "EngineOutput",
    "run_attack",
    "example_seeds",
    "per_example_uniform",
    "random_targets",
    "run_cascade",
    "APGDStep",
    "apgd_checkpoints",
    "dlr_loss",
    "dlr_targeted_loss",
    "LOSSES",
]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
Params = dict[str, torch.Tensor]


@dataclass
class AttackSpec:
    """What an attack supplies to the loop.

    Attributes:
        blocks: ordered mapping name -> threat model (random start, step, projection).
        render: differentiable ``render(x, params) -> x_adv`` (already clipped to the image range).
        phases: tuple of block-name tuples; each phase is one forward/backward that updates its blocks.
            ``None`` = one phase updating all blocks (e.g. the integrated attack; the one-pass joint).
        feasible: optional ``feasible(x, params) -> params`` applied after projection (e.g. the pixel
            block keeps ``x + δ`` inside the clip range, as ART's and Madry's PGD do).
        random_init: per-block random start switch (missing names fall back to ``run_attack``'s flag).
        identity: optional ``identity(x) -> x_adv``, the exact image of all-zero parameters (e.g. ``x``
            clipped). When given, an example whose parameters are all zero at the end — no step taken
            (``max_iter=0`` without random start) or stopped before its first step — gets it instead
            of ``render``, whose resampling at the identity grid reproduces ``x`` only up to float
            rounding (about 1e-6 on 28-pixel images).
        pixel_first: the ``"pixel"`` block is added *before* the spatial warp (the joint attack's
            ``order="pixel-spatial"``): the summary reports ``‖δ‖∞`` as the pixel change instead of
            ``‖x_adv − T(x; ω)‖∞``.
    """

    blocks: dict[str, ThreatModel]
    render: Callable[[torch.Tensor, Params], torch.Tensor]
    phases: tuple[tuple[str, ...], ...] | None = None
    feasible: Callable[[torch.Tensor, Params], Params] | None = None
    random_init: dict[str, bool] = field(default_factory=dict)
    identity: Callable[[torch.Tensor], torch.Tensor] | None = None
    pixel_first: bool = False

    def render_final(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """``render(x, params)`` without gradient, with ``identity(x)`` for all-zero parameters."""
        with torch.no_grad():
            x_adv = self.render(x, params).detach()
            if self.identity is None or x.shape[0] == 0 or not params:
                return x_adv
            zero = torch.stack([(v.flatten(1) == 0).all(1) for v in params.values()]).all(0)
            if bool(zero.any()):
                keep = zero.view((-1,) + (1,) * (x.dim() - 1))
                x_adv = torch.where(keep, self.identity(x).detach().to(x_adv.dtype), x_adv)
        return x_adv

    def phase_list(self) -> tuple[tuple[str, ...], ...]:
        phases = self.phases if self.phases is not None else (tuple(self.blocks),)
        for ph in phases:
            for name in ph:
                if name not in self.blocks:
                    raise ValueError(
                        f"phase names an unknown block {name!r}; blocks: {list(self.blocks)}"
                    )
        return phases


@dataclass
class EngineOutput:
    """Raw output of :func:`run_attack` (tensors on the input's device).

    Attributes:
        x_adv: ``N x C x H x W`` final iterates (for stopped examples: the iterate they stopped at).
        params: block name -> ``N x ...`` parameters found.
        kappa: ``N`` int64, iterates (of 0..K-1) at which the example was still classified correctly.
        stop_step: ``N`` int64, step at which the example stopped moving (``max_iter`` = never stopped).
        correct: ``N x (K+1)`` bool correctness of every iterate, or None unless ``record=True``.
        final_correct: ``N`` bool correctness of the returned iterate, or None if ``final_eval=False``.
        final_loss: ``N`` float cross-entropy w.r.t. the true labels of the returned iterate, or None.
        n_forward, n_backward: example-level model passes spent (a batch of 128 = 128).
        final_score: ``N`` float, the attack objective (``loss_fn``, negated when targeted: larger =
            more adversarial) of the returned iterate; only with ``keep_best`` (else None).
    """

    x_adv: torch.Tensor
    params: Params
    kappa: torch.Tensor
    stop_step: torch.Tensor
    correct: torch.Tensor | None
    final_correct: torch.Tensor | None
    final_loss: torch.Tensor | None
    n_forward: int
    n_backward: int
    final_score: torch.Tensor | None = None


def example_seeds(x: torch.Tensor, seed: int) -> np.ndarray:
    """Per-example 63-bit seeds from ``seed`` and each example's bytes (batch-composition invariant)."""
    arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
    key = int(seed).to_bytes(8, "little", signed=True)
    out = np.empty(arr.shape[0], dtype=np.int64)
    for i in range(arr.shape[0]):
        h = hashlib.blake2b(arr[i].tobytes(), digest_size=8, key=key).digest()
        out[i] = int.from_bytes(h, "little") >> 1
    return out


def _batch_seed(x: torch.Tensor, seed: int) -> int:
    """One 63-bit seed from ``seed`` and the bytes of the whole batch (equals ``example_seeds`` for N = 1)."""
    arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
    key = int(seed).to_bytes(8, "little", signed=True)
    h = hashlib.blake2b(arr.tobytes(), digest_size=8, key=key).digest()
    return int.from_bytes(h, "little") >> 1


def _generators(seeds: np.ndarray) -> list:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def per_example_uniform(
    gens: Sequence[torch.Generator], shape: tuple, device, dtype
) -> torch.Tensor:
    """Stack ``U[0, 1)`` noise of ``shape`` drawn from each example's generator -> ``N x shape``."""
    if len(gens) == 0:
        return torch.zeros((0,) + tuple(shape), device=device, dtype=dtype)
    u = torch.stack([torch.rand(shape, generator=g) for g in gens])
    return u.to(device=device, dtype=dtype)


def random_targets(
    y: torch.Tensor,
    nb_classes: int,
    generator: torch.Generator | Sequence[torch.Generator],
    ctx=None,
) -> torch.Tensor:
    """A uniformly random label different from ``y[i]`` per example (Joint AT §4.2 training mode).

    ``generator``: one ``torch.Generator`` drawing the offsets of the whole batch (the trainers), or a
    sequence of per-example generators, one draw each (the joint attack's training mode: an example's
    target then does not depend on its batch). With a distributed ``ctx``
    (:class:`~art_spatial.trainers.base.BatchContext` of a rank's share of a global batch) one generator
    draws the offsets of the whole global batch and this rank's rows are kept, so the targets do not
    depend on the number of ranks. Draws happen on the CPU generators; the result is on ``y``'s device.

    >>> g = torch.Generator().manual_seed(0)
    >>> t = random_targets(torch.tensor([0, 1, 2]), 10, g)
    >>> bool((t != torch.tensor([0, 1, 2])).all())
    True
    """
    if isinstance(generator, torch.Generator):
        n = y.shape[0] if ctx is None or ctx.n_global is None else ctx.n_global
        offs = torch.randint(1, nb_classes, (n,), generator=generator)
        if ctx is not None:
            offs = ctx.local(offs)
    else:
        offs = torch.tensor(
            [int(torch.randint(1, nb_classes, (1,), generator=g)) for g in generator],
            dtype=torch.long,
        )
    return (y.detach().long() + offs.to(y.device)).remainder(nb_classes)


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Untargeted DLR loss (Croce & Hein 2020, arXiv:2003.01690, Eq. 5), to be *ascended*.

    ``DLR(z, y) = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)`` with ``z_π1 ≥ z_π2 ≥ …`` the sorted logits;
    invariant to shifting and rescaling the logits. ``logits``: ``N x classes`` (≥ 3); returns ``N``.

    >>> dlr_loss(torch.tensor([[3.0, 1.0, 2.0, 0.0]]), torch.tensor([0]))  # -(3 - 2) / (3 - 1)
    tensor([-0.5000])
    """
    if logits.shape[1] < 3:
        raise ValueError(
            f"the DLR loss needs at least 3 classes, got logits of shape {tuple(logits.shape)}"
        )
    srt = logits.sort(dim=1, descending=True).values
    zy = logits.gather(1, y.view(-1, 1)).squeeze(1)
    other = logits.scatter(1, y.view(-1, 1), -float("inf")).amax(1)
    return -(zy - other) / (srt[:, 0] - srt[:, 2] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Targeted DLR loss (Croce & Hein 2020, arXiv:2003.01690, Eq. 6), to be *ascended*.

    ``DLR-T(z, y, t) = −(z_y − z_t) / (z_π1 − (z_π3 + z_π4) / 2)``. ``labels`` is ``N x 2``: column 0
    the true class ``y``, column 1 the target ``t`` (so the engine's per-example label gathers carry
    both). ``logits``: ``N x classes`` (≥ 4); returns ``N``.

    >>> dlr_targeted_loss(torch.tensor([[3.0, 1.0, 2.0, 0.0]]), torch.tensor([[0, 2]]))  # -(3-2)/(3-0.5)
    tensor([-0.4000])
    """
    if logits.shape[1] < 4:
        raise ValueError(
            "the targeted DLR loss needs at least 4 classes, got logits of shape "
            f"{tuple(logits.shape)}"
        )
    if labels.dim() != 2 or labels.shape[1] != 2:
        raise ValueError(
            f"labels of the targeted DLR loss must be N x 2 (true, target), got "
            f"{tuple(labels.shape)}"
        )
    srt = logits.sort(dim=1, descending=True).values
    zy = logits.gather(1, labels[:, :1]).squeeze(1)
    zt = logits.gather(1, labels[:, 1:]).squeeze(1)
    return -(zy - zt) / (srt[:, 0] - 0.5 * (srt[:, 2] + srt[:, 3]) + 1e-12)


#: named per-example losses ``(logits, labels) -> N`` (ascended by an untargeted run)
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ce": _ce,
    "dlr": dlr_loss,
    "dlr-targeted": dlr_targeted_loss,
}


def apgd_checkpoints(
    max_iter: int, p1: float = 0.22, decay: float = 0.03, min_gap: float = 0.06
) -> list[int]:
    """APGD's checkpoints ``w_j = ⌈p_j K⌉`` (Croce & Hein 2020, arXiv:2003.01690, §3.1).

    ``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``; only the
    checkpoints in ``1 .. K−1`` are returned (the iterations at which the step can be halved).

    >>> apgd_checkpoints(100)
    [22, 41, 57, 70, 80, 87, 93, 99]
    """
    out, prev, cur = [], 0.0, p1
    while True:
        w = int(math.ceil(cur * max_iter - 1e-9))
        if w >= max_iter:
            break
        if w >= 1 and (not out or w > out[-1]):
            out.append(w)
        prev, cur = cur, cur + max(cur - prev - decay, min_gap)
    return out


@dataclass(frozen=True)
class APGDStep:
    """Adaptive step policy of :func:`run_attack`: APGD (Croce & Hein 2020, arXiv:2003.01690, Alg. 1).

    Per example, the step size is ``η`` times the block's radius ε (per coordinate for a box) along the
    block's unit direction (:meth:`ThreatModel.direction`: the sign for a box, the per-pixel unit vector
    for the ℓ2,∞ flow ball), with momentum:

        z      = Π(w⁽ᵏ⁾ + η · ε · dir(∇ J(w⁽ᵏ⁾)))
        w⁽ᵏ⁺¹⁾ = Π(w⁽ᵏ⁾ + a (z − w⁽ᵏ⁾) + (1 − a)(w⁽ᵏ⁾ − w⁽ᵏ⁻¹⁾))        (a = 1 at the first step)

    At every checkpoint ``w_j`` (:func:`apgd_checkpoints`) an example's ``η`` is halved when
    (1) the loss increased in fewer than ``ρ·(w_j − w_{j−1})`` of the steps since the last checkpoint,
    or (2) ``η`` was not halved at the last checkpoint and the best loss has not improved since; the
    example then moves to its best iterate (its next step starts there, without momentum; this costs
    it the one forward/backward that re-evaluates the best point, instead of storing its gradient, so
    the policy works for every phase schedule). The best iterate (misclassified first, then the
    highest loss) is what the run returns.

    Attributes:
        eta0: initial step as a multiple of the radius (APGD: 2, i.e. 2ε).
        momentum: ``a`` (APGD: 0.75).
        rho: the fraction of loss increases below which the step is halved (APGD: 0.75).

    Example:
        >>> import torch
        >>> from art_spatial.threats import LinfBox
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
        >>> spec = AttackSpec(blocks={"pixel": LinfBox("pixel", 0.1, 0.02, "pixel")},
        ...                   render=lambda x, p: (x + p["pixel"]).clamp(0, 1))
        >>> out = run_attack(model, torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]), spec,
        ...                  max_iter=10, step_policy=APGDStep())
        >>> bool(out.params["pixel"].abs().max() <= 0.1 + 1e-6), out.final_score.shape
        (True, torch.Size([4]))
    """

    eta0: float = 2.0
    momentum: float = 0.75
    rho: float = 0.75

    def __post_init__(self):
        for name in ("eta0", "momentum", "rho"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v <= 0
            ):
                raise ValueError(f"APGDStep {name} must be a positive finite number, got {v!r}")
        if self.momentum > 1 or self.rho > 1:
            raise ValueError(
                f"APGDStep momentum and rho must be <= 1, got {self.momentum!r}, {self.rho!r}"
            )


class _Best:
    """Per-example best iterate: misclassified first, then the highest attack objective."""

    def __init__(self, params: Params, n: int, device, dtype):
        self.params = {k: v.detach().clone() for k, v in params.items()}
        self.fooled = torch.zeros(n, dtype=torch.bool, device=device)
        self.score = torch.full((n,), -float("inf"), device=device, dtype=dtype)
        self.ce = torch.zeros(n, device=device, dtype=dtype)

    def update(self, gidx, params: Params, ok, score, ce) -> None:
        g = torch.arange(self.fooled.shape[0], device=ok.device) if gidx is None else gidx
        f = ~ok
        bf, bs = self.fooled[g], self.score[g]
        better = (f & ~bf) | ((f == bf) & (score > bs))
        if not bool(better.any()):
            return
        gb = g[better]
        self.fooled[gb] = f[better]
        self.score[gb] = score[better].to(self.score.dtype)
        self.ce[gb] = ce[better].to(self.ce.dtype)
        for k, v in params.items():
            self.params[k][gb] = v.detach()[better]


class _APGDState:
    """Per-example state of :class:`APGDStep` (global example indices; early stop gathers subsets)."""

    def __init__(self, policy: APGDStep, params: Params, max_iter: int, n: int, device, dtype):
        self.policy = policy
        self.ckpts = set(apgd_checkpoints(max_iter))
        self.last_ckpt = 0
        self.eta = torch.full((n,), float(policy.eta0), device=device, dtype=dtype)
        self.prev = {k: torch.zeros_like(v) for k, v in params.items()}
        self.has_prev = {k: torch.zeros(n, dtype=torch.bool, device=device) for k in params}
        self.last = torch.full((n,), -float("inf"), device=device, dtype=dtype)
        self.n_incr = torch.zeros(n, dtype=torch.long, device=device)
        self.max_score = torch.full((n,), -float("inf"), device=device, dtype=dtype)
        self.max_at_ckpt = torch.full((n,), -float("inf"), device=device, dtype=dtype)
        self.reduced = torch.zeros(n, dtype=torch.bool, device=device)

    def observe(self, t: int, g: torch.Tensor, score: torch.Tensor) -> torch.Tensor | None:
        """Record the objective of iterate ``t``; returns the (subset) mask of examples to reset."""
        score = score.to(self.last.dtype)
        if t > 0:
            self.n_incr[g] += (score > self.last[g]).long()
        self.last[g] = score
        self.max_score[g] = torch.maximum(self.max_score[g], score)
        if t == 0:
            self.max_at_ckpt[g] = self.max_score[g]
            return None
        if t not in self.ckpts:
            return None
        gap = t - self.last_ckpt
        self.last_ckpt = t
        cond1 = self.n_incr[g].to(score.dtype) < self.policy.rho * gap
        cond2 = ~self.reduced[g] & (self.max_at_ckpt[g] >= self.max_score[g])
        red = cond1 | cond2
        self.eta[g[red]] = self.eta[g[red]] * 0.5
        self.reduced[g] = red
        self.max_at_ckpt[g] = self.max_score[g]
        self.n_incr[g] = 0
        return red

    def step(self, b: str, tm: ThreatModel, p: torch.Tensor, grad: torch.Tensor, g: torch.Tensor):
        view = (-1,) + (1,) * (p.dim() - 1)
        eta = self.eta[g].view(view).to(p.dtype)
        z = tm.project(p + eta * tm.radius(p) * tm.direction(grad))
        a = float(self.policy.momentum)
        mom = tm.project(p + a * (z - p) + (1.0 - a) * (p - self.prev[b][g]))
        new = torch.where(self.has_prev[b][g].view(view), mom, z)
        self.prev[b][g] = p
        self.has_prev[b][g] = True
        return new

    def reset(self, g: torch.Tensor, best: _Best, params: Params) -> None:
        """Move examples ``g`` to their best iterate, without momentum."""
        for k in params:
            params[k][g] = best.params[k][g]
            self.has_prev[k][g] = False


def _check_run(spec: AttackSpec, max_iter, early_stop_tau, step_policy, keep_best) -> tuple:
    """Refuse inconsistent arguments of :func:`run_attack`; returns the names of the batch-shared blocks."""
    if max_iter < 0:
        raise ValueError(f"max_iter must be non-negative, got {max_iter}")
    if early_stop_tau is not None and early_stop_tau < 0:
        raise ValueError(f"early_stop_tau must be None or non-negative, got {early_stop_tau}")
    shared = tuple(name for name, tm in spec.blocks.items() if getattr(tm, "shared", False))
    if step_policy is not None and not isinstance(step_policy, APGDStep):
        raise ValueError(
            f"step_policy must be None or an APGDStep, got {type(step_policy).__name__}"
        )
    if step_policy is not None and shared:
        raise ValueError(
            f"step_policy must be None with a batch-shared block ({', '.join(shared)}): the "
            "adaptive step is per example"
        )
    if (keep_best or step_policy is not None) and shared:
        raise ValueError(
            f"keep_best must be False with a batch-shared block ({', '.join(shared)}): a "
            "per-example best iterate would split the one shared parameter"
        )
    if shared and early_stop_tau is not None:
        raise ValueError(
            f"early_stop_tau must be None with a batch-shared block ({', '.join(shared)}): "
            "early stop would change the batch the shared parameter is fitted on mid-attack"
        )
    return shared


def _start_params(
    spec: AttackSpec, x: torch.Tensor, shared: tuple, init_params, generators, random_init, seed
) -> Params:
    """The starting point: ``init_params``, a random start or zero per block (then ``feasible``).

    Every block draws from each example's generator; with a batch-shared block a batch stream seeded by
    ``(seed, the batch's bytes)`` draws alongside, block by block, as an example's stream does.
    """
    n, c, h, w = x.shape
    device, dtype = x.device, x.dtype
    batch_gen = torch.Generator().manual_seed(_batch_seed(x, seed)) if shared else None
    params: Params = {}
    for name, tm in spec.blocks.items():
        if init_params is not None and name in init_params:
            params[name] = init_params[name].detach().to(device, dtype).clone()
            if name in shared and n and not bool((params[name] == params[name][:1]).all()):
                raise ValueError(
                    f"init_params[{name!r}] of a batch-shared block must be identical across "
                    "the batch"
                )
        elif spec.random_init.get(name, random_init):
            shape = tm.param_shape(c, h, w)
            u = per_example_uniform(generators, shape, device, dtype)
            if batch_gen is not None:
                ub = torch.rand(shape, generator=batch_gen).to(device=device, dtype=dtype)
                if name in shared:
                    u = ub.expand((n,) + tuple(shape)).clone()
            params[name] = tm.project(tm.from_uniform(u))
        else:
            params[name] = tm.zeros(n, c, h, w, device=device, dtype=dtype)
    if spec.feasible is not None:
        params = spec.feasible(x, params)
    return params


def _reference(y: torch.Tensor, y_true, targeted: bool) -> tuple:
    """``(labels, equal)``: an example is "correct" when its prediction equals (``equal``) or differs
    from the labels — the true labels when known, else ``y`` (for a targeted attack: not the target)."""
    if y_true is not None:
        return y_true.to(y.device).long(), True
    return y, not targeted


def _final_eval(model, x_adv, y, ref, equal, correct_hist, stop_step, last: int) -> tuple:
    """One forward on the returned iterates: ``(logits, correct, CE w.r.t. the true labels)``; fills the
    last column ``last`` of ``correct_hist`` for the examples that never stopped."""
    logits = model(x_adv)
    pred = logits.argmax(1)
    final_correct = pred == ref if equal else pred != ref
    final_loss = _ce(logits, ref if equal else y)
    if correct_hist is not None:
        still = stop_step >= last
        correct_hist[still, last] = final_correct[still]
    return logits, final_correct, final_loss


class _Loop:
    """The state of one run of :func:`run_attack` (global example indices; ``active`` None = all)."""

    def __init__(
        self,
        model,
        x,
        y,
        spec,
        params,
        *,
        max_iter,
        targeted,
        y_true,
        loss_fn,
        shared,
        record,
        early_stop_tau,
        step_policy,
        keep_best,
    ):
        n, device, dtype = x.shape[0], x.device, x.dtype
        self.model, self.x, self.y, self.spec, self.params = model, x, y, spec, params
        self.max_iter, self.loss_fn, self.shared = max_iter, loss_fn, shared
        self.ref, self.equal = _reference(y, y_true, targeted)
        self.sign = -1.0 if targeted else 1.0
        self.kappa = torch.zeros(n, dtype=torch.long, device=device)
        self.stop_step = torch.full((n,), max_iter, dtype=torch.long, device=device)
        self.correct_hist = (
            torch.zeros(n, max_iter + 1, dtype=torch.bool, device=device) if record else None
        )
        self.budget = (
            None
            if early_stop_tau is None
            else torch.full((n,), int(early_stop_tau), dtype=torch.long, device=device)
        )
        self.active = None  # None = everybody (fast path, no gathers)
        self.n_fwd = self.n_bwd = 0
        self.best = _Best(params, n, device, dtype) if keep_best else None
        self.pstate = (
            _APGDState(step_policy, params, max_iter, n, device, dtype)
            if step_policy is not None
            else None
        )

    def _all(self) -> torch.Tensor:
        return torch.arange(self.x.shape[0], device=self.x.device)

    def run(self, phases) -> None:
        """``max_iter`` steps of every phase; early stop drops examples from the batch."""
        for t in range(self.max_iter):
            if self.active is not None and self.active.numel() == 0:
                break
            for k_phase, blocks in enumerate(phases):
                if not self._phase(t, k_phase == 0, blocks):
                    break
            if self.budget is not None and self.active is None:
                self.active = self._all()

    def _phase(self, t: int, first: bool, blocks) -> bool:
        """One forward/backward updating ``blocks``; False once no example is left moving."""
        active = self.active
        xs = self.x if active is None else self.x[active]
        ys = self.y if active is None else self.y[active]
        sub = {k: (v if active is None else v[active]) for k, v in self.params.items()}
        for b in blocks:
            sub[b] = sub[b].detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(self.spec.render(xs, sub))
            losses = self.loss_fn(logits, ys)
        m = xs.shape[0]
        self.n_fwd += m
        gidx = None
        if self.best is not None:
            gidx = self._all() if active is None else active
        moving = reset = None
        if first:  # the iterate's correctness: κ, the record, early stop, the best iterate
            moving, reset = self._observe(t, logits, losses, sub, gidx)
        weights = (
            torch.full_like(losses, self.sign)
            if moving is None
            else self.sign * moving.to(losses.dtype)
        )
        grads = torch.autograd.grad((losses * weights).sum(), [sub[b] for b in blocks])
        self.n_bwd += m
        with torch.no_grad():
            self._update(xs, sub, blocks, grads, moving, reset, gidx)
        if moving is not None:
            idx = self._all() if active is None else active
            self.active = idx[moving]
            if self.active.numel() == 0:
                return False
        return True

    def _observe(self, t: int, logits, losses, sub, gidx) -> tuple:
        """Record iterate ``t``; returns ``(moving, reset)`` masks of the active examples (or None)."""
        active = self.active
        pred = logits.detach().argmax(1)
        r = self.ref if active is None else self.ref[active]
        ok = pred == r if self.equal else pred != r
        reset = None
        if self.best is not None:
            with torch.no_grad():
                score = self.sign * losses.detach()
                ce = _ce(logits.detach(), self.ref[gidx])
            self.best.update(gidx, sub, ok, score, ce)
            if self.pstate is not None:
                reset = self.pstate.observe(t, gidx, score)
        if self.correct_hist is not None:
            if active is None:
                self.correct_hist[:, t] = ok
            else:
                self.correct_hist[active, t] = ok
        if active is None:
            self.kappa += ok.long()
        else:
            self.kappa[active] += ok.long()
        if self.budget is None:
            return None, reset
        idx = self._all() if active is None else active
        mis = ~ok
        stop = mis & (self.budget[idx] == 0)
        spend = mis & ~stop
        self.budget[idx[spend]] -= 1
        if not bool(stop.any()):
            return None, reset
        self.stop_step[idx[stop]] = t
        if self.correct_hist is not None:
            # a stopped example keeps its (misclassified) iterate for all later counts
            self.correct_hist[idx[stop], t + 1 :] = False
        return ~stop, reset

    def _update(self, xs, sub, blocks, grads, moving, reset, gidx) -> None:
        """The step of ``blocks`` (projected, feasible) for the moving examples, into ``params``."""
        new = {}
        for b, g in zip(blocks, grads, strict=True):
            tm = self.spec.blocks[b]
            if b in self.shared:  # one parameter: the gradient of the summed loss, on every row
                g = g.sum(0, keepdim=True).expand_as(g)
            if self.pstate is None:
                new[b] = tm.project(tm.step(sub[b].detach(), g, ascend=True))
            else:
                new[b] = self.pstate.step(b, tm, sub[b].detach(), g, gidx)
        if moving is not None:
            for b in blocks:
                new[b] = torch.where(
                    moving.view((-1,) + (1,) * (new[b].dim() - 1)), new[b], sub[b].detach()
                )
        if self.spec.feasible is not None:
            merged = {k: (new[k] if k in new else sub[k].detach()) for k in sub}
            merged = self.spec.feasible(xs, merged)
            new = {b: merged[b] for b in blocks}
        for b in blocks:
            if self.active is None:
                self.params[b] = new[b]
            else:
                self.params[b] = self.params[b].index_copy(0, self.active, new[b])
        if reset is not None:
            if moving is not None:
                reset = reset & moving
            if bool(reset.any()):
                self.pstate.reset(gidx[reset], self.best, self.params)

    def finish(self, final_eval: bool) -> EngineOutput:
        """The returned iterates (the best ones with ``keep_best``), their final forward, the output."""
        n, params, best = self.x.shape[0], self.params, self.best
        with torch.no_grad():
            x_adv = self.spec.render_final(self.x, params)
            final_correct = final_loss = final_score = None
            if final_eval or self.correct_hist is not None or best is not None:
                logits, final_correct, final_loss = _final_eval(
                    self.model,
                    x_adv,
                    self.y,
                    self.ref,
                    self.equal,
                    self.correct_hist,
                    self.stop_step,
                    self.max_iter,
                )
                self.n_fwd += n
            if best is not None:
                if n:
                    score = self.sign * self.loss_fn(logits, self.y)
                    best.update(None, params, final_correct, score, final_loss)
                params = best.params
                x_adv = self.spec.render_final(self.x, params)
                final_correct, final_loss, final_score = ~best.fooled, best.ce, best.score
        return EngineOutput(
            x_adv=x_adv,
            params={k: v.detach() for k, v in params.items()},
            kappa=self.kappa,
            stop_step=self.stop_step,
            correct=self.correct_hist,
            final_correct=final_correct,
            final_loss=final_loss,
            n_forward=self.n_fwd,
            n_backward=self.n_bwd,
            final_score=final_score,
        )


def run_attack(
    model: LogitsFn,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    *,
    max_iter: int,
    targeted: bool = False,
    y_true: torch.Tensor | None = None,
    random_init: bool = True,
    seed: int = 0,
    early_stop_tau: int | None = None,
    record: bool = False,
    final_eval: bool = True,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    init_params: Params | None = None,
    generators: list | None = None,
    step_policy: APGDStep | None = None,
    keep_best: bool = False,
) -> EngineOutput:
    """Projected steepest ascent over the blocks of ``spec`` (see the module docstring).

    Args:
        model: callable ``x -> logits`` (``N x C x H x W -> N x classes``), differentiable.
        x: clean images ``N x C x H x W`` (never modified).
        y: labels the loss uses (``N`` int64): true labels, or target labels when ``targeted``.
        spec: the attack's blocks, render function and phases.
        max_iter: number of steps K (>= 0).
        targeted: descend on CE(., y) instead of ascending.
        y_true: labels that define "still correct" for κ, early stop and recording. Defaults to ``y``
            when untargeted; when targeted without ``y_true``, "correct" means "not yet the target".
        random_init: random start inside every block's budget (unless ``spec.random_init`` overrides).
        seed: base seed of the per-example generators.
        early_stop_tau: FAT's τ (None = plain attack); refused when a block is batch-shared.
        record: keep the correctness of every iterate (``N x (K+1)``).
        final_eval: one extra forward on the returned iterates to report their correctness and loss.
        loss_fn: per-example loss ``(logits, labels) -> N`` (default cross-entropy).
        init_params: start from these parameters instead of zero/random (e.g. a cascade's second stage);
            a batch-shared block's rows must be identical.
        generators: per-example ``torch.Generator`` list to draw from (default: from ``seed``).
        step_policy: None (default) = the fixed steps of every block's threat model (``eps_step``), the
            papers' PGD; an :class:`APGDStep` = APGD's adaptive step size with momentum and checkpoints
            (implies ``keep_best``); refused with a batch-shared block.
        keep_best: return each example's best iterate of 0..K (misclassified first, then the highest
            objective ``loss_fn``, negated when targeted) instead of the last one; its correctness, CE
            and objective are known from the forwards already made (no extra pass; the final forward is
            always made). ``final_score`` holds the objective.
    """
    shared = _check_run(spec, max_iter, early_stop_tau, step_policy, keep_best)
    x = x.detach()
    y = y.to(x.device).long()
    phases = spec.phase_list()
    if generators is None:
        generators = _generators(example_seeds(x, seed)) if x.shape[0] else []
    params = _start_params(spec, x, shared, init_params, generators, random_init, seed)
    loop = _Loop(
        model,
        x,
        y,
        spec,
        params,
        max_iter=max_iter,
        targeted=targeted,
        y_true=y_true,
        loss_fn=loss_fn or _ce,
        shared=shared,
        record=record,
        early_stop_tau=early_stop_tau,
        step_policy=step_policy,
        keep_best=bool(keep_best) or step_policy is not None,
    )
    loop.run(phases)
    return loop.finish(final_eval)


def _stage_spec(spec: AttackSpec, stage: tuple) -> AttackSpec:
    """``spec`` updating only the blocks of ``stage`` (the others start at zero, or where given)."""
    frozen = {name: False for name in spec.blocks if name not in stage}
    return replace(spec, phases=(tuple(stage),), random_init={**spec.random_init, **frozen})


def run_cascade(
    model: LogitsFn,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    *,
    stages: Sequence[tuple[str, ...]],
    max_iter: int,
    y_true: torch.Tensor | None = None,
    early_stop_tau: int | None = None,
    record: bool = False,
    final_eval: bool = True,
    generators: list | None = None,
    seed: int = 0,
    **kwargs,
) -> EngineOutput:
    """A cascade of full attacks: stage ``s`` runs :func:`run_attack` for ``max_iter`` steps on its blocks
    only, starting from the parameters the previous stages found (Joint AT §4.1, §6.2: a full spatial
    attack with ``δ = 0``, then a full pixel attack on its output with ``ω`` frozen).

    Blocks outside the first stage start at zero; examples that stop (early stop) in a stage are final,
    the others enter the next stage with a fresh τ, so ``early_stop_tau = max_iter`` reproduces the plain
    cascade. κ adds up the stages, ``stop_step`` runs over ``0 .. S·K`` (``S·K`` = never stopped), the
    record has ``S·K + 1`` columns, the passes add up. ``kwargs`` go to every stage's :func:`run_attack`
    (``targeted``, ``random_init``, ``loss_fn`` ...); the final forward is made once, at the end.
    """
    n, k = x.shape[0], int(max_iter)
    if generators is None:
        generators = _generators(example_seeds(x, seed)) if n else []
    kw = dict(max_iter=k, early_stop_tau=early_stop_tau, record=record, final_eval=False, seed=seed)
    params = kappa = stop_step = go = None  # go: the examples entering the stage (None: all)
    correct = (
        torch.zeros(n, len(stages) * k + 1, dtype=torch.bool, device=x.device) if record else None
    )
    n_fwd = n_bwd = 0
    for s, stage in enumerate(stages):
        sel = slice(None) if go is None else go
        out = run_attack(
            model,
            x[sel],
            y[sel],
            _stage_spec(spec, stage),
            y_true=None if y_true is None else y_true[sel],
            generators=generators if go is None else [generators[i] for i in go.tolist()],
            init_params=None if params is None else {nm: v[sel] for nm, v in params.items()},
            **kw,
            **kwargs,
        )
        if params is None:
            params = {nm: v.clone() for nm, v in out.params.items()}
            kappa, stop_step = out.kappa.clone(), out.stop_step.clone()
        else:
            for nm in params:
                params[nm][go] = out.params[nm]
            kappa[go] += out.kappa
            stop_step[go] = s * k + out.stop_step
        if correct is not None:
            correct[sel, s * k : (s + 1) * k + 1] = out.correct
        n_fwd, n_bwd = n_fwd + out.n_forward, n_bwd + out.n_backward
        go = torch.nonzero(stop_step >= (s + 1) * k).flatten()  # the stopped examples are final
    with torch.no_grad():
        x_adv = spec.render_final(x, params)
        final_correct = final_loss = None
        if final_eval or record:
            ref, equal = _reference(y, y_true, bool(kwargs.get("targeted", False)))
            _, final_correct, final_loss = _final_eval(
                model, x_adv, y, ref, equal, correct, stop_step, len(stages) * k
            )
            n_fwd += n
    return EngineOutput(
        x_adv=x_adv,
        params=params,
        kappa=kappa,
        stop_step=stop_step,
        correct=correct,
        final_correct=final_correct,
        final_loss=final_loss,
        n_forward=n_fwd,
        n_backward=n_bwd,
    )
