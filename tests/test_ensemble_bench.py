"""The ensemble in the harness: spatial-aa suites, per-component counts, warnings, leaderboard, CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from art_spatial.bench import evaluate
from art_spatial.bench.leaderboard import render_leaderboard, to_model_info
from art_spatial.bench.suites import get_suite, list_suites, suite_evaluation
from art_spatial.cli import main
from art_spatial.models import SmallCNN

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"n_iter": 4, "n_restarts": 1, "n_target_classes": 1, "n_queries": 30, "grid_size": [3, 3]}
AA_SUITE = {
    "name": "aa-tiny",
    "score_convention": "correct-only",
    "attacks": [
        {
            "name": "flow",
            "attack": "spatial-aa",
            "category": "local",
            "params": {"threat": "flow", "eps": 0.15, **TINY},
        },
        {
            "name": "rt",
            "attack": "spatial-aa",
            "category": "global",
            "params": {"threat": "rt", "max_rotation": 10.0, "max_translation": 1.0, **TINY},
        },
    ],
}
PAPER_SUITE = {
    "name": "paper-tiny",
    "score_convention": "correct-only",
    "attacks": [
        {
            "name": "flow",
            "attack": "flow",
            "category": "local",
            "params": {"eps": 0.15, "eps_step": 0.05},
            "iterations": [2],
        },
    ],
}


@pytest.fixture(scope="module")
def points(test_batch):
    x, y = test_batch
    idx = np.arange(0, 200, 25)
    return x[idx], y[idx]


class Quantized(torch.nn.Module):
    def __init__(self, model, levels=8):
        super().__init__()
        self.model, self.levels = model, levels

    def forward(self, x):
        return self.model(torch.round(x * (self.levels - 1)) / (self.levels - 1))


def test_registered_suites_validate_and_say_what_they_are():
    for name in ("spatial-aa-mnist", "spatial-aa-cifar10"):
        assert name in list_suites()
        s = get_suite(name)
        assert suite_evaluation(s) == "spatial-aa" and s.score_convention == "correct-only"
        assert {a.name for a in s.attacks} >= {"pgd", "flow", "rt"}  # the pareto suites' entries
        assert [a.category for a in s.attacks][:3] == ["sensitivity", "local", "global"]
        assert all(a.iterations is None for a in s.attacks)
    assert suite_evaluation(get_suite("pareto-mnist")) == "paper-protocol"


def test_harness_reports_components_and_worst_case(trained_smallcnn, points):
    x, y = points
    rep = evaluate(copy.deepcopy(trained_smallcnn), x, y, AA_SUITE, batch_size=3)
    for a in rep.attacks:
        comps = a["components"]
        assert [c["name"] for c in comps][-1] == "random-search"
        fooled = sum(c["n_fooled"] for c in comps)
        robust = a["strengths"][-1]["n_robust"]
        assert (
            robust == a["n_attacked"] - fooled
        )  # every attacked point: fooled by one component or robust
        assert sum(c["n_forward"] for c in comps) == a["n_forward"]
    assert "components of flow" in rep.summary_table()
    # round trip through JSON keeps the component counts
    again = type(rep).from_dict(json.loads(json.dumps(rep.to_dict())))
    assert again.attacks[0]["components"] == rep.attacks[0]["components"]


def test_harness_warns_on_a_gradient_masked_model(trained_smallcnn, points):
    x, y = points
    masked = Quantized(copy.deepcopy(trained_smallcnn)).eval()
    suite = {
        "name": "aa-masked",
        "attacks": [
            {
                "name": "flow",
                "attack": "spatial-aa",
                "category": "local",
                "params": {
                    "threat": "flow",
                    "eps": 0.3,
                    "n_iter": 5,
                    "n_restarts": 1,
                    "n_target_classes": 1,
                    "n_queries": 150,
                },
            }
        ],
    }
    rep = evaluate(masked, x, y, suite, batch_size=8)
    comps = {c["name"]: c for c in rep.attacks[0]["components"]}
    assert comps["random-search"]["n_fooled"] > 0
    assert any("gradient-free random search" in w for w in rep.warnings)


def test_leaderboard_shows_both_evaluations(trained_smallcnn, points, tmp_path):
    x, y = points
    model = copy.deepcopy(trained_smallcnn)
    paper = evaluate(model, x, y, PAPER_SUITE, batch_size=8)
    aa = evaluate(model, x, y, AA_SUITE, batch_size=8)
    info = to_model_info(
        paper, name="M", architecture="SmallCNN", reliable=aa, path=tmp_path / "m.json"
    )
    assert info["evaluation"] == "paper-protocol" and info["spatial_aa_suite"] == "aa-tiny"
    assert info["spatial_aa_local_spatial_score"] == f"{aa.category_scores['local']:.2f}"
    assert info["local_spatial_score"] == f"{paper.category_scores['local']:.2f}"
    own = to_model_info(aa, name="M-aa", architecture="SmallCNN", path=tmp_path / "aa.json")
    assert (
        own["evaluation"] == "spatial-aa"
        and own["spatial_aa_global_spatial_score"] == own["global_spatial_score"]
    )
    md = render_leaderboard(tmp_path, "md").splitlines()
    assert "Local spatial, spatial-AA (correct-only)" in md[0] and "| Evaluation |" in md[0]
    with pytest.raises(ValueError, match="reliable"):
        to_model_info(paper, name="M", architecture="SmallCNN", reliable=paper)


def test_cli_reliable_suite(tmp_path, capsys, evaluate_argv):
    torch.manual_seed(0)
    (tmp_path / "aa.json").write_text(json.dumps(AA_SUITE))
    out = tmp_path / "out"
    argv = evaluate_argv(
        tmp_path,
        SmallCNN(),
        PAPER_SUITE,
        "--reliable-suite",
        str(tmp_path / "aa.json"),
        "--n-examples",
        "4",
        "--batch-size",
        "4",
        "--out",
        str(out),
        "-q",
    )
    assert main(argv) == 0
    info = json.loads((out / "model_info.json").read_text())
    assert info["evaluation"] == "paper-protocol" and info["spatial_aa_suite"] == "aa-tiny"
    assert (out / "report_aa.json").exists() and (out / "state_aa.json").exists()
    assert main(argv[:-1] + ["--overwrite", "-q"]) == 0
    capsys.readouterr()
    i = argv.index("--reliable-suite")
    bad = argv[: i + 1] + [str(tmp_path / "suite.json")] + argv[i + 2 : -1] + ["--overwrite", "-q"]
    assert main(bad) != 0
    assert "--reliable-suite must be a spatial-aa suite" in capsys.readouterr().err


class _TinyColor(torch.nn.Module):
    """A small 3 x 32 x 32 classifier (CIFAR-shaped) for the cifar10 suite's plumbing."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 5, stride=4)
        self.fc = torch.nn.Linear(4 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_registered_suites_run_end_to_end():
    """Every entry of both registered suites builds and runs (budgets and shapes of each dataset)."""
    g = torch.Generator().manual_seed(0)
    for name, model, shape in (
        ("spatial-aa-mnist", SmallCNN(), (1, 28, 28)),
        ("spatial-aa-cifar10", _TinyColor(), (3, 32, 32)),
    ):
        x = torch.rand((2,) + shape, generator=g)
        with torch.no_grad():
            y = model.eval()(x).argmax(
                1
            )  # points the model classifies "correctly": all are attacked
        rep = evaluate(model, x, y, name, batch_size=2)
        assert rep.suite == name and len(rep.attacks) == 5
        for a in rep.attacks:
            assert a["n_attacked"] == 2 and a["components"][-1]["name"] == "random-search"
            assert a["strengths"][0]["n_robust"] == 2 - sum(c["n_fooled"] for c in a["components"])


def test_resumed_evaluation_keeps_components_and_warnings(trained_smallcnn, points, tmp_path):
    x, y = points
    masked = Quantized(copy.deepcopy(trained_smallcnn)).eval()
    suite = {
        "name": "aa-masked",
        "attacks": [
            {
                "name": "flow",
                "attack": "spatial-aa",
                "category": "local",
                "params": {
                    "threat": "flow",
                    "eps": 0.3,
                    "n_iter": 3,
                    "n_restarts": 1,
                    "n_target_classes": 1,
                    "n_queries": 100,
                },
            }
        ],
    }
    state = tmp_path / "state.json"
    first = evaluate(masked, x, y, suite, batch_size=8, state_path=state)
    calls = []
    again = evaluate(
        masked,
        x,
        y,
        suite,
        batch_size=8,
        state_path=state,
        callback=lambda event, info: calls.append(event),
    )
    assert "attack" not in calls  # resumed: nothing re-run
    assert again.attacks[0]["components"] == first.attacks[0]["components"]
    assert [w for w in again.warnings if "random search" in w] == [
        w for w in first.warnings if "random search" in w
    ]


def test_stats_rows_exist_before_any_example(smallcnn_classifier):
    from art_spatial.attacks import SpatialAutoAttack

    a = SpatialAutoAttack(smallcnn_classifier, threat="rt", n_iter=2, verbose=False)
    a.reset_stats()
    assert [r["name"] for r in a.component_stats] == a.plan()
    assert all(r["n_attacked"] == 0 for r in a.component_stats)


def test_sharded_spatial_aa_merges_components(tmp_path, trained_smallcnn, evaluate_argv):
    """evaluate --shard + merge: the merged component counts and warnings equal the unsharded run's."""
    common = evaluate_argv(
        tmp_path,
        trained_smallcnn,
        AA_SUITE,
        "--n-examples",
        "6",
        "--batch-size",
        "3",
        "-q",
    )
    assert main([*common, "--out", str(tmp_path / "full")]) == 0
    for i in range(2):
        assert main([*common, "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]) == 0
    assert (
        main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")])
        == 0
    )
    full = json.loads((tmp_path / "full" / "report.json").read_text())
    merged = json.loads((tmp_path / "m" / "report.json").read_text())
    assert merged["warnings"] == full["warnings"]
    for a, b in zip(merged["attacks"], full["attacks"], strict=True):
        assert a["strengths"] == b["strengths"]
        strip = [{k: v for k, v in c.items() if k != "wall_time_s"} for c in a["components"]]
        assert strip == [
            {k: v for k, v in c.items() if k != "wall_time_s"} for c in b["components"]
        ]
    assert (
        main(
            [
                *common,
                "--shard",
                "0/2",
                "--reliable-suite",
                str(tmp_path / "suite.json"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
