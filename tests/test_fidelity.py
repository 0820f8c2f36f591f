"""Fidelity of two trainers' defaults to their papers: GAIRAT's burn-in (half of training, as in the
authors' code) and CuSP's rotation (nearest-neighbour, black fill) with stages raised at the LR drops.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings

import numpy as np
import pytest
import torch
from test_trainers_helpers import ShiftAttack, toy_classifier, toy_data, toy_model

from art_spatial import trainers as T
from art_spatial import warp as W

GAIRAT = T.GeometryAwareAdversarialTrainer
CUSP = T.CurriculumAdversarialTrainer


def _kappa(xb):
    return (xb.flatten(1).abs().sum(1) * 3).long().clamp(0, 10)


def _strip(history):
    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    return [{k: clean(v) for k, v in h.items() if not k.startswith("time_")} for h in history]


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------------- GAIRAT
def test_gairat_default_burn_in_is_half_of_training():
    x, y = toy_data(8)
    t = GAIRAT(toy_classifier(), ShiftAttack(0.3, kappa=_kappa), verbose=False)
    assert t.burn_in is None
    t.fit(x, y, nb_epochs=4, batch_size=4)
    assert [h["weighted"] for h in t.history] == [False, False, True, True]
    assert [h["burn_in"] for h in t.history] == [2, 2, 2, 2]
    # unweighted epochs record no weight; weighted ones a weight above the mean 1
    assert [h["weight_max"] for h in t.history[:2]] == [0.0, 0.0]
    assert all(h["weight_max"] > 1.0 for h in t.history[2:])
    assert [t.effective_burn_in(n) for n in (1, 2, 5, 120)] == [0, 1, 2, 60]


def test_gairat_explicit_burn_in_and_validation():
    x, y = toy_data(8)
    for burn_in, expected in [(1, [False, True, True, True]), (0, [True] * 4), (9, [False] * 4)]:
        t = GAIRAT(toy_classifier(), ShiftAttack(0.3, kappa=_kappa), burn_in=burn_in, verbose=False)
        t.fit(x, y, nb_epochs=4, batch_size=8)
        assert [h["weighted"] for h in t.history] == expected
        assert {h["burn_in"] for h in t.history} == {burn_in}
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(ValueError, match="burn_in"):
            GAIRAT(toy_classifier(), ShiftAttack(0.3), burn_in=bad)


class _KilledAttack(ShiftAttack):
    """ShiftAttack whose call number ``kill_at`` raises (a run killed in the middle of an epoch)."""

    def __init__(self, *args, kill_at: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kill_at = kill_at

    def attack_tensor(self, *args, **kwargs):
        if self.kill_at is not None and len(self.calls) == self.kill_at:
            raise KeyboardInterrupt("killed")
        return super().attack_tensor(*args, **kwargs)


def _gairat_run(ckpt, nb_epochs=4, kill_at=None, resume=False):
    clf = toy_classifier(toy_model())
    t = GAIRAT(
        clf, _KilledAttack(0.3, kappa=_kappa, kill_at=kill_at), checkpoint_dir=ckpt, verbose=False
    )
    t.fit(*toy_data(8), nb_epochs=nb_epochs, batch_size=4, resume=resume)
    return clf, t


def test_gairat_kill_and_resume_keeps_the_default_burn_in(tmp_path):
    full_clf, full = _gairat_run(tmp_path / "full")
    # killed in the 2nd batch of epoch 3 (2 batches per epoch): the checkpoint holds epochs 1-2
    with pytest.raises(KeyboardInterrupt):
        _gairat_run(tmp_path / "b", kill_at=5)
    ck = torch.load(tmp_path / "b" / T.base.CHECKPOINT_NAME, weights_only=False)
    assert ck["epoch"] == 2 and ck["trainer_state"] == {"burn_in": 2}
    res_clf, res = _gairat_run(tmp_path / "b", resume=True)
    assert _same_state(full_clf.model, res_clf.model)
    assert _strip(full.history) == _strip(res.history)
    assert [h["weighted"] for h in res.history] == [False, False, True, True]


def test_gairat_resume_with_another_length_warns_that_the_burn_in_moved(tmp_path, caplog):
    _gairat_run(tmp_path, nb_epochs=2)  # burn-in 1
    with caplog.at_level(logging.WARNING, logger="art_spatial.trainers.friendly"):
        _, t = _gairat_run(tmp_path, nb_epochs=4, resume=True)  # burn-in 2 from epoch 3 on
    assert [h["burn_in"] for h in t.history] == [1, 1, 2, 2]
    assert [h["weighted"] for h in t.history] == [False, True, True, True]
    assert any("burn_in 1" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------- CuSP
def _asymmetric(n=2, c=2, size=5):
    return torch.arange(n * c * size * size, dtype=torch.float32).reshape(n, c, size, size) + 1.0


@pytest.mark.parametrize("size", [4, 5])
def test_cusp_nearest_rotation_by_quarter_turns_equals_rot90(size):
    x = _asymmetric(size=size)
    for angle, k in [(90.0, 1), (180.0, 2), (-90.0, -1), (270.0, 3)]:
        y = CUSP.rotate_by(x, torch.full((2,), angle))
        assert torch.equal(y, torch.rot90(x, k, dims=(-2, -1))), angle
    # warp.py's sign: +90° moves content counter-clockwise on screen: top-middle -> left-middle
    if size == 5:
        dot = torch.zeros(1, 1, 5, 5)
        dot[0, 0, 0, 2] = 1.0
        assert CUSP.rotate_by(dot, torch.tensor([90.0]))[0, 0, 2, 0] == 1.0
        # and agrees with the package's bilinear warp where that one is exact
        assert torch.allclose(
            W.warp_rt(dot, torch.tensor([90.0]), torch.zeros(1), torch.zeros(1)),
            CUSP.rotate_by(dot, torch.tensor([90.0])),
            atol=1e-5,
        )


def test_cusp_bilinear_differs_from_nearest_at_45_degrees():
    x = _asymmetric(n=1, c=1, size=6)
    angle = torch.tensor([45.0])
    near = CUSP.rotate_by(x, angle, "nearest")
    bil = CUSP.rotate_by(x, angle, "bilinear")
    assert not torch.allclose(near, bil)
    # nearest copies input pixels (or black); bilinear blends them
    allowed = set(x.flatten().tolist()) | {0.0}
    assert set(near.flatten().tolist()) <= allowed
    assert not set(bil.flatten().tolist()) <= allowed
    # bilinear is the package's warp_rt, bit for bit
    assert torch.equal(bil, W.warp_rt(x, angle, torch.zeros(1), torch.zeros(1)))


def test_cusp_trainer_rotates_with_its_interpolation():
    clf = toy_classifier()
    x = _asymmetric(n=16, c=1, size=6)
    t = CUSP(clf, [(0, 60.0, 0.1)], ShiftAttack(0.0), eps_attr=None, verbose=False)
    assert t.interpolation == "nearest" and t.padding_mode == "zeros"
    tb = CUSP(
        clf,
        [(0, 60.0, 0.1)],
        ShiftAttack(0.0),
        eps_attr=None,
        interpolation="bilinear",
        verbose=False,
    )
    near = t.rotate(x, 60.0, torch.Generator().manual_seed(3))
    bil = tb.rotate(x, 60.0, torch.Generator().manual_seed(3))
    assert set(near.flatten().tolist()) <= set(x.flatten().tolist()) | {0.0}
    assert not torch.allclose(near, bil)
    u = torch.rand(16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(bil, W.warp_rt(x, (2 * u - 1) * 60.0, torch.zeros(16), torch.zeros(16)))


def test_cusp_invalid_interpolation_raises():
    for bad in ("bicubic", "NEAREST", None, 0):
        with pytest.raises(ValueError, match="interpolation"):
            CUSP(
                toy_classifier(),
                [(0, 10.0, 0.1)],
                ShiftAttack(0.0),
                eps_attr=None,
                interpolation=bad,
            )
    with pytest.raises(ValueError, match="interpolation"):
        CUSP.rotate_by(torch.zeros(1, 1, 3, 3), torch.zeros(1), "area")


def test_cusp_stages_follow_the_milestones():
    opt = torch.optim.SGD(toy_model().parameters(), lr=0.1)
    sched = CUSP.official_cifar10_scheduler(opt)
    # the preset's stages start at the first two drops; the third finds the curriculum complete
    assert CUSP.stages_from_milestones(sched, (120, 150, 180), (2 / 255, 4 / 255, 8 / 255)) == (
        T.OFFICIAL_CIFAR10_STAGES
    )
    off = CUSP.official_cifar10(toy_classifier(), verbose=False)
    assert [s[0] for s in off.stages[1:]] == sorted(sched.milestones)[:2] == [75, 90]
    assert off.milestone_mismatch(sched) is None
    stages = CUSP.stages_from_milestones([3, 2], [10, 20, 30], [0.1, 0.2, 0.3])
    assert stages == ((0, 10.0, 0.1), (2, 20.0, 0.2), (3, 30.0, 0.3))
    assert CUSP.stages_from_milestones([5], [10], [0.1]) == ((0, 10.0, 0.1),)
    with pytest.raises(ValueError, match="milestones"):
        CUSP.stages_from_milestones([2], [10, 20, 30], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="epsilons"):
        CUSP.stages_from_milestones([2, 3], [10, 20, 30], [0.1, 0.2])
    t = CUSP(toy_classifier(), [(0, 10.0, 0.1), (1, 20.0, 0.2)], ShiftAttack(0.0), eps_attr=None)
    assert "milestones" in t.milestone_mismatch([2, 3])
    assert t.milestone_mismatch([1, 3]) is None


def test_cusp_fit_warns_when_scheduler_and_stages_disagree(caplog):
    x, y = toy_data(4)

    def run(stages, milestones):
        clf = toy_classifier()
        t = CUSP(clf, stages, ShiftAttack(0.0), eps_attr=None, verbose=False)
        sched = torch.optim.lr_scheduler.MultiStepLR(clf._optimizer, milestones=milestones)
        t.fit(x, y, nb_epochs=3, batch_size=4, scheduler=sched)
        return t

    with pytest.warns(UserWarning, match="milestones"):
        run([(0, 10.0, 0.1), (1, 20.0, 0.2)], [2])
    assert any("milestones" in r.getMessage() for r in caplog.records)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        t = run([(0, 10.0, 0.1), (2, 20.0, 0.2)], [2])
    assert not [w for w in rec if "milestones" in str(w.message)]
    assert [h["theta"] for h in t.history] == [10.0, 10.0, 20.0]
    lrs = [h["lr"] for h in t.history]
    assert lrs[2] < lrs[1] == lrs[0]  # the stage rises with the learning-rate drop


def test_cusp_training_is_reproducible_with_nearest_rotation():
    x, y = toy_data(8)
    models = []
    for _ in range(2):
        clf = toy_classifier(copy.deepcopy(toy_model()))
        CUSP(clf, [(0, 90.0, 0.1)], ShiftAttack(0.1), eps_attr=None, verbose=False).fit(
            x, y, nb_epochs=2, batch_size=4
        )
        models.append(clf.model)
    assert _same_state(*models)
    assert np.isfinite(next(models[0].parameters()).detach().numpy()).all()
