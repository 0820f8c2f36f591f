"""Bad input gets a clear error and never a silent wrong answer (attacks, façades, trainers).

Every row of the table in docs/reliability.md is one of these tests: channels-last data and estimators,
non-finite images, images outside ``clip_values``, empty batches, bad labels, the AdverTorch façades'
signature, unknown keywords, non-PyTorch estimators and ``max_iter=0``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import art_spatial.attacks.advertorch as adv
from art_spatial import attacks as A
from art_spatial.models import SmallCNN, make_classifier


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _cnn(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return SmallCNN().eval()


def _clf(seed: int = 0):
    return make_classifier(_cnn(seed))


def _digits(n: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28), dtype=np.float32), (np.arange(n) % 10).astype(np.int64)


#: one quick configuration per ART attack class
ART_ATTACKS = {
    "FlowAttack": dict(max_iter=2),
    "AffineAttack": dict(max_iter=2),
    "IntegratedSpatialAttack": dict(max_iter=2),
    "PixelAttack": dict(max_iter=2),
    "JointSpatialPixelAttack": dict(max_iter=2),
    "GridSpatialAttack": dict(rotations=[-10, 0, 10], translations_x=[0], translations_y=[0]),
}


def _art(name: str, clf, **kw):
    return getattr(A, name)(clf, verbose=False, **{**ART_ATTACKS[name], **kw})


def _adv(name: str, model, **kw):
    return getattr(adv, name)(model, **{**ART_ATTACKS[name], **kw})


# ------------------------------------------------------------------------------ item 6: empty batches
@pytest.mark.parametrize("name", sorted(ART_ATTACKS))
@pytest.mark.parametrize("with_y", [True, False])
def test_generate_on_an_empty_batch_returns_an_empty_result(name, with_y):
    x, y = _digits(0)
    attack = _art(name, _clf())
    x_adv = attack.generate(x, y if with_y else None)
    assert x_adv.shape == (0, 1, 28, 28) and x_adv.dtype == np.float32
    res = attack.last_result
    assert res.success.shape == (0,) and res.kappa.shape == (0,) and res.n_forward == 0
    assert all(v.shape[0] == 0 for v in res.params.values())


class _NeedsData(torch.nn.Module):
    """Normalizes each batch by its minimum: fails on an empty batch (as any reduction would)."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))

    def forward(self, x):
        return self.net(x - x.min())


@pytest.mark.parametrize("name", sorted(ART_ATTACKS))
def test_perturb_on_an_empty_batch_never_calls_the_model(name):
    attack = _adv(name, _NeedsData().eval())
    for y in (torch.zeros(0, dtype=torch.long), None):
        out = attack.perturb(torch.rand(0, 1, 28, 28), y)
        assert out.shape == (0, 1, 28, 28)
        assert attack.last_result.success.shape == (0,)


# --------------------------------------------------------- item 10: signature, keywords, estimators
def test_advertorch_hyper_parameters_are_keyword_only():
    model = _cnn()
    with pytest.raises(TypeError, match="positional"):
        adv.FlowAttack(model, None, 0.3)  # 0.3 used to land in clip_min
    with pytest.raises(TypeError, match="positional"):
        adv.PixelAttack(model, None, 0.0, 1.0)
    attack = adv.FlowAttack(model, None, eps=0.3, clip_min=0.0, clip_max=1.0)
    assert (attack.eps, attack.clip_min, attack.clip_max) == (0.3, 0.0, 1.0)


@pytest.mark.parametrize("name", sorted(ART_ATTACKS))
def test_generate_refuses_unknown_keywords(name):
    x, y = _digits(2)
    attack = _art(name, _clf())
    with pytest.raises(ValueError, match=r"unknown.*'unknown'.*record.*y_true"):
        attack.generate(x, y, unknown=1)


def _sklearn_classifier():
    from art.estimators.classification import SklearnClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = _digits(20)
    model = LogisticRegression(max_iter=1000).fit(x.reshape(20, -1), y)
    return SklearnClassifier(model, clip_values=(0, 1))


@pytest.mark.parametrize("name", sorted(ART_ATTACKS))
def test_non_pytorch_estimators_are_refused_in_the_constructor(name):
    with pytest.raises(TypeError, match="PyTorchClassifier.*ScikitlearnLogisticRegression"):
        _art(name, _sklearn_classifier())


@pytest.mark.parametrize("name", ["FlowAttack", "AffineAttack", "IntegratedSpatialAttack",
                                  "JointSpatialPixelAttack"])
def test_max_iter_zero_returns_x_exactly(name):
    """No step taken: the spatial attacks return x itself, not a resampling of it (1e-6 off on 28 px)."""
    x, y = _digits(4)
    kw = dict(max_iter=0, random_init=False)
    attack = _art(name, _clf(), **kw)
    assert np.array_equal(attack.generate(x, y), x)
    xt = torch.from_numpy(x)
    assert torch.equal(_adv(name, _cnn(), **kw).perturb(xt, torch.from_numpy(y)), xt)
