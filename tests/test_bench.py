"""Harness tests: scores, suites, multi-strength equality, resume, checks, schema/leaderboard, plots, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from art_spatial.bench import evaluate, get_suite
from art_spatial.bench.scores import (
    RobustnessReport,
    category_scores,
    resolve_reference,
    universal_score,
)
from art_spatial.bench.suites import list_suites, validate_suite

TINY = {
    "name": "tiny",
    "attacks": [
        {
            "name": "pgd",
            "attack": "pgd",
            "category": "sensitivity",
            "params": {"eps": 0.3, "eps_step": 0.03, "random_init": True},
            "iterations": [1, 2, 4],
        },
        {
            "name": "flow",
            "attack": "flow",
            "category": "local",
            "params": {"eps": 0.3, "eps_step": 0.03},
            "iterations": [1, 3],
        },
        {
            "name": "rt",
            "attack": "affine",
            "category": "global",
            "params": {"eps": 0.3, "eps_step": 0.05},
            "iterations": [1, 3],
        },
    ],
}


@pytest.fixture(scope="module")
def few(mnist_test):
    x, y = mnist_test
    return torch.as_tensor(x[:12]), torch.as_tensor(y[:12])


def _robust(rep):
    return {a["name"]: [s["n_robust"] for s in a["strengths"]] for a in rep.attacks}


# ------------------------------------------------------------------------------------------ scores
def _fixed_report():
    def att(name, cat, accs, accs_c):
        return {
            "name": name,
            "category": cat,
            "n_forward": 10,
            "n_backward": 8,
            "strengths": [
                {"label": str(i), "accuracy": a, "accuracy_on_correct": c}
                for i, (a, c) in enumerate(zip(accs, accs_c, strict=True))
            ],
        }

    return RobustnessReport(
        suite="fixed",
        suite_config={},
        n_examples=100,
        n_clean_correct=90,
        clean_accuracy=90.0,
        attacks=[
            att("pgd", "sensitivity", [80.0, 60.0, 50.0, 10.0], [88.0, 66.0, 55.0, 11.0]),
            att("flow", "local", [40.0, 20.0], [44.0, 22.0]),
            att("rt", "global", [30.0], [33.0]),
            att("grid", "global", [10.0], [11.0]),
            att("fgsm", None, [99.0], [99.0]),
        ],
        reference_scores={
            "sensitivity": 20.0,
            "local": 5.0,
            "global": 25.0,
        },
        reference_name="natural",
    ).recompute_scores()


def test_scores_and_universal_match_hand_computation():
    rep = _fixed_report()
    # sensitivity (80+60+50+10)/4 = 50; local (40+20)/2 = 30; global pooled (30+10)/2 = 20; fgsm unscored
    assert rep.category_scores == pytest.approx(
        {"sensitivity": 50.0, "local": 30.0, "global": 20.0}
    )
    assert rep.category_scores_on_correct["sensitivity"] == pytest.approx((88 + 66 + 55 + 11) / 4)
    # universal = (50-20) + (30-5) + (20-25) = 50
    assert rep.universal == pytest.approx(50.0)
    assert rep.n_forward == 50 and rep.n_backward == 40
    # the paper's Table 1 (MNIST, PGD AT vs natural) = 88.97 up to the paper's rounding
    u = universal_score(
        {"sensitivity": 98.42, "local": 38.23, "global": 12.77},
        {"sensitivity": 29.40, "local": 14.36, "global": 16.70},
    )
    assert abs(u - 88.97) < 0.02
    # a report is a valid reference for another, and round-trips through dicts / JSON
    again = RobustnessReport.from_dict(json.loads(json.dumps(rep.to_dict())))
    assert again == rep
    assert rep.with_reference(rep).universal == pytest.approx(0.0)
    assert resolve_reference(rep.to_dict())[0] == rep.category_scores
    # a report built without a convention is all-points (as every report before the field existed)
    assert rep.score_convention == "all-points"
    assert rep.category_scores_all_points == rep.category_scores
    assert rep.universal_all_points == rep.universal
    assert resolve_reference(rep.to_dict(), "correct-only")[0] == rep.category_scores_on_correct
    # rescored correct-only: the hand reference was all-point numbers, so no universal score
    on_correct = rep.with_score_convention("correct-only")
    assert on_correct.category_scores == rep.category_scores_on_correct
    assert on_correct.universal is None and on_correct.universal_all_points == pytest.approx(50.0)
    assert on_correct.with_reference(rep).universal == pytest.approx(0.0)
    with pytest.raises(ValueError, match="global"):
        universal_score(rep.category_scores, {"sensitivity": 1.0, "local": 1.0})
    with pytest.raises(ValueError, match="categories"):
        resolve_reference({"pixels": 3.0})
    assert category_scores([]) == {}


# ------------------------------------------------------------------------------------------ suites
def test_registered_suites_validate_and_pareto_budgets():
    for name in list_suites():
        suite = get_suite(name)
        assert suite.name == name
        assert validate_suite(suite.to_dict()).to_dict() == suite.to_dict()
    mnist = {a.name: a for a in get_suite("pareto-mnist").attacks}
    assert mnist["pgd"].iterations == [10, 20, 30, 40] and mnist["pgd"].params["eps"] == 0.3
    assert mnist["flow"].iterations == [5, 10, 15, 20] and mnist["rt"].params["eps_step"] == 0.1
    cifar = {a.name: a for a in get_suite("pareto-cifar10").attacks}
    assert cifar["pgd"].params == {"eps": 0.031, "eps_step": 0.007, "random_init": True}
    assert cifar["flow"].params["eps_step"] == 0.001 and cifar["rt"].params["eps"] == 1.0
    assert cifar["rt"].iterations == [3, 5, 10, 15]
    assert get_suite("pareto-mnist").categories == ["sensitivity", "local", "global"]
    # the paper's suites score correct-only (Pareto AT §3.1); the others all points
    conventions = {name: get_suite(name).score_convention for name in list_suites()}
    assert conventions["pareto-mnist"] == conventions["pareto-cifar10"] == "correct-only"
    assert conventions["smoke-mnist"] == "correct-only"  # a pareto-mnist replica
    assert conventions["joint-cifar10"] == conventions["engstrom"] == "all-points"
    assert [p.kind for p in get_suite("cusp").profiles] == [
        "rotation",
        "translation",
        "rotation-translation",
        "robustness",
    ]


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda s: s["attacks"][0].update(iterations=[4, 2]), "suite.attacks[0].iterations"),
        (lambda s: s["attacks"][0].update(iterations=[0]), "suite.attacks[0].iterations"),
        (lambda s: s["attacks"][1].update(category="spatial"), "suite.attacks[1].category"),
        (lambda s: s["attacks"][1].update(attack="nope"), "suite.attacks[1].attack"),
        (lambda s: s["attacks"][2].update(name="pgd"), "suite.attacks[2].name"),
        (lambda s: s["attacks"][0].update(mode="best"), "suite.attacks[0].mode"),
        (lambda s: s["attacks"][0].update(colour=1), "suite.attacks[0]"),
        (lambda s: s["attacks"][0]["params"].update(eps=-1), "suite.attacks[0].params.eps"),
        (lambda s: s.update(name=""), "suite.name"),
        (
            lambda s: s.update(profiles=[{"name": "r", "kind": "shear", "values": [1]}]),
            "suite.profiles[0].kind",
        ),
        (lambda s: s.update(reference={"pixel": 1.0}), "suite.reference"),
        (lambda s: s.update(score_convention="correct"), "suite.score_convention"),
        (lambda s: s.update(reference_name=3), "suite.reference_name"),
    ],
)
def test_bad_suite_raises_naming_the_field(mutate, field):
    spec = json.loads(json.dumps(TINY))
    mutate(spec)
    with pytest.raises(ValueError) as err:
        get_suite(spec)
    assert field in str(err.value)


def test_suite_schema_errors_name_the_field_and_the_schema_matches_the_constants():
    import jsonschema

    from art_spatial.bench.suites import (
        CATEGORIES,
        MODES,
        PROFILE_KINDS,
        SCORE_CONVENTION_CHOICES,
        SUITES,
        load_suite_schema,
    )

    schema = load_suite_schema()
    defs = schema["$defs"]
    assert defs["attack"]["properties"]["category"]["enum"] == [*CATEGORIES, None]
    assert defs["attack"]["properties"]["mode"]["enum"] == list(MODES)
    assert defs["profile"]["properties"]["kind"]["enum"] == list(PROFILE_KINDS)
    assert schema["properties"]["score_convention"]["enum"] == [*SCORE_CONVENTION_CHOICES, None]
    for spec in SUITES.values():  # a plain JSON Schema validator accepts every registered suite
        jsonschema.validate(json.loads(json.dumps(spec)), schema)
    cases = [
        (
            {"iterations": [1, 2.0]},
            "suite.attacks[0].iterations[1] must be a positive integer, got 2.0",
        ),
        ({"iterations": []}, "suite.attacks[0].iterations must be a non-empty list"),
        ({"params": {"eps": "big"}}, "suite.attacks[0].params.eps must be a non-negative number"),
        ({"colour": 1}, "suite.attacks[0] has unknown fields ['colour']; allowed: ['attack',"),
        ({"name": None}, "suite.attacks[0].name must be a non-empty string, got None"),
    ]
    for change, message in cases:
        spec = json.loads(json.dumps(TINY))
        spec["attacks"][0].update(change)
        with pytest.raises(ValueError) as err:
            validate_suite(spec)
        assert message in str(err.value)
    spec = json.loads(json.dumps(TINY))
    del spec["attacks"][0]["name"]  # a missing field is named like a null one
    with pytest.raises(ValueError, match=r"suite\.attacks\[0\]\.name must be a non-empty string"):
        validate_suite(spec)
    with pytest.raises(ValueError, match="suite must be a dict, got list"):
        validate_suite([])


def test_suite_from_json_file_and_bad_attack_params(tmp_path, trained_smallcnn, few):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(TINY))
    assert get_suite(str(path)).to_dict() == get_suite(TINY).to_dict()
    with pytest.raises(ValueError, match="suite must be one of"):
        get_suite("no-such-suite")
    bad = json.loads(json.dumps(TINY))
    bad["attacks"][1]["params"]["norm"] = "l7"  # rejected by the attack class itself, at set-up
    with pytest.raises(ValueError, match="flow.*norm"):
        evaluate(trained_smallcnn, few[0], few[1], bad, n_examples=2)


# ---------------------------------------------------------------------------- multi-strength equality
def test_one_run_equals_separate_runs_and_costs_less(trained_smallcnn, few):
    x, y = few
    rep = evaluate(trained_smallcnn, x, y, TINY, batch_size=16, seed=3)
    sep_fwd = sep_bwd = 0
    for entry in TINY["attacks"]:
        for k in entry["iterations"]:
            one = {"name": "one", "attacks": [dict(entry, iterations=[k])]}
            r = evaluate(trained_smallcnn, x, y, one, batch_size=16, seed=3)
            a = r.attacks[0]
            idx = entry["iterations"].index(k)
            assert (
                rep.attack(entry["name"])["strengths"][idx]["n_robust"]
                == a["strengths"][0]["n_robust"]
            ), (entry["name"], k)
            assert (
                rep.attack(entry["name"])["strengths"][idx]["n_robust_on_correct"]
                == a["strengths"][0]["n_robust_on_correct"]
            )
            sep_fwd, sep_bwd = sep_fwd + a["n_forward"], sep_bwd + a["n_backward"]
    n_att = rep.attacks[0]["n_attacked"]
    # one run: K fwd+bwd per attacked example (+1 final forward); separate: sum of k (+1 each)
    assert rep.n_backward == n_att * (4 + 3 + 3)
    assert sep_bwd == n_att * (1 + 2 + 4 + 1 + 3 + 1 + 3)
    assert rep.n_forward < sep_fwd
    # accuracies are monotone here (more PGD steps from the same start never help the model much)
    assert rep.clean_accuracy > 80
    assert 0 <= rep.category_scores["sensitivity"] <= rep.clean_accuracy


def test_worst_mode_matches_record_and_is_stronger(trained_smallcnn, few):
    from art_spatial.attacks import PixelAttack
    from art_spatial.models import make_classifier

    x, y = few
    suite = {"name": "w", "attacks": [TINY["attacks"][0]]}
    final = evaluate(trained_smallcnn, x, y, suite, seed=1)
    worst = evaluate(trained_smallcnn, x, y, suite, seed=1, mode="worst")
    # reference: the full record without early stop, on the clean-correct points
    clf = make_classifier(trained_smallcnn)
    with torch.no_grad():
        ok = trained_smallcnn(x).argmax(1) == y
    atk = PixelAttack(
        clf, eps=0.3, eps_step=0.03, max_iter=4, random_init=True, seed=1, verbose=False
    )
    res = atk.attack_tensor(trained_smallcnn, x[ok], y[ok], record=True)
    expect = [int(res.correct[:, : k + 1].all(1).sum()) for k in (1, 2, 4)]
    assert [s["n_robust"] for s in worst.attacks[0]["strengths"]] == expect
    for sw, sf in zip(worst.attacks[0]["strengths"], final.attacks[0]["strengths"], strict=True):
        assert sw["n_robust"] <= sf["n_robust"]
    # dropping fooled points saves passes
    assert worst.n_backward < final.n_backward


# -------------------------------------------------------------------------------------------- resume
def test_interrupted_evaluation_resumes(tmp_path, trained_smallcnn, few):
    x, y = few
    state = tmp_path / "state.json"
    full = evaluate(trained_smallcnn, x, y, TINY, n_examples=8, seed=2)

    def boom(event, info):
        if event == "attack":
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        evaluate(
            trained_smallcnn, x, y, TINY, n_examples=8, seed=2, state_path=state, callback=boom
        )
    saved = json.loads(state.read_text())
    assert sorted(saved["attacks"]) == ["pgd"] and saved["clean"]["n"] == 8
    events = []
    rep = evaluate(
        trained_smallcnn,
        x,
        y,
        TINY,
        n_examples=8,
        seed=2,
        state_path=state,
        callback=lambda e, i: events.append((e, i.get("name"))),
    )
    assert events == [("attack", "flow"), ("attack", "rt")]  # clean and pgd were not redone
    assert _robust(rep) == _robust(full)
    assert rep.category_scores == full.category_scores
    assert "pgd" in rep.meta["resumed_units"]
    with pytest.raises(ValueError, match="different evaluation"):
        evaluate(trained_smallcnn, x, y, TINY, n_examples=8, seed=5, state_path=state)
    assert not list(tmp_path.glob("*.tmp*"))  # atomic writes leave no temporaries


# -------------------------------------------------------------------------------------------- checks
class _Softmax(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.softmax(self.inner(x), 1)


class _Noisy(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) + 0.1 * torch.randn(x.shape[0], 10)


def test_reliability_checks_warn(trained_smallcnn, few):
    import copy

    from art_spatial.models import SmallCNN

    x, y = few
    suite = {
        "name": "c",
        "attacks": [
            {
                "name": "pgd",
                "attack": "pgd",
                "category": "sensitivity",
                "params": {"eps": 0.1, "eps_step": 0.05},
                "iterations": [1],
            }
        ],
    }
    clean = evaluate(trained_smallcnn, x, y, suite, n_examples=4)
    assert clean.warnings == []
    torch.manual_seed(0)
    untrained = SmallCNN()  # TRADES init: zero logits -> zero gradients; and in train mode
    w = evaluate(untrained, x, y, suite, n_examples=4).warnings
    assert any("train mode" in s for s in w) and any("zero gradients" in s for s in w)
    assert untrained.training  # the model's mode is restored
    assert any(
        "probabilities" in s
        for s in evaluate(
            _Softmax(copy.deepcopy(trained_smallcnn)).eval(), x, y, suite, n_examples=4
        ).warnings
    )
    assert any(
        "non-deterministic" in s
        for s in evaluate(
            _Noisy(copy.deepcopy(trained_smallcnn)).eval(), x, y, suite, n_examples=4
        ).warnings
    )


# ------------------------------------------------------------------------------------------ profiles
def test_profiles_and_plots(tmp_path, trained_smallcnn, few):
    from art_spatial.bench.plots import pareto_front, plot_pareto_front, plot_profiles
    from art_spatial.bench.profiles import random_transform

    x, y = few
    suite = {
        "name": "p",
        "profiles": [
            {"name": "rotation", "kind": "rotation", "values": [0, 30, 180]},
            {"name": "translation", "kind": "translation", "values": [0, 0.2]},
            {
                "name": "robustness",
                "kind": "robustness",
                "values": [0, 0.3],
                "params": {"max_iter": 5, "eps_step": 0.1},
            },
        ],
    }
    rep = evaluate(trained_smallcnn, x, y, suite, n_examples=12)
    rot = rep.profiles["rotation"]
    assert rot["rates"][0] == 1.0 and rot["rates"][2] < 1.0 and rot["n"] == 12
    assert (
        rep.profiles["robustness"]["rates"][0] == 1.0
        and rep.profiles["robustness"]["rates"][1] < 0.5
    )
    # per-example randomness: a transform of one image does not depend on the batch
    xt = random_transform(x[:6], "rotation-translation", 0.3, seed=4)
    assert torch.equal(xt[2:3], random_transform(x[2:3], "rotation-translation", 0.3, seed=4))
    assert torch.equal(random_transform(x[:3], "rotation", 0.0), x[:3])
    assert pareto_front([(0.0, 0.0), (20.0, 5.0), (30.0, 4.0), (10.0, 10.0)]) == [0, 2]
    png = plot_profiles({"natural": rep}, tmp_path / "profiles.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    reports = {
        "a": _fixed_report(),
        "b": _fixed_report().with_reference({"sensitivity": 0, "local": 0, "global": 0}),
    }
    png = plot_pareto_front(reports, 95.0, tmp_path / "front.png")
    assert open(png, "rb").read(4) == b"\x89PNG"


# ------------------------------------------------------------------------------- schema / leaderboard
def test_model_info_schema_and_ranked_render(tmp_path):
    from art_spatial.bench.leaderboard import render_leaderboard, to_model_info, validate_model_info

    rep = _fixed_report()
    info = to_model_info(
        rep,
        name="A",
        authors="x",
        venue="v",
        architecture="SmallCNN",
        link="http://a",
        path=tmp_path / "a.json",
    )
    assert info["clean_acc"] == "90.00" and info["universal_score"] == "50.00"
    assert (
        info["score_convention"] == "all-points" and info["universal_score_all_points"] == "50.00"
    )
    assert info["threat_model"] == "spatial" and info["sensitivity_score"] == "50.00"
    assert json.loads((tmp_path / "a.json").read_text()) == info
    low = rep.with_reference({"sensitivity": 40.0, "local": 30.0, "global": 20.0})  # universal 10
    to_model_info(low, name="B", architecture="PreActResNet18", path=tmp_path / "sub" / "b.json")
    (tmp_path / "report.json").write_text(json.dumps(rep.to_dict()))  # not an entry: skipped
    for key, bad in [
        ("clean_acc", 90.0),
        ("threat_model", "Linf"),
        ("universal_score", "50.1"),
        ("n_examples", 0),
    ]:
        broken = dict(info, **{key: bad})
        with pytest.raises(ValueError, match=key):
            validate_model_info(broken)
    with pytest.raises(ValueError, match="name"):
        validate_model_info({k: v for k, v in info.items() if k != "name"})
    md = render_leaderboard(tmp_path, "md")
    lines = md.strip().splitlines()
    assert lines[0].startswith("| Rank | Model |") and "| Universal (all-points) |" in lines[0]
    assert "[A](http://a)" in lines[2] and "| B |" in lines[3]  # ranked by universal score
    csv_text = render_leaderboard(tmp_path, "csv").splitlines()
    assert csv_text[1].startswith("1,A,") and csv_text[2].startswith("2,B,")
    html = render_leaderboard(tmp_path, "html")
    assert html.index(">A<") < html.index(">B<") and "<table" in html
    (tmp_path / "c.json").write_text(json.dumps(dict(info, clean_acc="high")))
    with pytest.raises(ValueError, match="c.json"):
        render_leaderboard(tmp_path)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_evaluate_and_leaderboard_end_to_end(tmp_path, trained_smallcnn, capsys, evaluate_argv):
    from art_spatial.cli import main

    spec = json.loads(json.dumps(TINY))
    spec["profiles"] = [{"name": "rotation", "kind": "rotation", "values": [0, 90]}]
    spec["reference"] = {"sensitivity": 10.0, "local": 5.0, "global": 5.0}
    out = tmp_path / "runs" / "m"
    argv = evaluate_argv(
        tmp_path,
        trained_smallcnn,
        spec,
        "--data",
        "mnist5k",
        "--n-examples",
        "6",
        "--batch-size",
        "4",
        "--out",
        str(out),
        "--name",
        "nat",
        "-q",
    )
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "pgd" in printed and "scores all-points" in printed  # the suite's default convention
    # the suite's "reference" numbers are not used unless asked for: no universal score
    assert "universal score: not computed (no reference" in printed
    rep = RobustnessReport.load(out / "report.json")
    assert rep.n_examples == 6 and rep.model_name == "nat" and rep.universal is None
    assert rep.score_convention == "all-points"
    assert (out / "model_info.json").exists() and (out / "profiles.png").exists()
    # resume: everything is in the state, nothing is recomputed; the suite's numbers by name
    assert main(argv + ["--resume", "--reference", "paper"]) == 0
    printed = capsys.readouterr().out
    assert "universal score (all-points)" in printed and "a different model" in printed
    again = RobustnessReport.load(out / "report.json")
    assert set(again.meta["resumed_units"]) >= {"clean", "pgd", "flow", "rt", "rotation"}
    assert again.universal is not None and "a different model" in again.reference_name
    # same result as the API
    from art_spatial.data import load_mnist5k

    x, y = load_mnist5k("test", seed=0)
    api = evaluate(trained_smallcnn, x, y, spec, n_examples=6, batch_size=4, reference="paper")
    assert _robust(api) == _robust(again) and api.universal == pytest.approx(again.universal)
    # the convention override, from the same state
    assert main(argv + ["--resume", "--score-convention", "correct-only"]) == 0
    assert "scores correct-only" in capsys.readouterr().out
    rep_c = RobustnessReport.load(out / "report.json")
    assert rep_c.score_convention == "correct-only"
    assert rep_c.category_scores == rep_c.category_scores_on_correct
    assert rep_c.category_scores_all_points == pytest.approx(rep.category_scores)
    assert main(["leaderboard", "render", str(tmp_path / "runs"), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("1,nat,smallcnn")
    from art_spatial.cli import build_parser

    assert {"demo", "evaluate", "leaderboard"} <= set(
        build_parser()._subparsers._group_actions[0].choices
    )


def test_evaluate_rejects_bad_arguments(trained_smallcnn, few):
    x, y = few
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(trained_smallcnn, x, y, TINY, batch_size=0)
    with pytest.raises(ValueError, match="n_examples"):
        evaluate(trained_smallcnn, x, y, TINY, n_examples=0)
    with pytest.raises(ValueError, match="mode"):
        evaluate(trained_smallcnn, x, y, TINY, mode="best")
    with pytest.raises(ValueError, match="score_convention"):
        evaluate(trained_smallcnn, x, y, TINY, score_convention="paper")
    with pytest.raises(ValueError, match="no published reference numbers"):
        evaluate(trained_smallcnn, x, y, TINY, reference="paper")
    with pytest.raises(ValueError, match="y must"):
        evaluate(trained_smallcnn, x, y[:3], TINY)
    x0 = x.clone()
    evaluate(trained_smallcnn, x, y, {"name": "t", "attacks": [TINY["attacks"][1]]}, n_examples=3)
    assert torch.equal(x, x0)  # inputs untouched
    assert np.isfinite(x0.numpy()).all()
