"""AdverTorch façades: same results as the ART classes, AdverTorch calling conventions, lazy import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import art_spatial.attacks.advertorch as adv  # the advertorch extra is part of the dev install
from art_spatial import attacks as art_attacks
from art_spatial.models import make_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent


# (name, hyper-parameters) — random starts on, so that the seeds matter
CASES = [
    ("FlowAttack", dict(eps=0.3, eps_step=0.01, max_iter=4, random_init=True, seed=3)),
    (
        "FlowAttack",
        dict(eps=0.6, eps_step=0.2, max_iter=3, norm="2,inf", units="pixels", random_init=True),
    ),
    ("AffineAttack", dict(eps=0.3, eps_step=0.1, max_iter=4, random_init=True, seed=5)),
    ("AffineAttack", dict(parametrization="rotation-translation", max_iter=4, random_init=True)),
    ("IntegratedSpatialAttack", dict(max_iter=4, random_init=True, seed=1)),
    ("PixelAttack", dict(eps=0.3, eps_step=0.05, max_iter=4, seed=2)),
    ("FlowAttack", dict(max_iter=3, targeted=True)),
]


@pytest.fixture(scope="module")
def batch(test_batch):
    x, y = test_batch
    idx = np.arange(0, 200, 25)  # 8 digits, 8 different classes
    return x[idx], y[idx]


@pytest.mark.parametrize("name,params", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_perturb_equals_art_generate(trained_smallcnn, batch, name, params):
    x, y = batch
    if params.get("targeted"):
        y = (y + 1) % 10
    clf = make_classifier(trained_smallcnn)
    art_attack = getattr(art_attacks, name)(clf, batch_size=len(x), verbose=False, **params)
    x_art = art_attack.generate(x, y)
    at_attack = getattr(adv, name)(trained_smallcnn, **params)
    x_t = torch.from_numpy(x.copy())
    x_at = at_attack.perturb(x_t, torch.from_numpy(y))
    assert (
        isinstance(x_at, torch.Tensor) and x_at.shape == x_t.shape and x_at.dtype == torch.float32
    )
    np.testing.assert_allclose(x_at.numpy(), x_art, atol=1e-6, rtol=0)
    for key, value in art_attack.last_result.params.items():
        np.testing.assert_allclose(
            at_attack.last_result.params[key].numpy(), value, atol=1e-6, rtol=0
        )
    assert torch.equal(x_t, torch.from_numpy(x))  # input untouched
    # the attack changed something (it is not the identity)
    assert float((x_at - x_t).abs().max()) > 1e-3


def test_perturb_without_labels_uses_predictions(trained_smallcnn, batch):
    x = torch.from_numpy(batch[0])
    attack = adv.FlowAttack(trained_smallcnn, max_iter=3)
    pred = trained_smallcnn(x).argmax(1)
    assert torch.equal(attack.perturb(x), attack.perturb(x, pred))
    assert torch.equal(attack(x), attack.perturb(x))  # Attack.__call__ = perturb


def test_facade_hyper_parameters_mirror_art():
    for name in ("FlowAttack", "AffineAttack", "IntegratedSpatialAttack", "PixelAttack"):
        facade = getattr(adv, name)
        art_cls = getattr(art_attacks, name)
        expected = set(art_cls.attack_params) - {"batch_size", "verbose"}
        assert set(facade.hyper_parameters()) == expected, name
        assert issubclass(facade, adv._at.Attack) and issubclass(facade, adv._at.LabelMixin)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    attack = adv.IntegratedSpatialAttack(model, eps_flow=0.1)
    assert attack.eps_flow == 0.1 and attack.eps_affine == 0.3 and attack.max_iter == 20
    assert attack.clip_min == 0.0 and attack.clip_max == 1.0


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(eps=-1.0), "eps"),
        (dict(eps_step=0.0), "eps_step"),
        (dict(max_iter=-2), "max_iter"),
        (dict(norm="l1"), "norm"),
        (dict(units="cm"), "units"),
        (dict(targeted="yes"), "targeted"),
        (dict(seed=-1), "seed"),
        (dict(padding_mode="wrap"), "padding_mode"),
        (dict(batch_size=4), "batch_size"),  # ART-only: unknown here
        (dict(clip_min=1.0, clip_max=0.0), "clip_min"),
    ],
)
def test_invalid_hyper_parameters(kwargs, needle):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with pytest.raises(ValueError, match=needle):
        adv.FlowAttack(model, **kwargs)


def test_targeted_needs_labels_and_bad_labels_rejected():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="target"):
        adv.FlowAttack(model, targeted=True, max_iter=1).perturb(x)
    with pytest.raises(ValueError, match="y must"):
        adv.FlowAttack(model, max_iter=1).perturb(x, torch.zeros(3, dtype=torch.long))


def test_loss_fn_reduction_sum_is_used_per_example():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    x, y = torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2])
    default = adv.FlowAttack(model, max_iter=3, early_stop_tau=1).perturb(x, y)
    summed = adv.FlowAttack(
        model, loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"), max_iter=3, early_stop_tau=1
    ).perturb(x, y)
    assert torch.allclose(default, summed, atol=1e-6)
    # a margin loss changes the result, so the loss is really used
    margin = adv.FlowAttack(model, loss_fn=lambda z, t: -z.gather(1, t[:, None])[:, 0], max_iter=3)
    assert margin.perturb(x, y).shape == x.shape
    with pytest.raises(ValueError, match="loss_fn"):
        adv.FlowAttack(model, loss_fn=lambda z, t: z.sum(), max_iter=1).perturb(x, y)


def test_import_error_names_extra_in_process(monkeypatch):
    import importlib

    monkeypatch.setitem(sys.modules, "advertorch", None)
    monkeypatch.setitem(sys.modules, "advertorch.attacks", None)
    monkeypatch.delitem(sys.modules, "art_spatial.attacks.advertorch")
    with pytest.raises(ImportError, match=r"art-spatial\[advertorch\]"):
        importlib.import_module("art_spatial.attacks.advertorch")


def test_import_error_names_extra_and_core_import_survives():
    code = (
        "import sys\n"
        "sys.modules['advertorch'] = None\n"
        "sys.modules['advertorch.attacks'] = None\n"
        "import art_spatial.attacks\n"
        "assert hasattr(art_spatial.attacks, 'FlowAttack')\n"
        "try:\n"
        "    import art_spatial.attacks.advertorch\n"
        "except ImportError as exc:\n"
        "    assert 'art-spatial[advertorch]' in str(exc), str(exc)\n"
        "    print('OK')\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "OK"
