"""Joint spatial-pixel AT on MNIST-5k: the Joint AT paper's Tables 1-3 (models × attacks) at MNIST scale.

Models (SmallCNN, fine-tuned from the natural model for ``epochs`` epochs): Natural, Pixel AT (PGD),
Spatial AT (flow in the ℓ2,∞ ball, pixels), Joint AT double-pass in both orders (spatial-pixel, the
paper's Eq. 10, and pixel-spatial, §6.3), the one-pass and cascade schedules (§6.2), and the paper's
one-step Joint AT (one double-pass step with step = budget; random non-true target + label smoothing 0.5
for every Joint model, §4.2). Evaluated untargeted on the test digits by clean, FGSM, PGD, spatial (flow)
and joint (double-pass) attacks.

MNIST budgets (ours; the paper is on CIFAR-10 with ε_x = 8/255 and ε_ω = 0.3 px): ε_x = 0.2 and an ℓ2,∞
flow ball of 1.0 px — the paper's 0.3 px (1 % of a 32-px image) barely moves a thick MNIST stroke. Training
attacks use K steps (pixel step 2.5·ε_x/K, flow step 2.5·ε_ω/K); evaluation attacks 20 steps (10 with
``--quick``), pixel step 0.02, flow step 0.1 px, random start.

Writes ``benchmarks/results/joint_ablation[_quick].json`` (+ ``.png`` bar chart). Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/joint_ablation.py --quick
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

EPS_X, EPS_W = 0.2, 1.0
FULL = dict(n_train=4000, n_test=1000, natural_epochs=5, epochs=2, train_iter=7, eval_iter=20)
QUICK = dict(n_train=1000, n_test=200, natural_epochs=3, epochs=1, train_iter=3, eval_iter=10)
MODELS = (
    "Natural",
    "Pixel AT",
    "Spatial AT",
    "Joint (double-pass, spatial-pixel)",
    "Joint (double-pass, pixel-spatial)",
    "Joint (one-pass)",
    "Joint (cascade)",
    "Joint (one-step)",
)
COLUMNS = ("clean", "fgsm", "pgd", "spatial", "joint")


def suite(eval_iter: int) -> dict:
    """The evaluation suite: FGSM, PGD, flow (ℓ2,∞ px) and double-pass joint at the MNIST budgets."""
    it = [eval_iter]
    flow = {"eps": EPS_W, "eps_step": 0.1, "norm": "2,inf", "units": "pixels", "random_init": True}
    return {
        "name": "joint-mnist",
        "dataset": "mnist",
        "description": f"Joint AT columns at MNIST scale: eps_x {EPS_X}, l2,inf flow {EPS_W} px",
        "attacks": [
            {
                "name": "fgsm",
                "attack": "fgsm",
                "category": None,
                "params": {"eps": EPS_X, "eps_step": EPS_X},
            },
            {
                "name": "pgd",
                "attack": "pgd",
                "category": "sensitivity",
                "params": {"eps": EPS_X, "eps_step": 0.02, "random_init": True},
                "iterations": it,
            },
            {
                "name": "spatial",
                "attack": "flow",
                "category": "local",
                "params": flow,
                "iterations": it,
            },
            {
                "name": "joint",
                "attack": "joint",
                "category": None,
                "iterations": it,
                "params": {
                    "spatial": "flow",
                    "eps_pixel": EPS_X,
                    "eps_step_pixel": 0.02,
                    "eps_flow": EPS_W,
                    "eps_step_flow": 0.1,
                    "flow_norm": "2,inf",
                    "units": "pixels",
                    "schedule": "double-pass",
                },
            },
        ],
    }


def trainer_factory(model_name: str, k: int, seed: int, verbose: bool):
    """``(classifier, checkpoint_dir) -> trainer`` for one of :data:`MODELS` (not Natural)."""
    from art_spatial.attacks import FlowAttack, PixelAttack
    from art_spatial.attacks.joint import JointSpatialPixelAttack
    from art_spatial.trainers import (
        JointAdversarialTrainer,
        PGDAdversarialTrainer,
        SpatialAdversarialTrainer,
    )

    px_step, w_step = 2.5 * EPS_X / k, 2.5 * EPS_W / k
    joint_kw = dict(
        spatial="flow", eps_pixel=EPS_X, eps_flow=EPS_W, flow_norm="2,inf", units="pixels"
    )

    def make(clf, ckpt):
        common = dict(seed=seed, verbose=verbose, checkpoint_dir=ckpt, resume=True)
        if model_name == "Pixel AT":
            return PGDAdversarialTrainer(
                clf,
                PixelAttack(clf, eps=EPS_X, eps_step=px_step, max_iter=k, verbose=False),
                **common,
            )
        if model_name == "Spatial AT":
            return SpatialAdversarialTrainer(
                clf,
                FlowAttack(
                    clf,
                    eps=EPS_W,
                    eps_step=w_step,
                    max_iter=k,
                    norm="2,inf",
                    units="pixels",
                    random_init=True,
                    verbose=False,
                ),
                **common,
            )
        if model_name == "Joint (one-step)":
            return JointAdversarialTrainer.one_step(clf, attack_kwargs=joint_kw, **common)
        order, schedule = {
            "Joint (double-pass, spatial-pixel)": ("spatial-pixel", "double-pass"),
            "Joint (double-pass, pixel-spatial)": ("pixel-spatial", "double-pass"),
            "Joint (one-pass)": ("spatial-pixel", "one-pass"),
            "Joint (cascade)": ("spatial-pixel", "cascade"),
        }[model_name]
        attack = JointSpatialPixelAttack(
            clf,
            eps_step_pixel=px_step,
            eps_step_flow=w_step,
            max_iter=k,
            order=order,
            schedule=schedule,
            verbose=False,
            **joint_kw,
        )
        return JointAdversarialTrainer(clf, attack, **common)

    return make


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the fine-tuning")
    p.add_argument("--tag", default="", help="suffix of the output names (e.g. lr3e-4)")
    args = p.parse_args(argv)
    setup(args)
    from art_spatial.bench import evaluate

    t_start = time.perf_counter()
    cfg = dict(QUICK if args.quick or args.smoke else FULL)
    if args.smoke:
        cfg.update({k: v for k, v in SMOKE.items() if k in cfg})
    x_train, y_train, x_test, y_test = mnist5k(cfg["n_train"], cfg["n_test"], args.seed)
    natural, _ = natural_model(
        x_train, y_train, cfg["natural_epochs"], seed=args.seed, cache=args.cache
    )
    nat_state = {k: v.clone() for k, v in natural.state_dict().items()}
    eval_suite = suite(cfg["eval_iter"])

    rows, per_model = {}, {}
    for name in tqdm(MODELS, desc="models", disable=args.quiet):
        if name == "Natural":
            model, info = natural, {"train_seconds": 0.0}
        else:
            recipe = {
                "kind": "joint_ablation",
                "model": name,
                "k": cfg["train_iter"],
                "epochs": cfg["epochs"],
                "eps_x": EPS_X,
                "eps_w": EPS_W,
                "n_train": cfg["n_train"],
                "natural_epochs": cfg["natural_epochs"],
                "seed": args.seed,
                **({} if args.lr == 1e-3 else {"lr": args.lr}),
            }
            fit = fit_trainer(
                trainer_factory(name, cfg["train_iter"], args.seed, not args.quiet),
                x_train,
                y_train,
                cfg["epochs"],
                lr=args.lr,
            )
            slug = name.lower().replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")
            model, info = cached_train(
                f"joint_{slug}", recipe, fit, cache=args.cache, init_state=nat_state, seed=args.seed
            )
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
        s = scores_of(report)
        rows[name] = {
            "clean": s["clean_accuracy"],
            **{a: next(iter(s["attacks"][a].values()))["accuracy"] for a in COLUMNS[1:]},
        }
        per_model[name] = {
            "scores": s,
            "train_seconds": info.get("train_seconds"),
            "train_cpu_seconds": info.get("train_cpu_seconds"),
        }

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tag = ("_smoke" if args.smoke else "_quick" if args.quick else "") + (
        f"_{args.tag}" if args.tag else ""
    )
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / f"joint_ablation{tag}.png"
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(MODELS)
    for i, name in enumerate(MODELS):
        ax.bar(
            np.arange(len(COLUMNS)) + i * width, [rows[name][c] for c in COLUMNS], width, label=name
        )
    ax.set_xticks(np.arange(len(COLUMNS)) + 0.4 - width / 2, COLUMNS)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(
        f"Joint AT ablation on MNIST-5k ({cfg['n_test']} digits; eps_x {EPS_X}, flow {EPS_W} px)",
        fontsize=9,
    )
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)

    payload = {
        "benchmark": "joint_ablation",
        "command": " ".join(
            ["OMP_NUM_THREADS=1", ".venv/bin/python", "benchmarks/joint_ablation.py"]
            + (argv if argv is not None else sys.argv[1:])
        ),
        "machine": machine_metadata(),
        "config": {
            **cfg,
            "lr": args.lr,
            "eps_x": EPS_X,
            "eps_flow_px": EPS_W,
            "seed": args.seed,
            "init": "fine-tuned from the natural model",
            "suite": eval_suite,
        },
        "columns": list(COLUMNS),
        "table": rows,
        "per_model": per_model,
        "png": png.name,
        "wall_seconds": time.perf_counter() - t_start,
    }
    out = write_json(args.out / f"joint_ablation{tag}.json", payload)
    print(f"wrote {out} and {png}")
    print(f"{'model':<38}" + "".join(f"{c:>9}" for c in COLUMNS))
    for name in MODELS:
        print(f"{name:<38}" + "".join(f"{rows[name][c]:9.2f}" for c in COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
