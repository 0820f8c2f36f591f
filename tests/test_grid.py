"""GridSpatialAttack (Engstrom et al.): exhaustive grid vs a brute-force loop, worst-of-k, façades."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from art_spatial import warp as W
from art_spatial.attacks.grid import GridSpatialAttack, grid_transforms
from art_spatial.models import make_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits(test_batch):
    x, y = test_batch
    idx = np.arange(3, 200, 20)  # 10 digits, one per class
    return torch.tensor(x[idx]), torch.tensor(y[idx])


def test_default_grid_is_engstroms_775_transforms():
    t = grid_transforms(np.linspace(-30, 30, 31), np.linspace(-3, 3, 5), np.linspace(-3, 3, 5))
    assert t.shape == (775, 3) and len({tuple(r) for r in t.tolist()}) == 775
    assert (t == 0).all(1).any()  # the identity is one of them
    clf = make_classifier(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), input_shape=(1, 28, 28)
    )
    atk = GridSpatialAttack(clf)
    np.testing.assert_allclose(np.asarray(atk.rotations), np.linspace(-30, 30, 31))
    np.testing.assert_allclose(np.asarray(atk.translations_x), np.linspace(-3, 3, 5))


def _check_against_brute_force(model, x, y, atk):
    res = atk.attack_tensor(model, x, y)
    # brute force: one transform at a time for the whole batch, through warp_rt (kornia's convention)
    grid = grid_transforms(atk.rotations, atk.translations_x, atk.translations_y)
    n = len(y)
    ok_all = torch.ones(n, dtype=torch.bool)
    ce_all = torch.empty(len(grid), n)
    wrong_all = torch.empty(len(grid), n, dtype=torch.bool)
    with torch.no_grad():
        for j, (a, tx, ty) in enumerate(grid.tolist()):
            xw = W.warp_rt(
                x, torch.full((n,), a), torch.full((n,), tx), torch.full((n,), ty)
            ).clamp(0, 1)
            logits = model(xw)
            wrong_all[j] = logits.argmax(1) != y
            ce_all[j] = F.cross_entropy(logits, y, reduction="none")
            ok_all &= ~wrong_all[j]
    # accuracy under the grid attack = accuracy under the worst transform of each example
    assert torch.equal(res.success, ~ok_all)
    assert int(res.success.sum()) > 0  # not vacuous: some digits are fooled
    # the chosen transform is the worst: misclassifying first, then the highest cross-entropy
    for i in range(n):
        cand = wrong_all[:, i] if wrong_all[:, i].any() else torch.ones(len(grid), dtype=torch.bool)
        best = ce_all[cand, i].max()
        with torch.no_grad():
            xi = W.warp_rt(x[i : i + 1], *[res.params["rt"][i : i + 1, k] for k in range(3)]).clamp(
                0, 1
            )
            ce_i = F.cross_entropy(model(xi), y[i : i + 1])
        torch.testing.assert_close(ce_i, best, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(res.x_adv[i : i + 1], xi, atol=1e-5, rtol=0)
    assert res.n_forward == len(grid) * n and res.n_backward == 0
    assert res.extras["n_fooling"].tolist() == wrong_all.sum(0).tolist()


def test_grid_accuracy_equals_brute_force_minimum(trained_smallcnn, digits):
    """A 7 x 3 x 3 sub-grid on 6 digits (the full 775-transform grid: the slow test below)."""
    x, y = digits[0][:6], digits[1][:6]
    atk = GridSpatialAttack(
        make_classifier(trained_smallcnn),
        rotations=np.linspace(-30, 30, 7),
        translations_x=[-3, 0, 3],
        translations_y=[-3, 0, 3],
        eval_batch_size=100,
        verbose=False,
    )
    _check_against_brute_force(trained_smallcnn, x, y, atk)


@pytest.mark.slow
def test_full_775_grid_accuracy_equals_brute_force_minimum(trained_smallcnn, digits):
    x, y = digits
    atk = GridSpatialAttack(make_classifier(trained_smallcnn), eval_batch_size=1000, verbose=False)
    _check_against_brute_force(trained_smallcnn, x, y, atk)


def test_chunking_and_batching_do_not_change_the_result(trained_smallcnn, digits):
    x, y = digits
    clf = make_classifier(trained_smallcnn)
    kw = dict(rotations=[-20, 0, 20], translations_x=[-2, 2], translations_y=[0, 1], verbose=False)
    a = GridSpatialAttack(clf, eval_batch_size=7, **kw).attack_tensor(trained_smallcnn, x, y)
    b = GridSpatialAttack(clf, eval_batch_size=10_000, **kw).attack_tensor(trained_smallcnn, x, y)
    assert torch.equal(a.params["rt"], b.params["rt"]) and torch.equal(a.success, b.success)
    out = GridSpatialAttack(clf, batch_size=3, **kw).generate(x.numpy(), y.numpy())
    np.testing.assert_allclose(out, a.x_adv.numpy(), atol=1e-5)  # batch size changes float sums


def test_worst_of_k_draws_per_example_and_excludes_the_clean_image(trained_smallcnn, digits):
    x, y = digits
    clf = make_classifier(trained_smallcnn)
    atk = GridSpatialAttack(clf, mode="worst_of_k", k=1, seed=2, verbose=False)
    r1 = atk.attack_tensor(trained_smallcnn, x, y)
    rt = r1.params["rt"]
    assert (rt[:, 0].abs() <= 30).all() and (rt[:, 1:].abs() <= 3).all()
    assert (rt.abs().sum(1) > 0).all()  # k = 1: the one random transform, never the clean image
    assert len({tuple(r) for r in rt.tolist()}) == len(y)  # each example has its own draw
    # the worst of k = 8 is at least as bad as each of its candidates; reproducible and batch-invariant
    atk8 = GridSpatialAttack(clf, mode="worst_of_k", k=8, seed=2, verbose=False)
    r8 = atk8.attack_tensor(trained_smallcnn, x, y)
    assert torch.equal(r8.params["rt"], atk8.attack_tensor(trained_smallcnn, x, y).params["rt"])
    single = atk8.attack_tensor(trained_smallcnn, x[3:4], y[3:4])
    assert torch.equal(single.params["rt"], r8.params["rt"][3:4])
    cand = atk8._candidates(x)  # k x N x 3 from the per-example generators
    assert cand.shape == (8, len(y), 3)
    with torch.no_grad():
        ce = torch.stack(
            [
                F.cross_entropy(
                    trained_smallcnn(atk8._render(x, cand[j], (0.0, 1.0))), y, reduction="none"
                )
                for j in range(8)
            ]
        )
        ce_best = F.cross_entropy(trained_smallcnn(r8.x_adv), y, reduction="none")
    fooled = r8.success
    assert (ce_best[~fooled] >= ce[:, ~fooled].max(0).values - 1e-4).all()
    assert r8.n_forward == 8 * len(y)


def test_targeted_grid_finds_the_target_when_possible(trained_smallcnn, digits):
    x, y = digits
    clf = make_classifier(trained_smallcnn)
    target = (y + 1) % 10
    atk = GridSpatialAttack(
        clf,
        targeted=True,
        rotations=np.linspace(-30, 30, 5),
        translations_x=[-3, 3],
        translations_y=[-3, 0, 3],
        verbose=False,
    )
    res = atk.attack_tensor(trained_smallcnn, x, target)
    with torch.no_grad():
        pred = trained_smallcnn(res.x_adv).argmax(1)
    assert torch.equal(res.success, pred == target)
    assert 0 < int(res.success.sum())  # some targets are reachable


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(mode="random"), "mode"),
        (dict(k=0), "k"),
        (dict(rotations=[]), "rotations"),
        (dict(translations_x=["a"]), "translations_x"),
        (dict(translations_y=[np.inf]), "translations_y"),
        (dict(eval_batch_size=0), "eval_batch_size"),
        (dict(padding_mode="wrap"), "padding_mode"),
        (dict(seed=-1), "seed"),
    ],
)
def test_validation_names_the_parameter(kwargs, name):
    clf = make_classifier(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), input_shape=(1, 28, 28)
    )
    with pytest.raises(ValueError, match=name):
        GridSpatialAttack(clf, **kwargs)


def test_advertorch_perturb_equals_art_generate(trained_smallcnn, digits):
    from art_spatial.attacks import advertorch as adv  # the dev venv has the advertorch extra

    x, y = digits
    for kw in (
        dict(rotations=[-15, 0, 15], translations_x=[-1, 1], translations_y=[0]),
        dict(mode="worst_of_k", k=3, seed=9),
    ):
        art = GridSpatialAttack(make_classifier(trained_smallcnn), verbose=False, **kw)
        out = art.generate(x.numpy(), y.numpy())
        at = adv.GridSpatialAttack(trained_smallcnn, **kw)
        xa = at.perturb(x, y)
        np.testing.assert_allclose(xa.numpy(), out, atol=1e-6)
        np.testing.assert_array_equal(
            at.last_result.params["rt"].numpy(), art.last_result.params["rt"]
        )
    with pytest.raises(ValueError, match="clip_min"):
        adv.GridSpatialAttack(trained_smallcnn, clip_min=1.0, clip_max=0.0)
    with pytest.raises(ValueError, match="mode"):
        adv.GridSpatialAttack(trained_smallcnn, mode="x")
