"""Checkpoint I/O (art_spatial.trainers.checkpoint) and the epoch metrics (art_spatial.trainers.metrics).

``tests/data/trainer_checkpoint_format1.pt`` was written by the trainer before checkpoint I/O moved to
its own module (commit f82959c): the Pareto AT run of ``_pareto_run`` below, one epoch of
``nb_epochs=1``. Resuming from it must give the uninterrupted two-epoch run of today's code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_trainers_helpers import ShiftAttack, toy_classifier, toy_data

from art_spatial.trainers import BatchObjective, ParetoAdversarialTrainer
from art_spatial.trainers.checkpoint import (
    CHECKPOINT_NAME,
    read_checkpoint,
    save_checkpoint,
)
from art_spatial.trainers.metrics import EpochMetrics

FORMAT1 = Path(__file__).resolve().parent / "data" / "trainer_checkpoint_format1.pt"


def _pareto_run(nb_epochs, ckpt_dir=None, resume=False):
    x, y = toy_data(24)
    clf = toy_classifier()
    sched = torch.optim.lr_scheduler.StepLR(clf.optimizer, step_size=1, gamma=0.7)
    t = ParetoAdversarialTrainer(
        clf,
        [ShiftAttack(0.5), ShiftAttack(-1.0)],
        r=0.5,
        r_mode="relative",
        window=3,
        seed=3,
        verbose=False,
        checkpoint_dir=ckpt_dir,
    )
    t.fit(x, y, nb_epochs=nb_epochs, batch_size=8, scheduler=sched, resume=resume)
    return clf, t


def _untimed(history):
    return [{k: v for k, v in h.items() if not k.startswith("time_")} for h in history]


def test_a_checkpoint_written_before_the_refactor_resumes_to_the_same_run(tmp_path):
    full_clf, full = _pareto_run(2)
    shutil.copy(FORMAT1, tmp_path / CHECKPOINT_NAME)
    res_clf, res = _pareto_run(2, ckpt_dir=tmp_path, resume=True)
    assert len(res.history) == 2
    assert _untimed(res.history) == _untimed(full.history)
    for (k, a), b in zip(
        full_clf.model.state_dict().items(), res_clf.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    np.testing.assert_array_equal(res.alpha, full.alpha)


def test_read_checkpoint_refuses_another_format_and_another_trainer(tmp_path):
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(
        path, trainer="A", epoch=1, model=net.state_dict(), optimizer=opt.state_dict(), history=[]
    )
    assert read_checkpoint(path, "A")["epoch"] == 1
    with pytest.raises(ValueError, match="was written by A, not B"):
        read_checkpoint(path, "B")
    state = torch.load(path, weights_only=False)
    state["format"] = 2
    torch.save(state, path)
    with pytest.raises(ValueError, match="checkpoint format 2"):
        read_checkpoint(path, "A")
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temporary file left


def _objective(loss, correct, kappa, count):
    return BatchObjective(
        loss=torch.tensor(loss),
        losses={"adv": loss},
        correct_robust=torch.tensor(correct),
        stats={"count": count},
        means={"kappa": kappa},
    )


def test_epoch_metrics_sum_over_ranks_like_one_process():
    a, b = _objective(2.0, [True, False], 1.0, 3.0), _objective(1.0, [True, True, True], 4.0, 1.0)
    one = EpochMetrics()
    one.add(a, 2)
    one.add(b, 3)
    ranks = [EpochMetrics(), EpochMetrics()]
    ranks[0].add(a, 2)
    ranks[1].add(b, 3)
    vectors = []

    def capture(values):  # what each rank hands to the collective
        vectors.append([float(v) for v in values])
        return vectors[-1]

    for r in ranks:
        r.all_reduced(capture)
    total = [a + b for a, b in zip(*vectors, strict=True)]
    merged = ranks[1].all_reduced(lambda values: total)  # the collective's sum of both ranks
    assert merged.record(0) == pytest.approx(one.record(0), nan_ok=True)
    rec = one.record(4)
    assert rec["epoch"] == 5 and rec["robust_acc"] == 0.8 and rec["count"] == 4.0
    assert rec["kappa"] == pytest.approx((2 * 1.0 + 3 * 4.0) / 5) and rec["loss"] == pytest.approx(
        7 / 5
    )
    assert np.isnan(rec["clean_acc"])
