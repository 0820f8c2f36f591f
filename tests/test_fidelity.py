"""Fidelity of trainers' defaults to their papers: GAIRAT's burn-in (half of training, as in the
authors' code).
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
from test_trainers_helpers import ShiftAttack, toy_classifier, toy_data, toy_model

from art_spatial import trainers as T

GAIRAT = T.GeometryAwareAdversarialTrainer


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
    t = GAIRAT(clf, _KilledAttack(0.3, kappa=_kappa, kill_at=kill_at), checkpoint_dir=ckpt,
               verbose=False)
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
