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

pytestmark = pytest.mark.usefixtures("one_thread")


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


@pytest.mark.parametrize("name", [*sorted(ART_ATTACKS), "SpatialAutoAttack"])
def test_art_hyper_parameters_are_keyword_only(name):
    """ARTAttack: the estimator is the one positional parameter; every hyper-parameter is keyword-only,
    with its default in the signature and in ART's ``attack_params``; unknown keywords are refused."""
    import inspect

    cls = getattr(A, name)
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params[:1]] == ["estimator"]
    assert params[1:] and all(p.kind is p.KEYWORD_ONLY for p in params[1:])
    assert {p.name for p in params[1:]} <= set(cls.attack_params) | {"targeted"}
    clf = _clf()
    with pytest.raises(TypeError, match="positional"):
        cls(clf, params[1].default)
    with pytest.raises(TypeError, match=r"unexpected keyword.*'epsilon'"):
        cls(clf, epsilon=0.1)
    attack = cls(clf, verbose=False, **{params[1].name: params[1].default})
    assert getattr(attack, params[1].name) == params[1].default


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


@pytest.mark.parametrize(
    "name", ["FlowAttack", "AffineAttack", "IntegratedSpatialAttack", "JointSpatialPixelAttack"]
)
def test_max_iter_zero_returns_x_exactly(name):
    """No step taken: the spatial attacks return x itself, not a resampling of it (1e-6 off on 28 px)."""
    x, y = _digits(4)
    kw = dict(max_iter=0, random_init=False)
    attack = _art(name, _clf(), **kw)
    assert np.array_equal(attack.generate(x, y), x)
    xt = torch.from_numpy(x)
    assert torch.equal(_adv(name, _cnn(), **kw).perturb(xt, torch.from_numpy(y)), xt)


# ------------------------------------------------------------------------ item 2: non-finite input
def _poke(x: np.ndarray, value, idx=(1, 0, 3, 3)) -> np.ndarray:
    x = x.copy()
    x[idx] = value
    return x


@pytest.mark.parametrize("name", sorted(ART_ATTACKS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_attacks_refuse_non_finite_x(name, bad):
    x, y = _digits(4)
    xb = _poke(x, bad)
    with pytest.raises(ValueError, match=r"x contains 1 non-finite value.*index \(1, 0, 3, 3\)"):
        _art(name, _clf()).generate(xb, y)
    with pytest.raises(ValueError, match=r"x contains 1 non-finite value"):
        _adv(name, _cnn()).perturb(torch.from_numpy(xb), torch.from_numpy(y))


def test_attack_tensor_refuses_non_finite_x():
    """The harness and the trainers call attack_tensor directly."""
    x, y = _digits(4)
    attack = A.FlowAttack(_clf(), max_iter=1, verbose=False)
    with pytest.raises(ValueError, match=r"x contains 2 non-finite"):
        attack.attack_tensor(
            _cnn(),
            torch.from_numpy(_poke(_poke(x, np.nan), np.inf, (0, 0, 0, 0))),
            torch.from_numpy(y),
        )


def _toy():
    from test_trainers_helpers import ShiftAttack, toy_classifier, toy_data

    return ShiftAttack, toy_classifier, toy_data


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_trainer_fit_refuses_non_finite_x_and_validation_data():
    from art_spatial import trainers as T

    ShiftAttack, toy_classifier, toy_data = _toy()
    x, y = toy_data(12)
    for bad in (np.nan, np.inf):
        xb = _poke(x, bad, (2, 0, 1, 1))
        clf = toy_classifier()
        before = _weights(clf.model)
        t = T.PGDAdversarialTrainer(clf, ShiftAttack(0.1), verbose=False)
        with pytest.raises(
            ValueError, match=r"^x contains 1 non-finite value.*index \(2, 0, 1, 1\)"
        ):
            t.fit(xb, y, nb_epochs=1, batch_size=4)
        with pytest.raises(
            ValueError, match=r"x_val \(validation_data\[0\]\) contains 1 non-finite"
        ):
            t.fit(x, y, validation_data=(xb, y), nb_epochs=1, batch_size=4)
        assert all(torch.equal(a, b) for a, b in zip(before, _weights(clf.model), strict=True))


class _Batches:
    """A minimal ART-style data generator over fixed batches."""

    def __init__(self, batches):
        self.batches, self.i = batches, 0
        self.size, self.batch_size = sum(len(b[0]) for b in batches), len(batches[0][0])

    def get_batch(self):
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        return b


def test_trainer_fit_generator_refuses_a_non_finite_batch():
    from art_spatial import trainers as T

    ShiftAttack, toy_classifier, toy_data = _toy()
    x, y = toy_data(8)
    gen = _Batches([(x[:4], y[:4]), (_poke(x[4:], np.nan, (0, 0, 0, 0)), y[4:])])
    t = T.PGDAdversarialTrainer(toy_classifier(), ShiftAttack(0.1), verbose=False)
    with pytest.raises(ValueError, match=r"x \(a batch of the generator\) contains 1 non-finite"):
        t.fit_generator(gen, nb_epochs=1)


def test_non_finite_loss_stops_before_the_step_and_keeps_the_checkpoint(tmp_path):
    from art_spatial import trainers as T

    ShiftAttack, toy_classifier, toy_data = _toy()

    class NaNAtCall(ShiftAttack):
        """Returns NaN images from call ``k`` on (a broken custom attack)."""

        def __init__(self, k):
            super().__init__(0.1)
            self.k = k

        def attack_tensor(self, model, x, y, **kw):
            res = super().attack_tensor(model, x, y, **kw)
            if len(self.calls) >= self.k:
                res.x_adv = torch.full_like(res.x_adv, float("nan"))
            return res

    x, y = toy_data(12)
    clf = toy_classifier()
    t = T.PGDAdversarialTrainer(clf, NaNAtCall(k=5), verbose=False, checkpoint_dir=tmp_path)
    with pytest.raises(
        FloatingPointError,
        match=r"loss is nan at epoch 2/3, batch 2/3; the optimizer "
        r"step was not taken and .*last\.pt was not "
        r"overwritten \(it holds epoch 1\)",
    ):
        t.fit(x, y, nb_epochs=3, batch_size=4)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["epoch"] == 1
    assert all(bool(torch.isfinite(v).all()) for v in state["model"].values())
    assert all(bool(torch.isfinite(p).all()) for p in clf.model.parameters())


def test_non_finite_weights_stop_training_before_the_checkpoint(tmp_path):
    from test_trainers_helpers import toy_model

    from art_spatial import trainers as T

    ShiftAttack, _, toy_data = _toy()

    class BlowsUp(torch.optim.SGD):
        """SGD whose 4th step overflows a weight (as a too-large learning rate does)."""

        steps = 0

        def step(self, closure=None):
            out = super().step(closure)
            BlowsUp.steps += 1
            if BlowsUp.steps == 4:
                with torch.no_grad():
                    self.param_groups[0]["params"][0].view(-1)[0] = float("inf")
            return out

    model = toy_model()
    clf = make_classifier(
        model,
        input_shape=(1, 2, 2),
        nb_classes=3,
        clip_values=None,
        optimizer=BlowsUp(model.parameters(), lr=0.05),
    )
    x, y = toy_data(12)
    t = T.PGDAdversarialTrainer(clf, ShiftAttack(0.1), verbose=False, checkpoint_dir=tmp_path)
    with pytest.raises(
        FloatingPointError,
        match=r"weights became non-finite \(1\.weight\) after the "
        r"optimizer step at epoch 2/2, batch 1/3",
    ):
        t.fit(x, y, nb_epochs=2, batch_size=4)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["epoch"] == 1
    assert all(bool(torch.isfinite(v).all()) for v in state["model"].values())


# ----------------------------------------------------------------- item 5: range and integer images
@pytest.mark.parametrize("name", sorted(ART_ATTACKS))
def test_attacks_refuse_x_outside_clip_values(name):
    x, y = _digits(4)
    with pytest.raises(
        ValueError,
        match=r"x has values in \[0\.0\d*, 2\d\d\.\d*\], outside clip_values "
        r"\[0, 1\].*divide by 255",
    ):
        _art(name, _clf()).generate(x * 255, y)
    with pytest.raises(ValueError, match=r"x has dtype uint8.*float.*/ 255"):
        _art(name, _clf()).generate((x * 255).astype(np.uint8), y)
    normalized = (x - 0.1307) / 0.3081
    with pytest.raises(ValueError, match=r"x has values in \[-0\.42\d*, .*mean/std.*preprocessing"):
        _art(name, _clf()).generate(normalized, y)
    with pytest.raises(ValueError, match=r"x has values in \[.*\], outside clip_values \[0, 1\]"):
        _adv(name, _cnn()).perturb(torch.from_numpy(x * 255), torch.from_numpy(y))
    with pytest.raises(ValueError, match=r"x has dtype torch\.uint8"):
        _adv(name, _cnn()).perturb(
            torch.from_numpy((x * 255).astype(np.uint8)), torch.from_numpy(y)
        )


def test_range_check_tolerates_rounding_and_respects_other_ranges():
    x, y = _digits(2)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 1.0 + 1e-7, -1e-7  # float noise of a straight-through clip
    assert _art("FlowAttack", _clf()).generate(x, y).shape == x.shape
    wide = make_classifier(_cnn(), clip_values=(0.0, 255.0))
    assert _art("FlowAttack", wide).generate(x * 255, y).shape == x.shape
    unclipped = make_classifier(_cnn(), clip_values=None)
    assert _art("FlowAttack", unclipped).generate(x * 1000 - 7, y).shape == x.shape
    attack = A.FlowAttack(_clf(), max_iter=1, verbose=False)
    with pytest.raises(ValueError, match=r"outside clip_values \[0, 1\]"):
        attack.attack_tensor(_cnn(), torch.from_numpy(x) + 0.5, torch.from_numpy(y))


def test_trainer_fit_refuses_x_outside_clip_values():
    from test_trainers_helpers import toy_model

    from art_spatial import trainers as T

    ShiftAttack, _, _ = _toy()
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 1, 2, 2), dtype=np.float32), np.arange(12) % 3
    clf = make_classifier(toy_model(), input_shape=(1, 2, 2), nb_classes=3, clip_values=(0.0, 1.0))
    before = _weights(clf.model)
    t = T.PGDAdversarialTrainer(clf, ShiftAttack(0.0), verbose=False)
    with pytest.raises(
        ValueError, match=r"^x has values in \[.*, 2\d\d\.\d*\], outside clip_values"
    ):
        t.fit(x * 255, y, nb_epochs=1, batch_size=4)
    with pytest.raises(ValueError, match=r"^x has dtype uint8"):
        t.fit((x * 255).astype(np.uint8), y, nb_epochs=1, batch_size=4)
    with pytest.raises(ValueError, match=r"^x_val \(validation_data\[0\]\) has values in"):
        t.fit(x, y, validation_data=(x * 255, y), nb_epochs=1, batch_size=4)
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(clf.model), strict=True))
    t.fit(x, y, nb_epochs=1, batch_size=4)  # the same data scaled to clip_values trains


# --------------------------------------------------------------------------------- item 7: labels
#: (labels, message with an estimator (nb_classes known), message of the façade (logits width))
BAD_LABELS = [
    (np.array([1.5, 2.7, 3.0, 4.0]), r"{y} must hold integer class indices.*1\.5 at index 0", None),
    (
        np.array([1, 2, 3, 12]),
        r"{y} has labels outside \[0, 10\): 12 at index 3",
        r"{y} has labels outside \[0, 10\): 12 .*outputs 10 logits",
    ),
    (
        np.array([1, -1, 3, 4]),
        r"{y} has labels outside \[0, 10\): -1 at index 1",
        r"{y} has negative labels: -1 at index 1",
    ),
    (
        np.eye(10)[[1, 2, 3, 4]].reshape(-1),
        r"{y} must have one label per example: 40 labels for 4 "
        r"images \(flattened one-hot labels\? pass them as an N x 10 "
        r"array\)",
        None,
    ),
    (np.array([True, False, True, False]), r"{y} has dtype bool", None),
]


@pytest.mark.parametrize("name", sorted(ART_ATTACKS))
@pytest.mark.parametrize(
    "labels,message,facade",
    BAD_LABELS,
    ids=["float", "too-large", "negative", "flat-one-hot", "bool"],
)
def test_attacks_refuse_bad_labels_naming_y(name, labels, message, facade):
    x, _ = _digits(4)
    with pytest.raises(ValueError, match=message.format(y="y")):
        _art(name, _clf()).generate(x, labels)
    with pytest.raises(
        ValueError, match=message.format(y="y_true")
    ):  # true labels of a targeted attack
        _art(name, _clf(), targeted=True).generate(x, np.array([0, 1, 2, 3]), y_true=labels)
    with pytest.raises(ValueError, match=(facade or message).format(y="y")):
        _adv(name, _cnn()).perturb(torch.from_numpy(x), torch.from_numpy(labels))


@pytest.mark.parametrize("name", sorted(ART_ATTACKS))
def test_one_hot_labels_equal_index_labels_everywhere(name):
    x, y = _digits(4)
    one_hot = np.eye(10, dtype=np.float32)[y]
    a1, a2 = _art(name, _clf()), _art(name, _clf())
    np.testing.assert_array_equal(a1.generate(x, y), a2.generate(x, one_hot))
    f1, f2 = _adv(name, _cnn()), _adv(name, _cnn())
    xt = torch.from_numpy(x)
    assert torch.equal(
        f1.perturb(xt, torch.from_numpy(y)), f2.perturb(xt, torch.from_numpy(one_hot))
    )


def test_attack_tensor_names_y_when_labels_exceed_the_logits():
    """The harness path: no estimator, so the number of classes is that of the model's logits."""
    x, y = _digits(4)
    attack = A.AffineAttack(_clf(), max_iter=1, verbose=False)
    with pytest.raises(ValueError, match=r"y has labels outside \[0, 10\): 12 .*outputs 10 logits"):
        attack.attack_tensor(_cnn(), torch.from_numpy(x), torch.tensor([1, 2, 3, 12]))
    with pytest.raises(ValueError, match=r"y must hold integer class indices.*2\.5 at index 1"):
        attack.attack_tensor(_cnn(), torch.from_numpy(x), torch.tensor([1.0, 2.5, 3.0, 4.0]))


def test_trainer_fit_refuses_bad_labels_naming_them():
    from art_spatial import trainers as T

    ShiftAttack, toy_classifier, toy_data = _toy()
    x, y = toy_data(12)
    clf = toy_classifier()
    before = _weights(clf.model)
    t = T.PGDAdversarialTrainer(clf, ShiftAttack(0.1), verbose=False)
    cases = [
        (y + 0.5, r"^y must hold integer class indices.*0\.5 at index 0"),
        (np.where(np.arange(12) == 7, 3, y), r"^y has labels outside \[0, 3\): 3 at index 7"),
        (
            np.eye(3)[y].reshape(-1),
            r"^y must have one label per example: 36 labels for 12 images "
            r"\(flattened one-hot",
        ),
        (np.eye(4)[y], r"^y has shape \(12, 4\): one-hot labels need nb_classes = 3 columns"),
        (np.zeros((12, 3)), r"^y \(one-hot\) row 0 has no single largest entry"),
    ]
    for labels, message in cases:
        with pytest.raises(ValueError, match=message):
            t.fit(x, labels, nb_epochs=1, batch_size=4)
    with pytest.raises(ValueError, match=r"^y_val \(validation_data\[1\]\) has labels outside"):
        t.fit(x, y, validation_data=(x, y + 3), nb_epochs=1, batch_size=4)
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(clf.model), strict=True))
    gen = _Batches(
        [(x[:4], y[:4]), (x[4:8], y[4:8] + 0.25)]
    )  # checked batch by batch, as they come
    with pytest.raises(ValueError, match=r"^y \(a batch of the generator\) must hold integer"):
        t.fit_generator(gen, nb_epochs=1)


# ------------------------------------------------------------------ item 1: layout and image shape
class _NHWC(torch.nn.Module):
    """A channels-last model: takes N x H x W x C and runs ``net`` (channels-first) on it."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.permute(0, 3, 1, 2))


def _rgb_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 32 * 32, 10),
    ).eval()


def _pytorch_classifier(model, input_shape, channels_first, preprocessing=None):
    from art.estimators.classification import PyTorchClassifier

    kw = {} if preprocessing is None else dict(preprocessing=preprocessing)
    return PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=10,
        clip_values=(0.0, 1.0),
        channels_first=channels_first,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        **kw,
    )


@pytest.mark.parametrize("name", sorted(ART_ATTACKS))
def test_channels_last_estimators_are_attacked_in_their_layout(name):
    """channels_first=False: x is transposed in and out; the result equals the channels-first twin's."""
    rng = np.random.default_rng(1)
    x = rng.random((3, 3, 32, 32), dtype=np.float32)
    y = np.array([1, 5, 7])
    pre = (np.array([0.49, 0.48, 0.45], np.float32), np.array([0.25, 0.24, 0.26], np.float32))
    net = _rgb_net()
    cf = _pytorch_classifier(net, (3, 32, 32), True, pre)
    cl = _pytorch_classifier(_NHWC(net), (32, 32, 3), False, pre)
    kw = dict(random_init=True) if name not in ("GridSpatialAttack", "PixelAttack") else {}
    a_cf, a_cl = _art(name, cf, **kw), _art(name, cl, **kw)
    x_cf = a_cf.generate(x, y)
    x_cl = a_cl.generate(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), y)
    assert x_cl.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(x_cl, x_cf.transpose(0, 2, 3, 1))
    r_cf, r_cl = a_cf.last_result, a_cl.last_result
    np.testing.assert_array_equal(r_cl.translation_px, r_cf.translation_px)
    np.testing.assert_array_equal(r_cl.success, r_cf.success)
    if "pixel" in r_cf.params:  # in the layout of x
        np.testing.assert_array_equal(
            r_cl.params["pixel"], r_cf.params["pixel"].transpose(0, 2, 3, 1)
        )


@pytest.mark.parametrize("name", sorted(ART_ATTACKS))
def test_layout_and_shape_mismatches_are_refused_up_front(name):
    x, y = _digits(2)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    with pytest.raises(
        ValueError,
        match=r"x has shape \(2, 28, 28, 1\) but the estimator expects "
        r"N x 1 x 28 x 28 \(channels first\).*channels-last.*"
        r"transpose\(0, 3, 1, 2\)",
    ):
        _art(name, _clf()).generate(nhwc, y)
    with pytest.raises(
        ValueError,
        match=r"x has shape \(2, 1, 32, 32\) but the estimator expects "
        r"N x 1 x 28 x 28",
    ):
        _art(name, _clf()).generate(np.zeros((2, 1, 32, 32), np.float32), y)
    with pytest.raises(
        ValueError,
        match=r"x has shape \(2, 3, 28, 28\) but the estimator expects "
        r"N x 1 x 28 x 28",
    ):
        _art(name, _clf()).generate(np.zeros((2, 3, 28, 28), np.float32), y)
    cl = _pytorch_classifier(_NHWC(_cnn()), (28, 28, 1), False)
    with pytest.raises(
        ValueError,
        match=r"x has shape \(2, 1, 28, 28\) but the estimator expects "
        r"N x 28 x 28 x 1 \(channels last\).*channels-first.*"
        r"transpose\(0, 2, 3, 1\)",
    ):
        _art(name, cl).generate(x, y)
    with pytest.raises(
        ValueError,
        match=r"x has shape \(2, 28, 28, 1\): it looks channels-last.*"
        r"N x C x H x W.*permute\(0, 3, 1, 2\)",
    ):
        _adv(name, _cnn()).perturb(torch.from_numpy(nhwc), torch.from_numpy(y))


def test_trainers_refuse_permuted_data_and_train_channels_last_classifiers():
    """A linear model takes permuted data without complaint: the shape check is the only guard."""
    from art_spatial import trainers as T

    ShiftAttack, _, _ = _toy()
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 3, 4, 4), dtype=np.float32), np.arange(12) % 10

    def linear(seed=0):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))

    clf = _pytorch_classifier(linear(), (3, 4, 4), True)
    t = T.PGDAdversarialTrainer(clf, ShiftAttack(0.0), verbose=False)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    with pytest.raises(
        ValueError,
        match=r"^x has shape \(12, 4, 4, 3\) but the estimator expects "
        r"N x 3 x 4 x 4 \(channels first\).*channels-last",
    ):
        t.fit(nhwc, y, nb_epochs=1, batch_size=4)
    with pytest.raises(
        ValueError, match=r"^x_val \(validation_data\[0\]\) has shape \(12, 4, 4, 3\)"
    ):
        t.fit(x, y, validation_data=(nhwc, y), nb_epochs=1, batch_size=4)
    # a channels-last classifier trains on its own layout exactly as its channels-first twin
    t.fit(x, y, validation_data=(x, y), nb_epochs=2, batch_size=4)
    net = linear()
    cl = _pytorch_classifier(_NHWC(net), (4, 4, 3), False)
    t_cl = T.PGDAdversarialTrainer(cl, ShiftAttack(0.0), verbose=False)
    t_cl.fit(nhwc, y, validation_data=(nhwc, y), nb_epochs=2, batch_size=4)
    for a, b in zip(clf.model.parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert [h["val_clean_acc"] for h in t_cl.history] == [h["val_clean_acc"] for h in t.history]
