"""Cost of the harness's one-run multi-strength evaluation vs separate runs (full pareto-mnist suite).

For every attack of ``pareto-mnist`` (PGD 10/20/30/40, flow 5/10/15/20, affine 5/10/15/20) the harness
runs once to the largest count with every iterate's correctness recorded. This script evaluates a
naturally trained SmallCNN on the first ``--n`` MNIST-5k test digits

* once with the harness (final-iterate mode, the papers' number),
* once per (attack, iteration count) as separate runs (the baseline),
* once in the "any iterate misclassified" worst-case mode (fooled points dropped from the batch),

checks that the one-run accuracies equal the separate runs' at every strength, and records the
example-level forward/backward counts and wall times (ratios, same process), and the one-run universal
score against the paper's natural-model numbers (``reference="paper"``: a different model, named in
``universal_reference``). Points misclassified without attack are skipped identically in all modes
(AutoAttack's convention).
Output: ``benchmarks/results/harness_multistrength.json``.

Usage:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/harness_multistrength.py [--n 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from art_spatial.bench import evaluate, get_suite  # noqa: E402
from art_spatial.data import load_mnist5k  # noqa: E402
from art_spatial.models import SmallCNN, train_natural  # noqa: E402
from benchmarks._meta import REPO_ROOT, machine_metadata, write_json  # noqa: E402


def natural_smallcnn(seed: int = 0) -> torch.nn.Module:
    x, y = load_mnist5k("train", seed=0)
    torch.manual_seed(seed)
    model = SmallCNN()
    train_natural(model, x, y, epochs=4, batch_size=64, lr=1e-3, seed=seed, verbose=False)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = natural_smallcnn()
    x, y = load_mnist5k("test", seed=0)
    suite = get_suite("pareto-mnist")
    kw = dict(n_examples=args.n, batch_size=args.batch_size, seed=0)

    t0 = time.perf_counter()
    # universal score against the paper's natural model (a different model, named in the output);
    # the reference changes no count, so the separate runs below need none
    one = evaluate(model, x, y, suite, reference="paper", **kw)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    worst = evaluate(model, x, y, suite, mode="worst", **kw)
    t_worst = time.perf_counter() - t0

    sep_f = sep_b = 0
    t_sep = 0.0
    equal = True
    per_strength = []
    for entry in suite.to_dict()["attacks"]:
        for i, k in enumerate(entry["iterations"]):
            single = {"name": f"{entry['name']}-{k}", "attacks": [dict(entry, iterations=[k])]}
            t0 = time.perf_counter()
            rep = evaluate(model, x, y, single, **kw)
            t_sep += time.perf_counter() - t0
            a = rep.attacks[0]
            sep_f, sep_b = sep_f + a["n_forward"], sep_b + a["n_backward"]
            mine = one.attack(entry["name"])["strengths"][i]
            same = mine["n_robust"] == a["strengths"][0]["n_robust"]
            equal &= same
            per_strength.append(
                {
                    "attack": entry["name"],
                    "iterations": k,
                    "one_run_acc": mine["accuracy"],
                    "separate_acc": a["strengths"][0]["accuracy"],
                    "worst_acc": worst.attack(entry["name"])["strengths"][i]["accuracy"],
                    "equal": same,
                }
            )
    passes = lambda r: r.n_forward + r.n_backward  # noqa: E731
    result = {
        "meta": machine_metadata(),
        "n_examples": args.n,
        "clean_accuracy": one.clean_accuracy,
        "one_run_equals_separate_runs": bool(equal),
        "passes": {
            "one_run": {"forward": one.n_forward, "backward": one.n_backward},
            "worst_mode": {"forward": worst.n_forward, "backward": worst.n_backward},
            "separate_runs": {"forward": sep_f, "backward": sep_b},
        },
        "ratio_passes_one_run_vs_separate": passes(one) / (sep_f + sep_b),
        "ratio_backward_one_run_vs_separate": one.n_backward / sep_b,
        "ratio_passes_worst_mode_vs_separate": passes(worst) / (sep_f + sep_b),
        "wall_s": {"one_run": t_one, "worst_mode": t_worst, "separate_runs": t_sep},
        "ratio_wall_one_run_vs_separate": t_one / t_sep,
        "category_scores": one.category_scores,
        "universal_vs_paper_natural": one.universal,
        "universal_reference": one.reference_name,
        "category_scores_worst_mode": worst.category_scores,
        "per_strength": per_strength,
    }
    out = write_json(REPO_ROOT / "benchmarks" / "results" / "harness_multistrength.json", result)
    for k in (
        "one_run_equals_separate_runs",
        "ratio_passes_one_run_vs_separate",
        "ratio_backward_one_run_vs_separate",
        "ratio_passes_worst_mode_vs_separate",
        "ratio_wall_one_run_vs_separate",
        "category_scores",
        "category_scores_worst_mode",
        "clean_accuracy",
    ):
        print(k, result[k])
    print("written", out)


if __name__ == "__main__":
    main()
