"""Distributed (DDP) training and mixed precision: correctness and cost, measured on this machine.

1. **DDP epoch, 2 processes vs 1** (gloo, CPU, one thread per process): one Pareto AT epoch (PGD, flow
   and affine attacks) from the same initialization on the same data with the same global batch.
   Reported: wall time of the epoch in each setting and their ratio, the largest weight difference
   and the largest α difference between the two runs.
2. **Communication of the reduced statistics**: in the 2-process run every ``all_reduce`` the
   trainer adds (per step: the global batch loss and Pareto AT's loss vector; per epoch: the metrics)
   is timed and divided by the epoch's wall time. DDP's own gradient all-reduce (inside ``backward``)
   is not part of this share. A collective's wall time includes waiting for the slower rank.
3. **Mixed precision**: the attack success rate (fraction of test digits misclassified after the
   attack, judged by the float32 model) of PGD and flow attacks run through the model in float32 and
   under ``torch.autocast(bfloat16)`` (:class:`art_spatial.amp.AutocastModule`), same model, seed and
   points, on the device named in the output (a CPU figure is never a GPU figure).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/ddp_amp.py           # writes benchmarks/results/ddp_amp.json
    OMP_NUM_THREADS=1 python benchmarks/ddp_amp.py --quick   # smaller, for a smoke run

The machine this runs on may be shared (``--shared-note`` is recorded in the JSON metadata).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _meta import machine_metadata, write_json  # noqa: E402


def _setup(n_train: int, iters: int):
    from art_spatial.attacks import AffineAttack, FlowAttack, PixelAttack
    from art_spatial.data import load_mnist5k
    from art_spatial.models import SmallCNN, make_classifier
    from art_spatial.trainers import ParetoAdversarialTrainer

    torch.manual_seed(0)
    clf = make_classifier(SmallCNN(), lr=0.01, optimizer="sgd", momentum=0.9)
    atk = [
        PixelAttack(clf, eps=0.3, eps_step=0.05, max_iter=iters, verbose=False),
        FlowAttack(clf, eps=0.3, eps_step=0.05, max_iter=iters, verbose=False),
        AffineAttack(clf, eps=0.3, eps_step=0.1, max_iter=iters, verbose=False),
    ]
    trainer = ParetoAdversarialTrainer(
        clf, atk, r=0.5, r_mode="relative", window=10, seed=1, verbose=False
    )
    x, y = load_mnist5k("train", seed=0)
    return clf, trainer, x[:n_train], y[:n_train]


def _run(out_dir: str, tag: str, n_train: int, iters: int, batch: int, timed: bool) -> None:
    from art_spatial.bench import distributed as D

    comm = {"per_step_s": 0.0, "per_step_calls": 0, "per_epoch_s": 0.0, "per_epoch_calls": 0}
    if timed:
        tensor_fn, list_fn = D.all_reduce_tensor, D.all_reduce_sum

        def timed_tensor(t, op="sum"):
            t0 = time.perf_counter()
            out = tensor_fn(t, op)
            comm["per_step_s"] += time.perf_counter() - t0
            comm["per_step_calls"] += 1
            return out

        def timed_list(values):
            t0 = time.perf_counter()
            out = list_fn(values)
            comm["per_epoch_s"] += time.perf_counter() - t0
            comm["per_epoch_calls"] += 1
            return out

        D.all_reduce_tensor, D.all_reduce_sum = timed_tensor, timed_list
    clf, trainer, x, y = _setup(n_train, iters)
    t0 = time.perf_counter()
    trainer.fit(x, y, batch_size=batch, nb_epochs=1)
    wall = time.perf_counter() - t0
    rank = D.dist_info()[0]
    if timed:  # the pure cost of one such collective: synchronized, many times, no compute between
        vec = torch.zeros(4, dtype=torch.float64)
        torch.distributed.barrier()
        t1 = time.perf_counter()
        for _ in range(200):
            tensor_fn(vec, "sum")
        comm["pure_allreduce_latency_s"] = (time.perf_counter() - t1) / 200
    torch.save(clf.model.state_dict(), os.path.join(out_dir, f"{tag}_rank{rank}.pt"))
    h = trainer.history[0]
    rec = {
        "wall_s": wall,
        "time_epoch_s": h["time_epoch_s"],
        "time_attack_s": h["time_attack_s"],
        "alpha": h["alpha"],
        "alpha_last": h["alpha_last"],
        "loss": h["loss"],
        "n_examples": h["n_examples"],
        "steps": trainer._nb_batches,
        **comm,
    }
    with open(os.path.join(out_dir, f"{tag}_rank{rank}.json"), "w") as fh:
        json.dump(rec, fh)


def _worker(rank, world, init_file, out_dir, n_train, iters, batch):
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        _run(out_dir, "ddp", n_train, iters, batch, timed=True)
    finally:
        torch.distributed.destroy_process_group()


def ddp_section(n_train: int, iters: int, batch: int) -> dict:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        mp.spawn(
            _worker,
            args=(2, os.path.join(tmp, "init"), tmp, n_train, iters, batch),
            nprocs=2,
            join=True,
        )
        spawn_wall = time.perf_counter() - t0
        torch.set_num_threads(1)
        _run(tmp, "single", n_train, iters, batch, timed=False)
        r = {
            k: json.load(open(os.path.join(tmp, f"{k}.json")))
            for k in ("ddp_rank0", "ddp_rank1", "single_rank0")
        }
        w = {
            k: torch.load(os.path.join(tmp, f"{k}.pt"), weights_only=True)
            for k in ("ddp_rank0", "ddp_rank1", "single_rank0")
        }
    one, two = r["single_rank0"], r["ddp_rank0"]
    dw = max(
        float((w["ddp_rank0"][k] - w["single_rank0"][k]).abs().max()) for k in w["single_rank0"]
    )
    dw01 = max(
        float((w["ddp_rank0"][k] - w["ddp_rank1"][k]).abs().max()) for k in w["single_rank0"]
    )
    da = float(np.abs(np.array(two["alpha"]) - np.array(one["alpha"])).max())
    comm_s = max(r[k]["per_step_s"] + r[k]["per_epoch_s"] for k in ("ddp_rank0", "ddp_rank1"))
    epoch_s = max(r[k]["time_epoch_s"] for k in ("ddp_rank0", "ddp_rank1"))
    latency = max(r[k]["pure_allreduce_latency_s"] for k in ("ddp_rank0", "ddp_rank1"))
    calls = two["per_step_calls"] + two["per_epoch_calls"]
    return {
        "setting": {
            "trainer": "ParetoAdversarialTrainer (PGD, flow, affine)",
            "n_train": n_train,
            "attack_iters": iters,
            "global_batch": batch,
            "epochs": 1,
            "optimizer": "SGD",
            "backend": "gloo",
            "threads_per_process": 1,
        },
        "one_process": one,
        "two_processes": {"rank0": two, "rank1": r["ddp_rank1"], "spawn_total_wall_s": spawn_wall},
        "epoch_time_ratio_2proc_over_1proc": epoch_s / one["time_epoch_s"],
        "max_abs_weight_diff_2proc_vs_1proc": dw,
        "max_abs_weight_diff_rank0_vs_rank1": dw01,
        "max_abs_alpha_diff_2proc_vs_1proc": da,
        "reduced_statistics_comm_s": comm_s,
        "reduced_statistics_comm_share_of_epoch": comm_s / epoch_s,
        "note_comm_share": "wall time inside the trainer's collectives, waiting for the slower rank "
        "included (load imbalance on a shared machine shows up here)",
        "pure_allreduce_latency_s": latency,
        "reduced_statistics_pure_comm_share_of_epoch": calls * latency / epoch_s,
        "reduced_statistics_calls_per_step": two["per_step_calls"] / two["steps"],
    }


def amp_section(n_test: int, device: str) -> dict:
    import copy

    from art_spatial.amp import AutocastModule
    from art_spatial.attacks import FlowAttack, PixelAttack
    from art_spatial.data import load_mnist5k
    from art_spatial.models import SmallCNN, make_classifier, train_natural

    x, y = load_mnist5k("train", seed=0)
    torch.manual_seed(0)
    model = SmallCNN()
    train_natural(model, x, y, epochs=2, batch_size=128, lr=1e-3, verbose=False)
    model = model.eval().to(device)
    xt, yt = load_mnist5k("test", seed=0)
    xt, yt = xt[:n_test], yt[:n_test]
    dt = "gpu" if device == "cuda" else "cpu"
    with torch.no_grad():
        xt_t = torch.as_tensor(xt, device=device)
        clean = float((model(xt_t).argmax(1).cpu().numpy() == yt).mean())
        logit_gap = float((AutocastModule(model, "bfloat16")(xt_t) - model(xt_t)).abs().max())
    out = {
        "device": device,
        "n_test": n_test,
        "clean_accuracy_fp32": clean,
        "max_abs_logit_diff_bf16_vs_fp32": logit_gap,
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
        "attacks": {},
    }
    attacks = {
        "pgd_eps0.1_20it": lambda c: PixelAttack(
            c, eps=0.1, eps_step=0.01, max_iter=20, verbose=False, seed=0
        ),
        "flow_eps0.3_10it": lambda c: FlowAttack(
            c, eps=0.3, eps_step=0.03, max_iter=10, verbose=False, seed=0
        ),
    }
    for name, make in attacks.items():
        rec = {}
        for amp in (None, "bfloat16"):
            net = copy.deepcopy(model)
            if amp:
                net = AutocastModule(net, amp)
            clf = make_classifier(net, input_shape=(1, 28, 28), device_type=dt)
            t0 = time.perf_counter()
            adv = make(clf).generate(xt, y=yt)
            secs = time.perf_counter() - t0
            with torch.no_grad():
                pred = model(torch.as_tensor(adv, device=device)).argmax(1).cpu().numpy()
                pred_amp = net(torch.as_tensor(adv, device=device)).argmax(1).cpu().numpy()
            rec["fp32" if amp is None else amp] = {
                "success_rate_judged_fp32": float((pred != yt).mean()),
                "success_rate_judged_by_attacked_model": float((pred_amp != yt).mean()),
                "seconds": secs,
                "max_perturbation": float(np.abs(adv - xt).max()),
            }
        rec["success_gap_points"] = 100 * abs(
            rec["bfloat16"]["success_rate_judged_fp32"] - rec["fp32"]["success_rate_judged_fp32"]
        )
        out["attacks"][name] = rec
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "ddp_amp.json"
    )
    p.add_argument(
        "--shared-note",
        default="2-core machine shared with two long benchmark runs and "
        "another engineer's tests during the measurement; wall times are noisy",
    )
    args = p.parse_args(argv)
    n_train, iters, batch, n_test = (128, 2, 32, 200) if args.quick else (512, 5, 64, 500)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    meta = machine_metadata()
    meta["machine_shared"] = args.shared_note
    meta["load_average_at_start"] = os.getloadavg()
    res = {
        "meta": meta,
        "ddp": ddp_section(n_train, iters, batch),
        "amp": amp_section(n_test, device),
    }
    res["meta"]["load_average_at_end"] = os.getloadavg()
    write_json(args.out, res)
    d, a = res["ddp"], res["amp"]
    print(f"device: {device} (DDP section: CPU, gloo)")
    print(
        f"DDP epoch 2 proc / 1 proc: {d['epoch_time_ratio_2proc_over_1proc']:.2f}; max |Δw| "
        f"{d['max_abs_weight_diff_2proc_vs_1proc']:.2e}, "
        f"max |Δα| {d['max_abs_alpha_diff_2proc_vs_1proc']:.2e}"
    )
    print(
        f"reduced statistics: {d['reduced_statistics_comm_share_of_epoch'] * 100:.2f} % of the epoch "
        f"incl. waiting, {d['reduced_statistics_pure_comm_share_of_epoch'] * 100:.3f} % pure "
        f"({d['reduced_statistics_calls_per_step']:.1f} all_reduce per step, "
        f"{d['pure_allreduce_latency_s'] * 1e6:.0f} us each)"
    )
    for name, rec in a["attacks"].items():
        print(
            f"{name} on {a['device']}: success fp32 {rec['fp32']['success_rate_judged_fp32']:.3f}, "
            f"bf16 {rec['bfloat16']['success_rate_judged_fp32']:.3f} (gap {rec['success_gap_points']:.1f} "
            f"points)"
        )
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
