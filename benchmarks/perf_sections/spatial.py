"""Spatial attacks: per-iteration cost, and strength/time against AdverTorch stAdv and ART's grid search.

1. Per-iteration cost of Flow, Affine, RT, Integrated and Pixel attacks ÷ one model forward+backward
   (gradient w.r.t. the input, parameters frozen) on the same batch: ``(T(K) − T(0)) / K`` with
   ``final_eval=False``, medians of repeats after a warmup, on SmallCNN@28px and PreActResNet18@32px.
   Targets: ≤ 1.5 (SmallCNN) and ≤ 1.15 (PreActResNet18).
2. FlowAttack (Pareto MNIST budget, 20 steps) vs AdverTorch ``SpatialTransformAttack`` (stAdv, scipy
   L-BFGS; its all-zero outputs are failures: the clean prediction stands) on the trained SmallCNN:
   robust accuracy and wall time. Target: equal or lower accuracy at ≤ 1/20 of the time.
3. AffineAttack (rotation-translation, ±30°, ±3 px, 20 steps) vs ART ``SpatialTransformation`` (grid
   search, 31 rotations in ±30°, max_translation = 3/28 of the image in %, 5 translations): robust
   accuracy and wall time. Target: lower accuracy at no more time.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import median_time, trained_smallcnn

logger = logging.getLogger(__name__)

ATTACK_KINDS = ("flow", "affine", "rt", "integrated", "pixel")


def _core_attack(kind: str, clf, max_iter: int):
    from art_spatial.attacks import AffineAttack, FlowAttack, IntegratedSpatialAttack, PixelAttack

    common = dict(max_iter=max_iter, verbose=False)
    if kind == "flow":
        return FlowAttack(clf, eps=0.3, eps_step=0.01, **common)
    if kind == "affine":
        return AffineAttack(clf, eps=0.3, eps_step=0.1, **common)
    if kind == "rt":
        return AffineAttack(
            clf,
            parametrization="rotation-translation",
            max_rotation=30.0,
            max_translation=3.0,
            **common,
        )
    if kind == "integrated":
        return IntegratedSpatialAttack(clf, **common)
    if kind == "pixel":
        return PixelAttack(clf, eps=0.3, eps_step=0.01, **common)
    raise ValueError(kind)


def per_iteration_cost(
    model: torch.nn.Module, shape: tuple, batch: int, k: int, repeats: int
) -> dict:
    """Per-iteration time of each attack ÷ one forward+backward (w.r.t. the input) on the same batch."""
    from art_spatial.attacks import model_eval
    from art_spatial.models import make_classifier

    c, h, w = shape
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, c, h, w, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    clf = make_classifier(model, input_shape=shape)
    out = {"batch": batch, "image": f"{c}x{h}x{w}", "max_iter": k, "repeats": repeats}
    with model_eval(model):

        def fwd_bwd():
            xi = x.clone().requires_grad_(True)
            loss = F.cross_entropy(model(xi), y, reduction="none").sum()
            torch.autograd.grad(loss, xi)

        base = median_time(fwd_bwd, repeats=max(repeats, 5), warmup=2)
        out["forward_backward_s"] = base["median_s"]
        for kind in ATTACK_KINDS:
            attack = _core_attack(kind, clf, k)
            zero = _core_attack(kind, clf, 0)
            t_k = median_time(
                lambda a=attack: a.attack_tensor(model, x, y, final_eval=False), repeats
            )
            t_0 = median_time(
                lambda a=zero: a.attack_tensor(model, x, y, final_eval=False), repeats
            )
            per_iter = (t_k["median_s"] - t_0["median_s"]) / k
            out[kind] = {
                "per_iteration_s": per_iter,
                "setup_s": t_0["median_s"],
                "ratio": per_iter / base["median_s"],
                "times_K_s": t_k["times_s"],
            }
            logger.info(
                "%s %s: %.2f x forward+backward", type(model).__name__, kind, out[kind]["ratio"]
            )
    return out


def _eval_subset(n: int):
    from art_spatial.data import load_mnist5k

    x, y = load_mnist5k("test", seed=0)
    per = max(1, n // 10)
    idx = np.concatenate([np.flatnonzero(y == cls)[:per] for cls in range(10)])
    return x[idx], y[idx]


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(1).numpy() == y


def flow_vs_stadv(model, n: int, stadv_iterations: int) -> dict:
    """FlowAttack vs AdverTorch's stAdv on ``n`` test digits (all-zero stAdv outputs = failures)."""
    from art_spatial._compat import import_advertorch
    from art_spatial.models import make_classifier

    at = import_advertorch()
    x, y = _eval_subset(n)
    clean = _accuracy(model, x, y)
    attack = _core_attack("flow", make_classifier(model), 20)
    t0 = time.perf_counter()
    x_flow = attack.generate(x, y)
    t_flow = time.perf_counter() - t0
    flow_acc = _accuracy(model, x_flow, y)

    stadv = at.SpatialTransformAttack(
        model,
        num_classes=10,
        max_iterations=stadv_iterations,
        search_steps=1,
        clip_min=0.0,
        clip_max=1.0,
    )
    t0 = time.perf_counter()
    x_st = stadv.perturb(torch.from_numpy(x), torch.from_numpy(y)).detach().numpy()
    t_st = time.perf_counter() - t0
    zero = np.abs(x_st).reshape(len(x), -1).max(1) == 0
    st_acc = np.where(zero, clean, _accuracy(model, x_st.astype(np.float32), y))
    return {
        "n": int(len(x)),
        "clean_accuracy": float(clean.mean()),
        "flow": {
            "config": "eps 0.3 (normalized), step 0.01, 20 steps",
            "robust_accuracy": float(flow_acc.mean()),
            "time_s": t_flow,
            "max_displacement_px_mean": float(attack.last_result.max_displacement_px.mean()),
        },
        "stadv": {
            "config": f"advertorch SpatialTransformAttack, L-BFGS max_iterations={stadv_iterations}, "
            "search_steps=1, initial_const=1",
            "robust_accuracy": float(st_acc.mean()),
            "time_s": t_st,
            "all_zero_outputs": int(zero.sum()),
        },
        "time_ratio_flow_over_stadv": t_flow / t_st,
        "target": "flow accuracy <= stAdv accuracy at <= 1/20 of the time",
        "target_met": bool(flow_acc.mean() <= st_acc.mean() and t_flow <= t_st / 20),
    }


def rt_vs_art_grid(model, n: int) -> dict:
    """AffineAttack(rotation-translation) vs ART SpatialTransformation (grid search) on ``n`` digits."""
    from art.attacks.evasion import SpatialTransformation

    from art_spatial.models import make_classifier

    x, y = _eval_subset(n)
    clf = make_classifier(model)
    attack = _core_attack("rt", clf, 20)
    t0 = time.perf_counter()
    x_rt = attack.generate(x, y)
    t_rt = time.perf_counter() - t0
    rt_acc = _accuracy(model, x_rt, y)
    max_translation_pct = 100.0 * 3.0 / 28.0
    grid = SpatialTransformation(
        clf,
        max_translation=max_translation_pct,
        num_translations=5,
        max_rotation=30.0,
        num_rotations=31,
        verbose=False,
    )
    t0 = time.perf_counter()
    x_grid = grid.generate(x)
    t_grid = time.perf_counter() - t0
    grid_acc = _accuracy(model, x_grid.astype(np.float32), y)
    return {
        "n": int(len(x)),
        "clean_accuracy": float(_accuracy(model, x, y).mean()),
        "rt": {
            "config": "rotation-translation, |angle|<=30 deg, |t|<=3 px, steps 3 deg / 0.3 px, 20 steps",
            "robust_accuracy": float(rt_acc.mean()),
            "time_s": t_rt,
        },
        "art_grid": {
            "config": f"SpatialTransformation(max_translation={max_translation_pct:.2f} %, "
            "num_translations=5, max_rotation=30, num_rotations=31); one transform per "
            "batch; translations from x.shape[1:3] (NCHW: C and H), so the x shift is "
            "round(1*10.7/100) = 0 px",
            "robust_accuracy": float(grid_acc.mean()),
            "time_s": t_grid,
            "fooling_rate": float(getattr(grid, "fooling_rate", float("nan"))),
            "attack_trans_x": getattr(grid, "attack_trans_x", None),
            "attack_trans_y": getattr(grid, "attack_trans_y", None),
            "attack_rot": getattr(grid, "attack_rot", None),
        },
        "time_ratio_rt_over_grid": t_rt / t_grid,
        "target": "RT accuracy < grid accuracy at no more time",
        "target_met": bool(rt_acc.mean() < grid_acc.mean() and t_rt <= t_grid),
    }


def run(quick: bool) -> dict:
    """Run the spatial section (``quick``: tiny sizes for a smoke run)."""
    from art_spatial.models import PreActResNet18

    small = trained_smallcnn()
    torch.manual_seed(0)
    resnet = PreActResNet18().eval()
    if quick:
        cost = {
            "smallcnn_28": per_iteration_cost(small, (1, 28, 28), 16, 2, 1),
            "preactresnet18_32": per_iteration_cost(resnet, (3, 32, 32), 4, 1, 1),
        }
        n, stadv_it = 10, 20
    else:
        cost = {
            "smallcnn_28": per_iteration_cost(small, (1, 28, 28), 128, 10, 5),
            "preactresnet18_32": per_iteration_cost(resnet, (3, 32, 32), 32, 3, 3),
        }
        n, stadv_it = 100, 1000
    cost["smallcnn_28"]["target"] = 1.5
    cost["preactresnet18_32"]["target"] = 1.15
    for entry in cost.values():
        entry["target_met"] = {k: bool(entry[k]["ratio"] <= entry["target"]) for k in ATTACK_KINDS}
    return {
        "per_iteration_cost": cost,
        "flow_vs_stadv": flow_vs_stadv(small, n, stadv_it),
        "rt_vs_art_grid": rt_vs_art_grid(small, n),
    }
