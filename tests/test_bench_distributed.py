"""Distributed evaluation: 2 gloo processes on CPU give the same report as 1 process.

The real multi-process test (``torch.multiprocessing.spawn`` + gloo, file:// rendezvous) is marked slow
(process start-up and imports dominate on a loaded 2-core machine); the fast test runs the same
sharding and merging code with two threads standing in for the ranks (rank, all-reduce and barrier
replaced by thread-level equivalents).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading

import pytest
import torch

SUITE = {
    "name": "dist",
    "attacks": [
        {
            "name": "pgd",
            "attack": "pgd",
            "category": "sensitivity",
            "params": {"eps": 0.3, "eps_step": 0.05, "random_init": True},
            "iterations": [1, 3],
        },
        {
            "name": "flow",
            "attack": "flow",
            "category": "local",
            "params": {"eps": 0.3, "eps_step": 0.05},
            "iterations": [2],
        },
    ],
    "profiles": [{"name": "rotation", "kind": "rotation", "values": [0, 90]}],
    "reference": {"sensitivity": 10.0, "local": 5.0},
}


def _worker(rank, world, init_file, ckpt, out_dir):
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        from art_spatial.bench import evaluate
        from art_spatial.data import load_mnist5k
        from art_spatial.models import SmallCNN

        model = SmallCNN()
        model.load_state_dict(torch.load(ckpt, weights_only=True))
        model.eval()
        x, y = load_mnist5k("test", seed=0)
        rep = evaluate(
            model,
            x,
            y,
            SUITE,
            n_examples=6,
            batch_size=3,
            seed=1,
            state_path=os.path.join(out_dir, "state.json"),
            reference="paper",  # the suite's numbers: every process scores the universal score
        )
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(rep.to_dict(), fh)
    finally:
        torch.distributed.destroy_process_group()


def _comparable(rep: dict) -> dict:
    keep = {
        k: rep[k]
        for k in (
            "n_examples",
            "n_clean_correct",
            "clean_accuracy",
            "score_convention",
            "category_scores",
            "category_scores_all_points",
            "category_scores_on_correct",
            "universal",
            "universal_all_points",
            "warnings",
        )
    }
    keep["attacks"] = [
        {k: a[k] for k in ("name", "strengths", "n_attacked", "n_forward", "n_backward")}
        for a in rep["attacks"]
    ]
    keep["sizes"] = [{k: round(v, 5) for k, v in a["perturbation"].items()} for a in rep["attacks"]]
    keep["profiles"] = {k: (p["unchanged"], p["n"]) for k, p in rep["profiles"].items()}
    return keep


@pytest.mark.slow
def test_two_gloo_processes_equal_one(tmp_path, trained_smallcnn):
    from art_spatial.bench import evaluate
    from art_spatial.data import load_mnist5k

    ckpt = tmp_path / "m.pt"
    torch.save(trained_smallcnn.state_dict(), ckpt)
    # spawn from a fresh interpreter (torch.multiprocessing + gloo, file:// rendezvous), with a timeout:
    # spawning from inside the pytest process hung twice on the loaded shared machine
    code = (
        "import sys, torch.multiprocessing as mp; sys.path.insert(0, sys.argv[1]); "
        "import test_bench_distributed as T; "
        "mp.spawn(T._worker, args=(2, sys.argv[2], sys.argv[3], sys.argv[4]), nprocs=2, join=True)"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    args = [here, str(tmp_path / "init"), str(ckpt), str(tmp_path)]
    subprocess.run([sys.executable, "-c", code, *args], check=True, timeout=900)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["meta"]["world_size"] == 2
    x, y = load_mnist5k("test", seed=0)
    single = evaluate(
        trained_smallcnn, x, y, SUITE, n_examples=6, batch_size=3, seed=1, reference="paper"
    ).to_dict()
    assert single["meta"]["world_size"] == 1
    assert _comparable(r0) == _comparable(single)
    assert _comparable(r1) == _comparable(single)
    # the merged state was written once (by rank 0) and holds every unit
    state = json.loads((tmp_path / "state.json").read_text())
    assert sorted(state["attacks"]) == ["flow", "pgd"] and state["clean"]["n"] == 6


def test_sharded_ranks_merge_to_the_single_process_report(tmp_path, trained_smallcnn, monkeypatch):
    from art_spatial.bench import distributed as D
    from art_spatial.bench import evaluate
    from art_spatial.data import load_mnist5k

    world = 2
    local = threading.local()
    barrier = threading.Barrier(world, timeout=300)  # a deadlock fails instead of hanging
    slots = [None] * world

    rank0_waits = threading.Event()

    def collective(kind, values=(), op=sum):
        # like gloo, every rank must be in the same collective: a mismatch is a deadlock there
        if local.rank == 0:
            rank0_waits.set()
        slots[local.rank] = (kind, [float(v) for v in values])
        barrier.wait()
        kinds = sorted({k for k, _ in slots})
        if len(kinds) > 1:
            raise RuntimeError(f"ranks are in different collectives {kinds} (deadlock under gloo)")
        out = [op(col) for col in zip(*(v for _, v in slots), strict=True)]
        barrier.wait()
        return out

    monkeypatch.setattr(D, "dist_info", lambda: (getattr(local, "rank", 0), world))
    monkeypatch.setattr(D, "all_reduce_sum", lambda v: collective("sum", v, sum))
    monkeypatch.setattr(D, "all_reduce_max", lambda v: collective("max", v, max))
    monkeypatch.setattr(D, "barrier", lambda: collective("barrier"))
    from art_spatial.bench.state import EvaluationState

    load_state = EvaluationState.from_disk

    def late_load(path, fingerprint):
        # rank 1 starts late (slow start-up): it reads the state only once rank 0 waits in its first
        # collective; it must not see the clean pass as done while rank 0 is still saving it
        if local.rank == 1:
            rank0_waits.wait(timeout=300)
        return load_state(path, fingerprint)

    monkeypatch.setattr(EvaluationState, "from_disk", late_load)
    x, y = load_mnist5k("test", seed=0)
    results, errors = [None] * world, []

    def run(rank):
        local.rank = rank
        try:
            model = copy.deepcopy(trained_smallcnn)
            results[rank] = evaluate(
                model,
                x,
                y,
                SUITE,
                n_examples=6,
                batch_size=3,
                seed=1,
                state_path=tmp_path / "state.json",
                reference="paper",
            ).to_dict()
        except Exception as exc:  # re-raised in the main thread below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]
    monkeypatch.undo()
    single = evaluate(
        trained_smallcnn, x, y, SUITE, n_examples=6, batch_size=3, seed=1, reference="paper"
    ).to_dict()
    assert single["universal"] is not None
    assert results[0]["meta"]["world_size"] == 2
    assert _comparable(results[0]) == _comparable(single) == _comparable(results[1])
    # each rank attacked only its shard, and the merged counts cover all points
    assert sum(a["n_attacked"] for a in results[0]["attacks"]) == sum(
        a["n_attacked"] for a in single["attacks"]
    )
    assert D.shard_indices(5, 1, 2).tolist() == [1, 3]
