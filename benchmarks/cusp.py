"""CuSP vs PGD and augmentation schedules on MNIST-5k (CuSP paper, Table 1 analog).

Models (SmallCNN, fine-tuned from the natural model for ``epochs`` epochs with
:class:`art_spatial.trainers.CurriculumAdversarialTrainer`, whose stages ``(start epoch, θ, ε)`` express
every row): PGD (Aug 0) = PGD AT; PGD (Aug 180) = PGD on inputs randomly rotated in [−180°, 180°];
Aug 180 → PGD (rotation augmentation, then PGD without it, switched halfway); PGD → Aug 180 (the
reverse); CuSP = the curriculum (θ, ε) = (120°, ε/4) → (150°, ε/2) → (180°, ε) at thirds of the run, the
MNIST-scale analog of the official (120°, 2/255) → (150°, 4/255) → (180°, 8/255). ε = 0.3, K PGD steps of
2.5·ε/K. Every rotation (training augmentation and the rotation-180 column) samples with nearest-neighbour
interpolation and black fill, as the paper and the CuSP profiles do (``INTERPOLATION``, part of the
recipe: models trained with the earlier bilinear rotation are not reused).

Reported per model: natural accuracy, rotation-180 accuracy (each test digit rotated by its own random
angle in [−180°, 180°], seeded), PGD accuracy (ε 0.3, step 0.01, 40 iterations; 20 with ``--quick``),
and the CuSP profiles of :mod:`art_spatial.bench` (rate of invariance under random rotations in [−θ, θ];
robustness profile = 1 − fooling rate vs ε).

Writes ``benchmarks/results/cusp[_quick].json`` (+ ``.png`` profiles). Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cusp.py --quick
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks._repro import (  # noqa: E402
    SMOKE,
    base_parser,
    cached_train,
    fit_trainer,
    machine_metadata,
    mnist5k,
    natural_model,
    scores_of,
    setup,
    write_json,
)

EPS = 0.3
#: rotation sampling of the training augmentation and of the rotation-180 column (the paper's)
INTERPOLATION = "nearest"
FULL = dict(
    n_train=4000,
    n_test=1000,
    natural_epochs=5,
    epochs=3,
    train_iter=7,
    pgd_eval_iter=40,
    rotation_values=[float(t) for t in range(0, 181, 15)],
    robustness_values=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
    robustness_iter=40,
)
QUICK = dict(
    n_train=1000,
    n_test=200,
    natural_epochs=3,
    epochs=3,
    train_iter=3,
    pgd_eval_iter=20,
    rotation_values=[0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0],
    robustness_values=[0.0, 0.1, 0.2, 0.3],
    robustness_iter=20,
)


def stages_of(name: str, epochs: int) -> list[tuple]:
    """The ``(start epoch, θ°, ε)`` stages of a row (switch points rounded, at least one epoch each)."""
    half = max(1, epochs // 2)
    third, two_thirds = max(1, epochs // 3), max(2, (2 * epochs) // 3)
    table = {
        "PGD (Aug 0)": [(0, 0.0, EPS)],
        "PGD (Aug 180)": [(0, 180.0, EPS)],
        "Aug 180 -> PGD": [(0, 180.0, 0.0), (half, 0.0, EPS)],
        "PGD -> Aug 180": [(0, 0.0, EPS), (half, 180.0, 0.0)],
        "CuSP": [(0, 120.0, EPS / 4), (third, 150.0, EPS / 2), (two_thirds, 180.0, EPS)],
    }
    stages = table[name]
    if len(stages) > 1 and stages[-1][0] >= epochs:
        raise ValueError(f"{name} needs more epochs than {epochs} for its stages {stages}")
    return stages


MODELS = ("Natural", "PGD (Aug 0)", "PGD (Aug 180)", "Aug 180 -> PGD", "PGD -> Aug 180", "CuSP")


def rotation180_accuracy(model, x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """Accuracy (%) with each image rotated by its own uniform angle in [−180°, 180°] (seeded),
    ``INTERPOLATION`` sampling, black fill."""
    from art_spatial.models import predict_logits
    from art_spatial.trainers import CurriculumAdversarialTrainer

    g = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x)
    angles = torch.rand(len(xt), generator=g) * 360.0 - 180.0
    with torch.no_grad():
        xr = CurriculumAdversarialTrainer.rotate_by(xt, angles, INTERPOLATION, "zeros")
    pred = predict_logits(model, xr).argmax(1).numpy()
    return float(100.0 * (pred == np.asarray(y)).mean())


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0])
    args = p.parse_args(argv)
    setup(args)
    from art_spatial.attacks import PixelAttack
    from art_spatial.bench import evaluate
    from art_spatial.bench.plots import plot_profiles
    from art_spatial.trainers import CurriculumAdversarialTrainer

    t_start = time.perf_counter()
    cfg = dict(QUICK if args.quick or args.smoke else FULL)
    if args.smoke:
        cfg.update({k: v for k, v in SMOKE.items() if k in cfg and k != "epochs"})  # stages need 3
    x_train, y_train, x_test, y_test = mnist5k(cfg["n_train"], cfg["n_test"], args.seed)
    natural, _ = natural_model(
        x_train, y_train, cfg["natural_epochs"], seed=args.seed, cache=args.cache
    )
    nat_state = {k: v.clone() for k, v in natural.state_dict().items()}
    k = cfg["train_iter"]
    eval_suite = {
        "name": "cusp-mnist-table1",
        "dataset": "mnist",
        "description": "PGD accuracy + CuSP rotation invariance and robustness profiles (MNIST scale)",
        "attacks": [
            {
                "name": "pgd",
                "attack": "pgd",
                "category": "sensitivity",
                "params": {"eps": EPS, "eps_step": 0.01, "random_init": True},
                "iterations": [cfg["pgd_eval_iter"]],
            }
        ],
        "profiles": [
            {"name": "rotation", "kind": "rotation", "values": cfg["rotation_values"]},
            {
                "name": "robustness",
                "kind": "robustness",
                "values": cfg["robustness_values"],
                "params": {"eps_step": 0.01, "max_iter": cfg["robustness_iter"]},
            },
        ],
    }

    rows, per_model, reports = {}, {}, {}
    for name in tqdm(MODELS, desc="models", disable=args.quiet):
        if name == "Natural":
            model, info = natural, {"train_seconds": 0.0, "stages": []}
        else:
            stages = stages_of(name, cfg["epochs"])

            def factory(clf, ckpt, stages=stages):
                attack = PixelAttack(
                    clf,
                    eps=EPS,
                    eps_step=2.5 * EPS / k,
                    max_iter=k,
                    random_init=True,
                    verbose=False,
                )
                return CurriculumAdversarialTrainer(
                    clf,
                    stages,
                    attack,
                    seed=args.seed,
                    interpolation=INTERPOLATION,
                    verbose=not args.quiet,
                    checkpoint_dir=ckpt,
                    resume=True,
                )

            recipe = {
                "kind": "cusp",
                "model": name,
                "stages": stages,
                "k": k,
                "epochs": cfg["epochs"],
                "n_train": cfg["n_train"],
                "natural_epochs": cfg["natural_epochs"],
                "seed": args.seed,
                "interpolation": INTERPOLATION,
            }
            slug = (
                name.lower().replace(" ", "_").replace("(", "").replace(")", "").replace("->", "to")
            )
            model, info = cached_train(
                f"cusp_{slug}",
                recipe,
                fit_trainer(factory, x_train, y_train, cfg["epochs"]),
                cache=args.cache,
                init_state=nat_state,
                seed=args.seed,
            )
            info["stages"] = stages
        report = evaluate(
            model,
            x_test,
            y_test,
            eval_suite,
            seed=args.seed,
            batch_size=250,
            verbose=not args.quiet,
            model_name=name,
        )
        reports[name] = report
        s = scores_of(report)
        rows[name] = {
            "natural": s["clean_accuracy"],
            "rotation_180": rotation180_accuracy(model, x_test, y_test, args.seed),
            "pgd": next(iter(s["attacks"]["pgd"].values()))["accuracy"],
        }
        per_model[name] = {
            "scores": s,
            "profiles": report.profiles,
            "stages": info.get("stages"),
            "train_seconds": info.get("train_seconds"),
        }

    tag = "_smoke" if args.smoke else "_quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / f"cusp{tag}.png"
    plot_profiles(reports, png, title=f"CuSP profiles on MNIST-5k ({cfg['n_test']} digits)")
    payload = {
        "benchmark": "cusp",
        "command": " ".join(
            ["OMP_NUM_THREADS=1", ".venv/bin/python", "benchmarks/cusp.py"]
            + (argv if argv is not None else sys.argv[1:])
        ),
        "machine": machine_metadata(),
        "config": {
            **cfg,
            "eps": EPS,
            "seed": args.seed,
            "init": "fine-tuned from the natural model",
            "interpolation": INTERPOLATION,
            "suite": eval_suite,
        },
        "columns": ["natural", "rotation_180", "pgd"],
        "table": rows,
        "per_model": per_model,
        "png": png.name,
        "wall_seconds": time.perf_counter() - t_start,
    }
    out = write_json(args.out / f"cusp{tag}.json", payload)
    print(f"wrote {out} and {png}")
    print(f"{'model':<18}{'natural':>9}{'rot-180':>9}{'PGD':>9}")
    for name in MODELS:
        r = rows[name]
        print(f"{name:<18}{r['natural']:9.2f}{r['rotation_180']:9.2f}{r['pgd']:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
