"""Analysis figures of the Pareto paper on MNIST-5k: saliency (Figs. 4-5), landscape (Fig. 2), gallery.

Small-scale reproduction (CPU, minutes): a natural SmallCNN (2 epochs), and two models fine-tuned
from it for ``--ft-epochs`` epochs with PGD AT (ε = 0.3, step 0.05, 10 iterations) and spatial AT
(integrated attack, ε_F = ε_RT = 0.3, 5 iterations) through :mod:`art_spatial.trainers`. Then

* SmoothGrad maps of the three models side by side (Fig. 4) -> ``analysis_saliency.png``;
* median skewness of saliency-map differences (Fig. 5) over ``--n-skew`` test digits;
* integrated-attack loss landscape of the natural model before / after the attack (Fig. 2)
  -> ``analysis_landscape.png``;
* the adversarial gallery of the natural model (Fig. 1) -> ``analysis_gallery.png``;

numbers -> ``results/analysis_figures.json`` (with machine metadata). These are far smaller models and
budgets of training than the paper's (100 epochs); the numbers show the tools working, not a
reproduction of the paper's values.

Usage:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/analysis_figures.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from art_spatial.analysis import (  # noqa: E402
    adversarial_gallery,
    landscape_before_after,
    loss_landscape,
    plot_landscapes,
    saliency_figure,
    saliency_skewness,
)
from art_spatial.data import load_mnist5k  # noqa: E402
from art_spatial.models import SmallCNN, accuracy, make_classifier, train_natural  # noqa: E402
from benchmarks._meta import machine_metadata, write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def train_models(ft_epochs: int, n_train: int, seed: int) -> dict:
    from art_spatial.attacks import IntegratedSpatialAttack, PixelAttack
    from art_spatial.trainers.single import PGDAdversarialTrainer, SpatialAdversarialTrainer

    x, y = load_mnist5k("train", seed=seed)
    x, y = x[:n_train], y[:n_train]
    torch.manual_seed(seed)
    natural = train_natural(SmallCNN(), x, y, epochs=2, batch_size=64, seed=seed, verbose=False)
    models = {"natural": natural}
    pgd = copy.deepcopy(natural).train()
    clf = make_classifier(pgd, lr=5e-4)
    PGDAdversarialTrainer(
        clf,
        PixelAttack(clf, eps=0.3, eps_step=0.05, max_iter=10, verbose=False),
        seed=seed,
        verbose=False,
    ).fit(x, y, batch_size=64, nb_epochs=ft_epochs)
    models["PGD AT"] = clf.model.eval()
    sp = copy.deepcopy(natural).train()
    clf = make_classifier(sp, lr=5e-4)
    attack = IntegratedSpatialAttack(
        clf,
        eps_flow=0.3,
        eps_affine=0.3,
        eps_step_flow=0.03,
        eps_step_affine=0.1,
        max_iter=5,
        verbose=False,
    )
    SpatialAdversarialTrainer(clf, attack, seed=seed, verbose=False).fit(
        x, y, batch_size=64, nb_epochs=ft_epochs
    )
    models["spatial AT"] = clf.model.eval()
    return models


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--ft-epochs", type=int, default=1)
    parser.add_argument("--n-skew", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "analysis_figures.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    n_train = 500 if args.quick else 4000
    n_skew = 10 if args.quick else args.n_skew
    n_noise = 10 if args.quick else 50
    steps = 7 if args.quick else 21
    models = train_models(args.ft_epochs, n_train, args.seed)
    t_train = time.perf_counter() - start
    xt, yt = load_mnist5k("test", seed=args.seed)
    out = {
        "n_train": n_train,
        "ft_epochs": args.ft_epochs,
        "seconds_training": round(t_train, 1),
        "clean_accuracy": {k: accuracy(m, xt, yt) for k, m in models.items()},
    }
    stem = args.out.with_suffix("")
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(xt), size=n_skew, replace=False)
    x, y = torch.as_tensor(xt[idx]), torch.as_tensor(yt[idx])

    # Fig. 4 and 5
    saliency_figure(models, x[:6], y[:6], f"{stem}_saliency.png", n=n_noise, seed=args.seed)
    pairs = [("PGD AT", "natural"), ("spatial AT", "natural"), ("spatial AT", "PGD AT")]
    out["saliency_skewness_median"] = {}
    for a, b in pairs:
        med, per = saliency_skewness(models[a], models[b], x, y, n=n_noise // 2, seed=args.seed)
        out["saliency_skewness_median"][f"{a} vs {b}"] = {
            "median": med,
            "q25": float(np.nanpercentile(per, 25)),
            "q75": float(np.nanpercentile(per, 75)),
        }
        print(f"skewness of S({b}) - S({a}): median {med:+.3f} over {len(per)} digits")

    # Fig. 2 (natural model)
    xl, yl = x[:16], y[:16]
    before, after, res = landscape_before_after(
        models["natural"], xl, yl, steps=steps, seed=args.seed
    )
    distant = loss_landscape(models["natural"], xl, yl, None, span=3.0, steps=steps, seed=args.seed)
    plot_landscapes(
        [
            ("before, distant view (span 3)", distant),
            ("before, close view (span 1)", before),
            ("after the attack, around w*", after),
        ],
        f"{stem}_landscape.png",
    )
    out["landscape"] = {
        "n": int(len(xl)),
        "steps": steps,
        "clean_loss_mean": float(before.center_loss.mean()),
        "loss_at_w_star_mean": float(after.center_loss.mean()),
        "attack_success_rate": float(res.success.float().mean()),
        "before_max_mean_loss": float(before.mean_loss.max()),
        "after_min_mean_loss": float(after.mean_loss.min()),
        "centre_is_min_before": bool(before.mean_loss.argmin() == before.mean_loss.size // 2),
        "centre_is_max_after": bool(after.mean_loss.argmax() == after.mean_loss.size // 2),
    }
    print("landscape:", out["landscape"])

    # Fig. 1
    _, summary = adversarial_gallery(
        models["natural"], x[:6], y[:6], f"{stem}_gallery.png", seed=args.seed
    )
    out["gallery_accuracy"] = {k: v["accuracy"] for k, v in summary["attacks"].items()}
    out["seconds"] = round(time.perf_counter() - start, 1)
    out["meta"] = machine_metadata()
    write_json(args.out, out)
    print(
        f"clean accuracy: {out['clean_accuracy']}; wrote {args.out} and PNGs in {out['seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
