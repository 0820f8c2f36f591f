"""The batch-shared affine parameter (``affine_scope="batch"``) of AffineAttack / IntegratedSpatialAttack."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_spatial.attacks import AffineAttack, IntegratedSpatialAttack, JointSpatialPixelAttack
from art_spatial.attacks import advertorch as at
from art_spatial.attacks.engine import AttackSpec, _batch_seed, example_seeds, run_attack
from art_spatial.models import make_classifier
from art_spatial.threats import LinfBox


@pytest.fixture(autouse=True, scope="module")
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def model():
    """A small random CNN with non-zero gradients everywhere (fast; no training needed)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 26 * 26, 10),
    )
    return net.eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 1, 28, 28, generator=g), torch.tensor([0, 1, 2, 3, 4, 5])


def _clf(model):
    return make_classifier(model, input_shape=(1, 28, 28))


def _affine(model, **kw):
    kw.setdefault("max_iter", 4)
    return AffineAttack(_clf(model), verbose=False, **kw)


def _integrated(model, **kw):
    kw.setdefault("max_iter", 4)
    return IntegratedSpatialAttack(_clf(model), verbose=False, **kw)


BOXES = {"affine": (0.3, None), "rt": (None, (30.0, 3.0, 3.0))}


@pytest.mark.parametrize("make", [_affine, _integrated])
@pytest.mark.parametrize("parametrization", ["affine", "rotation-translation"])
@pytest.mark.parametrize("random_init", [False, True])
def test_shared_params_identical_across_batch_and_in_box(
    make, parametrization, random_init, model, batch
):
    x, y = batch
    res = make(
        model, parametrization=parametrization, random_init=random_init, affine_scope="batch"
    ).attack_tensor(model, x, y)
    name = "affine" if parametrization == "affine" else "rt"
    p = res.params[name]
    assert p.shape[0] == x.shape[0]
    assert torch.equal(p, p[:1].expand_as(p))
    assert float(p.abs().max()) > 0  # it moved
    bound = torch.tensor(0.3) if name == "affine" else torch.tensor(BOXES["rt"][1])
    assert bool((p.abs() <= bound + 1e-6).all())
    # the realised per-example summaries agree as well
    assert np.ptp(np.asarray(res.rotation_deg)) < 1e-4
    if "flow" in res.params:  # the integrated attack's flow stays per example
        f = res.params["flow"]
        assert not torch.equal(f, f[:1].expand_as(f))


@pytest.mark.parametrize("make", [_affine, _integrated])
@pytest.mark.parametrize("random_init", [False, True])
def test_batch_of_one_equals_per_example(make, random_init, model, batch):
    x, y = batch
    for i in range(3):
        xi, yi = x[i : i + 1], y[i : i + 1]
        a = make(model, random_init=random_init, affine_scope="batch").attack_tensor(model, xi, yi)
        b = make(model, random_init=random_init).attack_tensor(model, xi, yi)
        for k in b.params:
            assert torch.equal(a.params[k], b.params[k]), k
        assert torch.equal(a.x_adv, b.x_adv)


def test_batch_seed_of_one_example_is_its_example_seed(batch):
    x, _ = batch
    assert _batch_seed(x[:1], 7) == int(example_seeds(x[:1], 7)[0])
    assert _batch_seed(x, 7) != _batch_seed(x[:5], 7)


def test_shared_differs_from_per_example_and_depends_on_batch(model, batch):
    x, y = batch
    per = _affine(model).attack_tensor(model, x, y).params["affine"]
    assert not torch.equal(per, per[:1].expand_as(per))  # per-example parameters really differ
    full = _affine(model, affine_scope="batch").attack_tensor(model, x, y).params["affine"]
    part = _affine(model, affine_scope="batch").attack_tensor(model, x[:3], y[:3]).params["affine"]
    assert not torch.equal(full[:3], part)  # a batch-level attack: the result depends on the batch


def test_shared_step_is_sign_of_summed_gradient(model, batch):
    """One step from the identity = eps_step · sign(Σ_i ∇_w CE_i) on every row."""
    x, y = batch
    from art_spatial import warp as W

    w = torch.zeros(x.shape[0], 2, 3, requires_grad=True)
    grid = W.make_grid(tuple(x.shape), affine=W.affine_matrix(w))
    loss = torch.nn.functional.cross_entropy(
        model(W.sample(x, grid, "zeros").clamp(0, 1)), y, reduction="sum"
    )
    (g,) = torch.autograd.grad(loss, w)
    expected = (0.1 * g.sum(0).sign()).expand_as(g)
    got = (
        _affine(model, max_iter=1, affine_scope="batch").attack_tensor(model, x, y).params["affine"]
    )
    assert torch.allclose(got, expected)


def test_default_is_per_example(model):
    for cls in (AffineAttack, IntegratedSpatialAttack):
        assert cls(_clf(model), verbose=False).affine_scope == "per-example"
        assert "affine_scope" in cls.attack_params
    assert at.AffineAttack(model).affine_scope == "per-example"


@pytest.mark.parametrize("cls", [AffineAttack, IntegratedSpatialAttack])
@pytest.mark.parametrize("bad", ["global", True, None, "Batch"])
def test_invalid_scope_names_the_parameter(cls, bad, model):
    with pytest.raises(ValueError, match="affine_scope"):
        cls(_clf(model), affine_scope=bad, verbose=False)
    with pytest.raises(ValueError, match="affine_scope"):
        at.AffineAttack(model, affine_scope=bad)


@pytest.mark.parametrize("cls", [AffineAttack, IntegratedSpatialAttack])
def test_art_set_params(cls, model, batch):
    attack = cls(_clf(model), max_iter=2, verbose=False)
    attack.set_params(affine_scope="batch")
    assert attack.affine_scope == "batch"
    x, y = batch
    attack.generate(x.numpy(), y=y.numpy())
    name = "affine"
    p = attack.last_result.params[name]
    assert (p == p[:1]).all()
    with pytest.raises(ValueError, match="affine_scope"):
        attack.set_params(affine_scope="nope")


def test_generate_shares_within_each_batch_of_batch_size(model, batch):
    x, y = batch
    attack = AffineAttack(
        _clf(model), max_iter=3, batch_size=4, affine_scope="batch", verbose=False
    )
    attack.generate(x.numpy(), y=y.numpy())
    p = attack.last_result.params["affine"]
    assert (p[:4] == p[:1]).all() and (p[4:] == p[4:5]).all()
    assert not np.array_equal(p[0], p[4])


@pytest.mark.parametrize("cls", [AffineAttack, IntegratedSpatialAttack])
def test_early_stop_is_refused(cls, model):
    with pytest.raises(ValueError, match="affine_scope.*early_stop_tau"):
        cls(_clf(model), affine_scope="batch", early_stop_tau=0, verbose=False)
    attack = cls(_clf(model), affine_scope="batch", verbose=False)
    with pytest.raises(ValueError, match="early_stop_tau"):
        attack.set_params(early_stop_tau=2)
    cls(_clf(model), early_stop_tau=0, verbose=False)  # per-example: allowed


def test_engine_refuses_early_stop_and_unequal_init_with_a_shared_block(model, batch):
    x, y = batch
    spec = AttackSpec(
        blocks={"pixel": LinfBox("pixel", 0.1, 0.02, "pixel", shared=True)},
        render=lambda x, p: (x + p["pixel"]).clamp(0, 1),
    )
    with pytest.raises(ValueError, match="early_stop_tau"):
        run_attack(model, x, y, spec, max_iter=2, early_stop_tau=1)
    with pytest.raises(ValueError, match="identical"):
        run_attack(model, x, y, spec, max_iter=2, init_params={"pixel": torch.rand_like(x) * 0.1})
    out = run_attack(model, x, y, spec, max_iter=3, seed=3)  # any block can be shared
    d = out.params["pixel"]
    assert torch.equal(d, d[:1].expand_as(d)) and float(d.abs().max()) <= 0.1 + 1e-7
    with pytest.raises(ValueError, match="shared"):
        LinfBox("pixel", 0.1, 0.02, "pixel", shared="yes")


def test_joint_with_a_batch_scoped_affine_instance(model, batch):
    """The joint attack uses an instance's blocks, batch scope included; its pixel block stays per example."""
    x, y = batch
    spatial = _affine(model, affine_scope="batch")
    joint = JointSpatialPixelAttack(_clf(model), spatial=spatial, max_iter=2, verbose=False)
    res = joint.attack_tensor(model, x, y)
    p = res.params["affine"]
    assert torch.equal(p, p[:1].expand_as(p))
    px = res.params["pixel"]
    assert not torch.equal(px, px[:1].expand_as(px))


def test_record_matches_separate_runs(model, batch):
    """The iterate k of one K-step run is the final iterate of a k-step run (as the harness assumes)."""
    x, y = batch
    full = _affine(model, max_iter=4, affine_scope="batch").attack_tensor(model, x, y, record=True)
    for k in (1, 3):
        short = _affine(model, max_iter=k, affine_scope="batch").attack_tensor(model, x, y)
        assert torch.equal(full.correct[:, k], ~short.success.bool())
