"""Sensitivity vs spatial robustness on MNIST-5k (Pareto AT paper, Fig. 3).

PGD-AT SmallCNNs of increasing PGD strength (the number K of PGD training iterations, ε 0.3, step 0.01,
random start — the paper's x-axis; K = 0 is the natural model) are evaluated by the flow attack (ε_F 0.3,
step 0.01) and the affine "RT" attack (ε_RT 0.3, step 0.1) at 5/10/15/20 iterations, on the test points
each model classifies correctly (the paper's choice, to factor out clean-accuracy differences). The paper
finds flow (local) robustness *rising* with PGD strength and RT (global) robustness *falling*.

Writes ``benchmarks/results/relationships[_quick].json`` (+ ``.png``: accuracy on correct points vs K,
red = flow, blue = RT, one line per attack iteration count) with the trend verdicts. Models are fine-tuned
from the natural model (cached under ``benchmarks/results/cache/``; a rerun reuses them).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/relationships.py --quick
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/relationships.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
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

FULL = dict(n_train=4000, n_test=1000, natural_epochs=5, epochs=2, ks=[0, 1, 3, 5, 10, 20, 30])
QUICK = dict(n_train=1000, n_test=200, natural_epochs=3, epochs=1, ks=[0, 3, 10])


def trend(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their rank (sign = direction of the trend)."""
    x = np.arange(len(values), dtype=float)
    return float(np.polyfit(x, np.asarray(values, dtype=float), 1)[0]) if len(values) > 1 else 0.0


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument(
        "--ks", type=int, nargs="+", default=None, help="PGD training iterations (0 = natural)"
    )
    args = p.parse_args(argv)
    setup(args)
    from art_spatial.attacks import PixelAttack
    from art_spatial.bench import evaluate
    from art_spatial.trainers import PGDAdversarialTrainer

    t_start = time.perf_counter()
    cfg = dict(QUICK if args.quick or args.smoke else FULL)
    if args.smoke:
        cfg.update({k: v for k, v in SMOKE.items() if k in cfg})
    ks = args.ks or cfg["ks"]
    x_train, y_train, x_test, y_test = mnist5k(cfg["n_train"], cfg["n_test"], args.seed)
    natural, _ = natural_model(
        x_train, y_train, cfg["natural_epochs"], seed=args.seed, cache=args.cache
    )
    nat_state = {k: v.clone() for k, v in natural.state_dict().items()}

    results = {}
    for k in tqdm(ks, desc="PGD-AT strengths", disable=args.quiet):
        if k == 0:
            model, info = natural, {"train_seconds": 0.0}
        else:

            def factory(clf, ckpt, k=k):
                attack = PixelAttack(
                    clf, eps=0.3, eps_step=0.01, max_iter=k, random_init=True, verbose=False
                )
                return PGDAdversarialTrainer(
                    clf,
                    attack,
                    seed=args.seed,
                    verbose=not args.quiet,
                    checkpoint_dir=ckpt,
                    resume=True,
                )

            recipe = {
                "kind": "pgd_at",
                "k": k,
                "eps": 0.3,
                "eps_step": 0.01,
                "epochs": cfg["epochs"],
                "n_train": cfg["n_train"],
                "natural_epochs": cfg["natural_epochs"],
                "seed": args.seed,
            }
            model, info = cached_train(
                f"fig3_pgd{k}",
                recipe,
                fit_trainer(factory, x_train, y_train, cfg["epochs"]),
                cache=args.cache,
                init_state=nat_state,
                seed=args.seed,
            )
        report = evaluate(
            model,
            x_test,
            y_test,
            "pareto-mnist",
            seed=args.seed,
            batch_size=250,
            verbose=not args.quiet,
            model_name=f"PGD AT K={k}",
        )
        results[k] = {"scores": scores_of(report), "train_seconds": info.get("train_seconds")}

    def curve(attack: str, label: str) -> list[float]:
        return [results[k]["scores"]["attacks"][attack][label]["accuracy_on_correct"] for k in ks]

    labels = list(results[ks[0]]["scores"]["attacks"]["flow"])
    flow_curves = {lab: curve("flow", lab) for lab in labels}
    rt_curves = {lab: curve("rt", lab) for lab in list(results[ks[0]]["scores"]["attacks"]["rt"])}
    pgd_curve = [results[k]["scores"]["category_scores_on_correct"]["sensitivity"] for k in ks]
    flow_mean = [
        float(np.mean([flow_curves[lab][i] for lab in flow_curves])) for i in range(len(ks))
    ]
    rt_mean = [float(np.mean([rt_curves[lab][i] for lab in rt_curves])) for i in range(len(ks))]
    verdict = {
        "pgd_robustness_rises_with_k": trend(pgd_curve) > 1e-6,
        "flow_robustness_rises_with_k (paper: yes)": trend(flow_mean) > 1e-6,
        "rt_robustness_falls_with_k (paper: yes)": trend(rt_mean) < -1e-6,
        "slopes_per_rank": {
            "pgd": trend(pgd_curve),
            "flow": trend(flow_mean),
            "rt": trend(rt_mean),
        },
    }

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tag = "_smoke" if args.smoke else "_quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / f"relationships{tag}.png"
    fig, ax = plt.subplots(figsize=(5.5, 4))
    xs = list(range(len(ks)))
    for i, (lab, ys) in enumerate(flow_curves.items()):
        ax.plot(
            xs,
            ys,
            "o-",
            color="tab:red",
            alpha=0.4 + 0.6 * i / max(1, len(flow_curves) - 1),
            label=f"flow {lab}",
        )
    for i, (lab, ys) in enumerate(rt_curves.items()):
        ax.plot(
            xs,
            ys,
            "s--",
            color="tab:blue",
            alpha=0.4 + 0.6 * i / max(1, len(rt_curves) - 1),
            label=f"RT {lab}",
        )
    ax.plot(xs, pgd_curve, "k:", label="PGD score")
    ax.set_xticks(xs, [str(k) for k in ks])
    ax.set_xlabel("PGD iterations in adversarial training (0 = natural)")
    ax.set_ylabel("accuracy on correctly classified test points (%)")
    ax.set_title(f"MNIST-5k, {cfg['n_test']} test digits (Pareto AT Fig. 3 analog)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)

    payload = {
        "benchmark": "relationships",
        "command": " ".join(
            ["OMP_NUM_THREADS=1", ".venv/bin/python", "benchmarks/relationships.py"]
            + (argv if argv is not None else sys.argv[1:])
        ),
        "machine": machine_metadata(),
        "config": {
            **cfg,
            "ks": ks,
            "seed": args.seed,
            "train_attack": "PGD eps 0.3 step 0.01 random start",
            "init": "fine-tuned from the natural model",
            "suite": "pareto-mnist",
        },
        "ks": ks,
        "flow_accuracy_on_correct": flow_curves,
        "rt_accuracy_on_correct": rt_curves,
        "pgd_score_on_correct": pgd_curve,
        "clean_accuracy": [results[k]["scores"]["clean_accuracy"] for k in ks],
        "verdict": verdict,
        "per_model": {str(k): v for k, v in results.items()},
        "png": png.name,
        "wall_seconds": time.perf_counter() - t_start,
    }
    out = write_json(args.out / f"relationships{tag}.json", payload)
    print(f"wrote {out} and {png}")
    for k, c, pg, fm, rm in zip(
        ks, payload["clean_accuracy"], pgd_curve, flow_mean, rt_mean, strict=True
    ):
        print(
            f"K={k:<3} clean {c:6.2f}  PGD|correct {pg:6.2f}  flow|correct {fm:6.2f}  RT|correct {rm:6.2f}"
        )
    print({k: v for k, v in verdict.items() if k != "slopes_per_rank"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
