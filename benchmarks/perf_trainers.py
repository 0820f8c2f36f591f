"""Epoch cost of every adversarial trainer relative to a natural epoch (MNIST-5k, SmallCNN), and the
overhead of Pareto AT's QP + window over Ave AT with the same attacks.

Every trainer runs one epoch through the same loop (:mod:`art_spatial.trainers.base`) from the same
initialization on the same data; the natural reference is the same loop with the natural cross-entropy
objective. Ratios (trainer epoch ÷ natural epoch; Pareto AT ÷ Ave AT) are computed inside one run, so they
are comparable across machines; each time is the minimum over ``--repeats`` runs.

The Pareto/Ave comparison is made with the same losses (``include_natural`` on both sides, so the only
difference is the QP and the sliding window — target ≤ 1.05), and also as used in the paper (Pareto AT
with L0, Ave AT without).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/perf_trainers.py            # full: 4000 digits, paper iterations
    OMP_NUM_THREADS=1 python benchmarks/perf_trainers.py --quick    # 512 digits, 3 attack iterations

Writes ``benchmarks/results/perf_trainers.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _meta import machine_metadata, write_json  # noqa: E402

from art_spatial import trainers as T  # noqa: E402
from art_spatial.attacks import (  # noqa: E402
    AffineAttack,
    FlowAttack,
    IntegratedSpatialAttack,
    PixelAttack,
)
from art_spatial.data import load_mnist5k  # noqa: E402
from art_spatial.models import SmallCNN, make_classifier  # noqa: E402
from art_spatial.trainers.base import AdversarialTrainerBase, BatchObjective  # noqa: E402


class NaturalTrainer(AdversarialTrainerBase):
    """The reference: the same loop with the natural cross-entropy."""

    def _batch_objective(self, x, y, ctx):
        logits = self.train_logits(x)
        ce = self.ce(logits, y)
        return BatchObjective(
            loss=ce.mean(),
            losses={"natural": ce.detach().mean()},
            correct_clean=logits.detach().argmax(1) == y,
        )


def attacks(clf, pgd_iter: int, spatial_iter: int):
    """The Pareto paper's MNIST training attacks (Appendix E), with the given iteration counts."""
    return dict(
        pgd=PixelAttack(clf, eps=0.3, eps_step=0.01, max_iter=pgd_iter, verbose=False),
        flow=FlowAttack(clf, eps=0.3, eps_step=0.01, max_iter=spatial_iter, verbose=False),
        rt=AffineAttack(clf, eps=0.3, eps_step=0.1, max_iter=spatial_iter, verbose=False),
        integ=IntegratedSpatialAttack(
            clf,
            eps_flow=0.3,
            eps_affine=0.3,
            eps_step_flow=0.01,
            eps_step_affine=0.1,
            max_iter=spatial_iter,
            verbose=False,
        ),
    )


def build(name: str, clf, A, joint_iter: int):
    trio = [A["pgd"], A["flow"], A["rt"]]
    if name == "natural":
        return NaturalTrainer(clf)
    if name == "pgd":
        return T.PGDAdversarialTrainer(clf, A["pgd"])
    if name == "spatial":
        return T.SpatialAdversarialTrainer(clf, A["integ"])
    if name == "joint":
        from art_spatial.attacks.joint import JointSpatialPixelAttack

        atk = JointSpatialPixelAttack(
            clf, eps_pixel=0.3, eps_step_pixel=0.01, max_iter=joint_iter, verbose=False
        )
        return T.JointAdversarialTrainer(clf, atk)
    if name == "ave":
        return T.AverageAdversarialTrainer(clf, trio)
    if name == "ave_nat":
        return T.AverageAdversarialTrainer(clf, trio, include_natural=True)
    if name == "max":
        return T.MaxAdversarialTrainer(clf, trio)
    if name == "pareto":
        return T.ParetoAdversarialTrainer(clf, trio, r=2.2)
    if name == "fat":
        return T.FriendlyAdversarialTrainer(
            clf, A["pgd"], tau_schedule={0: 2}, schedule_epochs=None
        )
    if name == "gairat":
        return T.GeometryAwareAdversarialTrainer(clf, A["pgd"], burn_in=0)
    if name == "cusp":
        return T.CurriculumAdversarialTrainer(
            clf, [(0, 30.0, 0.3)], eps_step=0.01, max_iter=A["pgd"].max_iter
        )
    raise ValueError(name)


NAMES = [
    "natural",
    "pgd",
    "spatial",
    "joint",
    "ave",
    "ave_nat",
    "max",
    "pareto",
    "fat",
    "gairat",
    "cusp",
]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="512 digits and 3 attack iterations")
    p.add_argument("--n", type=int, default=None, help="training digits (default 4000, quick 512)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=None, help="timed runs per trainer (min is kept)")
    p.add_argument(
        "--pair-repeats",
        type=int,
        default=3,
        help="interleaved timed runs of Ave AT (with L0) and Pareto AT (min is kept)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", nargs="*", default=None, help="subset of " + ",".join(NAMES))
    p.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "perf_trainers.json")
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    n = args.n or (512 if args.quick else 4000)
    pgd_iter, spatial_iter, joint_iter = (3, 3, 3) if args.quick else (30, 20, 20)
    repeats = args.repeats or (1 if args.quick else 1)
    x, y = load_mnist5k("train", seed=0)
    x, y = x[:n], y[:n]
    names = args.only or NAMES
    if "natural" not in names:
        names = ["natural"] + list(names)
    torch.manual_seed(0)
    init = SmallCNN().state_dict()

    def run(name):
        model = SmallCNN()
        model.load_state_dict(init)
        clf = make_classifier(model)
        trainer = build(name, clf, attacks(clf, pgd_iter, spatial_iter), joint_iter)
        trainer.verbose = False
        t0 = time.perf_counter()
        trainer.fit(x, y, nb_epochs=1, batch_size=args.batch_size)
        return time.perf_counter() - t0, trainer.history[0]

    # the critical pair first, interleaved so that load changes hit both sides alike
    pair = [n for n in ("ave_nat", "pareto") if n in names]
    timed = {n: [] for n in names}
    hists = {}
    for _ in range(args.pair_repeats if len(pair) == 2 else 0):
        for name in pair:
            dt, hists[name] = run(name)
            timed[name].append(dt)
    for name in names:
        while len(timed[name]) < repeats:
            dt, hists[name] = run(name)
            timed[name].append(dt)
    rows = {}
    for name in names:
        hist = hists[name]
        rows[name] = {
            "epoch_s": min(timed[name]),
            "all_s": timed[name],
            "attack_s": hist.get("time_attack_s"),
            "qp_s": hist.get("time_qp_s"),
        }
        print(f"{name:8s} {min(timed[name]):8.2f} s", flush=True)
    nat = rows["natural"]["epoch_s"]
    for r in rows.values():
        r["ratio_vs_natural"] = r["epoch_s"] / nat
    out = {
        "benchmark": "perf_trainers",
        "description": "one epoch of each trainer / one natural epoch (same loop, same data, same init); "
        "Pareto AT / Ave AT with the same attacks",
        "config": {
            "n_train": n,
            "batch_size": args.batch_size,
            "pgd_iter": pgd_iter,
            "spatial_iter": spatial_iter,
            "joint_iter": joint_iter,
            "repeats": repeats,
            "quick": bool(args.quick),
            "model": "SmallCNN",
            "data": "MNIST-5k train split",
            "pareto_r": 2.2,
            "pareto_window": 20,
        },
        "meta": machine_metadata(),
        "trainers": rows,
    }
    if "pareto" in rows and "ave_nat" in rows:
        out["pareto_over_ave_same_losses"] = rows["pareto"]["epoch_s"] / rows["ave_nat"]["epoch_s"]
        out["target_pareto_over_ave"] = 1.05
    if "pareto" in rows and "ave" in rows:
        out["pareto_over_ave_paper_setting"] = rows["pareto"]["epoch_s"] / rows["ave"]["epoch_s"]
    if "pareto" in rows:
        out["pareto_qp_window_fraction"] = (rows["pareto"]["qp_s"] or 0.0) / rows["pareto"][
            "epoch_s"
        ]
    write_json(args.out, out)
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
