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


# ------------------------------------------------------------------------------- the typed state
def _counts(state) -> dict:
    """A state's counts (no wall times: they differ between runs)."""
    d = state.to_dict()
    for rec in [*d["attacks"].values(), *d["profiles"].values()]:
        rec.pop("wall_time_s")
    return d


def test_state_of_merged_shards_equals_the_unsharded_state(tmp_path, trained_smallcnn, mnist_test):
    from art_spatial.bench import distributed as D
    from art_spatial.bench import evaluate
    from art_spatial.bench.state import EvaluationState

    x, y = mnist_test
    kw = dict(n_examples=7, batch_size=3, seed=1)
    evaluate(trained_smallcnn, x, y, SUITE, state_path=tmp_path / "full.json", **kw)
    shards = []
    for i in range(3):
        with D.local_shard(i, 3):
            evaluate(trained_smallcnn, x, y, SUITE, state_path=tmp_path / f"s{i}.json", **kw)
        shards.append(EvaluationState.from_disk(tmp_path / f"s{i}.json", _fingerprint(tmp_path)))
    full = EvaluationState.from_disk(tmp_path / "full.json", _fingerprint(tmp_path))
    assert [s.attacks["pgd"].n_attacked for s in shards] != [full.attacks["pgd"].n_attacked] * 3
    merged = EvaluationState.merge(shards[::-1])  # any order: the counts are sums
    assert _counts(merged)["attacks"] == _counts(full)["attacks"]
    assert _counts(merged)["profiles"] == _counts(full)["profiles"]
    assert merged.clean == full.clean and merged.finished_units() == full.finished_units()


def _fingerprint(folder) -> str:
    return json.loads((folder / "full.json").read_text())["fingerprint"]


def test_state_round_trips_through_disk_and_refuses_bad_merges(tmp_path):
    from art_spatial.bench.state import (
        AttackRecord,
        CleanRecord,
        EvaluationState,
        ProfileRecord,
    )

    rec = AttackRecord(
        robust=[2, 1],
        robust_on_correct=[2, 1],
        n_attacked=3,
        n_forward=6,
        n_backward=6,
        wall_time_s=0.5,
        perturbation={"mean_pixel_linf": 0.25, "max_pixel_linf": 0.3},
        robust_examples=["1100", "1000"],
    )
    prof = ProfileRecord("rotation", [0.0, 90.0], unchanged=[4, 1], n=4)
    state = EvaluationState("fp", CleanRecord(4, 3), {"pgd": rec}, {"rot": prof}, warnings=[])
    state.to_disk(tmp_path / "state.json")
    back = EvaluationState.from_disk(tmp_path / "state.json", "fp")
    assert back == state and back.to_dict() == state.to_dict()
    assert EvaluationState.from_disk(tmp_path / "absent.json", "fp") == EvaluationState("fp")
    with pytest.raises(ValueError, match="belongs to a different evaluation"):
        EvaluationState.from_disk(tmp_path / "state.json", "other")
    # two halves merge to the sums; a half of another evaluation or an unfinished one is refused
    half = AttackRecord(**{**rec.__dict__, "robust_examples": ["0011", "0001"], "n_attacked": 1})
    merged = EvaluationState.merge(
        [state, EvaluationState("fp", CleanRecord(4, 3), {"pgd": half}, {"rot": prof})]
    )
    assert merged.attacks["pgd"].robust == [4, 2]
    assert merged.attacks["pgd"].robust_examples == ["1111", "1001"]
    assert merged.attacks["pgd"].perturbation["mean_pixel_linf"] == 0.25
    assert merged.profiles["rot"].rates == [1.0, 0.25]
    with pytest.raises(ValueError, match="different evaluations"):
        EvaluationState.merge([state, EvaluationState("other", CleanRecord(4, 3))])
    with pytest.raises(ValueError, match=r"shard 1 is unfinished \(missing \['pgd', 'rot'\]\)"):
        EvaluationState.merge([state, EvaluationState("fp", CleanRecord(4, 3))])


def test_a_state_file_of_the_earlier_harness_resumes(tmp_path, trained_smallcnn, mnist_test):
    """tests/data/state_smoke_mnist_v1.json was written by the harness before the typed state (its
    dict of string keys): the same evaluation resumes every unit from it (same fingerprint)."""
    import shutil

    from art_spatial.bench import evaluate

    old = os.path.join(os.path.dirname(__file__), "data", "state_smoke_mnist_v1.json")
    path = tmp_path / "state.json"
    shutil.copy(old, path)
    x, y = mnist_test
    rep = evaluate(
        trained_smallcnn, x, y, "smoke-mnist", n_examples=8, batch_size=4, seed=3, state_path=path
    )
    assert rep.meta["resumed_units"] == ["clean", "pgd", "flow", "rt", "rotation"]
    saved = json.loads(open(old).read())
    assert [s["n_robust"] for s in rep.attack("pgd")["strengths"]] == saved["attacks"]["pgd"][
        "robust"
    ]
    assert json.loads(path.read_text()) == saved  # nothing rewritten
