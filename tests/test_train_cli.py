"""``art-spatial train`` (recipes, outputs, resume, torchrun) and ``evaluate --shard`` + ``merge``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from test_bench_distributed import SUITE as DIST_SUITE

from art_spatial.cli import main

SMALL = [
    "--epochs",
    "2",
    "--n-train",
    "24",
    "--batch-size",
    "8",
    "--attack-iters",
    "1",
    "-q",
    "--device",
    "cpu",
]


def test_every_recipe_and_method_builds_its_trainer():
    from art_spatial import trainers as T
    from art_spatial.models import SmallCNN, make_classifier
    from art_spatial.recipes import METHODS, RECIPES, build_trainer, get_recipe

    for name in RECIPES:
        r = get_recipe(name)
        assert r.epochs > 1 and all(0 < m < r.epochs for m in r.milestones) and r.source
        for method, cls in METHODS.items():
            rm = get_recipe(name, method=method, epochs=4)
            clf = make_classifier(SmallCNN())
            trainer = build_trainer(rm, clf, verbose=False)
            assert type(trainer).__name__ == cls and isinstance(trainer, getattr(T, cls))
    # the papers' numbers (Appendix E of Pareto AT; TRADES' schedules)
    r = get_recipe("pareto-cifar10")
    assert (r.model, r.epochs, r.lr, r.milestones, r.trainer["r"]) == (
        "preactresnet18",
        76,
        0.1,
        [75],
        4.0,
    )
    assert r.attacks["pgd"] == {"eps": 0.031, "eps_step": 0.007, "max_iter": 3}
    assert r.attacks["affine"]["eps"] == 1.0 and r.attacks["flow"]["eps_step"] == 1e-3
    r = get_recipe("pareto-mnist")
    assert (
        r.attacks["pgd"]["max_iter"] == 30
        and r.attacks["flow"]["max_iter"] == 20
        and r.epochs == 100
    )
    cusp = build_trainer(get_recipe("cusp-cifar10"), make_classifier(SmallCNN()), verbose=False)
    from art_spatial.trainers.curriculum import OFFICIAL_CIFAR10_STAGES

    assert cusp.stages == OFFICIAL_CIFAR10_STAGES


def test_recipe_validation_names_the_field():
    from art_spatial.recipes import Recipe, get_recipe

    with pytest.raises(ValueError, match="recipe must be one of"):
        get_recipe("nope")
    with pytest.raises(ValueError, match="method must be one of"):
        get_recipe("pareto-mnist", method="nope")
    with pytest.raises(ValueError, match="milestones"):
        get_recipe("pareto-mnist", milestones=[200])
    with pytest.raises(ValueError, match="epochs"):
        get_recipe("pareto-mnist", epochs=0)
    with pytest.raises(ValueError, match="unknown recipe fields"):
        Recipe.from_dict({**get_recipe("pareto-mnist").to_dict(), "bogus": 1})


def test_train_writes_recipe_history_curves_and_reruns_from_the_recipe(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--recipe",
                "pareto-mnist",
                "--pareto-r-mode",
                "relative",
                "--pareto-r",
                "0.5",
                "--out",
                str(out),
                *SMALL,
            ]
        )
        == 0
    )
    for f in ("recipe.json", "model.pt", "history.json", "curves.png", "checkpoints/last.pt"):
        assert (out / f).is_file(), f
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["method"] == "pareto" and recipe["epochs"] == 2 and recipe["milestones"] == [1]
    assert recipe["trainer"] == {"r": 0.5, "r_mode": "relative", "window": 20}
    assert all(a["max_iter"] == 1 for a in recipe["attacks"].values())
    hist = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in hist["history"]] == [1, 2] and hist["world_size"] == 1
    assert hist["history"][1]["lr"] == pytest.approx(0.001)  # 0.01 dropped x0.1 at epoch 1
    assert len(hist["history"][0]["alpha"]) == 4
    # the recipe file alone reproduces the run (same seed: same weights)
    out2 = tmp_path / "rerun"
    assert main(["train", "--recipe-file", str(out / "recipe.json"), "--out", str(out2), "-q"]) == 0
    a, b = (torch.load(o / "model.pt", weights_only=True) for o in (out, out2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # an existing run is never overwritten; resume with another recipe is refused
    assert main(["train", "--recipe-file", str(out / "recipe.json"), "--out", str(out), "-q"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", *SMALL, "--seed", "5"]) == 2
    assert "another recipe" in capsys.readouterr().err
    # resuming a finished run trains nothing more and keeps the weights
    assert (
        main(
            [
                "train",
                "--recipe-file",
                str(out / "recipe.json"),
                "--out",
                str(out),
                "--resume",
                "-q",
            ]
        )
        == 0
    )
    c = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("method", ["max", "gairat", "cusp", "joint"])
def test_train_other_methods_on_the_mnist_recipe(tmp_path, method):
    out = tmp_path / method
    assert (
        main(["train", "--recipe", "pareto-mnist", "--method", method, "--out", str(out), *SMALL])
        == 0
    )
    hist = json.loads((out / "history.json").read_text())["history"]
    assert len(hist) == 2 and hist[-1]["n_examples"] == 24


def test_train_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--dataset", "cifar10", "--out", str(tmp_path / "c"), *SMALL]) == 2
    assert "data_dir" in capsys.readouterr().err
    assert main(["train", "--model", "NoSuchZooModel", "--out", str(tmp_path / "m"), *SMALL]) == 2
    assert "NoSuchZooModel" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"method": 3}')
    assert main(["train", "--recipe-file", str(bad), "--out", str(tmp_path / "b")]) == 2


@pytest.mark.slow
def test_train_under_torchrun_equals_one_process(tmp_path):
    args = [
        "train",
        "--recipe",
        "pareto-mnist",
        "--pareto-r-mode",
        "relative",
        "--pareto-r",
        "0.5",
        "--epochs",
        "2",
        "--n-train",
        "20",
        "--batch-size",
        "8",
        "--attack-iters",
        "2",
        "-q",
        "--device",
        "cpu",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "art_spatial.cli",
        *args,
        "--out",
        str(tmp_path / "ddp"),
    ]
    res = subprocess.run(cmd, env=env, timeout=900, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    h2 = json.loads((tmp_path / "ddp" / "history.json").read_text())
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())
    assert h2["world_size"] == 2 and h1["world_size"] == 1
    for e2, e1 in zip(h2["history"], h1["history"], strict=True):
        assert e2["n_examples"] == e1["n_examples"] == 20
        # α solves a QP whose matrix is nearly singular (the losses' second moments): cvxopt's default
        # tolerances (1e-7 absolute, 1e-6 relative gap) leave it determined to about 1e-4
        assert e2["alpha"] == pytest.approx(e1["alpha"], abs=5e-4)
        assert e2["loss"] == pytest.approx(e1["loss"], rel=1e-4)
    a = torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "one" / "model.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


# the small suite of the distributed-evaluation tests: the sharded CLI runs must merge like them
SHARD_SUITE = DIST_SUITE


def test_sharded_evaluation_merges_to_the_unsharded_report(
    tmp_path, trained_smallcnn, capsys, evaluate_argv
):
    common = evaluate_argv(
        tmp_path,
        trained_smallcnn,
        SHARD_SUITE,
        "--n-examples",
        "7",
        "--batch-size",
        "3",
        "--seed",
        "1",
        "--reference",
        "paper",
        "-q",
    )
    assert main([*common, "--out", str(tmp_path / "full")]) == 0
    for i in range(3):
        assert main([*common, "--shard", f"{i}/3", "--out", str(tmp_path / f"s{i}")]) == 0
        assert (tmp_path / f"s{i}" / "partial.json").is_file()
        assert not (tmp_path / f"s{i}" / "report.json").exists()
    # a missing shard is refused
    assert (
        main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "x")])
        == 2
    )
    assert "exactly once" in capsys.readouterr().err
    assert (
        main(
            [
                "merge",
                *(str(tmp_path / f"s{i}" / "partial.json") for i in (2, 0, 1)),
                "--out",
                str(tmp_path / "merged"),
            ]
        )
        == 0
    )
    full = json.loads((tmp_path / "full" / "report.json").read_text())
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert merged["meta"]["shards"] == 3
    for k in (
        "n_examples",
        "n_clean_correct",
        "clean_accuracy",
        "category_scores",
        "category_scores_all_points",
        "category_scores_on_correct",
        "universal",
        "universal_all_points",
        "score_convention",
        "warnings",
    ):
        assert merged[k] == full[k], k
    for a, b in zip(merged["attacks"], full["attacks"], strict=True):
        for k in ("name", "strengths", "n_attacked", "n_forward", "n_backward", "robust_examples"):
            assert a[k] == b[k], (a["name"], k)
        for k, v in b["perturbation"].items():
            assert a["perturbation"][k] == pytest.approx(v, rel=1e-6, abs=1e-9)
    for k, p in full["profiles"].items():
        assert (
            merged["profiles"][k]["unchanged"] == p["unchanged"] and merged["profiles"][k]["n"] == 7
        )
    # every shard attacked a part only; the shards' attacked points add up
    parts = [json.loads((tmp_path / f"s{i}" / "partial.json").read_text()) for i in range(3)]
    assert (
        sum(p["state"]["attacks"]["pgd"]["n_attacked"] for p in parts)
        == full["attacks"][0]["n_attacked"]
    )
    assert (
        main(
            [
                "evaluate",
                "--state-dict",
                str(tmp_path / "m.pt"),
                "--arch",
                "smallcnn",
                "--shard",
                "3/3",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    assert "--shard" in capsys.readouterr().err


def test_evaluate_with_amp_records_it(tmp_path, trained_smallcnn, evaluate_argv):
    assert (
        main(
            evaluate_argv(
                tmp_path,
                trained_smallcnn,
                SHARD_SUITE,
                "--n-examples",
                "4",
                "--amp",
                "bfloat16",
                "-q",
                "--out",
                str(tmp_path / "e"),
            )
        )
        == 0
    )
    rep = json.loads((tmp_path / "e" / "report.json").read_text())
    assert rep["meta"]["amp"] == "bfloat16" and rep["n_examples"] == 4
    pgd = next(a for a in rep["attacks"] if a["name"] == "pgd")
    assert pgd["perturbation"]["max_pixel_linf"] <= 0.3 + 1e-6  # attack parameters stay float32
