"""Behaviour fingerprints: what the attacks, trainers and harness compute at fixed seeds, as hashes.

A refactor must not move any number. This module runs every public attack (ART ``generate``, the
AdverTorch façades, the tensor API), a two-epoch run of every trainer and a ``pareto-mnist`` evaluation
on a small deterministic setup (one intra-op thread, a SmallCNN trained for one epoch from a fixed
seed) and reduces each result to

* ``sha256``: a hash of the exact bytes of every array it returned (adversarial images, parameters,
  success flags, κ, passes; final weights and the per-epoch history; the report's counts and
  per-example outcomes), and
* ``summary``: a few float statistics of the same arrays (sums, absolute sums), for a readable diff.

``tests/test_fingerprints.py`` compares them with ``tests/data/fingerprints.json``. Recording::

    .venv/bin/python tests/fingerprints.py --record        # rewrite tests/data/fingerprints.json
    .venv/bin/python tests/fingerprints.py                 # compare and list what moved

Only a deliberate numeric change may re-record, in its own commit that says so (docs/conventions.md,
"Numbers that move").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
RECORD = Path(__file__).resolve().parent / "data" / "fingerprints.json"

# keys of a trainer's history that measure time, not behaviour
_TIME_KEYS = ("time_", "seconds")


# ------------------------------------------------------------------------------------------ hashing
def _arrays(obj, prefix=""):
    """``(name, np.ndarray)`` pairs of a nested structure, in a fixed order."""
    if obj is None:
        return
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from _arrays(obj[k], f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)) and not (obj and isinstance(obj[0], (int, float, bool))):
        for i, v in enumerate(obj):
            yield from _arrays(v, f"{prefix}[{i}]")
    elif isinstance(obj, torch.Tensor):
        yield prefix, obj.detach().cpu().numpy()
    elif isinstance(obj, str):
        yield prefix, np.frombuffer(obj.encode(), dtype=np.uint8)
    else:
        a = np.asarray(obj)
        if (
            a.dtype.kind == "O"
        ):  # e.g. a list holding None: hash its JSON text, never object pointers
            a = np.frombuffer(json.dumps(obj, default=str).encode(), dtype=np.uint8)
        yield prefix, a


def fingerprint(obj) -> dict:
    """``{"sha256", "summary"}`` of a nested structure of arrays / tensors / numbers / strings."""
    h = hashlib.sha256()
    total = abs_total = 0.0
    for name, a in _arrays(obj):
        a = np.ascontiguousarray(a)
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
        if a.dtype.kind in "biuf" and a.size:
            total += float(np.nansum(a.astype(np.float64)))
            abs_total += float(np.nansum(np.abs(a.astype(np.float64))))
    return {"sha256": h.hexdigest(), "summary": [round(total, 6), round(abs_total, 6)]}


def _result_arrays(res) -> dict:
    """The arrays of an :class:`~art_spatial.attacks.AttackResult` that define its behaviour."""
    return dict(
        x_adv=res.x_adv,
        params=res.params,
        success=res.success,
        kappa=res.kappa,
        stop_step=res.stop_step,
        correct=res.correct,
        passes=np.array([res.n_forward, res.n_backward], dtype=np.int64),
    )


# --------------------------------------------------------------------------------------------- setup
def _data():
    from art_spatial.data import load_mnist5k

    x, y = load_mnist5k("train", seed=0)
    xt, yt = load_mnist5k("test", seed=0)
    idx = np.concatenate([np.flatnonzero(yt == c)[:4] for c in range(10)])  # 40 digits, 4 per class
    return x[:1000], y[:1000], xt[idx], yt[idx]


def _model(x, y):
    """A SmallCNN trained for one epoch on 1000 digits from seed 0 (deterministic on one thread)."""
    from art_spatial.models import SmallCNN, train_natural

    torch.manual_seed(0)
    model = SmallCNN()
    train_natural(model, x, y, epochs=1, batch_size=64, lr=1e-3, seed=0, verbose=False)
    return model.eval()


# ------------------------------------------------------------------------------------------ attacks
def _art_attacks(clf):
    from art_spatial.attacks import (
        AffineAttack,
        FlowAttack,
        GridSpatialAttack,
        IntegratedSpatialAttack,
        JointSpatialPixelAttack,
        PixelAttack,
    )

    c = dict(batch_size=16, verbose=False)
    return {
        "flow-linf": FlowAttack(clf, eps=0.3, eps_step=0.05, max_iter=5, **c),
        "flow-l2-random": FlowAttack(
            clf, eps=0.5, eps_step=0.1, norm="2,inf", max_iter=4, random_init=True, seed=3, **c
        ),
        "flow-pixels-early-stop": FlowAttack(
            clf, eps=1.0, eps_step=0.25, units="pixels", max_iter=6, early_stop_tau=1, **c
        ),
        "affine": AffineAttack(
            clf, eps=0.3, eps_step=0.1, max_iter=5, random_init=True, seed=1, **c
        ),
        "affine-batch-scope": AffineAttack(clf, max_iter=4, affine_scope="batch", **c),
        "rt": AffineAttack(clf, parametrization="rotation-translation", max_iter=5, **c),
        "integrated": IntegratedSpatialAttack(clf, max_iter=5, random_init=True, seed=2, **c),
        "integrated-rt-reflection": IntegratedSpatialAttack(
            clf, parametrization="rotation-translation", max_iter=4, padding_mode="reflection", **c
        ),
        "integrated-early-stop": IntegratedSpatialAttack(clf, max_iter=6, early_stop_tau=2, **c),
        "pixel": PixelAttack(
            clf, eps=0.3, eps_step=0.05, max_iter=5, random_init=True, seed=4, **c
        ),
        "pixel-early-stop": PixelAttack(
            clf, eps=0.3, eps_step=0.05, max_iter=6, early_stop_tau=0, **c
        ),
        "grid": GridSpatialAttack(
            clf,
            rotations=np.linspace(-30, 30, 5),
            translations_x=(-3, 0, 3),
            translations_y=(-3, 0, 3),
            **c,
        ),
        "grid-worst-of-k": GridSpatialAttack(clf, mode="worst_of_k", k=6, **c),
        "joint-flow": JointSpatialPixelAttack(
            clf, spatial="flow", max_iter=4, eps_pixel=0.1, eps_step_pixel=0.02, **c
        ),
        "joint-integrated-pixel-spatial": JointSpatialPixelAttack(
            clf,
            spatial="integrated",
            order="pixel-spatial",
            max_iter=4,
            eps_pixel=0.1,
            eps_step_pixel=0.02,
            random_init=True,
            seed=5,
            **c,
        ),
    }


def attack_fingerprints(model, xt, yt) -> dict:
    from art_spatial.attacks import IntegratedSpatialAttack
    from art_spatial.attacks import advertorch as AT
    from art_spatial.models import make_classifier

    clf = make_classifier(model)
    out = {}
    for name, attack in _art_attacks(clf).items():
        x_in = xt.copy()
        attack.generate(x_in, y=yt)
        assert np.array_equal(x_in, xt), f"{name} modified its input"
        out[f"attack/{name}"] = fingerprint(_result_arrays(attack.last_result))
    # targeted (y = targets, y_true for κ) with per-iterate records
    targeted = IntegratedSpatialAttack(clf, max_iter=4, targeted=True, batch_size=16, verbose=False)
    targeted.generate(xt, y=(yt + 1) % 10, y_true=yt, record=True)
    out["attack/integrated-targeted-record"] = fingerprint(_result_arrays(targeted.last_result))
    # tensor API, as the trainers and the harness call it
    xs, ys = torch.as_tensor(xt), torch.as_tensor(yt).long()
    res = IntegratedSpatialAttack(
        clf, max_iter=3, random_init=True, seed=7, verbose=False
    ).attack_tensor(model, xs, ys, record=True)
    out["attack/tensor-integrated"] = fingerprint(_result_arrays(res))
    # AdverTorch façades
    facades = {
        "flow": AT.FlowAttack(model, eps=0.3, eps_step=0.05, max_iter=4),
        "affine": AT.AffineAttack(
            model, eps=0.3, eps_step=0.1, max_iter=4, random_init=True, seed=2
        ),
        "integrated": AT.IntegratedSpatialAttack(model, max_iter=4),
        "pixel": AT.PixelAttack(model, eps=0.3, eps_step=0.05, max_iter=4),
        "joint": AT.JointSpatialPixelAttack(model, max_iter=3, eps_pixel=0.1, eps_step_pixel=0.02),
        "grid": AT.GridSpatialAttack(
            model, rotations=[-20, 0, 20], translations_x=[-2, 0, 2], translations_y=[0, 2]
        ),
    }
    for name, attack in facades.items():
        out[f"advertorch/{name}"] = fingerprint(attack.perturb(xs.clone(), ys.clone()))
    return out


# ----------------------------------------------------------------------------------------- trainers
def _trainers(clf):
    from art_spatial import trainers as T
    from art_spatial.attacks import AffineAttack, FlowAttack, PixelAttack
    from art_spatial.attacks.joint import JointSpatialPixelAttack

    def attacks():
        return [
            PixelAttack(clf, eps=0.3, eps_step=0.05, max_iter=2, random_init=True, verbose=False),
            FlowAttack(clf, eps=0.3, eps_step=0.05, max_iter=2, verbose=False),
            AffineAttack(clf, eps=0.3, eps_step=0.1, max_iter=2, verbose=False),
        ]

    c = dict(seed=1, verbose=False)
    names = ["pgd", "flow", "affine"]
    return {
        "natural": lambda: T.NaturalTrainer(clf, **c),
        "pgd": lambda: T.PGDAdversarialTrainer(clf, attacks()[0], eps_warmup=1, **c),
        "spatial": lambda: T.SpatialAdversarialTrainer(clf, None, **c),
        "joint": lambda: T.JointAdversarialTrainer(
            clf,
            JointSpatialPixelAttack(
                clf, max_iter=2, eps_pixel=0.1, eps_step_pixel=0.05, verbose=False
            ),
            **c,
        ),
        "ave": lambda: T.AverageAdversarialTrainer(clf, attacks(), names=names, **c),
        "max": lambda: T.MaxAdversarialTrainer(clf, attacks(), names=names, **c),
        "pareto-absolute": lambda: T.ParetoAdversarialTrainer(
            clf, attacks(), r=2.2, window=3, names=names, **c
        ),
        "pareto-relative": lambda: T.ParetoAdversarialTrainer(
            clf, attacks(), r=0.5, r_mode="relative", window=3, names=names, **c
        ),
        "cusp": lambda: T.CurriculumAdversarialTrainer(
            clf, [(0, 10.0, 0.1), (1, 20.0, 0.2)], eps_step=0.05, max_iter=2, **c
        ),
        "fat": lambda: T.FriendlyAdversarialTrainer(clf, attacks()[0], **c),
        "gairat": lambda: T.GeometryAwareAdversarialTrainer(clf, attacks()[0], burn_in=1, **c),
    }


def _history(history) -> list:
    rows = []
    for h in history:
        rows.append({k: v for k, v in h.items() if not any(t in k for t in _TIME_KEYS)})
    return json.loads(json.dumps(rows, default=float))


def trainer_fingerprints(x, y) -> dict:
    from art_spatial.models import SmallCNN, make_classifier

    xs, ys = x[:256], y[:256]
    out = {}
    for name in _trainers(None):
        torch.manual_seed(0)
        clf = make_classifier(SmallCNN())
        trainer = _trainers(clf)[name]()
        if name == "spatial":  # the default attack at a small iteration count
            trainer.attack.max_iter = 2
        sched = torch.optim.lr_scheduler.MultiStepLR(clf.optimizer, milestones=[1], gamma=0.5)
        trainer.fit(xs.copy(), ys.copy(), nb_epochs=2, batch_size=64, scheduler=sched)
        state = {k: v for k, v in clf.model.state_dict().items()}
        out[f"trainer/{name}"] = fingerprint(dict(weights=state, history=_history(trainer.history)))
    return out


# ------------------------------------------------------------------------------------------ harness
def _report_arrays(report) -> dict:
    d = report.to_dict()
    attacks = [
        {
            k: a.get(k)
            for k in (
                "name",
                "category",
                "mode",
                "iterations",
                "strengths",
                "n_attacked",
                "robust_examples",
                "n_forward",
                "n_backward",
            )
        }
        for a in d["attacks"]
    ]
    keep = (
        "n_examples",
        "n_clean_correct",
        "clean_accuracy",
        "category_scores",
        "category_scores_on_correct",
        "reference_scores",
        "universal",
        "score_convention",
    )
    return dict(
        attacks=attacks,
        clean=d["meta"].get("clean_correct_examples"),
        **{k: d.get(k) for k in keep},
    )


def harness_fingerprints(model, xt, yt) -> dict:
    from art_spatial.bench import evaluate

    rep = evaluate(model, xt, yt, "pareto-mnist", batch_size=16, seed=0, checks=False)
    ref = evaluate(
        model, xt, yt, "pareto-mnist", reference=rep, batch_size=40, seed=0, checks=False
    )
    return {
        "harness/pareto-mnist": fingerprint(_report_arrays(rep)),
        "harness/pareto-mnist-self-reference": fingerprint(_report_arrays(ref)),
    }


# --------------------------------------------------------------------------------------------- main
def platform_signature() -> dict:
    """What the exact hashes depend on besides the code (kernels differ between CPUs and versions)."""
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "threads": 1,
    }


def compute(groups=("attacks", "trainers", "harness")) -> dict:
    """Every fingerprint, on one intra-op thread (the thread count changes CPU reductions)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y, xt, yt = _data()
        model = _model(x, y)
        out = {}
        if "attacks" in groups:
            out.update(attack_fingerprints(model, xt, yt))
        if "trainers" in groups:
            out.update(trainer_fingerprints(x, y))
        if "harness" in groups:
            out.update(harness_fingerprints(model, xt, yt))
        return out
    finally:
        torch.set_num_threads(old)


def compare(recorded: dict, now: dict, exact: bool) -> list[str]:
    """Names whose fingerprint moved (exact hash when ``exact``, else the summaries to 1e-4 relative)."""
    moved = []
    for name in sorted(set(recorded) | set(now)):
        a, b = recorded.get(name), now.get(name)
        if a is None or b is None:
            moved.append(f"{name}: {'new' if a is None else 'missing'}")
        elif exact and a["sha256"] != b["sha256"]:
            moved.append(
                f"{name}: hash {a['sha256'][:12]} -> {b['sha256'][:12]}, summary {a['summary']} -> "
                f"{b['summary']}"
            )
        elif not exact and not np.allclose(a["summary"], b["summary"], rtol=1e-4, atol=1e-6):
            moved.append(f"{name}: summary {a['summary']} -> {b['summary']}")
    return moved


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--record", action="store_true", help="rewrite tests/data/fingerprints.json")
    args = p.parse_args(argv)
    now = compute()
    if args.record:
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(
            json.dumps(
                {"platform": platform_signature(), "fingerprints": now}, indent=1, sort_keys=True
            )
            + "\n"
        )
        print(f"recorded {len(now)} fingerprints in {RECORD}")
        return 0
    rec = json.loads(RECORD.read_text())
    moved = compare(rec["fingerprints"], now, exact=rec["platform"] == platform_signature())
    print("\n".join(moved) if moved else f"all {len(now)} fingerprints unchanged")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
