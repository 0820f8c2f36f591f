"""FAT's early-stopped PGD-K-τ and GAIRAT's κ in the one loop (engine.run_attack), for every attack.

* τ = K reproduces the plain attack bit for bit (flow, affine, integrated, joint in every schedule, pixel).
* κ and the stop step match a hand count on a linear model whose iterates are predictable.
* Stopped examples leave the batch: exact forward/backward counts on the constructed case, and the
  count formula ``Σ_i passes(stop_step_i)`` on the trained SmallCNN.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_spatial.attacks import AffineAttack, FlowAttack, IntegratedSpatialAttack, PixelAttack
from art_spatial.attacks.joint import JointSpatialPixelAttack
from art_spatial.models import make_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

K = 3


@pytest.fixture(scope="module")
def small_batch(test_batch):
    x, y = test_batch
    idx = np.arange(0, 200, 13)  # 16 digits, all classes
    return torch.tensor(x[idx]), torch.tensor(y[idx])


def _attacks(clf, **common):
    """One instance per iterative attack of the package (small budgets that fool part of the batch)."""
    return {
        "flow": FlowAttack(clf, eps=0.02, eps_step=0.01, random_init=True, **common),
        "affine": AffineAttack(clf, eps=0.1, eps_step=0.04, random_init=True, **common),
        "integrated": IntegratedSpatialAttack(
            clf,
            eps_flow=0.03,
            eps_affine=0.05,
            eps_step_flow=0.01,
            eps_step_affine=0.02,
            random_init=True,
            **common,
        ),
        "pixel": PixelAttack(clf, eps=0.15, eps_step=0.05, **common),
        "joint-double": JointSpatialPixelAttack(clf, eps_pixel=0.1, eps_step_pixel=0.03, **common),
        "joint-one": JointSpatialPixelAttack(
            clf,
            eps_pixel=0.1,
            eps_step_pixel=0.03,
            schedule="one-pass",
            order="pixel-spatial",
            **common,
        ),
        "joint-cascade": JointSpatialPixelAttack(
            clf, eps_pixel=0.1, eps_step_pixel=0.03, schedule="cascade", **common
        ),
    }


def test_tau_equal_to_k_reproduces_the_plain_attack_bit_for_bit(trained_smallcnn, small_batch):
    x, y = small_batch
    clf = make_classifier(trained_smallcnn)
    plain = _attacks(clf, max_iter=K, seed=3, verbose=False)
    tau_k = _attacks(clf, max_iter=K, seed=3, verbose=False, early_stop_tau=K)
    fooled = {}
    for name in plain:
        a = plain[name].attack_tensor(trained_smallcnn, x, y, record=True)
        b = tau_k[name].attack_tensor(trained_smallcnn, x, y, record=True)
        assert torch.equal(a.x_adv, b.x_adv), name
        assert a.params.keys() == b.params.keys()
        for k in a.params:
            assert torch.equal(a.params[k], b.params[k]), (name, k)
        assert torch.equal(a.kappa, b.kappa) and torch.equal(a.correct, b.correct), name
        assert (b.stop_step == a.stop_step).all() and (a.stop_step == a.stop_step.max()).all(), name
        assert (a.n_forward, a.n_backward) == (b.n_forward, b.n_backward), name
        fooled[name] = int(a.success.sum())
    # the comparison is not vacuous: every attack fools some but not all digits of the batch
    assert all(0 < v < len(y) for v in fooled.values()), fooled


class _SumModel(torch.nn.Module):
    """Two logits ``(c, sum(x))``: class 1 iff the pixel sum exceeds ``c``."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c
        self.unused = torch.nn.Parameter(
            torch.zeros(())
        )  # ART's default optimizer needs a parameter

    def forward(self, x):
        s = x.flatten(1).sum(1)
        return torch.stack([torch.full_like(s, self.c), s], dim=1)


def _linear_case():
    # 4-pixel images; untargeted sign-PGD without random start moves every pixel by ±α per step:
    # label 0 -> the sum grows by 4α = 0.2 per step, label 1 -> it shrinks by 0.2 per step.
    levels = torch.tensor([0.10, 0.20, 0.05, 0.90, 0.30, 0.70])
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    x = levels.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    # c = 1.05: sum_t = 4*level ± 0.2 t. First misclassified iterate m per example (by hand):
    #   0.10: 0.4+0.2t > 1.05 -> t=4 ; 0.20: 0.8+0.2t -> t=2 ; 0.05: 0.2+0.2t -> t=5 ;
    #   0.90: 3.6 already > 1.05 -> t=0 ; label 1, 0.30: 1.2-0.2t < 1.05 -> t=1 ; 0.70: 2.8-0.2t -> t=9
    first_wrong = np.array([4, 2, 5, 0, 1, 9])
    return x, labels, first_wrong


@pytest.mark.parametrize("tau", [None, 0, 1, 2, 3])
def test_kappa_stop_step_and_pass_counts_match_a_hand_count(tau):
    x, y, m = _linear_case()
    k = 8
    model = _SumModel(1.05)
    attack = PixelAttack(
        make_classifier(model, input_shape=(1, 2, 2), nb_classes=2),
        eps=1.0,
        eps_step=0.05,
        max_iter=k,
        random_init=False,
        early_stop_tau=tau,
        verbose=False,
    )
    res = attack.attack_tensor(model, x, y, record=True)
    # hand count: the example stops at step m + τ when that is < K, else it runs all K steps
    stop = np.full(len(m), k) if tau is None else np.where(m + tau < k, m + tau, k)
    kappa = np.minimum(m, k)  # iterates 0..K-1 still correct (the sum moves monotonically)
    assert res.stop_step.tolist() == stop.tolist()
    assert res.kappa.tolist() == kappa.tolist()
    # the returned image is the iterate the example stopped at: level ± 0.05 per step taken
    steps = torch.tensor(stop, dtype=torch.float32)
    sgn = torch.where(y == 0, 1.0, -1.0)
    expect = (x.flatten(1)[:, 0] + sgn * 0.05 * steps).clamp(0, 1)
    torch.testing.assert_close(
        res.x_adv.flatten(1), expect.view(-1, 1).expand(-1, 4), atol=1e-6, rtol=0
    )
    # stopped examples leave the batch: one forward and one backward per step they were still in
    # (the stopping step included), plus one final evaluation forward for everybody
    in_loop = np.where(stop < k, stop + 1, k)
    assert res.n_backward == int(in_loop.sum())
    assert res.n_forward == int(in_loop.sum()) + len(m)
    # per-iterate record: a stopped example stays misclassified after its stop
    corr = res.correct.numpy()
    for i in range(len(m)):
        assert corr[i, : m[i]].all() and not corr[i, m[i] :].any()


def test_early_stop_saves_passes_with_the_count_formula_on_a_trained_model(
    trained_smallcnn, small_batch
):
    x, y = small_batch
    clf = make_classifier(trained_smallcnn)
    n = len(y)
    for tau in (0, 1):
        attacks = _attacks(clf, max_iter=K, seed=1, verbose=False, early_stop_tau=tau)
        for name in ("pixel", "joint-double", "joint-cascade"):
            res = attacks[name].attack_tensor(trained_smallcnn, x, y)
            s = res.stop_step.numpy()
            if name == "joint-double":  # two passes per step; a stop happens at the first pass
                per = np.where(s < K, 2 * s + 1, 2 * K)
            elif name == "joint-cascade":  # K spatial then K pixel steps, one pass each
                per = np.where(s < 2 * K, s + 1, 2 * K)
            else:
                per = np.where(s < K, s + 1, K)
            assert res.n_backward == int(per.sum()), (name, tau)
            assert res.n_forward == int(per.sum()) + n, (name, tau)
            full = (2 * K if name != "pixel" else K) * n
            assert res.n_backward < full, (name, tau)  # some examples did stop
            # stopped examples are misclassified
            stopped = s < (2 * K if name == "joint-cascade" else K)
            assert stopped.any()
            assert res.success[torch.as_tensor(stopped)].all()


def test_early_stop_validation():
    clf = make_classifier(_SumModel(1.0), input_shape=(1, 2, 2), nb_classes=2)
    with pytest.raises(ValueError, match="early_stop_tau"):
        PixelAttack(clf, early_stop_tau=-1)
    with pytest.raises(ValueError, match="early_stop_tau"):
        JointSpatialPixelAttack(clf, early_stop_tau=1.5)
