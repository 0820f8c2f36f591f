"""Pareto AT on MNIST-5k: the paper's Table 1 analog and the approximate Pareto front (Fig. 7).

Trains SmallCNN as Natural, PGD AT, Spatial AT, Max AT, Ave AT and Pareto AT for a sweep of ``r``
(paper, MNIST: 0.2 … 2.2), evaluates each with the ``pareto-mnist`` suite (reference = Natural), and
writes ``benchmarks/results/pareto_mnist[_quick].json`` and ``.png`` (universal score vs sacrificed clean
accuracy with the non-dominated front). The JSON holds, next to our numbers, the paper's MNIST Table 1
and the list of pairwise orderings (universal score and each category) that hold or fail on MNIST-5k.

Training and evaluation go through :mod:`art_spatial.demo` (same code path as ``art-spatial demo``):
adversarial models are fine-tuned from the Natural model (see :class:`art_spatial.demo.DemoConfig`),
a compute-bounded stand-in for the paper's 100 epochs from scratch. Trained models and finished reports
are cached under ``benchmarks/results/cache/pareto_mnist[_quick]/`` and reused by a rerun.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reproduce_pareto_mnist.py --quick   # minutes
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reproduce_pareto_mnist.py           # hours on 1 core
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm.auto import tqdm  # noqa: E402

from benchmarks._repro import (  # noqa: E402
    SMOKE,
    base_parser,
    machine_metadata,
    mnist5k,
    scores_of,
    setup,
    write_json,
)

PAPER_RS = [0.2, 0.5, 0.8, 1.0, 1.2, 1.5, 1.8, 2.0, 2.2]
QUICK_RS = [0.5, 1.2, 2.2]
BASELINES = ("Natural", "PGD AT", "Spatial AT", "Max AT", "Ave AT")
FULL = dict(n_train=4000, n_test=1000, natural_epochs=8, adv_epochs=3, pgd_iter=20, spatial_iter=10,
            multi_iter=7)


def orderings(ours: dict, paper: dict, key: str) -> list[dict]:
    """Every pair of methods: does ``ours[a][key] > ours[b][key]`` agree with the paper's order?"""
    out = []
    for a, b in itertools.combinations([m for m in paper if m in ours], 2):
        pa, pb = paper[a][key], paper[b][key]
        oa, ob = ours[a][key], ours[b][key]
        if oa is None or ob is None or pa == pb:
            continue
        paper_sign = ">" if pa > pb else "<"
        our_sign = ">" if oa > ob else "<" if oa < ob else "="
        out.append({"pair": [a, b], "paper": paper_sign, "ours": our_sign, "holds": paper_sign == our_sign,
                    "paper_values": [pa, pb], "our_values": [oa, ob]})
    return out


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--rs", type=float, nargs="+", default=None,
                   help=f"Pareto AT targets r (default {PAPER_RS}; --quick {QUICK_RS})")
    p.add_argument("--table-r", type=float, default=2.2, help="r of the Pareto AT column of Table 1")
    args = p.parse_args(argv)
    setup(args)
    from art_spatial.bench.plots import plot_pareto_front
    from art_spatial.demo import PAPER_MNIST_TABLE1, DemoConfig, evaluate_model, slug, train_model

    t_start = time.perf_counter()
    config = DemoConfig.preset("quick", seed=args.seed) if args.quick else DemoConfig(seed=args.seed, **FULL)
    if args.smoke:
        config = dataclasses.replace(config, n_train=SMOKE["n_train"], n_test=SMOKE["n_test"],
                                     natural_epochs=1, adv_epochs=1, pgd_iter=1, spatial_iter=1,
                                     multi_iter=1)
    rs = args.rs or (QUICK_RS if args.quick or args.smoke else PAPER_RS)
    if args.table_r not in rs:
        rs = sorted(set(rs) | {args.table_r})
    tag = "_smoke" if args.smoke else "_quick" if args.quick else ""
    work = args.cache / f"pareto_mnist{tag}"
    x_train, y_train, x_test, y_test = mnist5k(config.n_train, config.n_test, args.seed)

    jobs = [(m, m, config) for m in BASELINES] + [
        ("Pareto AT", f"Pareto AT (r={r:g})", dataclasses.replace(config, pareto_r=r)) for r in rs]
    reports, infos = {}, {}
    natural_state, reference = None, None
    for method, label, cfg in tqdm(jobs, desc="models", disable=args.quiet):
        name = slug(label)
        model, info = train_model(method, cfg, x_train, y_train, work, natural_state=natural_state,
                                  verbose=not args.quiet, name=name)
        if method == "Natural":
            natural_state = {k: v.clone() for k, v in model.state_dict().items()}
        report, _ = evaluate_model(method, model, cfg, x_test, y_test, work, reference=reference,
                                   verbose=not args.quiet, name=name)
        if method == "Natural":
            reference = report
            report = report.with_reference(report)
        reports[label], infos[label] = report, info

    table_label = f"Pareto AT (r={args.table_r:g})"
    table_methods = list(BASELINES) + [table_label]
    ours = {}
    for label in reports:
        s = scores_of(reports[label])
        ours[label] = {**s["category_scores"], "universal": s["universal"],
                       "clean_accuracy": s["clean_accuracy"]}
    ours_table = {m if m != table_label else "Pareto AT": ours[m] for m in table_methods}
    comparisons = {key: orderings(ours_table, PAPER_MNIST_TABLE1, key)
                   for key in ("universal", "sensitivity", "local", "global")}
    front_png = args.out / f"pareto_mnist{tag}.png"
    args.out.mkdir(parents=True, exist_ok=True)
    plot_pareto_front(reports, reference, front_png,
                      title=f"MNIST-5k ({config.n_test} test digits): universal vs sacrificed clean acc")
    ref_clean = reference.clean_accuracy
    pareto_points = [{"label": label, "universal": ours[label]["universal"],
                      "sacrificed_clean": ref_clean - ours[label]["clean_accuracy"]} for label in reports]
    from art_spatial.bench.plots import pareto_front

    front_idx = pareto_front([(pt["universal"], pt["sacrificed_clean"]) for pt in pareto_points])
    payload = {
        "benchmark": "reproduce_pareto_mnist",
        "command": " ".join(["OMP_NUM_THREADS=1", ".venv/bin/python", "benchmarks/reproduce_pareto_mnist.py"]
                            + (argv if argv is not None else sys.argv[1:])),
        "machine": machine_metadata(),
        "config": config.to_dict(),
        "rs": rs,
        "table1": {"methods": table_methods, "ours": {m: ours[m] for m in table_methods},
                   "paper": PAPER_MNIST_TABLE1},
        "orderings": comparisons,
        "orderings_summary": {k: f"{sum(c['holds'] for c in v)}/{len(v)} hold"
                              for k, v in comparisons.items()},
        "front": {"points": pareto_points, "nondominated": [pareto_points[i]["label"] for i in front_idx]},
        "pareto_history": {label: {"alpha_last": (infos[label].get("history") or [{}])[-1].get("alpha_last"),
                                   "qp_fallbacks": sum(h.get("qp_fallbacks", 0)
                                                       for h in infos[label].get("history") or [])}
                           for label in reports if label.startswith("Pareto")},
        "per_model": {label: scores_of(r) for label, r in reports.items()},
        "train_seconds": {label: infos[label].get("train_seconds") for label in reports},
        "train_cpu_seconds": {label: infos[label].get("train_cpu_seconds") for label in reports},
        "png": str(front_png.relative_to(args.out.parent)) if args.out.parent in front_png.parents
        else str(front_png),
        "wall_seconds": time.perf_counter() - t_start,
    }
    out = write_json(args.out / f"pareto_mnist{tag}.json", payload)
    print(f"wrote {out} and {front_png}")
    for key, summary in payload["orderings_summary"].items():
        print(f"orderings ({key}): {summary}")
    for m in table_methods:
        o = ours[m]
        print(f"{m:<22} clean {o['clean_accuracy']:6.2f}  sens {o['sensitivity']:6.2f}"
              f"  local {o['local']:6.2f}  global {o['global']:6.2f}  universal {o['universal']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
