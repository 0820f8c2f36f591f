"""User mistakes on the command line get one line naming the problem and a non-zero exit code.

The rows of the "Command line" table in docs/reliability.md: unknown architecture, missing
``--data-dir``, wrong threat model, bad files and data print ``art-spatial COMMAND: error: ...`` (the
traceback only with ``--debug``); an existing ``state.json`` is kept unless ``--resume`` /
``--overwrite`` says what to do with it; ``--model module:fn`` finds a module in the working directory;
reports are strict JSON; an empty leaderboard folder is an error.
"""

from __future__ import annotations

import json
import math
import re
import sys

import pytest
import torch

from art_spatial.cli import main
from art_spatial.models import SmallCNN

pytestmark = pytest.mark.usefixtures("one_thread")

SUITE = {
    "name": "cli-tiny",
    "attacks": [
        {
            "name": "pgd",
            "attack": "pgd",
            "category": "sensitivity",
            "params": {"eps": 0.3, "eps_step": 0.1},
            "iterations": [1],
        },
    ],
}


@pytest.fixture
def files(tmp_path):
    """A SmallCNN state_dict, a tiny suite file and the output folder."""
    torch.manual_seed(0)
    weights = tmp_path / "smallcnn.pt"
    torch.save(SmallCNN().state_dict(), weights)
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(SUITE))
    return {"weights": weights, "suite": suite, "out": tmp_path / "out"}


def _evaluate_argv(files, *extra, model=None):
    src = (
        ["--model", model]
        if model
        else ["--state-dict", str(files["weights"]), "--arch", "smallcnn"]
    )
    return [
        "evaluate",
        *src,
        "--suite",
        str(files["suite"]),
        "--n-examples",
        "4",
        "--batch-size",
        "4",
        "--out",
        str(files["out"]),
        "-q",
        *extra,
    ]


def _one_line_error(capsys, command: str = "evaluate") -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith(("WARNING", "INFO"))]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"art-spatial {command}: error: ") and "Traceback" not in err
    return lines[0]


# -------------------------------------------------------------------------- one line, non-zero exit
MISTAKES = {
    "unknown-arch": (
        lambda f: ["--state-dict", str(f["weights"]), "--arch", "resnet9000"],
        r"--arch 'resnet9000' is not a known architecture; choose one of \['preactresnet18', "
        r"'smallcnn'\]",
    ),
    "missing-data-dir": (
        lambda f: ["--state-dict", str(f["weights"]), "--arch", "smallcnn", "--data", "cifar10"],
        r"--data cifar10 needs --data-dir",
    ),
    "wrong-threat-model": (
        lambda f: [
            "--robustbench",
            "Standard",
            "--model-dir",
            str(f["out"]),
            "--data",
            "cifar10",
            "--threat-model",
            "Lzero",
        ],
        r"--robustbench 'Standard' \(--data cifar10, --threat-model Lzero\): "
        r"threat_model must be one of \[",
    ),
    "missing-state-dict": (
        lambda f: ["--state-dict", str(f["out"] / "nope.pt"), "--arch", "smallcnn"],
        r"FileNotFoundError: checkpoint not found: '.*nope\.pt'",
    ),
    "garbage-state-dict": (
        lambda f: ["--state-dict", str(f["suite"]), "--arch", "smallcnn"],
        r"cannot read --state-dict '.*suite\.json' with torch\.load\(weights_only=True\) "
        r"\(UnpicklingError\); it must be a state_dict",
    ),
    "state-dict-of-another-arch": (
        lambda f: ["--state-dict", str(f["weights"]), "--arch", "preactresnet18"],
        r"--state-dict '.*smallcnn\.pt' does not fit --arch 'preactresnet18' "
        r"\(Error\(s\) in loading state_dict for PreActResNet18: "
        r"Missing key\(s\)",
    ),
    "unknown-suite": (
        lambda f: [
            "--state-dict",
            str(f["weights"]),
            "--arch",
            "smallcnn",
            "--suite",
            "no-such-suite",
        ],
        r"suite must be one of \[",
    ),
    "unknown-model-module": (
        lambda f: ["--model", "no_such_module_xyz:build"],
        r"--model 'no_such_module_xyz:build': no module named 'no_such_module_xyz' "
        r"in the working directory .* add that folder to PYTHONPATH",
    ),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_cli_user_mistakes_print_one_line_and_exit_non_zero(files, capsys, case):
    """Were tracebacks (ValueError, FileNotFoundError, UnpicklingError, RuntimeError,
    ModuleNotFoundError)."""
    args, message = MISTAKES[case]
    argv = ["evaluate", *args(files), "--out", str(files["out"]), "-q"]
    if case != "unknown-suite":
        argv += ["--suite", str(files["suite"])]
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert re.search(message, line), line
    assert line.endswith("(art-spatial --debug evaluate ... shows the traceback)")


def test_cli_bad_data_for_the_model_is_one_line(files, capsys, tmp_path, monkeypatch):
    """A model that declares 3 x 32 x 32 inputs on MNIST (was torch's RuntimeError from the model)."""
    (tmp_path / "rgbmodels.py").write_text(
        "import torch\n\n\n"
        "class Rgb(torch.nn.Module):\n"
        "    input_shape = (3, 32, 32)\n\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(3 * 32 * 32, 10)\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.flatten(1))\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(_evaluate_argv(files, model="rgbmodels:Rgb")) == 2
    line = _one_line_error(capsys)
    assert "x has shape (1000, 1, 28, 28) but the model declares input_shape (3, 32, 32)" in line


def test_cli_debug_shows_the_traceback(files):
    with pytest.raises(ValueError, match="--arch 'resnet9000' is not a known architecture"):
        main(
            [
                "--debug",
                "evaluate",
                "--state-dict",
                str(files["weights"]),
                "--arch",
                "resnet9000",
                "--out",
                str(files["out"]),
            ]
        )


# ------------------------------------------------------------------------------------- state.json
def test_cli_evaluate_keeps_an_existing_state_file(files, capsys):
    """Was: state.json deleted without a word when --resume was not given."""
    state = files["out"] / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"an": "earlier evaluation"}\n')
    assert main(_evaluate_argv(files)) == 2
    line = _one_line_error(capsys)
    assert (
        "state.json' exists (an earlier evaluation in --out): pass --resume to continue it or "
        "--overwrite to start over" in line
    )
    assert state.read_text() == '{"an": "earlier evaluation"}\n'
    assert not (files["out"] / "report.json").exists()
    # --overwrite starts over; then --resume continues and a bare rerun is refused again
    assert main(_evaluate_argv(files, "--overwrite")) == 0
    fresh = json.loads(state.read_text())
    assert fresh["clean"]["n"] == 4 and "pgd" in fresh["attacks"]
    assert main(_evaluate_argv(files, "--resume")) == 0
    assert main(_evaluate_argv(files)) == 2
    with pytest.raises(SystemExit):  # argparse: not allowed together
        main(_evaluate_argv(files, "--resume", "--overwrite"))


# ------------------------------------------------------------------------------ --model module:fn
def test_cli_model_from_a_module_in_the_working_directory(files, capsys, tmp_path, monkeypatch):
    """Was ModuleNotFoundError: the console script's sys.path holds its own folder, not the cwd."""
    (tmp_path / "my_cli_models.py").write_text(
        "import torch\nfrom art_spatial.models import SmallCNN\n\n\n"
        "def build():\n    torch.manual_seed(0)\n    return SmallCNN()\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(_evaluate_argv(files, model="my_cli_models:build")) == 0
    assert "written:" in capsys.readouterr().out
    assert str(tmp_path) not in sys.path  # the working directory is not left behind


# ----------------------------------------------------------------------------------- strict JSON
def test_reports_and_entries_are_strict_json(tmp_path, mnist_test):
    """A model that classifies no point correctly: its correct-only accuracies are NaN, which
    report.json used to hold as the token NaN (not JSON); now null, read back as NaN."""
    from art_spatial.bench import RobustnessReport, evaluate
    from art_spatial.bench.leaderboard import to_model_info

    torch.manual_seed(0)
    model = SmallCNN().eval()
    x = torch.as_tensor(mnist_test[0][:4])
    with torch.no_grad():
        wrong = (model(x).argmax(1) + 1) % 10  # every label differs from the prediction
    rep = evaluate(
        model,
        x,
        wrong,
        {**SUITE, "score_convention": "correct-only"},
        reference={"sensitivity": 10.0},
    )
    assert rep.n_clean_correct == 0 and math.isnan(rep.universal)
    rep.save(tmp_path / "report.json")
    to_model_info(rep, name="m", architecture="SmallCNN", path=tmp_path / "model_info.json")

    def no_constants(token):
        raise AssertionError(f"non-standard JSON token {token}")

    for name in ("report.json", "model_info.json"):
        json.loads((tmp_path / name).read_text(), parse_constant=no_constants)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["attacks"][0]["strengths"][0]["accuracy_on_correct"] is None
    again = RobustnessReport.load(tmp_path / "report.json")
    assert math.isnan(again.attacks[0]["strengths"][0]["accuracy_on_correct"])
    assert math.isnan(again.category_scores["sensitivity"]) and math.isnan(again.universal)
    assert "universal score (correct-only) nan" in again.summary_table()


# ----------------------------------------------------------------------------------- leaderboard
def test_cli_empty_leaderboard_folder_is_an_error(tmp_path, capsys):
    """Was: a table with a header and no rows, exit 0."""
    (tmp_path / "board").mkdir()
    (tmp_path / "board" / "notes.json").write_text('{"not": "an entry"}')
    assert main(["leaderboard", "render", str(tmp_path / "board")]) == 2
    line = _one_line_error(capsys, "leaderboard")
    assert "holds no leaderboard entries (model_info *.json files with a threat_model field" in line
    assert main(["leaderboard", "render", str(tmp_path / "missing")]) == 2
    assert "FileNotFoundError: leaderboard folder not found" in _one_line_error(
        capsys, "leaderboard"
    )


def test_cli_main_restores_the_package_log_level(tmp_path):
    """`main(["--quiet", ...])` inside a Python session must not silence the package's warnings for the
    rest of the session (it did: a later test's caplog saw no record)."""
    import logging

    from art_spatial.cli import main

    logger = logging.getLogger("art_spatial")
    before = logger.level
    missing = tmp_path / "no-such-recipe.json"
    assert (
        main(["train", "--quiet", "--recipe-file", str(missing), "--out", str(tmp_path / "run")])
        == 2
    )
    assert logger.level == before
