"""The package's shape stays readable: short functions, few positional parameters, a curated API.

The limits (docs/architecture.md, "Four layers"): no function or method of ``art_spatial`` is longer
than 80 lines (from its ``def`` line to its last line, docstring included) or takes more than 8
positional parameters (``self`` / ``cls`` not counted; keyword-only parameters after ``*`` are free).
Ruff's complexity limit (C901, ``pyproject.toml``) is checked by ``make test`` / ``make lint``.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "art_spatial"
MAX_LINES = 80
MAX_POSITIONAL = 8


def _functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(PACKAGE.parent), node


def _positional(node) -> int:
    args = [*node.args.posonlyargs, *node.args.args]
    if args and args[0].arg in ("self", "cls"):
        args = args[1:]
    return len(args)


def test_the_function_walk_sees_the_package():
    # guards the two tests below against passing on an empty walk
    names = {node.name for _, node in _functions()}
    assert {"run_attack", "evaluate", "fit"} <= names


def test_no_function_is_longer_than_80_lines():
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, node in _functions()
        if node.end_lineno - node.lineno + 1 > MAX_LINES
    ]
    assert not long, "functions longer than 80 lines:\n" + "\n".join(long)


def test_no_function_takes_more_than_8_positional_parameters():
    wide = [
        f"{path}:{node.lineno} {node.name} ({_positional(node)} positional)"
        for path, node in _functions()
        if _positional(node) > MAX_POSITIONAL
    ]
    assert not wide, "functions with more than 8 positional parameters:\n" + "\n".join(wide)


PUBLIC_PACKAGES = ("attacks", "trainers", "bench", "analysis")


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_public_api_is_curated_and_documented(name):
    """Every name a subpackage exports exists, is public, and carries a docstring (classes, functions)."""
    module = importlib.import_module(f"art_spatial.{name}")
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"art_spatial.{name}.__all__ repeats a name"
    for attr in exported:
        assert not attr.startswith("_"), f"art_spatial.{name}.__all__ exports private {attr}"
        obj = getattr(module, attr)  # AttributeError: exported but missing
        if callable(obj) and not isinstance(obj, (dict, list, tuple)):
            assert (obj.__doc__ or "").strip(), f"art_spatial.{name}.{attr} has no docstring"


# ------------------------------------------------------------------ the architecture page's examples
def _architecture_examples() -> dict[str, str]:
    """The ```python blocks of docs/architecture.md, keyed by the class each one defines."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    out = {}
    for code in blocks:
        for node in ast.parse(code).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                out[node.name] = code
    return out


def _tiny_problem(seed=0):
    import numpy as np
    import torch

    from art_spatial.models import make_classifier

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 96)
    centres = rng.random((3, 1, 8, 8)).astype(np.float32)
    x = np.clip(centres[y] + 0.05 * rng.standard_normal((96, 1, 8, 8)), 0, 1).astype(np.float32)
    clf = make_classifier(model, input_shape=(1, 8, 8), nb_classes=3, lr=0.05)
    return clf, x, y


def test_architecture_examples_are_the_documented_classes():
    assert {"MyPGD", "MyNaturalTrainer"} <= set(_architecture_examples())


def test_architecture_attack_example_runs_within_its_budget():
    """'Adding an attack': the page's L∞ PGD, built only from public names, is a working ART attack."""
    import numpy as np

    namespace: dict = {}
    exec(_architecture_examples()["MyPGD"], namespace)
    clf, x, y = _tiny_problem()
    clf.fit(x, y, batch_size=32, nb_epochs=20, verbose=False)
    clean = (clf.predict(x).argmax(1) == y).mean()
    attack = namespace["MyPGD"](clf, eps=0.3, eps_step=0.05, max_iter=10, verbose=False)
    x_before = x.copy()
    x_adv = attack.generate(x, y)
    np.testing.assert_array_equal(x, x_before)  # the input is not modified
    assert np.abs(x_adv - x).max() <= 0.3 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    robust = (clf.predict(x_adv).argmax(1) == y).mean()
    assert clean > 0.9 and robust < clean - 0.3, (clean, robust)
    assert attack.last_result.success.mean() > 0.3


def test_architecture_trainer_example_learns():
    """'Adding a trainer': the page's natural trainer is a working ART Trainer."""
    namespace: dict = {}
    exec(_architecture_examples()["MyNaturalTrainer"], namespace)
    clf, x, y = _tiny_problem(seed=1)
    before = (clf.predict(x).argmax(1) == y).mean()
    trainer = namespace["MyNaturalTrainer"](clf, seed=0, verbose=False)
    trainer.fit(x, y, batch_size=32, nb_epochs=10)
    after = (clf.predict(x).argmax(1) == y).mean()
    assert after > 0.9 and after > before, (before, after)
    assert len(trainer.history) == 10


# ------------------------------------------------------------------------------- the four layers
#: docs/architecture.md, "Four layers": a module imports only from its own layer or the layers below
LAYERS = {
    "warp": 1,
    "threats": 1,
    "_checks": 1,
    "_compat": 1,
    "_io": 1,
    "amp": 1,
    "models": 1,
    "data": 1,
    "theory": 1,
    "attacks": 2,
    "trainers": 3,
    "bench": 3,
    "analysis": 3,
    "augment": 3,
    "demo": 4,
    "recipes": 4,
    "cli": 4,
}


def _layer(parts: tuple[str, ...]) -> int | None:
    return LAYERS.get(parts[0]) if parts else None


def _imports(path: Path):
    """``(line, imported module parts below art_spatial)`` of every import of ``path``, lazy ones too."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    package = parts[:-1]  # the package the module lives in (relative imports start here)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = base + tuple((node.module or "").split(".")) if node.module else base
                if not node.module:  # from . import x
                    for alias in node.names:
                        yield node.lineno, base + (alias.name,)
                    continue
                yield node.lineno, tuple(p for p in target if p)
            elif node.module and node.module.split(".")[0] == "art_spatial":
                yield node.lineno, tuple(node.module.split(".")[1:])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "art_spatial":
                    yield node.lineno, tuple(alias.name.split(".")[1:])


def test_every_module_has_a_layer():
    modules = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.glob("*")}
    modules -= {"__init__", "__pycache__"}
    assert modules <= set(LAYERS), f"modules without a layer: {sorted(modules - set(LAYERS))}"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.relative_to(PACKAGE).with_suffix("").parts
        own = _layer(source)
        if own is None:  # art_spatial/__init__.py: lazy subpackages only
            continue
        for line, target in _imports(path):
            theirs = _layer(target)
            if theirs is not None and theirs > own:
                upward.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} (layer {own}) imports "
                    f"art_spatial.{'.'.join(target)} (layer {theirs})"
                )
    assert not upward, "imports against the layers:\n" + "\n".join(upward)
