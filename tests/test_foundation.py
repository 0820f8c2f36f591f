"""Foundation tests: package metadata, data, models, ART wrapper, compatibility layer, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import art_spatial
from art_spatial import _compat
from art_spatial.cli import build_parser, main
from art_spatial.data import load_cifar10, load_mnist5k, make_loader, stratified_split
from art_spatial.models import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    Normalize,
    PreActResNet18,
    SmallCNN,
    accuracy,
    build_model,
    make_classifier,
    train_natural,
)

REPO = Path(__file__).resolve().parent.parent


def _run_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (clean ``sys.modules``) from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ------------------------------------------------------------------------------------------------
# package
# ------------------------------------------------------------------------------------------------


def test_version_is_a_release_string():
    assert art_spatial.__version__ == "0.1.0"


def test_lazy_subpackage_access_and_unknown_attribute():
    assert art_spatial.data.load_mnist5k is load_mnist5k
    assert "attacks" in dir(art_spatial)
    with pytest.raises(AttributeError, match="no_such_thing"):
        art_spatial.no_such_thing  # noqa: B018


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


def _row_keys(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x.reshape(len(x), -1)}


def test_mnist5k_shapes_dtypes_range_and_class_balance():
    x_tr, y_tr = load_mnist5k("train")
    x_te, y_te = load_mnist5k("test")
    assert x_tr.shape == (4000, 1, 28, 28) and x_te.shape == (1000, 1, 28, 28)
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int64
    assert x_tr.min() == 0.0 and x_tr.max() == 1.0
    assert x_te.min() >= 0.0 and x_te.max() <= 1.0
    assert np.bincount(y_tr, minlength=10).tolist() == [400] * 10
    assert np.bincount(y_te, minlength=10).tolist() == [100] * 10
    # shuffled, not sorted by class like the source
    assert not np.all(np.diff(y_tr) >= 0)
    assert not np.all(np.diff(y_te) >= 0)


def test_mnist5k_train_and_test_are_disjoint_and_cover_all():
    x_tr, _ = load_mnist5k("train")
    x_te, _ = load_mnist5k("test")
    x_all, y_all = load_mnist5k("all")
    assert x_all.shape == (5000, 1, 28, 28) and len(y_all) == 5000
    train_keys, test_keys = _row_keys(x_tr), _row_keys(x_te)
    # duplicates inside the source are possible in principle; compare index sets exactly as well
    assert not (train_keys & test_keys)
    _, y_src = art_spatial.data._mnist5k_raw()
    tr_idx, te_idx = stratified_split(y_src, 0.2, seed=0)
    assert len(np.intersect1d(tr_idx, te_idx)) == 0
    assert np.array_equal(np.sort(np.concatenate([tr_idx, te_idx])), np.arange(5000))


def test_mnist5k_is_deterministic_under_the_seed():
    x1, y1 = load_mnist5k("test", seed=0)
    x2, y2 = load_mnist5k("test", seed=0)
    x3, y3 = load_mnist5k("test", seed=1)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert _row_keys(x1) != _row_keys(x3)  # a different subset, not only a different order


def test_mnist5k_returns_fresh_arrays():
    x, _ = load_mnist5k("test")
    x[:] = -1.0
    x_again, _ = load_mnist5k("test")
    assert x_again.min() >= 0.0


def test_mnist5k_rejects_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_mnist5k("validation")


def test_stratified_split_generic_and_validation():
    y = np.repeat(np.arange(3), [10, 20, 30])
    tr, te = stratified_split(y, 0.1, seed=3)
    assert np.bincount(y[te]).tolist() == [1, 2, 3]
    assert np.bincount(y[tr]).tolist() == [9, 18, 27]
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(y, 1.5)
    with pytest.raises(ValueError, match="`y`"):
        stratified_split(y.reshape(2, -1), 0.5)


def test_make_loader_is_seeded_and_leaves_inputs_untouched():
    x = np.random.default_rng(0).random((50, 1, 4, 4))  # float64 on purpose
    y = np.arange(50)
    x_copy = x.copy()
    order1 = torch.cat([yb for _, yb in make_loader(x, y, batch_size=8, seed=5)])
    order2 = torch.cat([yb for _, yb in make_loader(x, y, batch_size=8, seed=5)])
    order3 = torch.cat([yb for _, yb in make_loader(x, y, batch_size=8, seed=6)])
    assert torch.equal(order1, order2) and not torch.equal(order1, order3)
    assert sorted(order1.tolist()) == list(range(50))
    xb, yb = next(iter(make_loader(x, y, batch_size=8, shuffle=False)))
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert torch.equal(yb, torch.arange(8))
    assert np.array_equal(x, x_copy)
    assert len(list(make_loader(x, y, batch_size=8, drop_last=True))) == 6


@pytest.mark.parametrize("kwargs, name", [({"batch_size": 0}, "batch_size"), ({}, "same length")])
def test_make_loader_validation(kwargs, name):
    y = np.arange(4) if kwargs else np.arange(3)
    with pytest.raises(ValueError, match=name):
        make_loader(np.zeros((4, 1, 2, 2)), y, **kwargs)


def test_cifar10_missing_folder_names_path_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "cifar-10-python.tar.gz" in message and "tar -xzf" in message


def test_cifar10_incomplete_folder_is_reported(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(FileNotFoundError, match="incomplete or corrupted"):
        load_cifar10(tmp_path, split="train")


@pytest.mark.parametrize(
    "kwargs, name", [({"split": "val"}, "split"), ({"n_examples": 0}, "n_examples")]
)
def test_cifar10_argument_validation(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        load_cifar10(tmp_path, **kwargs)


# ------------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------------


def test_smallcnn_shapes_and_layers():
    model = SmallCNN()
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (64 * 4 * 4, 200),
        (200, 200),
        (200, 10),
    ]
    other = SmallCNN(in_channels=3, num_classes=7, input_size=32)
    assert other(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    assert other.input_shape == (3, 32, 32)


def test_smallcnn_is_deterministic_in_train_mode():
    torch.manual_seed(0)
    model = SmallCNN().train()
    nn.init.normal_(model.classifier.fc3.weight)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), model(x))


def test_preactresnet18_shapes_and_groupnorm():
    model = PreActResNet18(num_groups=8).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) == 17
    n_params = sum(p.numel() for p in model.parameters())
    assert 11.0e6 < n_params < 11.3e6  # ResNet-18 size
    assert PreActResNet18(in_channels=1, num_classes=3, num_groups=1)(
        torch.rand(1, 1, 32, 32)
    ).shape == (1, 3)


@pytest.mark.parametrize(
    "factory, name",
    [
        (lambda: SmallCNN(num_classes=0), "num_classes"),
        (lambda: SmallCNN(drop_rate=1.0), "drop_rate"),
        (lambda: SmallCNN(input_size=8), "input_size"),
        (lambda: PreActResNet18(num_groups=7), "num_groups"),
        (lambda: Normalize([0.5], [0.0]), "std"),
        (lambda: Normalize([0.1, 0.2], [1.0, 1.0, 1.0]), "same length"),
        (lambda: build_model("vgg"), "name"),
    ],
)
def test_model_argument_validation(factory, name):
    with pytest.raises(ValueError, match=name):
        factory()


def test_normalize_values_buffers_and_gradients():
    norm = Normalize(CIFAR10_MEAN, CIFAR10_STD)
    assert {name for name, _ in norm.named_buffers()} == {"mean", "std"}
    assert set(norm.state_dict()) == {"mean", "std"}
    assert not list(norm.parameters())
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    out = norm(x)
    expected = (x - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(
        1, 3, 1, 1
    )
    assert torch.allclose(out, expected)
    out.sum().backward()
    grad_expected = (1 / torch.tensor(CIFAR10_STD)).view(1, 3, 1, 1).expand_as(x)
    assert torch.allclose(x.grad, grad_expected)
    norm64 = Normalize(CIFAR10_MEAN, CIFAR10_STD).double()
    assert torch.autograd.gradcheck(
        norm64, (torch.rand(1, 3, 2, 2, dtype=torch.float64, requires_grad=True),)
    )


def test_build_model_registry():
    assert isinstance(build_model("smallcnn"), SmallCNN)
    assert isinstance(build_model("PreActResNet18", num_groups=4), PreActResNet18)
    assert isinstance(build_model("preact_resnet18"), PreActResNet18)


def test_make_classifier_returns_art_classifier():
    from art.estimators.classification import PyTorchClassifier

    clf = make_classifier(SmallCNN())
    assert isinstance(clf, PyTorchClassifier)
    assert clf.input_shape == (1, 28, 28) and clf.nb_classes == 10
    assert clf.clip_values.tolist() == [0.0, 1.0]
    assert isinstance(clf.optimizer, torch.optim.Adam)
    assert isinstance(clf.loss, nn.CrossEntropyLoss)
    preds = clf.predict(np.zeros((2, 1, 28, 28), dtype=np.float32))
    assert preds.shape == (2, 10)

    wrapped = nn.Sequential(Normalize(CIFAR10_MEAN, CIFAR10_STD), PreActResNet18(num_groups=8))
    clf2 = make_classifier(wrapped, optimizer="sgd", lr=0.1)
    assert clf2.input_shape == (3, 32, 32)
    assert isinstance(clf2.optimizer, torch.optim.SGD)


def test_make_classifier_gradient_flows_through_preprocessing():
    torch.manual_seed(0)
    model = SmallCNN()
    nn.init.normal_(model.classifier.fc3.weight)
    clf = make_classifier(model, preprocessing=(0.1307, 0.3081))
    x = np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)
    grad = clf.loss_gradient(x, np.eye(10, dtype=np.float32)[[3, 7]])
    assert grad.shape == x.shape and np.abs(grad).max() > 0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"clip_values": (1.0, 0.0)}, "clip_values"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"lr": 0.0}, "lr"),
        ({"device_type": "tpu"}, "device_type"),
    ],
)
def test_make_classifier_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_classifier(SmallCNN(), **kwargs)


def test_make_classifier_needs_input_shape_for_unknown_models():
    with pytest.raises(ValueError, match="input_shape"):
        make_classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 10)))
    clf = make_classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 10)), input_shape=(1, 2, 2))
    assert clf.input_shape == (1, 2, 2)


def test_train_natural_learns_and_keeps_inputs():
    x, y = load_mnist5k("train")
    x, y = x[:512], y[:512]
    x_copy = x.copy()
    torch.manual_seed(0)
    model = train_natural(SmallCNN(), x, y, epochs=2, batch_size=64, verbose=False)
    assert not model.training
    assert accuracy(model, x, y) > 0.5
    assert np.array_equal(x, x_copy)
    with pytest.raises(ValueError, match="epochs"):
        train_natural(SmallCNN(), x, y, epochs=0)


def test_train_natural_is_reproducible():
    x, y = load_mnist5k("train")
    x, y = x[:256], y[:256]
    weights = []
    for _ in range(2):
        torch.manual_seed(1)
        model = train_natural(SmallCNN(), x, y, epochs=1, batch_size=32, seed=4, verbose=False)
        weights.append(model.classifier.fc3.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


# ------------------------------------------------------------------------------------------------
# compatibility layer
# ------------------------------------------------------------------------------------------------


def test_zero_gradients_on_tensor_and_nested_iterables():
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    (a.sum() + 2 * b.sum()).backward()
    _compat.zero_gradients([a, (b, torch.zeros(1))])
    assert a.grad.abs().sum() == 0 and b.grad.abs().sum() == 0


def test_import_advertorch_really_imports_attacks():
    attacks = _compat.import_advertorch()
    assert attacks.__name__ == "advertorch.attacks"
    assert hasattr(attacks, "LinfPGDAttack") and hasattr(attacks, "SpatialTransformAttack")
    gradcheck_module = sys.modules["torch.autograd.gradcheck"]
    assert callable(gradcheck_module.zero_gradients)


def test_import_robustbench_really_imports_utils():
    rb_utils = _compat.import_robustbench()
    assert rb_utils.__name__ == "robustbench.utils"
    assert callable(rb_utils.load_model)
    assert callable(_compat.import_robustbench("data").load_cifar10)
    assert sys.modules["autoattack"].__name__ in ("pyautoattack", "autoattack")
    assert hasattr(sys.modules["autoattack.state"], "EvaluationState")
    with pytest.raises(ValueError, match="submodule"):
        _compat.import_robustbench("../etc")


def test_torch_load_untrusted(tmp_path):
    path = tmp_path / "weights.pt"
    state = SmallCNN().state_dict()
    torch.save(state, path)
    loaded = _compat.torch_load_untrusted(path)
    assert set(loaded) == set(state)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        _compat.torch_load_untrusted(tmp_path / "missing.pt")


def test_importing_the_package_does_not_import_optional_libraries():
    result = _run_python(
        """
        import sys
        import art_spatial, art_spatial.data, art_spatial.models, art_spatial.cli
        import art_spatial._compat, art_spatial.attacks, art_spatial.trainers, art_spatial.bench
        import art_spatial.analysis, art_spatial.theory, art_spatial.warp, art_spatial.threats
        leaked = sorted(m for m in sys.modules
                        if m.split(".")[0] in {"advertorch", "robustbench", "autoattack", "pyautoattack"})
        assert not leaked, leaked
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_package_imports_with_extras_hidden_and_features_name_the_extra():
    result = _run_python(
        """
        import sys
        for name in ("advertorch", "robustbench", "autoattack", "pyautoattack"):
            sys.modules[name] = None  # makes `import name` raise ImportError
        import art_spatial, art_spatial.data, art_spatial.models, art_spatial.cli, art_spatial._compat
        import art_spatial.attacks, art_spatial.trainers, art_spatial.bench, art_spatial.analysis
        import art_spatial.theory
        from art_spatial._compat import import_advertorch, import_robustbench
        for func, extra in ((import_advertorch, "art-spatial[advertorch]"),
                            (import_robustbench, "art-spatial[robustbench]")):
            try:
                func()
            except ImportError as exc:
                assert extra in str(exc), str(exc)
            else:
                raise AssertionError(f"{func.__name__} did not raise")
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_broken_advertorch_is_reported_as_import_error(monkeypatch):
    import types

    broken = types.ModuleType("advertorch")
    broken.__path__ = []  # a package whose submodules cannot be found
    monkeypatch.setitem(sys.modules, "advertorch", broken)
    monkeypatch.delitem(sys.modules, "advertorch.attacks", raising=False)
    with pytest.raises(ImportError, match=r"art-spatial\[advertorch\]"):
        _compat.import_advertorch()


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"art-spatial {art_spatial.__version__}"


def test_cli_help_lists_demo(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: art-spatial" in out and "demo" in out
    assert main([]) == 0  # no subcommand: prints help, exit 0
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--epochs" in capsys.readouterr().out


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["demo", "--epochs", "0"])
    assert info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("art-spatial") == "art_spatial.cli:main"
    result = subprocess.run(
        [sys.executable, "-m", "art_spatial.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0 and "art-spatial 0.1.0" in result.stdout


def test_cli_demo_short_run_writes_summary(tmp_path, capsys):
    assert main(["demo", "--natural-only", "--epochs", "1", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "clean test accuracy" in out and "elapsed" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["n_test"] == 1000
    assert summary["clean_accuracy"] > 0.8
    state = _compat.torch_load_untrusted(tmp_path / "smallcnn_natural.pt")
    assert "classifier.fc3.weight" in state


@pytest.mark.slow
def test_cli_demo_reaches_95_percent(tmp_path, capsys):
    assert main(["demo", "--natural-only", "--quiet", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["clean_accuracy"] >= 0.95
