"""Distributed (DDP) training: 2 gloo processes on CPU train every trainer exactly as 1 process does.

The 2-process runs are spawned from a fresh interpreter (``torch.multiprocessing.spawn``, gloo, file://
rendezvous) with a timeout, as in ``test_bench_distributed.py``: spawning from inside the pytest process
hung on the loaded shared machine. The 1-process reference runs in the test process with the same
global batch. Compared: every number of ``history`` (Pareto AT's α, Max AT's counts, GAIRAT's weights,
the epoch metrics) and the final weights, to float tolerance (with SGD; see ``_build``). A 2-process
run killed (SIGKILL of rank 0) after its first checkpoint resumes on 2 processes and ends where the
uninterrupted run ends.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

N_TRAIN, BATCH, EPOCHS = 20, 8, 2  # batches of 8, 8 and 4 examples: the last one is uneven

#: the trainers whose batch statistics are reduced across ranks (fast tier) and the others (slow tier)
TRAINERS_REDUCED = ("pareto", "max", "gairat")
TRAINERS_OTHER = ("ave", "fat", "targeted", "cusp", "natural")


def _data():
    from art_spatial.data import load_mnist5k

    x, y = load_mnist5k("train", seed=0)
    return x[:N_TRAIN], y[:N_TRAIN]


def _build(name: str, ckpt_dir=None, epoch_callback=None):
    """A fresh SmallCNN classifier (same initial weights everywhere) and the trainer ``name``."""
    from art_spatial import trainers as T
    from art_spatial.attacks import FlowAttack, PixelAttack
    from art_spatial.models import SmallCNN, make_classifier

    torch.manual_seed(0)
    # SGD: Adam's first steps are nearly sign(gradient) steps, so gradient entries at float-noise level
    # (the zero-initialised last layer makes many) flip whole lr-sized steps between two float-equal
    # runs (measured: up to 1e-3 after 3 steps, 1-process vs 2-process, for Max and Pareto AT)
    clf = make_classifier(SmallCNN(), lr=0.05, optimizer="sgd", momentum=0.9)
    pgd = PixelAttack(clf, eps=0.3, eps_step=0.1, max_iter=2, random_init=True, verbose=False)
    flow = FlowAttack(clf, eps=0.3, eps_step=0.05, max_iter=2, verbose=False)
    kw = dict(seed=3, verbose=False, checkpoint_dir=ckpt_dir, epoch_callback=epoch_callback)
    if name == "pareto":
        return clf, T.ParetoAdversarialTrainer(
            clf, [pgd, flow], r=0.5, r_mode="relative", window=2, **kw
        )
    if name == "max":
        return clf, T.MaxAdversarialTrainer(clf, [pgd, flow], **kw)
    if name == "ave":
        return clf, T.AverageAdversarialTrainer(clf, [pgd, flow], include_natural=True, **kw)
    if name == "gairat":
        return clf, T.GeometryAwareAdversarialTrainer(clf, pgd, burn_in=0, **kw)
    if name == "fat":
        return clf, T.FriendlyAdversarialTrainer(
            clf, pgd, tau_schedule={0: 0, 1: 1}, schedule_epochs=None, **kw
        )
    if (
        name == "targeted"
    ):  # random non-true targets drawn by the trainer (Joint AT's training mode)
        return clf, T.SingleAttackTrainer(
            clf, pgd, targeted_training=True, label_smoothing=0.2, **kw
        )
    if name == "cusp":
        return clf, T.CurriculumAdversarialTrainer(clf, [(0, 30.0, 0.1), (1, 60.0, 0.2)], pgd, **kw)
    if name == "natural":
        return clf, T.NaturalTrainer(clf, **kw)
    raise ValueError(name)


def _train(name: str, nb_epochs: int = EPOCHS, **kw):
    clf, trainer = _build(name, **kw)
    x, y = _data()
    trainer.fit(x, y, batch_size=BATCH, nb_epochs=nb_epochs, resume=bool(kw.get("ckpt_dir")))
    return clf, trainer


class _ListGenerator:
    """A duck-typed ART DataGenerator yielding fixed batches in order (``size``, ``batch_size``)."""

    def __init__(self, batches, size, batch_size):
        self.batches, self.size, self.batch_size, self.i = batches, size, batch_size, 0

    def get_batch(self):
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        return b


def _generator(rank: int, world: int):
    """Batches of 8 of the training data in file order; rank ``r`` of ``world`` gets rows r::world."""
    x, y = _data()
    x, y = x[:16], y[:16]
    batches = [(x[s : s + 8][rank::world], y[s : s + 8][rank::world]) for s in (0, 8)]
    return _ListGenerator(batches, size=16 // world, batch_size=8 // world)


def _train_generator(rank: int, world: int):
    clf, trainer = _build("pareto")
    trainer.fit_generator(_generator(rank, world), nb_epochs=EPOCHS)
    return clf, trainer


def _dump(out_dir: str, tag: str, clf, trainer) -> None:
    torch.save(clf.model.state_dict(), os.path.join(out_dir, f"{tag}.pt"))
    hist = [{k: v for k, v in h.items() if not k.startswith("time_")} for h in trainer.history]
    with open(os.path.join(out_dir, f"{tag}.json"), "w") as fh:
        json.dump(hist, fh)


def _kill_rank0_at_epoch_2(trainer, epoch):
    if epoch == 1 and torch.distributed.get_rank() == 0:
        os.kill(os.getpid(), signal.SIGKILL)  # mid-run: epoch 1 is checkpointed, epoch 2 is not
    return {}


def _worker(rank, world, init_file, out_dir, job):
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        if job in ("reduced", "other"):
            for name in TRAINERS_REDUCED if job == "reduced" else TRAINERS_OTHER:
                clf, trainer = _train(name)
                assert trainer._ddp is None  # the wrapper does not outlive fit
                _dump(out_dir, f"{name}_rank{rank}", clf, trainer)
            if job == "other":  # fit_generator: each rank's generator yields its share of a batch
                clf, trainer = _train_generator(rank, world)
                _dump(out_dir, f"generator_rank{rank}", clf, trainer)
        elif job == "killed":
            _train(
                "pareto",
                nb_epochs=2,
                ckpt_dir=os.path.join(out_dir, "ckpt"),
                epoch_callback=_kill_rank0_at_epoch_2,
            )
        elif job == "resume":
            clf, trainer = _train("pareto", nb_epochs=2, ckpt_dir=os.path.join(out_dir, "ckpt"))
            _dump(out_dir, f"resumed_rank{rank}", clf, trainer)
    finally:
        torch.distributed.destroy_process_group()


def _spawn(tmp_path, job: str, timeout: int = 600):
    code = (
        "import sys, torch.multiprocessing as mp; sys.path.insert(0, sys.argv[1]); "
        "import test_trainers_distributed as T; "
        "mp.spawn(T._worker, args=(2, sys.argv[2], sys.argv[3], sys.argv[4]), nprocs=2, join=True)"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    init = tmp_path / f"init_{job}"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", code, here, str(init), str(tmp_path), job],
        timeout=timeout,
        env=env,
        capture_output=True,
        text=True,
    )


def _assert_history_close(h2, h1, what):
    assert len(h2) == len(h1), what
    for e2, e1 in zip(h2, h1, strict=True):
        keys = {k for k in e1 if not k.startswith("time_")}
        assert keys == set(e2), (what, keys ^ set(e2))
        for k in sorted(keys):
            a, b = e2[k], e1[k]
            if isinstance(b, float) and math.isnan(b):
                assert isinstance(a, float) and math.isnan(a), (what, k, a, b)
            elif (
                isinstance(b, (int, float, list))
                and not isinstance(b, bool)
                and not (isinstance(b, list) and b and isinstance(b[0], str))
            ):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"{what}: {k}")
            else:
                assert a == b, (what, k, a, b)


def _assert_weights_close(sd2, sd1, what, atol=1e-5):
    assert sd2.keys() == sd1.keys()
    for k in sd1:
        torch.testing.assert_close(sd2[k], sd1[k], rtol=1e-4, atol=atol, msg=f"{what}: {k}")


def _one_process(name, nb_epochs=EPOCHS):
    clf, trainer = _train(name, nb_epochs=nb_epochs)
    hist = json.loads(json.dumps([dict(h) for h in trainer.history]))
    return clf.model.state_dict(), hist


def _check_against_one_process(tmp_path, names):
    for name in names:
        sd1, h1 = _one_process(name)
        for rank in (0, 1):
            sd2 = torch.load(tmp_path / f"{name}_rank{rank}.pt", weights_only=True)
            h2 = json.loads((tmp_path / f"{name}_rank{rank}.json").read_text())
            _assert_history_close(h2, h1, f"{name} rank {rank}")
            _assert_weights_close(sd2, sd1, f"{name} rank {rank}")
        # the runs trained at all (weights moved) and counted every example once
        assert h1[-1]["n_examples"] == N_TRAIN
        init = _build(name)[0].model.state_dict()
        assert any(not torch.equal(init[k], sd1[k]) for k in init), name


def test_two_processes_train_pareto_max_gairat_like_one(tmp_path):
    res = _spawn(tmp_path, "reduced")
    assert res.returncode == 0, res.stderr[-3000:]
    _check_against_one_process(tmp_path, TRAINERS_REDUCED)
    # the statistics that depend on the whole batch are there and were reduced
    h = json.loads((tmp_path / "pareto_rank1.json").read_text())
    assert len(h[0]["alpha"]) == 3 and h[0]["qp_failures"] == 0
    h = json.loads((tmp_path / "max_rank1.json").read_text())
    assert sum(v for k, v in h[0].items() if k.startswith("max_count_")) == N_TRAIN
    h = json.loads((tmp_path / "gairat_rank1.json").read_text())
    assert h[0]["weighted"] and h[0]["weight_max"] > 1.0


@pytest.mark.slow
def test_two_processes_train_the_other_trainers_like_one(tmp_path):
    res = _spawn(tmp_path, "other")
    assert res.returncode == 0, res.stderr[-3000:]
    _check_against_one_process(tmp_path, TRAINERS_OTHER)
    clf, trainer = _train_generator(0, 1)
    h1 = json.loads(json.dumps(trainer.history))
    for rank in (0, 1):
        h2 = json.loads((tmp_path / f"generator_rank{rank}.json").read_text())
        _assert_history_close(h2, h1, f"fit_generator rank {rank}")
        sd2 = torch.load(tmp_path / f"generator_rank{rank}.pt", weights_only=True)
        _assert_weights_close(sd2, clf.model.state_dict(), f"fit_generator rank {rank}")
    assert h1[-1]["n_examples"] == 16


def test_killed_two_process_run_resumes_exactly(tmp_path):
    res = _spawn(tmp_path, "killed")
    assert res.returncode != 0  # rank 0 was killed, spawn ended the other rank
    state = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=False)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    res = _spawn(tmp_path, "resume")
    assert res.returncode == 0, res.stderr[-3000:]
    sd1, h1 = _one_process("pareto", nb_epochs=2)
    for rank in (0, 1):
        sd2 = torch.load(tmp_path / f"resumed_rank{rank}.pt", weights_only=True)
        h2 = json.loads((tmp_path / f"resumed_rank{rank}.json").read_text())
        _assert_history_close(h2, h1, f"resumed rank {rank}")
        _assert_weights_close(sd2, sd1, f"resumed rank {rank}")


def test_distributed_true_without_a_process_group_is_refused():
    from art_spatial.models import SmallCNN, make_classifier
    from art_spatial.trainers import NaturalTrainer

    trainer = NaturalTrainer(make_classifier(SmallCNN()), verbose=False, distributed=True)
    x, y = _data()
    with pytest.raises(ValueError, match="distributed=True needs an initialized"):
        trainer.fit(x, y, batch_size=BATCH, nb_epochs=1)
    with pytest.raises(ValueError, match="distributed"):
        NaturalTrainer(make_classifier(SmallCNN()), verbose=False, distributed="yes")


def test_batch_context_local_rows():
    from art_spatial.trainers.base import BatchContext

    draw = torch.arange(10.0)
    assert torch.equal(BatchContext(0, 0, 0).local(draw), draw)
    ctx = BatchContext(0, 0, 0, n_global=10, positions=torch.tensor([1, 3, 5, 7, 9]))
    assert ctx.local(draw).tolist() == [1.0, 3.0, 5.0, 7.0, 9.0]
