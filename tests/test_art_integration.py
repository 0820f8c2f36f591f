"""ART integration: ART's own AdversarialTrainer, estimators with preprocessing (gradients vs finite
differences), set_params, label formats, and hyper-parameter validation of every attack."""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from art.defences.trainer import AdversarialTrainer

from art_spatial import warp as W
from art_spatial.attacks import (
    AffineAttack,
    FlowAttack,
    IntegratedSpatialAttack,
    PixelAttack,
    estimator_logits_fn,
)
from art_spatial.models import Normalize, make_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

ATTACKS = [FlowAttack, AffineAttack, IntegratedSpatialAttack, PixelAttack]
MEAN, STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def few(test_batch):
    x, y = test_batch
    return x[::20], y[::20]  # 10 digits, one per class


# ------------------------------------------------------------------------------ ART's own trainer
def test_runs_inside_art_adversarial_trainer(smallcnn_classifier, mnist_train):
    x, y = mnist_train
    x, y = x[:64], y[:64]
    flow = FlowAttack(smallcnn_classifier, max_iter=2, verbose=True)
    integrated = IntegratedSpatialAttack(smallcnn_classifier, max_iter=2, verbose=True)
    before = [p.detach().clone() for p in smallcnn_classifier.model.parameters()]
    trainer = AdversarialTrainer(smallcnn_classifier, attacks=[flow, integrated], ratio=0.5)
    trainer.fit(x, y, nb_epochs=1, batch_size=32)
    after = list(smallcnn_classifier.model.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))  # it trained
    assert (
        flow.verbose is False and integrated.verbose is False
    )  # ART called set_params(verbose=False)
    assert flow.last_result is not None and len(flow.last_result.success) == 16  # ratio 0.5 of 32
    assert integrated.last_result is not None
    # still a working classifier
    preds = trainer.predict(x[:8])
    assert preds.shape == (8, 10) and np.isfinite(preds).all()


# -------------------------------------------------------------------- preprocessing (mean, std)
def _pre_classifier(model):
    return make_classifier(model, preprocessing=(MEAN, STD))


def test_gradients_through_preprocessing_match_finite_differences(trained_smallcnn, few):
    """d CE / d (flow, affine) through ART's preprocessing == central finite differences, and equals
    the gradient of the same model with the normalization inside it."""
    x = torch.from_numpy(few[0][:4]).double()  # float64: finite differences need the precision
    y = torch.from_numpy(few[1][:4])
    model = copy.deepcopy(trained_smallcnn).double()
    clf = _pre_classifier(model)
    logits = estimator_logits_fn(clf)
    inside = torch.nn.Sequential(Normalize(MEAN, STD), copy.deepcopy(model)).double().eval()
    g = torch.Generator().manual_seed(0)
    flow = (0.05 * torch.randn(4, 28, 28, 2, generator=g, dtype=torch.float64)).requires_grad_()
    aff = (0.05 * torch.randn(4, 2, 3, generator=g, dtype=torch.float64)).requires_grad_()

    def loss_of(f, a, fn=logits):
        return F.cross_entropy(fn(W.warp(x, affine=a, flow=f)), y, reduction="sum")

    gf, ga = torch.autograd.grad(loss_of(flow, aff), [flow, aff])
    gf2, ga2 = torch.autograd.grad(loss_of(flow, aff, inside), [flow, aff])
    assert float(gf.abs().max()) > 0 and float(ga.abs().max()) > 0
    torch.testing.assert_close(gf, gf2, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ga, ga2, rtol=1e-4, atol=1e-6)
    # the preprocessing is really applied: without it the gradient differs
    gf_raw = torch.autograd.grad(loss_of(flow, aff, model), [flow])[0]
    assert float((gf_raw - gf).abs().max()) > 1e-3 * float(gf.abs().max())
    # central differences along random directions; the warped loss is strongly curved along random
    # flow directions (h = 1e-3 is already off), so h = 1e-6 in float64; kinks (ReLU, max-pool,
    # bilinear cells) crossed inside ±h leave a measured relative error up to 0.3 %
    h = 1e-6
    with torch.no_grad():
        for _ in range(3):
            df = torch.randn(flow.shape, generator=g, dtype=torch.float64)
            da = torch.randn(aff.shape, generator=g, dtype=torch.float64)
            for d_f, d_a, grad, d in ((df, 0 * da, gf, df), (0 * df, da, ga, da)):
                up = loss_of(flow + h * d_f, aff + h * d_a)
                down = loss_of(flow - h * d_f, aff - h * d_a)
                fd, an = (up - down) / (2 * h), (grad * d).sum()
                assert abs(float(fd - an)) <= 1e-2 * abs(float(an)) + 1e-3, (float(fd), float(an))


@pytest.mark.parametrize("cls", ATTACKS)
def test_generate_with_preprocessing_equals_model_with_normalization(cls, trained_smallcnn, few):
    x, y = few
    with_pre = cls(_pre_classifier(copy.deepcopy(trained_smallcnn)), max_iter=3, verbose=False)
    inside = torch.nn.Sequential(Normalize(MEAN, STD), copy.deepcopy(trained_smallcnn))
    plain = cls(make_classifier(inside, input_shape=(1, 28, 28)), max_iter=3, verbose=False)
    a, b = with_pre.generate(x, y), plain.generate(x, y)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.abs(a - x).max() > 1e-3


# ------------------------------------------------------------------- set_params and label formats
@pytest.mark.parametrize("cls", ATTACKS)
def test_set_params_verbose_and_targeted(cls, smallcnn_classifier, few):
    x, y = few
    attack = cls(smallcnn_classifier, max_iter=5)
    attack.set_params(verbose=False)
    assert attack.verbose is False
    attack.set_params(targeted=True)
    assert attack.targeted is True
    target = (y + 1) % 10
    x_adv = attack.generate(x, target)
    pred = smallcnn_classifier.predict(x_adv).argmax(1)
    np.testing.assert_array_equal(attack.last_result.success, pred == target)
    with pytest.raises(ValueError, match="target"):
        attack.generate(x)  # targeted needs labels
    attack.set_params(targeted=False)
    assert attack.targeted is False
    with pytest.raises(ValueError, match="max_iter"):
        attack.set_params(max_iter=-1)


def test_targeted_attack_reaches_targets(smallcnn_classifier, few):
    x, y = few
    target = (y + 1) % 10
    attack = IntegratedSpatialAttack(smallcnn_classifier, max_iter=20, targeted=True, verbose=False)
    attack.generate(x, target)
    # measured: 8/10 digits reach their target label (integrated attack, Pareto MNIST budget, 20 steps)
    assert attack.last_result.success.mean() >= 0.6


@pytest.mark.parametrize("cls", ATTACKS)
def test_label_formats(cls, smallcnn_classifier, few):
    x, y = few
    attack = cls(smallcnn_classifier, max_iter=2, verbose=False, batch_size=4)
    a = attack.generate(x, y)
    b = attack.generate(x, np.eye(10, dtype=np.float32)[y])
    np.testing.assert_array_equal(a, b)
    pred = smallcnn_classifier.predict(x).argmax(1)
    np.testing.assert_array_equal(attack.generate(x), attack.generate(x, pred))
    assert a.dtype == np.float32 and a.shape == x.shape
    with pytest.raises(ValueError, match="y must"):
        attack.generate(x, y[:3])


# --------------------------------------------------------------------------------- validation
def test_attack_params_cover_constructor():
    for cls in ATTACKS:
        names = set(inspect.signature(cls.__init__).parameters) - {"self", "estimator"}
        assert names == set(cls.attack_params), cls.__name__
        assert {"verbose", "targeted", "batch_size"} <= set(cls.attack_params)


COMMON_BAD = [
    ("max_iter", -1),
    ("max_iter", 2.5),
    ("targeted", "yes"),
    ("random_init", 1),
    ("early_stop_tau", -1),
    ("seed", -3),
    ("padding_mode", "wrap"),
    ("batch_size", 0),
    ("verbose", "loud"),
]
SPECIFIC_BAD = {
    FlowAttack: [
        ("eps", -0.1),
        ("eps", float("nan")),
        ("eps_step", 0.0),
        ("norm", "l2"),
        ("units", "cm"),
    ],
    AffineAttack: [
        ("eps", -0.1),
        ("eps_step", -1.0),
        ("parametrization", "scale"),
        ("max_rotation", -5.0),
        ("max_translation", float("inf")),
        ("rotation_step", 0.0),
        ("translation_step", -0.3),
    ],
    IntegratedSpatialAttack: [
        ("eps_flow", -1.0),
        ("eps_affine", -1.0),
        ("eps_step_flow", 0.0),
        ("eps_step_affine", 0.0),
        ("flow_norm", "l1"),
        ("units", "mm"),
        ("parametrization", "perspective"),
        ("max_rotation", -1.0),
        ("max_translation", -1.0),
        ("rotation_step", 0.0),
        ("translation_step", 0.0),
    ],
    PixelAttack: [("eps", -0.3), ("eps_step", 0.0), ("eps", "0.3")],
}
CASES = [(cls, name, value) for cls in ATTACKS for name, value in COMMON_BAD + SPECIFIC_BAD[cls]]


@pytest.mark.parametrize(
    "cls,name,value", CASES, ids=[f"{c.__name__}-{n}-{v!r}" for c, n, v in CASES]
)
def test_invalid_hyper_parameter_raises_naming_it(cls, name, value):
    clf = make_classifier(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10)), input_shape=(1, 4, 4)
    )
    with pytest.raises(ValueError, match=name):
        cls(clf, **{name: value})
    attack = cls(clf)
    with pytest.raises(ValueError, match=name):
        attack.set_params(**{name: value})
